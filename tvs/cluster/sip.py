"""The TLS listener standing for a node's secure SIP port (5061): handshakes, and a minimal SIP.

Owns what a phone's TLS connection to its CallManager meets: the node's CallManager
certificate as server certificate (what the phone checks against its CTL), the client
certificate mode (``none``: not asked; ``optional``: asked, a presented one must verify;
``required``) with the certificates that verify phone LSCs here (the cluster gives
CallManager-trust, CAPF-trust and its own CAPF), a handshake deadline, and a tiny SIP
responder so a phone emulator can "register": ``REGISTER`` and ``OPTIONS`` get ``200 OK``,
other requests ``501 Not Implemented`` (no dialogs, no calls). Under TLS 1.3 a refused
client certificate is only seen by the phone after its own handshake ended (the alert follows
its Finished): the phone learns it when it reads the REGISTER answer. The messages (framing,
the answer) are :mod:`tvs.sip`, shared with the phone; this module is the thin Trio adapter.
Does not own the certificates or stores.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import structlog
import trio

from ..certs import Certificate, CertificateError, PrivateKey
from ..sip import SipError, sip_response, split_message
from ..tlsconfig import flush_alert, server_context

__all__ = ["SipListener", "SipStats"]

log = structlog.get_logger("tvs.cluster.sip")


@attrs.frozen
class SipStats:
    handshakes: int = 0
    handshake_failures: int = 0
    requests: int = 0
    bad_requests: int = 0
    active: int = 0


class SipListener:
    """One node's secure SIP port. ``await nursery.start(listener.serve, host, port)`` returns
    the bound ``(host, port)``; :meth:`set_client_cas` swaps the trust for new connections.
    ``responder`` answers one whole request (default :func:`sip_response`; tests give others).
    """

    def __init__(
        self,
        cert: Certificate | Path,
        key: PrivateKey | Path,
        *,
        legacy_tls: bool = False,
        client_auth: str = "optional",
        client_cas: Iterable[Certificate] = (),
        handshake_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        max_connections: int = 1024,
        responder: Callable[[bytes], bytes] = sip_response,
    ) -> None:
        self.cert, self.key = cert, key
        self.legacy_tls, self.client_auth = legacy_tls, client_auth
        self.handshake_timeout, self.idle_timeout = handshake_timeout, idle_timeout
        self.max_connections = max_connections
        self.responder = responder
        self.address: tuple[str, int] | None = None
        self._counts = dict.fromkeys(attrs.fields_dict(SipStats), 0)
        self._ctx = self._context(client_cas)

    def _context(self, client_cas: Iterable[Certificate]) -> ssl.SSLContext:
        return server_context(
            self.cert,
            self.key,
            legacy=self.legacy_tls,
            client_auth=self.client_auth,
            client_cas=client_cas,
        )

    def set_client_cas(self, client_cas: Iterable[Certificate]) -> None:
        self._ctx = self._context(client_cas)

    def statistics(self) -> SipStats:
        return SipStats(**self._counts)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 5061,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        sockname = listeners[0].socket.getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        log.info("sip.listening", address=f"{self.address[0]}:{self.address[1]}")
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(self.address)

    async def _connection(self, stream: trio.SocketStream) -> None:
        if self._counts["active"] >= self.max_connections:
            log.warning("sip.rejected", reason=f"max connections ({self.max_connections})")
            await trio.aclose_forcefully(stream)
            return
        self._counts["active"] += 1
        tls = trio.SSLStream(stream, self._ctx, server_side=True)
        try:
            try:
                with trio.fail_after(self.handshake_timeout):
                    await tls.do_handshake()
            except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._counts["handshake_failures"] += 1
                log.warning("sip.handshake_failed", reason=_reason(exc))
                await flush_alert(tls)  # the phone learns why ("unknown ca"), not just EOF
                return
            self._counts["handshakes"] += 1
            log.debug("sip.handshake", version=tls.version(), client=_client(tls))
            await self._requests(tls)
        finally:
            self._counts["active"] -= 1
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await trio.aclose_forcefully(tls)

    async def _requests(self, tls: trio.SSLStream[trio.SocketStream]) -> None:
        buffer = b""
        while True:
            try:
                whole = split_message(buffer)
                if whole is None:
                    with trio.move_on_after(self.idle_timeout):
                        data = await tls.receive_some(65536)
                        if data:
                            buffer += data
                            continue
                    return  # idle or closed
                message, buffer = whole
                reply = self.responder(message)
            except SipError as exc:
                self._counts["bad_requests"] += 1
                log.warning("sip.bad_request", reason=str(exc))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            self._counts["requests"] += 1
            try:
                with trio.fail_after(self.idle_timeout):
                    await tls.send_all(reply)
            except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
                return


def _client(tls: trio.SSLStream[trio.SocketStream]) -> str:
    """The verified client certificate's subject (a certificate is only kept when it was
    asked for and verified), or why there is none."""
    der = tls.getpeercert(binary_form=True)
    if not der:
        return "none presented" if tls.context.verify_mode != ssl.CERT_NONE else "not asked"
    try:
        return f"verified: {Certificate.from_der(der).subject}"
    except CertificateError:
        return "verified: unreadable certificate"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "handshake timeout"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {cause.reason or cause}"
    return "connection closed during handshake"
