"""CAPF client over TLS (TCP 3804): the phone's side of enrollment, as a Trio adapter.

Wraps the sans-I/O :class:`tvs.capf.client.ClientSession`: connect, TLS handshake without a
client certificate, pin the server to the CAPF certificate (a file, or the CAPF records of a
CTL/ITL, as a phone does) or ``insecure``, then let the server speak first and answer until
END_SESSION. The phone's key is made as the server asks (RSA size or EC curve) in a worker
thread, after REQUEST_IN_PROGRESS is sent. Every message goes out in one write; every wait has
a deadline. Used by ``phone-emu capf``, the phone's boot sequence and ``benchmarks/capf_load.py``.

Example (what the phone's boot driver calls)::

    from phone_emu.capf_client import CapfClientConfig, capf_enroll, trust_from_file

    config = CapfClientConfig(
        device_name="SEP001122334455",
        trust=trust_from_file("ITLSEP001122334455.tlv"),  # or a CAPF certificate file
        password="",                                    # null string; "4321" = auth string
        credential=None,                                # or Credential(CertType.LSC, der, key)
    )
    result = await capf_enroll("127.0.0.1", 3804, config)
    if result.result == "installed":
        new_cert, new_key = result.certificate, result.key   # tvs.certs.Certificate, key
    elif result.result == "refused":
        print(result.reason_code, result.why)                # capf.auth-failed ...

Transport and protocol failures raise :class:`CapfClientError` subclasses (each with a
``reason_code`` such as ``capf.server-untrusted``, ``capf.timeout``, ``capf.connect-failed``: the
phone's own vocabulary for one attempt);
a refusal by the server is a result, not an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import trio
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from tvs import device
from tvs.capf import NEED_DATA, CapfError, CertType, Decoder, Message, Reason
from tvs.capf.client import ClientSession, Credential, generate_key
from tvs.capf.session import KeySpec
from tvs.certs import Certificate, CertificateError, PrivateKey, load_certificates
from tvs.roles import Role
from tvs.tlsclient import (
    ClientTls,
    ConnectFailed,
    ConnectTimeout,
    HandshakeFailed,
    client_tls,
    open_tls,
)
from tvs.tlsstream import TlsError, TlsStream

__all__ = [
    "CapfClientConfig",
    "CapfClientError",
    "CapfConnectError",
    "CapfHandshakeError",
    "CapfProtocolError",
    "CapfResult",
    "CapfTimeout",
    "CertType",
    "Credential",
    "capf_enroll",
    "reason_code",
    "trust_from_file",
]


class CapfClientError(Exception):
    """Talking to a CAPF failed (not a refusal: those are results)."""

    reason_code = "capf.error"


class CapfConnectError(CapfClientError, ConnectionError):
    reason_code = "capf.connect-failed"


class CapfHandshakeError(CapfClientError):
    """TLS failed, or the server certificate is not the trusted CAPF certificate."""

    reason_code = "capf.server-untrusted"


class CapfTimeout(CapfClientError, TimeoutError):
    reason_code = "capf.timeout"


class CapfProtocolError(CapfClientError):
    """The server sent something the phone cannot accept, or closed mid-session."""

    reason_code = "capf.protocol-error"


_CODES = {
    "installed": "capf.installed",
    "fetched": "capf.fetched",
    "deleted": "capf.deleted",
    "nothing": "capf.nothing-pending",
}


def reason_code(result: str, reason: int) -> str:
    """The phone's reason code for a session result (``capf.auth-failed`` for reason 7...)."""
    if result != "refused":
        return _CODES.get(result, f"capf.{result}")
    if reason == Reason.UNKNOWN_DEVICE:
        return "capf.unknown-device"
    if reason == Reason.FAILURE:
        return "capf.auth-failed"
    return "capf.refused"


def trust_from_file(path: str | Path) -> tuple[Certificate, ...]:
    """Certificates to trust as the CAPF: a PEM/DER certificate file, or the CAPF records
    (role 4) of a CTL/ITL ``.tlv``. Raises :class:`ValueError` naming the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"{p}: {exc.strerror or exc}") from None
    if data.startswith(b"\x01\x00\x02"):  # a CTL/ITL header starts with its version element
        from tvs.tlv import TlvError, parse_file

        try:
            tf = parse_file(data)
        except TlvError as exc:
            raise ValueError(f"{p}: {exc}") from None
        certs = []
        for rec in tf.records_with_role(Role.CAPF):
            if rec.certificate:
                certs.append(Certificate.from_der(rec.certificate))
        if not certs:
            raise ValueError(f"{p}: no CAPF record with a certificate")
        return tuple(certs)
    try:
        return tuple(load_certificates(data, source=str(p)))
    except CertificateError as exc:
        raise ValueError(str(exc)) from None


def _certificates(value: Iterable[Certificate]) -> tuple[Certificate, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class CapfClientConfig:
    """One phone's CAPF session. Without ``insecure`` the server certificate must equal one of
    ``trust``. ``password`` "" is the null string. ``credential`` proves the phone with an
    existing LSC or MIC; ``sudi`` adds SUDI_DATA (a MIC and its key). ``current_lsc`` is what
    a fetch returns and a delete removes. ``keygen`` makes the key the server asks for
    (benchmarks pass pre-generated keys)."""

    device_name: str = attrs.field(converter=device.device_name)
    trust: tuple[Certificate, ...] = attrs.field(default=(), converter=_certificates)
    insecure: bool = False
    password: str = ""
    credential: Credential | None = None
    sudi: Credential | None = None
    current_lsc: Certificate | None = None
    keygen: Callable[[KeySpec], Any] = generate_key
    keygen_in_thread: bool = True
    connect_timeout: float = 5.0
    timeout: float = 10.0
    """Seconds for the handshake, and for each message from the server."""
    keygen_timeout: float = 60.0
    keylog: Path | None = None
    legacy_tls: bool = False
    max_message: int = 16 * 1024
    def client_tls(self) -> ClientTls:
        """The client TLS context; one per distinct (trust, insecure, legacy, keylog), shared
        by every config alike (a fleet enrolls thousands of phones through a few contexts)."""
        return client_tls(
            pinned=None if self.insecure else self.trust,
            legacy=self.legacy_tls,
            keylog=self.keylog,
        )


@attrs.frozen
class CapfResult:
    """How the session ended. ``result``: installed, fetched, deleted, nothing or refused;
    ``reason`` is the END_SESSION reason; ``certificate``/``key`` the new LSC (installed) or
    the LSC returned (fetched)."""

    device_name: str
    operation: str
    result: str
    reason: int
    why: str
    session_id: int | None
    certificate: Certificate | None = None
    key: PrivateKey | None = attrs.field(default=None, repr=False)
    server_certificate: Certificate | None = None
    messages: tuple[tuple[str, Message], ...] = attrs.field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.result != "refused"

    @property
    def reason_code(self) -> str:
        return reason_code(self.result, self.reason)

    def pem(self) -> bytes:
        """The new certificate then its key (PEM), as ``--out`` writes them."""
        out = self.certificate.to_pem() if self.certificate else b""
        if self.key is not None:
            out += self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        cert = self.certificate
        return {
            "device": self.device_name,
            "operation": self.operation,
            "result": self.result,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "why": self.why,
            "session_id": self.session_id,
            "certificate": None
            if cert is None
            else {
                "subject": cert.subject,
                "issuer": cert.issuer,
                "serial": cert.serial_hex,
                "sha256": cert.sha256.hex(),
                "not_after": cert.not_valid_after.isoformat(),
            },
            "messages": [f"{d} {m.name}" for d, m in self.messages],
        }


async def _next_message(
    tls: TlsStream, decoder: Decoder, where: str, timeout: float
) -> Message:
    try:
        with trio.fail_after(timeout):
            while True:
                msg = decoder.next_message()
                if isinstance(msg, Message):
                    return msg
                if msg is not NEED_DATA:
                    raise CapfProtocolError(f"{where} closed the session before END_SESSION")
                data = await tls.receive_some(65536)
                decoder.receive_data(bytes(data))
    except trio.TooSlowError:
        raise CapfTimeout(f"no message from {where} within {timeout}s") from None
    except TlsError as exc:
        raise CapfProtocolError(f"{where}: connection broken: {exc.reason}") from None
    except (OSError, trio.ClosedResourceError) as exc:
        raise CapfProtocolError(f"{where}: connection broken: {exc}") from None


async def capf_enroll(host: str, port: int, config: CapfClientConfig) -> CapfResult:
    """Run one CAPF session with the server at ``host:port`` (see the module docstring)."""
    where = f"{host}:{port}"
    session = ClientSession(
        config.device_name,
        password=config.password,
        credential=config.credential,
        sudi=config.sudi,
        current_lsc=config.current_lsc.der if config.current_lsc else None,
    )
    log: list[tuple[str, Message]] = []
    try:
        context = config.client_tls()
    except (SSL.Error, ValueError, OSError) as exc:
        raise CapfHandshakeError(f"cannot build the TLS context: {exc}") from None
    try:
        opened = await open_tls(
            host,
            port,
            context,
            pinned=None if config.insecure else config.trust,
            connect_timeout=config.connect_timeout,
            handshake_timeout=config.timeout,
            not_pinned=f"{where}: CAPF certificate not trusted",
        )
    except ConnectTimeout as exc:
        raise CapfTimeout(str(exc)) from None
    except ConnectFailed as exc:
        raise CapfConnectError(str(exc)) from None
    except HandshakeFailed as exc:
        raise CapfHandshakeError(str(exc)) from None
    tls, server_cert = opened.stream, opened.server_certificate
    try:
        decoder = Decoder(config.max_message)

        async def send(messages: list[Message]) -> None:
            for m in messages:
                log.append(("C>S", m))
                try:
                    with trio.fail_after(config.timeout):
                        await tls.send_all(m.encode())  # header and body in one write
                except trio.TooSlowError:
                    raise CapfTimeout(f"{where} did not take our {m.name}") from None
                except (OSError, trio.ClosedResourceError) as exc:
                    raise CapfProtocolError(f"{where}: connection broken: {exc}") from None

        while not session.done:
            msg = await _next_message(tls, decoder, where, config.timeout)
            log.append(("S>C", msg))
            try:
                await send(session.receive(msg))
                spec = session.key_request
                if spec is not None:
                    with trio.fail_after(config.keygen_timeout):
                        if config.keygen_in_thread:
                            key = await trio.to_thread.run_sync(config.keygen, spec)
                        else:
                            key = config.keygen(spec)
                    await send(session.provide_key(key))
            except CapfError as exc:
                raise CapfProtocolError(f"{where}: {exc}") from None
    except CapfError as exc:  # the codec's errors from the decoder
        raise CapfProtocolError(f"{where}: bad message ({exc.reason}): {exc}") from None
    finally:
        tls.close()
    res = session.result
    assert res is not None
    cert = Certificate.from_der(res.certificate) if res.certificate else None
    return CapfResult(
        device_name=config.device_name,
        operation=res.operation,
        result=res.result,
        reason=res.reason,
        why=res.why,
        session_id=session.session_id,
        certificate=cert,
        key=res.key,
        server_certificate=server_cert,
        messages=tuple(log),
    )
