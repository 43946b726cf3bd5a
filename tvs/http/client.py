"""A phone's HTTP file fetch: ``http_get`` asks for one file the way phone firmware does.

The request bytes are the phone's own, exactly ``GET /<name> HTTP/1.1\\r\\nHost:<ip>:<port>
\\r\\n\\r\\n`` (no space after ``Host:``, which h11 would add), so this client writes them
itself; h11 parses the answer with its bounds (a response head over 16 KiB is an error) and
the body is refused past ``max_size`` (from ``Content-Length`` before reading it, or as it
arrives). One connection per file; the whole exchange runs under ``timeout``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import quote

import h11
import trio

from ..tcpopen import connect, receive_some, send_all
from .errors import (
    HttpConnectError,
    HttpProtocolError,
    HttpStatusError,
    HttpTimeout,
    HttpTooLarge,
)

__all__ = ["http_get", "phone_request"]

_RECV = 65536
_MAX_HEAD = 16 * 1024
_TRACKED_GET = h11.Request(method="GET", target="/", headers=[(b"Host", b"phone")])
_END = h11.EndOfMessage()


def phone_request(name: str, host: str, port: int) -> bytes:
    """The request a phone sends for ``name`` (``Host:`` without a space)."""
    shown = f"[{host}]" if ":" in host else host
    path = quote(name, safe="/._-~")
    return f"GET /{path} HTTP/1.1\r\nHost:{shown}:{port}\r\n\r\n".encode("ascii")


async def http_get(
    host: str,
    port: int,
    name: str,
    *,
    timeout: float = 10.0,
    max_size: int = 64 * 1024 * 1024,
    bind: str | None = None,
) -> bytes:
    """Fetch ``name`` from the HTTP file service at (host, port); the body of a 200.

    Raises ``HttpConnectError`` (refused), ``HttpTimeout`` (nothing complete within
    ``timeout``), ``HttpStatusError`` (404, 503, ...), ``HttpProtocolError``, or
    ``HttpTooLarge``. ``bind`` is the local address to connect from.
    """
    with trio.move_on_after(timeout) as scope:
        try:
            sock = await connect(host, port, local_address=bind)
        except OSError as exc:
            why = _connect_failure(exc)
            raise HttpConnectError(f"connect to {host}:{port}: {why}") from None
        try:
            return await _exchange(sock, phone_request(name, host, port), max_size)
        finally:
            sock.close()
    assert scope.cancelled_caught
    raise HttpTimeout(f"no complete answer from {host}:{port} within {timeout:g}s")


async def _exchange(sock: socket.socket, request: bytes, max_size: int) -> bytes:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    # h11 tracks the exchange (a GET expects an answer with a body); the bytes sent are ours,
    # so one validated event serves every request
    conn.send(_TRACKED_GET)
    conn.send(_END)
    try:
        await send_all(sock, request)
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await receive_some(sock, _RECV)
                except OSError as exc:
                    raise HttpProtocolError(f"connection broken: {exc}") from None
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                if sum(len(k) + len(v) + 4 for k, v in event.headers) > _MAX_HEAD:
                    raise HttpProtocolError(f"response head over {_MAX_HEAD} bytes")
                if event.status_code != 200:
                    raise HttpStatusError(event.status_code, event.reason.decode("latin-1"))
                declared = _content_length(event.headers)
                if declared is not None and declared > max_size:
                    raise HttpTooLarge(max_size, declared)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_size:
                    raise HttpTooLarge(max_size)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpProtocolError("connection closed before an answer")
            # InformationalResponse (1xx): keep reading
    except h11.RemoteProtocolError as exc:
        raise HttpProtocolError(f"bad answer: {exc}") from None
    except OSError as exc:  # the request could not be sent
        raise HttpProtocolError(f"connection broken: {exc}") from None


def _connect_failure(exc: OSError) -> str:
    """Why a connect failed: trio wraps each attempt's error in an exception group."""
    cause: BaseException = exc
    while isinstance(cause.__cause__, BaseException):
        cause = cause.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[-1]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
