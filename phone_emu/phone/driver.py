"""The Trio driver: performs a boot machine's actions with the file fetcher (HTTP 6970 first,
then TFTP, per file: ``fetch.py``), the TVS client and a secure SIP registration (TLS to the
CallManager's port, then a ``REGISTER``), and keeps the phone's state.

Owns :class:`Phone` (identity + trust state + configuration + optional state directory),
:class:`NetworkOptions` (the client settings a whole fleet can share) and :func:`boot_phone`.
Every wait has a deadline (each file's download, TVS connect/handshake/response, SIP
handshake and REGISTER answer). The REGISTER is what makes a refused phone certificate
visible: under TLS 1.3 the phone's handshake ends before the server has checked its
certificate, and the server's alert only arrives when the phone reads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from phone_emu.tvs_client import (
    TvsClientConfig,
    TvsClientError,
    TvsConnectError,
    TvsHandshakeError,
    TvsProtocolError,
    TvsTimeout,
    tvs_exchange,
)
from tvs.certs import Certificate
from tvs.sip import SipError, register_request, response_status, split_message
from tvs.tlsclient import ConnectFailed, ConnectTimeout, HandshakeFailed, open_tls
from tvs.tlsstream import TlsError, TlsStream

from .boot import (
    Action,
    BootDone,
    BootMachine,
    BootOptions,
    BootResult,
    CapfIssued,
    ConnectSip,
    FetchFile,
    QueryTvs,
    Result,
    RunCapf,
    SipConnected,
    SipFailed,
    SipRejected,
    TransportFailure,
    TvsAnswered,
    TvsFailed,
)
from .capfrun import run_capf
from .config import PhoneConfig
from .fetch import Fetcher, FetchOptions
from .identity import PhoneIdentity
from .persist import LSC_FILE, StateProblem, StateStore
from .trust import TrustListCache, TrustState

__all__ = ["CapfRunner", "NetworkOptions", "Phone", "boot_phone"]

CapfRunner = Callable[[RunCapf, PhoneIdentity, "NetworkOptions"], Awaitable[Result]]
"""Runs one CAPF session for the phone (TLS, the session, key generation); returns
:class:`CapfIssued`, :class:`CapfEnded` or :class:`CapfFailed` stamped by the caller's clock."""

_CERTIFICATE_ALERTS = (
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_REQUIRED",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "ACCESS_DENIED",
)
"""TLS alerts (OpenSSL reason names) by which a server refuses the client's certificate."""
_REFUSED = "the server refused the phone's certificate"
_CLOSED = "the connection was closed without a TLS alert (a transport error, not a refusal)"
_CLOSED_REASONS = ("UNEXPECTED_EOF_WHILE_READING",)
"""OpenSSL's reasons for a peer that closed mid-record: a transport error too."""


@attrs.frozen
class NetworkOptions:
    """Client settings for one boot; one value can serve a whole fleet.

    ``tvs`` is a template: the phone's LSC/key (when the identity has them) and its ITL pins
    are filled in per query. Its TLS settings hold for TVS and SIP alike: ``legacy_tls`` also
    allows TLS 1.0/1.1, ``tls_max="1.0"`` makes the phone offer only what old firmware offers
    (TLS 1.0 with AES256-SHA).
    """

    tvs: TvsClientConfig = attrs.field(factory=TvsClientConfig)
    tftp_timeout: float = 1.0
    tftp_retries: int = 5
    tftp_blksize: int | None = None
    tftp_bind: str | None = None
    sip_timeout: float = 5.0
    capf_timeout: float = 10.0
    capf_runner: CapfRunner | None = attrs.field(default=None, eq=False)
    """How the phone runs one CAPF session (None: :func:`.capfrun.run_capf`, the CAPF client
    over TLS); tests and benchmarks may put a fake here."""
    boot: BootOptions = attrs.field(factory=BootOptions)
    lists: TrustListCache | None = attrs.field(default=None, eq=False)
    fetch: FetchOptions = attrs.field(factory=lambda: FetchOptions(mode="tftp"))
    """HTTP first or TFTP only, the HTTP port, per-file caps and deadline (``fetch.py``).
    The library's default is TFTP only: a caller pointing at a TFTP server on an arbitrary
    port cannot know where its HTTP service is (a stray server on 6970 would answer). The
    commands default to ``http+tftp`` and the lab tells its phones each cluster's HTTP port."""


@attrs.define(eq=False)
class Phone:
    """One phone: identity, what it trusts, its configuration; ``store`` persists them."""

    identity: PhoneIdentity
    trust: TrustState = attrs.field(factory=TrustState)
    config: PhoneConfig | None = None
    store: StateStore | None = None
    problems: tuple[StateProblem, ...] = ()
    """What was wrong with the state directory when it was loaded."""

    @classmethod
    def open(
        cls,
        identity: PhoneIdentity,
        state_dir: str | Path | None = None,
        *,
        lists: TrustListCache | None = None,
    ) -> Phone:
        """A phone with the state found in ``state_dir`` (None: in memory, starts empty); an
        LSC that CAPF installed earlier (``lsc.pem`` there) replaces the identity's."""
        if state_dir is None:
            return cls(identity)
        store = StateStore(state_dir, lists=lists)
        loaded = store.load()
        if loaded.lsc is not None:  # installed by CAPF at an earlier boot: the phone's flash
            cert, key = loaded.lsc
            identity = attrs.evolve(identity, lsc=cert, key=key)
        return cls(identity, loaded.trust, loaded.config, store, loaded.problems)

    def apply(self, result: BootResult, *, tftp: tuple[str, int] | None = None) -> list[str]:
        """Take the boot's trust, configuration and (after CAPF) new LSC; write what changed
        (raises StateError). ``tftp`` (the DHCP option 150 server the boot used) is recorded in
        ``phone.json``."""
        self.trust, self.config = result.trust, result.config
        if result.identity is not None:
            self.identity = result.identity
        if self.store is None:
            return []
        written = self.store.save(self.trust, self.config)
        new = result.identity
        if new is not None and new.lsc is not None and new.key is not None:
            self.store.save_lsc(new.lsc, new.key)
            written.append(LSC_FILE)
        self.store.save_phone(
            {
                "mac": self.identity.mac,
                "model": self.identity.model,
                "device_name": self.identity.device_name,
                "lsc": self.identity.lsc.subject if self.identity.lsc else None,
                "tftp": f"{tftp[0]}:{tftp[1]}" if tftp else None,
                "last_boot": {
                    "state": result.state.value,
                    "finished": result.finished,
                    "reasons": list(result.reasons),
                    "status": list(result.status_lines),
                },
            }
        )
        return written


class _Performer:
    """Carries out actions for one boot; TLS contexts are built once per pin set."""

    def __init__(
        self,
        identity: PhoneIdentity,
        tftp: tuple[str, int],
        clock: Callable[[], float],
        options: NetworkOptions,
    ) -> None:
        self.identity = identity
        self.tftp = tftp
        self.clock = clock
        self.options = options
        self.fetcher = Fetcher(
            tftp,
            options.fetch,
            {
                "blksize": options.tftp_blksize,
                "timeout": options.tftp_timeout,
                "retries": options.tftp_retries,
                "bind": options.tftp_bind,
            },
            clock,
        )
        self._configs: dict[tuple[bytes, ...], TvsClientConfig] = {}

    def _tvs_config(self, pins: tuple[Certificate, ...]) -> TvsClientConfig:
        key = tuple(c.der for c in pins)
        cfg = self._configs.get(key)
        if cfg is None:
            base = self.options.tvs
            changes: dict[str, Any] = {"pinned": pins}
            cert = self.identity.lsc or self.identity.mic  # no LSC yet: the MIC
            if cert is not None and self.identity.key is not None:
                changes.update(lsc=cert, key=self.identity.key)
            cfg = attrs.evolve(base, **changes)
            self._configs[key] = cfg
        return cfg

    async def perform(self, action: Action) -> Result:
        if isinstance(action, FetchFile):
            return await self._fetch(action)
        if isinstance(action, QueryTvs):
            return await self._query(action)
        if isinstance(action, RunCapf):
            return await self._capf(action)
        return await self._sip(action)

    async def _capf(self, action: RunCapf) -> Result:
        if action.delay > 0:
            await trio.sleep(action.delay)
        runner = self.options.capf_runner or run_capf
        res = await runner(action, self.identity, self.options)
        if isinstance(res, CapfIssued):  # from now on the phone presents its new LSC
            self.identity = attrs.evolve(self.identity, lsc=res.certificate, key=res.key)
            self._configs.clear()
        return attrs.evolve(res, now=self.clock())

    async def _fetch(self, action: FetchFile) -> Result:
        return await self.fetcher.fetch(action)

    async def _query(self, action: QueryTvs) -> Result:
        m = action.member
        try:
            cfg = self._tvs_config(action.pinned)
            exchange = await tvs_exchange(m.address, m.port, action.data, cfg)
        except TvsConnectError as exc:
            return TvsFailed(TransportFailure.CONNECT, str(exc), self.clock())
        except TvsTimeout as exc:
            return TvsFailed(TransportFailure.TIMEOUT, str(exc), self.clock())
        except TvsHandshakeError as exc:
            return TvsFailed(TransportFailure.HANDSHAKE, str(exc), self.clock())
        except (TvsProtocolError, TvsClientError) as exc:
            return TvsFailed(TransportFailure.PROTOCOL, str(exc), self.clock())
        detail = " ".join(x for x in (exchange.tls_version, exchange.cipher) if x)
        return TvsAnswered(exchange.response, self.clock(), detail)

    async def _sip(self, action: ConnectSip) -> Result:
        if not action.secure:
            return await self._sip_tcp(action)
        try:
            tls, identity = self._tvs_config(action.pinned).client_tls()
        except TvsClientError as exc:
            return SipFailed(TransportFailure.HANDSHAKE, str(exc), self.clock())
        where = f"{action.host}:{action.port}"
        try:
            session = await open_tls(
                action.host,
                action.port,
                tls,
                identity=identity,
                pinned=action.pinned,
                connect_timeout=self.options.sip_timeout,
                handshake_timeout=self.options.sip_timeout,
                not_pinned="SIP server certificate not in the CTL (CCM/CCM+TFTP)",
            )
        except ConnectTimeout as exc:
            return SipFailed(TransportFailure.TIMEOUT, str(exc), self.clock())
        except ConnectFailed as exc:
            return SipFailed(TransportFailure.CONNECT, str(exc), self.clock())
        except HandshakeFailed as exc:
            if exc.not_pinned:
                return SipFailed(TransportFailure.HANDSHAKE, str(exc), self.clock())
            failure, why = _tls_failure(exc.cause)
            detail = f"TLS handshake with {where} failed: {why}"
            return SipFailed(failure, detail, self.clock())
        stream = session.stream
        try:
            tls_detail = f"{session.version} {session.cipher or ''}".strip()
            return await self._register(stream, action, tls_detail)
        finally:
            stream.close()

    async def _sip_tcp(self, action: ConnectSip) -> Result:
        """Security mode 1: REGISTER over plain TCP (no TLS, no certificate)."""
        where = f"{action.host}:{action.port}"
        try:
            with trio.fail_after(self.options.sip_timeout):
                stream = await trio.open_tcp_stream(action.host, action.port)
        except trio.TooSlowError:
            return SipFailed(
                TransportFailure.TIMEOUT, f"connect to {where} timed out", self.clock()
            )
        except OSError as exc:
            detail = f"connect to {where}: {exc.strerror or exc}"
            return SipFailed(TransportFailure.CONNECT, detail, self.clock())
        try:
            return await self._register(stream, action, "TCP")
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await trio.aclose_forcefully(stream)

    async def _register(
        self,
        tls: TlsStream | trio.SocketStream,
        action: ConnectSip,
        tls_detail: str,
    ) -> Result:
        """Send the REGISTER and read the answer's head; the stream is the caller's."""
        where = f"{action.host}:{action.port}"
        local = tls.socket.getsockname()
        request = register_request(
            action.host,
            self.identity.device_name,
            transport="tls" if action.secure else "tcp",
            local=(str(local[0]), int(local[1])),
            call_id=f"{secrets.token_hex(8)}@{local[0]}",
            tag=secrets.token_hex(4),
            branch=secrets.token_hex(6),
        )
        buffer = b""
        try:
            with trio.fail_after(self.options.sip_timeout):
                await tls.send_all(request)
                while (whole := split_message(buffer)) is None:
                    data = await tls.receive_some(65536)
                    if not data:  # a refusal comes with an alert (below); a bare close does not
                        detail = (
                            f"{where} closed the connection without answering the REGISTER "
                            f"and without a TLS alert ({tls_detail}): {_CLOSED}"
                        )
                        return SipFailed(TransportFailure.CONNECT, detail, self.clock())
                    buffer += data
            status = response_status(whole[0])
        except trio.TooSlowError:
            detail = f"no answer to the REGISTER from {where} within {self.options.sip_timeout}s"
            return SipFailed(TransportFailure.TIMEOUT, detail, self.clock())
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            failure, why = _tls_failure(exc)
            detail = f"TLS with {where} failed after the handshake: {why}"
            return SipFailed(failure, detail, self.clock())
        except SipError as exc:
            detail = f"answer to the REGISTER from {where}: {exc}"
            return SipFailed(TransportFailure.PROTOCOL, detail, self.clock())
        detail = f"{tls_detail}; {status.line}"
        if status.ok:
            return SipConnected(self.clock(), detail)
        return SipRejected(status.line, detail, self.clock())


def _tls_failure(exc: BaseException | None) -> tuple[TransportFailure, str]:
    """The failure kind and what went wrong. Only a TLS alert refusing the certificate says
    the server refused it (under TLS 1.3 that alert arrives after the phone's own handshake
    ended); a peer that closes or resets without an alert, during or after the handshake, is a
    transport error (``connect-failed``), not a refusal; other TLS errors are handshake
    failures. ``exc`` None: the peer closed without any TLS error."""
    if exc is None:
        return TransportFailure.CONNECT, _CLOSED
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, TlsError):  # a reset, a broken pipe: no TLS error at all
        return TransportFailure.CONNECT, f"{_CLOSED} ({text})"
    if any(a in exc.reason for a in _CERTIFICATE_ALERTS):
        return TransportFailure.HANDSHAKE, f"{_REFUSED} ({text})"
    if exc.reason in _CLOSED_REASONS:
        return TransportFailure.CONNECT, f"{_CLOSED} ({text})"
    return TransportFailure.HANDSHAKE, text


async def boot_phone(
    phone: Phone,
    *,
    tftp: tuple[str, int],
    clock: Callable[[], float] = time.time,
    options: NetworkOptions | None = None,
) -> BootResult:
    """Boot ``phone`` against the TFTP server ``tftp``; update (and persist) its state.

    ``clock`` gives Unix time; it stamps every result and decides TVS cache expiry.
    """
    opts = options or NetworkOptions()
    machine = BootMachine(
        phone.identity,
        phone.trust,
        phone.config,
        now=clock(),
        options=opts.boot,
        lists=opts.lists,
    )
    performer = _Performer(phone.identity, tftp, clock, opts)
    action = machine.start()
    while not isinstance(action, BootDone):
        action = machine.send(await performer.perform(action))
    phone.apply(action.result, tftp=tftp)
    return action.result
