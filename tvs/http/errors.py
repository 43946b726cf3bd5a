"""The HTTP layer's error hierarchy (the client's failures; the server raises nothing out).

``HttpError`` is the root; each failure says what a phone falls back on: connection refused
(``HttpConnectError``), no answer in time (``HttpTimeout``), an answer other than 200
(``HttpStatusError``, with ``status``), bytes that are not HTTP (``HttpProtocolError``), a
file over the caller's size cap (``HttpTooLarge``).
"""

from __future__ import annotations

__all__ = [
    "HttpConnectError",
    "HttpError",
    "HttpProtocolError",
    "HttpStatusError",
    "HttpTimeout",
    "HttpTooLarge",
]


class HttpError(Exception):
    """Base class of every HTTP client failure."""


class HttpConnectError(HttpError, ConnectionError):
    """The TCP connection could not be made (refused, unreachable)."""


class HttpTimeout(HttpError, TimeoutError):
    """No complete answer within the deadline."""


class HttpStatusError(HttpError):
    """The server answered with a status other than 200 (404 missing, 503 busy, ...)."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason


class HttpProtocolError(HttpError, ValueError):
    """The answer is not well-formed HTTP/1.x (or was cut short)."""


class HttpTooLarge(HttpError):
    """The file is larger than the caller accepts (``size`` when the server said it)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        told = f"{size} bytes" if size is not None else "more"
        super().__init__(f"file of {told}, over the limit of {limit} bytes")
        self.limit = limit
        self.size = size
