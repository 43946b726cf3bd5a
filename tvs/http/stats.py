"""The HTTP service's counters and metrics hooks: values only, no I/O.

``HttpServerStats`` is the frozen snapshot ``HttpServer.statistics()`` returns,
``ServerCounters`` the attrs class a server counts into, ``HttpObserver`` the hooks a metrics
backend implements (``tvs.metrics.HttpPrometheusObserver``).
"""

from __future__ import annotations

import attrs

from .policy import Reply

__all__ = ["HttpObserver", "HttpServerStats", "ServerCounters"]


class HttpObserver:
    """Hooks for metrics; every method does nothing here (``tvs.metrics`` counts them)."""

    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def connection_rejected(self, reason: str) -> None:
        pass

    def request_served(
        self, method: str, status: int, outcome: str, seconds: float, size: int
    ) -> None:
        pass


@attrs.frozen
class HttpServerStats:
    """Counters since the server started (``HttpServer.statistics()``)."""

    connections: int = 0
    active_connections: int = 0
    busy_rejected: int = 0  # answered 503 at the connection limit
    requests: int = 0  # answered, whatever the status
    files_sent: int = 0  # 200 answers
    not_found: int = 0  # 404: missing or refused by the path rules
    bad_requests: int = 0  # 400, 405, 413, 414, 431
    timeouts: int = 0  # connections closed for a slow or silent client
    errors: int = 0  # 500: the provider failed
    bytes_sent: int = 0  # body bytes


@attrs.define
class ServerCounters:
    """The running counters one server keeps (``statistics()`` snapshots them)."""

    connections: int = 0
    busy_rejected: int = 0
    requests: int = 0
    files_sent: int = 0
    not_found: int = 0
    bad_requests: int = 0
    timeouts: int = 0
    errors: int = 0
    bytes_sent: int = 0

    def count_reply(self, reply: Reply) -> None:
        self.requests += 1
        if reply.status == 200:
            self.files_sent += 1
        elif reply.status == 404:
            self.not_found += 1
        elif reply.status >= 500:
            self.errors += 1
        else:
            self.bad_requests += 1
