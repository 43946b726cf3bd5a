"""The one client "TLS connect + handshake + pin" sequence (standard ``ssl`` through Trio), used
by the TVS client, the phone's secure SIP registration and the CAPF client.

:func:`open_tls` connects with a deadline, handshakes with a deadline (sending the alert
OpenSSL queued when the phone's own check failed, so the server learns why), and pins the
server certificate: byte-for-byte one of ``pinned`` (the phone's rule: a CTL/ITL record).
Failures are one small hierarchy the callers map to their own errors: :class:`ConnectFailed`,
:class:`ConnectTimeout` (connect or handshake), :class:`HandshakeFailed` (with ``not_pinned``
and the ``ssl`` cause, when there is one). Contexts come from :func:`tvs.tlsconfig.client_context`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import attrs
import trio

from .certs import Certificate, CertificateError
from .tcpopen import open_tcp
from .tlsconfig import certificate_pinned, flush_alert

__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "HandshakeFailed",
    "TlsClientError",
    "TlsSession",
    "open_tls",
    "ssl_reason",
]


class TlsClientError(Exception):
    """Opening a pinned TLS session failed."""


class ConnectFailed(TlsClientError):
    """The TCP connection could not be made."""


class ConnectTimeout(TlsClientError):
    """The TCP connect or the TLS handshake took longer than allowed."""


class HandshakeFailed(TlsClientError):
    """The handshake failed (``cause``: the ``ssl`` error, None when the peer just closed), or
    the server certificate is not pinned (``not_pinned``)."""

    def __init__(
        self, message: str, *, cause: BaseException | None = None, not_pinned: bool = False
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.not_pinned = not_pinned


@attrs.frozen
class TlsSession:
    """An open, pinned session; the caller closes ``stream``."""

    stream: trio.SSLStream[trio.SocketStream]
    tcp: trio.SocketStream
    server_der: bytes | None
    server_certificate: Certificate | None
    cipher: str | None
    version: str | None


def ssl_reason(exc: BaseException) -> str:
    """OpenSSL's reason for a failure Trio wrapped (``TLSV1_ALERT_UNKNOWN_CA``...)."""
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, ssl.SSLError):
        return str(cause.reason or cause)
    return type(cause).__name__


async def _close(tls: trio.SSLStream[trio.SocketStream]) -> None:
    with trio.move_on_after(1) as scope:
        scope.shield = True
        await trio.aclose_forcefully(tls)


async def open_tls(
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    pinned: Iterable[Certificate] | None,
    connect_timeout: float,
    handshake_timeout: float,
    not_pinned: str = "server certificate not pinned",
) -> TlsSession:
    """Connect, handshake and pin (``pinned`` None: no pinning). ``not_pinned`` starts the
    message of a pinning failure. Raises a :class:`TlsClientError` subclass."""
    where = f"{host}:{port}"
    try:
        with trio.fail_after(connect_timeout):
            tcp = await open_tcp(host, port)
    except trio.TooSlowError:
        raise ConnectTimeout(f"connect to {where} timed out") from None
    except OSError as exc:
        raise ConnectFailed(f"connect to {where}: {exc.strerror or exc}") from None
    tls = trio.SSLStream(tcp, context, server_side=False)
    try:
        try:
            with trio.fail_after(handshake_timeout):
                await tls.do_handshake()
        except trio.TooSlowError:
            raise ConnectTimeout(f"TLS handshake with {where} timed out") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await flush_alert(tls)
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise HandshakeFailed(
                    f"{not_pinned} ({cause.verify_message})", cause=cause, not_pinned=True
                ) from None
            raise HandshakeFailed(
                f"TLS handshake with {where} failed: {ssl_reason(exc)}",
                cause=cause if isinstance(cause, BaseException) else None,
            ) from None
        der = tls.getpeercert(binary_form=True)
        cert = None
        if der:
            try:
                cert = Certificate.from_der(der)
            except CertificateError:
                cert = None
        if pinned is not None and not certificate_pinned(der, pinned):
            who = cert.subject if cert is not None else "no certificate"
            raise HandshakeFailed(f"{not_pinned}: {who}", not_pinned=True)
        cipher = tls.cipher()
        return TlsSession(tls, tcp, der, cert, cipher[0] if cipher else None, tls.version())
    except BaseException:
        await _close(tls)
        raise
