"""Several TVS server processes sharing one port (SO_REUSEPORT), one per core.

The process side (reserving the port, spawning, readiness, signal forwarding, restarting a
worker that died, giving up on a crash loop) is :func:`tvs.workerpool.run_pool`; this module
is the TVS worker: logging, the observer, and :class:`TvsServer` with signal handling. With
multiprocess metrics the dead worker's gauges are dropped when it dies.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import structlog
import trio

from ..workerpool import PoolConfig, WorkerReady, reserve_port, run_pool
from .config import TvsServerConfig
from .logsetup import configure_logging
from .observer import ServerObserver
from .tls_server import TvsServer, serve_until_signalled

__all__ = ["run_workers"]

log = structlog.get_logger("tvs.server")

ObserverFactory = Callable[[], ServerObserver]


def _tvs_worker(
    config: TvsServerConfig,
    log_format: str,
    log_level: str,
    observer_factory: ObserverFactory | None,
    *,
    index: int,
    port: int,
    ready: WorkerReady,
) -> None:
    configure_logging(log_format, log_level)
    structlog.contextvars.bind_contextvars(worker=index)
    observer = observer_factory() if observer_factory is not None else None
    shared = attrs.evolve(config, port=port, reuse_port=True)

    async def main() -> None:
        server = TvsServer(shared, observer=observer)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_until_signalled, server)
            ready(address)

    trio.run(main)


def _drop_dead_gauges(pid: int) -> None:
    """prometheus_client multiprocess mode: forget a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def run_workers(
    config: TvsServerConfig,
    workers: int,
    *,
    log_format: str = "console",
    log_level: str = "info",
    observer_factory: ObserverFactory | None = None,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
    start_timeout: float = 30.0,
    max_restarts: int = 5,
    restart_window: float = 60.0,
) -> int:
    """Run ``workers`` server processes until SIGTERM/SIGINT; returns the exit status (0 clean,
    2 a worker failed to start or kept crashing). A worker that dies is logged and restarted."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    reservation = reserve_port(config.host, config.port)
    return run_pool(
        _tvs_worker,
        (config, log_format, log_level, observer_factory),
        PoolConfig(
            workers=workers,
            name="tvs-worker",
            start_timeout=start_timeout,
            max_restarts=max_restarts,
            restart_window=restart_window,
            stop_timeout=config.shutdown_grace + 15,
        ),
        reservation=reservation,
        on_ready=on_ready,
        on_worker_exit=_drop_dead_gauges,
    )
