"""What the HTTP 6970 file service answers, as pure functions: no sockets, no trio, no h11.

Owns the service's limits (:class:`HttpLimits`), the mapping from a request line to a file
name with the TFTP server's path rules (:func:`route`), and the replies with CUCM's headers
(:func:`file_reply`, :func:`error_reply`). The Trio adapter (``server.py``) parses HTTP with
h11 and does the I/O around these decisions.

CUCM answers ``HTTP/1.1 200 OK`` with ``Content-length: N``, ``Cache-Control: no-store`` and
``Content-type: */*`` (protocol notes section 10, High); a missing file is 404, and 503 is what
it answers while it looks for a file elsewhere (here: when the connection limit is reached).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import attrs

from ..tftp.errors import FileRefused
from ..tftp.providers import FileVersion, check_path

__all__ = [
    "CUCM_MAX_CONNECTIONS",
    "DEFAULT_HTTP_PORT",
    "HttpLimits",
    "Lookup",
    "Reply",
    "error_reply",
    "file_reply",
    "response_head",
    "route",
]

DEFAULT_HTTP_PORT = 6970
CUCM_MAX_CONNECTIONS = 2500
"""CUCM's limit of concurrent HTTP connections on 6970 (protocol notes section 10)."""


@attrs.frozen
class HttpLimits:
    """Bounds of the service. ``max_request_bytes`` bounds the request line and headers
    together (431/400 beyond); ``request_timeout`` the time from a request's first byte to the
    end of its headers (a slow client is closed); ``idle_timeout`` the wait for a request on
    an open connection (the first one included); ``send_timeout`` the wait for the client to
    take each 64 KiB of a response."""

    max_connections: int = CUCM_MAX_CONNECTIONS
    max_request_bytes: int = 8192
    max_target: int = 1024
    request_timeout: float = 10.0
    idle_timeout: float = 15.0
    send_timeout: float = 10.0
    max_requests_per_connection: int = 1000


@attrs.frozen
class Reply:
    """An answer: status, headers in wire order and case, body (empty for HEAD)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes>")
    close: bool = False
    outcome: str = "ok"  # for the log and the metrics: ok, not-found, refused, method, ...
    reason: str = ""  # for the log only


@attrs.frozen
class Lookup:
    """Ask the provider for ``name``; ``head`` answers without the body."""

    name: str
    head: bool


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"")


def response_head(
    status: int, headers: tuple[tuple[bytes, bytes], ...], *, close: bool = False
) -> bytes:
    """The status line and headers of an answer, byte for byte as h11 writes them: the
    headers in the order and case given; with ``close`` (the connection closes after this
    answer) any ``Connection`` header is dropped and ``Connection: close`` goes last."""
    if close:
        headers = (
            *(h for h in headers if h[0].lower() != b"connection"),
            (b"Connection", b"close"),
        )
    lines = [b"HTTP/1.1 %d %s" % (status, reason_phrase(status))]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _headers(length: int) -> tuple[tuple[bytes, bytes], ...]:
    # CUCM's spelling and order; h11 keeps the case we give it
    return (
        (b"Content-length", str(length).encode()),
        (b"Cache-Control", b"no-store"),
        (b"Content-type", b"*/*"),
    )


def file_reply(version: FileVersion, *, head: bool) -> Reply:
    """200 with the file (the provider's shared buffer, not a copy), or its headers for HEAD."""
    return Reply(200, _headers(version.size), b"" if head else version.data)


def error_reply(
    status: int, outcome: str, reason: str = "", *, head: bool = False, close: bool = False
) -> Reply:
    """A short error answer with CUCM's headers; 405 also says what is allowed."""
    body = reason_phrase(status) + b"\n"
    headers = _headers(len(body))
    if status == 405:
        headers += ((b"Allow", b"GET, HEAD"),)
    if close:
        headers += ((b"Connection", b"close"),)
    return Reply(status, headers, b"" if head else body, close, outcome, reason)


def route(method: bytes, target: bytes, *, has_body: bool, limits: HttpLimits) -> Lookup | Reply:
    """The file a request asks for, or the error answer. The TFTP path rules apply to the
    decoded path: no control bytes (NUL included), no absolute path, no ``..``."""
    head = method == b"HEAD"
    if method not in (b"GET", b"HEAD"):
        return error_reply(405, "method", f"method {method!r}", close=has_body)
    if has_body:  # phones never send one; we do not read it
        return error_reply(413, "body", "request with a body", head=head, close=True)
    if len(target) > limits.max_target:
        return error_reply(414, "target-too-long", f"{len(target)} bytes", head=head)
    if not target.startswith(b"/"):
        return error_reply(400, "bad-target", f"target {target[:80]!r}", head=head)
    path = target.split(b"?", 1)[0]
    try:
        name = unquote_to_bytes(path[1:]).decode("utf-8")
    except UnicodeDecodeError:
        return error_reply(404, "refused", f"target {target[:80]!r} is not UTF-8", head=head)
    if not name:
        return error_reply(404, "not-found", "no file name", head=head)
    try:
        check_path(name)
    except FileRefused as exc:
        return error_reply(404, "refused", exc.reason, head=head)
    return Lookup(name, head)
