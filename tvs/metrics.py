"""Prometheus metrics for the TVS server (``tvs serve --metrics ADDR:PORT``).

Owns :class:`PrometheusObserver`, a :class:`~tvs.server.observer.ServerObserver` that counts
into its own :class:`~prometheus_client.CollectorRegistry` (one per server, so tests can run
several), and :class:`MetricsServer`, the HTTP endpoint serving that registry from
``prometheus_client``'s threaded WSGI server (a daemon thread; it only reads the registry).

Metrics (all prefixed ``tvs_``): ``requests_total{type,status}``,
``request_duration_seconds{type}`` (histogram, request read to response sent),
``bad_requests_total{reason}``, ``handshake_failures_total{reason}``,
``client_certificates_unverified_total{reason}`` (accepted under ``optional``),
``connections_total``,
``connections_rejected_total{reason}``, ``connections_in_use``, ``cache_entries``,
``cache_reloads_total``. The HTTP 6970 service's metrics (``tvs_http_*``) are counted by
:class:`HttpPrometheusObserver`, into the same registry when given it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import attrs
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from .http.server import HttpObserver
from .server.observer import NullObserver

__all__ = [
    "LATENCY_BUCKETS",
    "HttpPrometheusObserver",
    "MetricsEndpoint",
    "MetricsServer",
    "PrometheusObserver",
    "metrics_endpoint",
]

log = structlog.get_logger("tvs.metrics")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class PrometheusObserver(NullObserver):
    """Counts server events into ``registry`` (a new one when not given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tvs_requests", "Requests answered, by message type and status",
            ["type", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "tvs_request_duration_seconds", "Time from reading a request to sending the answer",
            ["type"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.bad_requests = Counter(
            "tvs_bad_requests", "Connections whose request could not be read or answered",
            ["reason"], registry=r,
        )  # fmt: skip
        self.handshake_failures = Counter(
            "tvs_handshake_failures", "TLS handshakes that failed, by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        self.unverified = Counter(
            "tvs_client_certificates_unverified",
            "Client certificates that did not verify but were accepted (client auth optional)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.connections = Counter(
            "tvs_connections", "TCP connections accepted and served", registry=r
        )
        self.rejected = Counter(
            "tvs_connections_rejected", "Connections closed at accept without being served",
            ["reason"], registry=r,
        )  # fmt: skip
        # the modes only matter with several worker processes (see metrics_endpoint)
        self.in_use = Gauge(
            "tvs_connections_in_use", "Connections being served", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.cache_entries = Gauge(
            "tvs_cache_entries", "Entries in the TVS certificate cache", registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.reloads = Counter("tvs_cache_reloads", "Certificate cache (re)builds", registry=r)

    def connection_opened(self) -> None:
        self.connections.inc()
        self.in_use.inc()

    def connection_closed(self) -> None:
        self.in_use.dec()

    def connection_rejected(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def handshake_failed(self, reason: str) -> None:
        self.handshake_failures.labels(reason=reason).inc()

    def client_unverified(self, reason: str) -> None:
        self.unverified.labels(reason=reason).inc()

    def bad_request(self, reason: str) -> None:
        self.bad_requests.labels(reason=reason).inc()

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        self.requests.labels(type=message_type, status=status).inc()
        self.latency.labels(type=message_type).observe(seconds)

    def cache_reloaded(self, size: int) -> None:
        self.cache_entries.set(size)
        self.reloads.inc()


class MetricsServer:
    """The ``/metrics`` HTTP endpoint for one registry; port 0 picks a free port."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0):
        self._httpd: WSGIServer
        self._thread: threading.Thread
        self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.frozen
class MetricsEndpoint:
    """A picklable observer factory for ``tvs serve --metrics``: each call makes a
    :class:`PrometheusObserver` and serves its registry on ``host:port`` (kept open for the
    life of the process)."""

    host: str
    port: int

    def __call__(self) -> PrometheusObserver:
        observer = PrometheusObserver()
        server = MetricsServer(observer.registry, self.host, self.port)
        _endpoints.append(server)
        log.info("metrics listening", url=server.url)
        return observer


_endpoints: list[MetricsServer] = []


def metrics_endpoint(host: str, port: int, *, workers: int = 1) -> Callable[[], PrometheusObserver]:
    """The observer factory ``tvs serve --metrics`` hands the server (picklable).

    One process: each call serves its observer's registry on ``host:port``. Several worker
    processes: ``prometheus_client``'s multiprocess mode. This process (the parent) serves the
    endpoint, summing what the workers write into a private directory
    (``PROMETHEUS_MULTIPROC_DIR``, set here so the spawned workers inherit it; removed at exit).
    """
    if workers <= 1:
        return MetricsEndpoint(host, port)
    directory = tempfile.mkdtemp(prefix="tvs-metrics-")
    atexit.register(shutil.rmtree, directory, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server = MetricsServer(registry, host, port)
    _endpoints.append(server)
    log.info("metrics listening", url=server.url, workers=workers)
    return PrometheusObserver


class HttpPrometheusObserver(HttpObserver):
    """Counts the HTTP 6970 file service's events (``tvs http serve --metrics``, cluster
    nodes) into ``registry``, beside the TVS metrics when given the TVS observer's registry.

    Metrics: ``tvs_http_requests_total{method,status,outcome}``,
    ``tvs_http_request_duration_seconds`` (histogram), ``tvs_http_bytes_sent_total``,
    ``tvs_http_connections_total``, ``tvs_http_connections_rejected_total{reason}`` (busy,
    idle, slow-request, slow-reader), ``tvs_http_connections_in_use``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tvs_http_requests", "HTTP requests answered, by method, status and outcome",
            ["method", "status", "outcome"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "tvs_http_request_duration_seconds", "Time from reading a request to the answer sent",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.bytes_sent = Counter("tvs_http_bytes_sent", "Response body bytes sent", registry=r)
        self.connections = Counter(
            "tvs_http_connections", "HTTP connections accepted and served", registry=r
        )
        self.rejected = Counter(
            "tvs_http_connections_rejected", "HTTP connections closed by a limit or deadline",
            ["reason"], registry=r,
        )  # fmt: skip
        self.in_use = Gauge(
            "tvs_http_connections_in_use", "HTTP connections being served", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip

    def connection_opened(self) -> None:
        self.connections.inc()
        self.in_use.inc()

    def connection_closed(self) -> None:
        self.in_use.dec()

    def connection_rejected(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def request_served(
        self, method: str, status: int, outcome: str, seconds: float, size: int
    ) -> None:
        method = method if method in ("GET", "HEAD") else "other"  # bounded label values
        self.requests.labels(method=method, status=str(status), outcome=outcome).inc()
        self.latency.observe(seconds)
        self.bytes_sent.inc(size)
