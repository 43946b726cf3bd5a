"""The Trio HTTP/1.1 file service (CUCM's port 6970): h11 for the protocol, a file provider
for the bytes, the decisions in ``policy.py``.

Owns the listening sockets, admission (``tvs.admission``: the connection limit, unfinished
connections per client address with trusted networks exempt, a first-bytes deadline, shedding
the oldest idle connection when full; a refused connection gets 503 and is closed), the
deadlines (a request's headers must arrive within ``request_timeout`` of its first byte, an open
connection may stay idle ``idle_timeout``, each 64 KiB of an answer must be taken within
``send_timeout``), keep-alive, one log line per request and the counters. The response body
is the provider's shared buffer, written in slices: never copied per request beyond one
coalesced first segment.

h11 parses the requests (one parser per request); the answers are written from
``policy.response_head`` (byte for byte what h11 writes; a test holds it) straight to the
socket. Connections come from ``tvs.admission.serve_sockets`` as plain non-blocking sockets:
a read or write that can be done at once is done at once, and only a wait goes through the
event loop (a phone's connection costs a handful of trips through it, not one per call).
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from typing import Any

import attrs
import h11
import structlog
import trio

from ..admission import Admission, AdmissionLimits, AdmissionRefused, Slot, serve_sockets
from ..tftp.errors import FileRefused
from ..tftp.providers import FileProvider
from .policy import (
    HttpLimits,
    Lookup,
    Reply,
    error_reply,
    file_reply,
    response_head,
    route,
)
from .stats import HttpObserver, HttpServerStats, ServerCounters

__all__ = ["HttpObserver", "HttpServer", "HttpServerStats", "serve_http"]

log = structlog.get_logger("tvs.http")

_RECV = 16384
_CHUNK = 65536
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 256 * 1024
_REFUSED_LINGER = 0.25  # short: a refused connection must cost little
_MAX_HEADS = 1024


class _Deadline(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _busy_bytes() -> bytes:
    reply = error_reply(503, "busy", close=True)
    return response_head(503, reply.headers, close=True) + reply.body


_BUSY = _busy_bytes()


class HttpServer:
    """A read-only HTTP file server over ``provider``; run ``serve`` with ``nursery.start``."""

    def __init__(
        self,
        provider: FileProvider,
        *,
        limits: HttpLimits | None = None,
        observer: HttpObserver | None = None,
        log_requests: bool = True,
        admission: AdmissionLimits | None = None,
    ) -> None:
        self.provider = provider
        self.limits = limits or HttpLimits()
        # per-address limits, trusted networks, first-bytes deadline, shedding (tvs.admission);
        # the connection limit is ours (CUCM's 2500)
        self.admission = Admission(
            attrs.evolve(
                admission or AdmissionLimits(), max_connections=self.limits.max_connections
            )
        )
        self.observer = observer or HttpObserver()
        self.log_requests = log_requests
        self._counters = ServerCounters()
        self._active = 0
        self._heads: dict[tuple[int, tuple[tuple[bytes, bytes], ...], bool], bytes] = {}

    def statistics(self) -> HttpServerStats:
        return HttpServerStats(**attrs.asdict(self._counters), active_connections=self._active)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 6970,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on (host, port) until cancelled; ``task_status`` gets the bound address."""
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=1024)
        bound = listeners[0].socket.getsockname()
        log.info("http.listening", host=bound[0], port=bound[1], provider=repr(self.provider))
        task_status.started((bound[0], bound[1]))
        await serve_sockets(self._handle, listeners)

    async def _handle(self, sock: socket.socket, _: Any) -> None:
        try:
            peer = sock.getpeername()
        except OSError:  # the client already went away
            sock.close()
            return
        client = (str(peer[0]), int(peer[1]))
        where = f"{client[0]}:{client[1]}"
        try:
            slot = self.admission.admit(client[0])
        except AdmissionRefused as exc:
            self._counters.busy_rejected += 1
            self.observer.connection_rejected(exc.kind)
            log.warning("http.busy", client=where, reason=exc.reason, active=self._active)
            with trio.move_on_after(1), contextlib.suppress(OSError):
                await _send_all(sock, _BUSY)  # the phone falls back to TFTP at once
            await _linger(sock, seconds=_REFUSED_LINGER, limit=_RECV)
            sock.close()
            return
        self._active += 1
        self._counters.connections += 1
        self.observer.connection_opened()
        try:
            with slot:
                # the admission's first-bytes deadline, reading at once: a request that is
                # already here costs no extra trip through the event loop
                first = await _receive_within(sock, self.admission.limits.first_bytes_timeout)
                if first is None:
                    raise _Deadline("first-bytes")
                slot.active()
                await self._connection(sock, client, where, slot, first)
            if slot.shed:
                self._counters.timeouts += 1
                self.observer.connection_rejected("shed")
                log.warning("http.shed", client=where, reason="idle connection, server full")
        except _Deadline as exc:
            self._counters.timeouts += 1
            self.observer.connection_rejected(exc.reason)
            log.warning("http.timeout", client=where, reason=exc.reason)
        except OSError:
            pass  # the client went away
        except Exception:  # a bug must not take the server down
            log.exception("http.connection_crashed", client=where)
        finally:
            self._active -= 1
            self.observer.connection_closed()
            sock.close()

    def _parser(self, data: bytes, closed: bool) -> h11.Connection:
        """A parser for the next request, fed what the client already sent (b"": nothing)."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_request_bytes)
        if data:
            conn.receive_data(data)
        if closed:
            conn.receive_data(b"")
        return conn

    async def _connection(
        self,
        sock: socket.socket,
        client: tuple[str, int],
        where: str,
        slot: Slot,
        first: bytes,
    ) -> None:
        limits = self.limits
        conn = self._parser(first, not first)  # b"": the client closed without a word
        served = 0
        while True:
            try:
                request = await self._read_request(conn, sock, first=served == 0)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                reply = error_reply(status, "bad-request", str(exc), close=True)
                await self._send(sock, reply, close=True)
                self._log(where, "-", b"-", reply, 0.0)
                await _linger(sock)
                return
            if request is None:
                return
            slot.established()  # a whole request head: never shed, no longer unfinished
            started = time.monotonic()
            reply = await self._answer(request, client)
            served += 1
            if served >= limits.max_requests_per_connection and not reply.close:
                reply = attrs.evolve(
                    reply, headers=(*reply.headers, (b"Connection", b"close")), close=True
                )
            close = reply.close or _wants_close(request)
            await self._send(sock, reply, close=close)
            self._log(where, request.method.decode("ascii", "replace"), request.target, reply,
                      time.monotonic() - started)  # fmt: skip
            if close or not self._request_done(conn):
                if reply.status >= 400:
                    await _linger(sock)  # unread input would turn our close into a reset
                return
            data, closed = conn.trailing_data
            if not data and not closed:  # wait for the next request before parsing
                more = await _receive_within(sock, limits.idle_timeout)
                if not more:
                    return  # closed, or quiet for idle_timeout: close, nothing to say
                data, closed = more, False
            else:
                await trio.lowlevel.checkpoint()  # pipelined: let other connections run
            conn = self._parser(data, closed)

    async def _read_request(
        self, conn: h11.Connection, sock: socket.socket, *, first: bool
    ) -> h11.Request | None:
        """The next request head, None when the client closed between requests."""
        event = conn.next_event()  # the common case: the whole head is already here
        if isinstance(event, h11.Request):
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        if event is not h11.NEED_DATA:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", 400)
        limits = self.limits
        started = bool(conn.trailing_data[0])  # part of a head already here
        deadline = trio.current_time() + (
            limits.request_timeout if started else limits.idle_timeout
        )
        with trio.move_on_at(deadline) as scope:
            while True:
                if event is h11.NEED_DATA:
                    data = await _receive(sock)
                    if data and not started:
                        started = True
                        scope.deadline = trio.current_time() + limits.request_timeout
                    conn.receive_data(data)
                    event = conn.next_event()
                    continue
                if isinstance(event, h11.Request):
                    return event
                if isinstance(event, h11.ConnectionClosed):
                    return None
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", 400)
        if started:
            raise _Deadline("slow-request")
        if first:
            raise _Deadline("idle")
        return None  # a kept-alive connection that stays quiet: close it, nothing to say

    async def _answer(self, request: h11.Request, client: tuple[str, int]) -> Reply:
        has_body = any(
            (name == b"content-length" and value.strip() not in (b"", b"0"))
            or name == b"transfer-encoding"
            for name, value in request.headers
        )
        decision = route(request.method, request.target, has_body=has_body, limits=self.limits)
        if isinstance(decision, Reply):
            return decision
        return await self._lookup(decision, client)

    async def _lookup(self, lookup: Lookup, client: tuple[str, int]) -> Reply:
        try:
            version = await self.provider.get(lookup.name, client)
        except FileRefused as exc:
            return error_reply(404, "refused", exc.reason, head=lookup.head)
        except Exception as exc:
            log.exception("http.provider_failed", file=lookup.name)
            return error_reply(500, "provider-failed", str(exc), head=lookup.head)
        if version is None:
            return error_reply(404, "not-found", head=lookup.head)
        return file_reply(version, head=lookup.head)

    def _request_done(self, conn: h11.Connection) -> bool:
        """Consume the end of the request just answered (no body: it is already here)."""
        while conn.their_state is not h11.DONE:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return False
        return True

    def _head(self, reply: Reply, close: bool) -> bytes:
        """The status line and headers, as h11 writes them (``Connection: close`` last when
        the connection closes after this answer); kept per status, headers and close."""
        key = (reply.status, reply.headers, close)
        head = self._heads.get(key)
        if head is None:
            head = response_head(reply.status, reply.headers, close=close)
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[key] = head
        return head

    async def _send(self, sock: socket.socket, reply: Reply, *, close: bool) -> None:
        timeout = self.limits.send_timeout
        head = self._head(reply, close)
        body = reply.body
        if len(body) <= _CHUNK:  # one coalesced segment: head + body
            await _send_all(sock, head + body if body else head, timeout)
        else:
            view = memoryview(body)
            await _send_all(sock, head + view[:_CHUNK], timeout)
            for offset in range(_CHUNK, len(body), _CHUNK):
                await _send_all(sock, view[offset : offset + _CHUNK], timeout)  # no copy
        self._counters.count_reply(reply)
        self._counters.bytes_sent += len(body)

    def _log(self, where: str, method: str, target: bytes, reply: Reply, seconds: float) -> None:
        self.observer.request_served(method, reply.status, reply.outcome, seconds, len(reply.body))
        if not self.log_requests and reply.status < 400:
            return
        fields: dict[str, Any] = {
            "client": where,
            "method": method,
            "target": target[:200].decode("ascii", "backslashreplace"),
            "status": reply.status,
            "outcome": reply.outcome,
            "bytes": len(reply.body),
            "duration": round(seconds, 6),
        }
        if reply.reason:
            fields["reason"] = reply.reason
        (log.info if reply.status < 400 else log.warning)("http.request", **fields)


def _wants_close(request: h11.Request) -> bool:
    """The client asked to close after this answer (HTTP/1.0, ``Connection: close``): h11's
    keep-alive rule, by which it adds ``Connection: close`` to the response."""
    if request.http_version < b"1.1":
        return True
    for name, value in request.headers:
        if name == b"connection" and b"close" in (v.strip() for v in value.lower().split(b",")):
            return True
    return False


async def _receive(sock: socket.socket) -> bytes:
    """What the client sent (b"": it closed), read at once when something is there (no trip
    through the event loop). OSError: the connection broke."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        return sock.recv(_RECV)
    except BlockingIOError:
        return await _wait_receive(sock)


async def _receive_within(sock: socket.socket, timeout: float) -> bytes | None:
    """:func:`_receive`, or None when nothing came within ``timeout``."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        return sock.recv(_RECV)
    except BlockingIOError:
        pass
    with trio.move_on_after(timeout):
        return await _wait_receive(sock)
    return None


async def _wait_receive(sock: socket.socket) -> bytes:
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(_RECV)
        except BlockingIOError:
            pass


async def _send_all(
    sock: socket.socket, data: bytes | memoryview, timeout: float = math.inf
) -> None:
    """Send all of ``data``; the client must take it within ``timeout`` (``_Deadline``
    "slow-reader" otherwise). Sends at once when the socket has room. OSError: reset."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)
    with trio.move_on_after(timeout):
        while sent < len(view):
            await trio.lowlevel.wait_writable(sock)
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(view[sent:])
        return
    raise _Deadline("slow-reader")


async def _linger(
    sock: socket.socket, *, seconds: float = _LINGER_SECONDS, limit: int = _LINGER_BYTES
) -> None:
    """Close gracefully after an error answer: stop sending, then read and discard what the
    client still sends (bounded in time and bytes), so the kernel does not reset the
    connection before the client has read our answer."""
    with trio.move_on_after(seconds):
        try:
            await trio.lowlevel.checkpoint()
            sock.shutdown(socket.SHUT_WR)
            discarded = 0
            while discarded < limit and (data := await _receive(sock)):
                discarded += len(data)
        except OSError:
            pass


async def serve_http(
    provider: FileProvider,
    host: str = "127.0.0.1",
    port: int = 6970,
    *,
    limits: HttpLimits | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``provider`` over HTTP on (host, port) until cancelled (``nursery.start`` returns
    the bound address). Use ``HttpServer`` directly to read ``statistics()``."""
    await HttpServer(provider, limits=limits).serve(host, port, task_status=task_status)
