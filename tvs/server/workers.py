"""Several TVS server processes sharing one port (SO_REUSEPORT), one per core.

The parent reserves the port (so ``port 0`` works), starts N spawned workers that each bind
the same address with SO_REUSEPORT and run :class:`TvsServer` with signal handling, and
forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to them. The kernel spreads new
connections over the workers. Exit status 0 when every worker stopped cleanly.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import attrs
import structlog
import trio

from .config import TvsServerConfig
from .logsetup import configure_logging
from .observer import ServerObserver
from .tls_server import TvsServer, serve_until_signalled

__all__ = ["run_workers"]

log = structlog.get_logger("tvs.server")

ObserverFactory = Callable[[], ServerObserver]


def _worker_main(
    config: TvsServerConfig,
    index: int,
    log_format: str,
    log_level: str,
    ready: Any,
    observer_factory: ObserverFactory | None,
) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server's receiver is installed
    configure_logging(log_format, log_level)
    structlog.contextvars.bind_contextvars(worker=index)
    observer = observer_factory() if observer_factory is not None else None

    async def main() -> None:
        server = TvsServer(config, observer=observer)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_until_signalled, server)
            ready.put((index, address))

    trio.run(main)


def _reserve(config: TvsServerConfig) -> tuple[socket.socket, int]:
    infos = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(sockaddr)
    return sock, int(sock.getsockname()[1])


def run_workers(
    config: TvsServerConfig,
    workers: int,
    *,
    log_format: str = "console",
    log_level: str = "info",
    observer_factory: ObserverFactory | None = None,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
    start_timeout: float = 30.0,
) -> int:
    """Run ``workers`` server processes until SIGTERM/SIGINT; returns the exit status."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    reservation, port = _reserve(config)
    shared = attrs.evolve(config, port=port, reuse_port=True)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(shared, i, log_format, log_level, ready, observer_factory),
            name=f"tvs-worker-{i}",
        )
        for i in range(workers)
    ]
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            signum = signal.SIGTERM
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    try:
        for p in procs:
            p.start()
        address: tuple[str, int] | None = None
        try:
            address = _wait_ready(ready, procs, start_timeout, lambda: stopping)
        except _StartFailed:
            log.error("a worker failed to start")
            forward(signal.SIGTERM, None)
        finally:
            reservation.close()
        if address is not None and not stopping:
            log.info("workers listening", workers=workers, address=f"{address[0]}:{address[1]}")
            if on_ready is not None:
                on_ready(address)
        for p in procs:
            while p.is_alive():
                p.join(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    # a worker still starting when SIGTERM came dies of it before its handler is installed:
    # during a requested stop that is a clean exit too
    clean = {0, -signal.SIGTERM} if stopping else {0}
    return 0 if all(p.exitcode in clean for p in procs) else 1


class _StartFailed(Exception):
    pass


def _wait_ready(
    ready: Any, procs: list[Any], timeout: float, stopping: Callable[[], bool]
) -> tuple[str, int] | None:
    """The address once every worker listens; None when a stop was requested first."""
    deadline = time.monotonic() + timeout
    address: tuple[str, int] | None = None
    pending = len(procs)
    while pending:
        if stopping():
            return None
        try:
            _, address = ready.get(timeout=0.1)
            pending -= 1
        except queue.Empty:
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                raise _StartFailed from None
    return address
