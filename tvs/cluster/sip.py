"""The listeners standing for a node's SIP ports: secure SIP (TLS, 5061) and SIP over TCP
(5060, phones in security mode 1, ``tls=False``): handshakes, and a minimal SIP.

Owns what a phone's TLS connection to its CallManager meets: the node's CallManager
certificate as server certificate (what the phone checks against its CTL), the client
certificate mode (``none``: not asked; ``optional``: asked, one that does not verify is logged
with whose it was and accepted; ``required``: refused) with the certificates that verify phone
LSCs here (the cluster gives CallManager-trust, CAPF-trust and its own CAPF), admission limits
and a first-bytes deadline (:mod:`tvs.admission`), a handshake deadline, and a tiny SIP
responder so a phone emulator can "register": ``REGISTER`` and ``OPTIONS`` get ``200 OK``,
other requests ``501 Not Implemented`` (no dialogs, no calls). Under TLS 1.3 a refused
client certificate is only seen by the phone after its own handshake ended (the alert follows
its Finished): the phone learns it when it reads the REGISTER answer. The messages (framing,
the answer) are :mod:`tvs.sip`, shared with the phone; this module is the thin Trio adapter on
the shared server TLS adapter (:mod:`tvs.tlsserver`). Does not own the certificates or stores.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from ..admission import Admission, AdmissionLimits, AdmissionRefused, serve_sockets
from ..certs import Certificate, PrivateKey
from ..server.logsetup import log_enabled
from ..sip import SipError, sip_response, split_message
from ..tlsserver import ServerTls, TlsHandshakeError, TlsStream, server_tls

__all__ = ["SipListener", "SipStats"]

log = structlog.get_logger("tvs.cluster.sip")


@attrs.frozen
class SipStats:
    handshakes: int = 0
    handshake_failures: int = 0
    unverified: int = 0
    """Client certificates accepted without verifying (``optional``)."""
    rejected: int = 0
    shed: int = 0
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
        request_timeout: float = 10.0,
        max_connections: int = 1024,
        admission: AdmissionLimits | None = None,
        responder: Callable[[bytes], bytes] = sip_response,
        tls: bool = True,
        keylog: Path | None = None,
    ) -> None:
        self.tls = tls
        self.keylog = keylog
        self.cert, self.key = cert, key
        self.legacy_tls, self.client_auth = legacy_tls, client_auth
        self.handshake_timeout, self.idle_timeout = handshake_timeout, idle_timeout
        self.request_timeout = request_timeout
        """A request whose first bytes arrived must be whole within this (a slow sender holds
        no slot longer); between requests ``idle_timeout`` applies."""
        limits = admission or AdmissionLimits()
        self.admission = Admission(attrs.evolve(limits, max_connections=max_connections))
        self.responder = responder
        self.address: tuple[str, int] | None = None
        self._counts = dict.fromkeys(attrs.fields_dict(SipStats), 0)
        self._ctx = self._context(client_cas)

    def _context(self, client_cas: Iterable[Certificate]) -> ServerTls | None:
        if not self.tls:
            return None  # SIP over TCP (security mode 1)
        return server_tls(
            self.cert,
            self.key,
            legacy=self.legacy_tls,
            client_auth=self.client_auth,
            client_cas=client_cas,
            keylog=self.keylog,
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
        log.info(
            "sip.listening",
            address=f"{self.address[0]}:{self.address[1]}",
            transport="tls" if self.tls else "tcp",
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_sockets, self._connection, listeners)
            task_status.started(self.address)

    async def _connection(self, sock: socket.socket, _: Any) -> None:
        if self._ctx is None:
            await self._plain_connection(sock)
            return
        try:
            host = str(sock.getpeername()[0])
        except OSError:  # the peer already went away
            sock.close()
            return
        try:
            slot = self.admission.admit(host)
        except AdmissionRefused as exc:
            self._counts["rejected"] += 1
            log.warning("sip.rejected", peer=host, reason=exc.reason)
            sock.close()
            return
        self._counts["active"] += 1
        tls: TlsStream | None = None
        try:
            with slot:
                tls = TlsStream(sock, self._ctx)
                if not await self.admission.first_bytes(sock, slot):
                    self._counts["handshake_failures"] += 1
                    timeout = self.admission.limits.first_bytes_timeout
                    log.warning("sip.handshake_failed", reason=f"no ClientHello within {timeout}s")
                    return
                try:
                    with trio.move_on_after(self.handshake_timeout) as handshake:
                        presented = await tls.do_handshake()
                    if handshake.cancelled_caught:
                        self._counts["handshake_failures"] += 1
                        log.warning("sip.handshake_failed", reason="handshake timeout")
                        return
                except TlsHandshakeError as exc:
                    self._counts["handshake_failures"] += 1
                    fields = exc.peer.log_fields() if exc.peer is not None else {}
                    log.warning("sip.handshake_failed", reason=exc.reason, **fields)
                    if exc.kind != "eof":  # the phone learns why ("unknown ca"), not just EOF
                        await tls.linger_close(1.0)
                    return
                slot.established()
                self._counts["handshakes"] += 1
                if presented is not None and not presented.verified:
                    self._counts["unverified"] += 1
                    log.warning("sip.client_unverified", **presented.log_fields())
                if log_enabled(log, logging.DEBUG):
                    log.debug("sip.handshake", version=tls.version(), client=_client(tls))
                await self._requests(tls)
            if slot.shed:
                self._counts["shed"] += 1
                log.warning("sip.shed", peer=host, reason="idle handshake, listener full")
        finally:
            self._counts["active"] -= 1
            if tls is not None:
                tls.close()
            else:
                sock.close()

    async def _plain_connection(self, sock: socket.socket) -> None:
        """SIP over TCP (phones in security mode 1): admission, then requests; no TLS."""
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        try:
            host = str(sock.getpeername()[0])
            slot = self.admission.admit(host)
        except (OSError, AdmissionRefused) as exc:
            self._counts["rejected"] += 1
            log.warning("sip.rejected", reason=getattr(exc, "reason", str(exc)))
            await trio.aclose_forcefully(stream)
            return
        self._counts["active"] += 1
        try:
            with slot:
                # like every listener: a connection that sends nothing is an idle slot, shed
                # first when the listener is full and closed at the first-bytes deadline
                if not await self.admission.first_bytes(sock, slot):
                    self._counts["bad_requests"] += 1
                    timeout = self.admission.limits.first_bytes_timeout
                    log.warning("sip.bad_request", peer=host, reason=f"nothing within {timeout}s")
                    return
                slot.established()
                await self._requests(_PlainStream(stream))
            if slot.shed:
                self._counts["shed"] += 1
                log.warning("sip.shed", peer=host, reason="idle connection, listener full")
        finally:
            self._counts["active"] -= 1
            await trio.aclose_forcefully(stream)

    async def _requests(self, tls: TlsStream | _PlainStream) -> None:
        buffer = b""
        request_deadline = math.inf
        while True:
            try:
                whole = split_message(buffer)
                if whole is None:
                    # between requests: the idle deadline; inside one: the request deadline
                    deadline = (
                        trio.current_time() + self.idle_timeout if not buffer else request_deadline
                    )
                    with trio.move_on_at(deadline):
                        data = await tls.receive_some(65536)
                        if data:
                            if not buffer:
                                request_deadline = trio.current_time() + self.request_timeout
                            buffer += data
                            continue
                    if buffer:  # a request begun and never finished (slow sender or cut short)
                        self._counts["bad_requests"] += 1
                        log.warning(
                            "sip.bad_request",
                            reason=f"request not whole within {self.request_timeout}s "
                            f"({len(buffer)} bytes)",
                        )
                    return  # idle or closed
                message, buffer = whole
                reply = self.responder(message)
            except SipError as exc:
                self._counts["bad_requests"] += 1
                log.warning("sip.bad_request", reason=str(exc))
                return
            except OSError:
                return
            self._counts["requests"] += 1
            try:
                with trio.move_on_after(self.idle_timeout) as sending:
                    await tls.send_all(reply)
            except OSError:
                return
            if sending.cancelled_caught:
                return


class _PlainStream:
    """A TCP stream with the TLS adapter's error convention (OSError), for :meth:`_requests`."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return bytes(await self.stream.receive_some(max_bytes))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise OSError(str(exc)) from exc

    async def send_all(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise OSError(str(exc)) from exc


def _client(tls: TlsStream) -> str:
    """The client certificate's subject and whether it verified, or why there is none."""
    peer = tls.peer
    if peer is None:
        return "none presented" if tls.client_auth != "none" else "not asked"
    state = "verified" if peer.verified else f"unverified ({peer.failure})"
    return f"{state}: {peer.subject}"
