"""Hooks the TVS server calls for metrics: the :class:`ServerObserver` protocol and a no-op.

A metrics exporter (``tvs.metrics``) implements the protocol, usually by subclassing
:class:`NullObserver` so that hooks added later default to doing nothing. Calls happen on the
server's Trio thread and must not block.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullObserver", "ServerObserver"]


class ServerObserver(Protocol):
    def connection_opened(self) -> None:
        """A TCP connection was accepted and will be served."""

    def connection_closed(self) -> None:
        """A served connection ended (for any reason)."""

    def connection_rejected(self, reason: str) -> None:
        """A connection was closed without being served: at accept (``max-connections``,
        ``per-address``) or shed for a newer one while idle (``shed``)."""

    def handshake_failed(self, reason: str) -> None:
        """The TLS handshake failed or timed out (reason: ``first-bytes-timeout``,
        ``timeout``, ``tls``, ``eof``, ``refused-certificate``)."""

    def client_unverified(self, reason: str) -> None:
        """Under ``optional`` client auth, a client certificate that did not verify was
        accepted (reason: ``expired``, ``not-yet-valid``, ``unknown-ca``, ...)."""

    def bad_request(self, reason: str) -> None:
        """The request could not be read (``timeout``, ``malformed``, ``truncated``, ...)."""

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        """A request was answered (``QUERY_CERT_REQ``, ``VALID``/``INVALID``), accept to send."""

    def cache_reloaded(self, size: int) -> None:
        """The certificate cache was (re)built; ``size`` entries answer lookups."""


class NullObserver:
    """Does nothing; the default, and a base class for real observers."""

    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def connection_rejected(self, reason: str) -> None:
        pass

    def handshake_failed(self, reason: str) -> None:
        pass

    def client_unverified(self, reason: str) -> None:
        pass

    def bad_request(self, reason: str) -> None:
        pass

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        pass

    def cache_reloaded(self, size: int) -> None:
        pass
