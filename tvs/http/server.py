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
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, cast

import attrs
import h11
import structlog
import trio

from ..admission import Admission, AdmissionLimits, AdmissionRefused, Slot
from ..tftp.errors import FileRefused
from ..tftp.providers import FileProvider
from .policy import HttpLimits, Lookup, Reply, error_reply, file_reply, reason_phrase, route
from .stats import HttpObserver, HttpServerStats, ServerCounters

__all__ = ["HttpObserver", "HttpServer", "HttpServerStats", "serve_http"]

log = structlog.get_logger("tvs.http")

_RECV = 16384
_CHUNK = 65536
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 256 * 1024
_REFUSED_LINGER = 0.25  # short: a refused connection must cost little


class _Deadline(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _busy_bytes() -> bytes:
    reply = error_reply(503, "busy", close=True)
    lines = [b"HTTP/1.1 503 " + reason_phrase(503)]
    lines += [name + b": " + value for name, value in reply.headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + reply.body


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
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            client = (str(peer[0]), int(peer[1]))
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        where = f"{client[0]}:{client[1]}"
        try:
            slot = self.admission.admit(client[0])
        except AdmissionRefused as exc:
            self._counters.busy_rejected += 1
            self.observer.connection_rejected(exc.kind)
            log.warning("http.busy", client=where, reason=exc.reason, active=self._active)
            with (
                trio.move_on_after(1),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(_BUSY)  # the phone falls back to TFTP at once
            await _linger(stream, seconds=_REFUSED_LINGER, limit=_RECV)
            await trio.aclose_forcefully(stream)
            return
        self._active += 1
        self._counters.connections += 1
        self.observer.connection_opened()
        try:
            with slot:
                # the admission's first-bytes deadline, reading at once: a request that is
                # already here costs no extra trip through the event loop
                first: bytes | None = None
                with trio.move_on_after(self.admission.limits.first_bytes_timeout):
                    first = await stream.receive_some(_RECV)
                if first is None:
                    raise _Deadline("first-bytes")
                slot.active()
                await self._connection(stream, client, where, slot, first)
            if slot.shed:
                self._counters.timeouts += 1
                self.observer.connection_rejected("shed")
                log.warning("http.shed", client=where, reason="idle connection, server full")
        except _Deadline as exc:
            self._counters.timeouts += 1
            self.observer.connection_rejected(exc.reason)
            log.warning("http.timeout", client=where, reason=exc.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except Exception:  # a bug must not take the server down
            log.exception("http.connection_crashed", client=where)
        finally:
            self._active -= 1
            self.observer.connection_closed()
            await trio.aclose_forcefully(stream)

    async def _connection(
        self,
        stream: trio.SocketStream,
        client: tuple[str, int],
        where: str,
        slot: Slot,
        first: bytes,
    ) -> None:
        limits = self.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_request_bytes)
        conn.receive_data(first)  # b"": the client closed without a word
        served = 0
        while True:
            try:
                request = await self._read_request(conn, stream, first=served == 0)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                reply = error_reply(status, "bad-request", str(exc), close=True)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(conn, stream, reply, head=False)
                self._log(where, "-", b"-", reply, 0.0)
                await _linger(stream)
                return
            if request is None:
                return
            slot.established()  # a whole request head: never shed, no longer unfinished
            started = time.monotonic()
            reply, head = await self._answer(conn, request, client)
            served += 1
            if served >= limits.max_requests_per_connection and not reply.close:
                reply = attrs.evolve(
                    reply, headers=(*reply.headers, (b"Connection", b"close")), close=True
                )
            await self._send(conn, stream, reply, head=head)
            self._log(where, request.method.decode("ascii", "replace"), request.target, reply,
                      time.monotonic() - started)  # fmt: skip
            if reply.close or conn.our_state is not h11.DONE or not self._request_done(conn):
                if reply.status >= 400:
                    await _linger(stream)  # unread input would turn our close into a reset
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: trio.SocketStream, *, first: bool
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
                    data = await stream.receive_some(_RECV)
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

    async def _answer(
        self, conn: h11.Connection, request: h11.Request, client: tuple[str, int]
    ) -> tuple[Reply, bool]:
        has_body = any(
            (name == b"content-length" and value.strip() not in (b"", b"0"))
            or name == b"transfer-encoding"
            for name, value in request.headers
        )
        decision = route(request.method, request.target, has_body=has_body, limits=self.limits)
        head = request.method == b"HEAD"
        if isinstance(decision, Reply):
            return decision, head
        return await self._lookup(decision, client), head

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

    async def _send(
        self, conn: h11.Connection, stream: trio.SocketStream, reply: Reply, *, head: bool
    ) -> None:
        timeout = self.limits.send_timeout
        response = h11.Response(
            status_code=reply.status,
            headers=list(reply.headers),
            reason=reason_phrase(reply.status),
        )
        start = conn.send(response) or b""
        body = memoryview(reply.body)
        first = bytes(body[:_CHUNK]) if body else b""  # one coalesced segment: head + first chunk
        if body:
            conn.send_with_data_passthrough(h11.Data(data=first))
        with trio.move_on_after(timeout) as scope:
            if len(body) <= _CHUNK:
                await stream.send_all(start + first + (conn.send(h11.EndOfMessage()) or b""))
            else:
                await stream.send_all(start + first)
                for offset in range(_CHUNK, len(body), _CHUNK):
                    scope.deadline = trio.current_time() + timeout
                    piece = body[offset : offset + _CHUNK]
                    conn.send_with_data_passthrough(h11.Data(data=cast(bytes, piece)))  # no copy
                    await stream.send_all(piece)
                end = conn.send(h11.EndOfMessage())
                if end:
                    await stream.send_all(end)
        if scope.cancelled_caught:
            raise _Deadline("slow-reader")
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


async def _linger(
    stream: trio.SocketStream, *, seconds: float = _LINGER_SECONDS, limit: int = _LINGER_BYTES
) -> None:
    """Close gracefully after an error answer: stop sending, then read and discard what the
    client still sends (bounded in time and bytes), so the kernel does not reset the
    connection before the client has read our answer."""
    with trio.move_on_after(seconds):
        try:
            await stream.send_eof()
            discarded = 0
            while discarded < limit and (data := await stream.receive_some(_RECV)):
                discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
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
