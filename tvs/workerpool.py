"""N worker processes serving one shared port (SO_REUSEPORT), for any server (TVS, TFTP, CAPF).

Owns the process side of ``--workers N``: the parent reserves the port (so port 0 works and
every worker binds the same one), starts N *spawned* workers (no fork after threads or a Trio
loop exists), waits until each reports its address, forwards SIGHUP (reload) and
SIGTERM/SIGINT (graceful stop), and supervises:

* a worker that dies while the pool is running (a crash, ``kill -9``, the OOM killer) is logged
  (``worker exited`` with its exit code or signal) and restarted (``worker restarted``);
* after ``max_restarts`` deaths within ``restart_window`` seconds the pool gives up: one error
  line (``workers keep crashing``), the other workers are stopped, exit status 2;
* ``on_worker_exit(pid)`` runs for every dead worker (the metrics endpoint drops its gauges
  there, so ``connections_in_use`` does not keep a dead worker's count);
* SIGTERM stops every worker and the pool returns 0 when they all stopped cleanly (a worker
  replaced earlier does not count against it).

A worker is ``target(*args, index=i, port=p, ready=callback)``: a picklable module-level
function that binds ``port`` with SO_REUSEPORT, calls ``ready((host, port))`` once listening,
serves until SIGTERM, and returns. Knows nothing about TLS, TVS or Trio.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

import attrs
import structlog

from .exitcodes import ExitCode

__all__ = ["PoolConfig", "WorkerReady", "reserve_port", "run_pool"]

log = structlog.get_logger("tvs.workers")

WorkerReady = Callable[[tuple[str, int]], None]


@attrs.frozen(kw_only=True)
class PoolConfig:
    workers: int
    name: str = "worker"
    """Process names are ``<name>-<index>``."""
    start_timeout: float = 30.0
    max_restarts: int = 5
    restart_window: float = 60.0
    """More than ``max_restarts`` deaths within this many seconds: give up."""
    stop_timeout: float = 60.0
    """After SIGTERM, seconds before remaining workers are killed."""


def reserve_port(host: str, port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, held by the parent so that port 0
    resolves once and the port stays ours while workers start. Close it once they listen."""
    infos = socket.getaddrinfo(host, port, type=kind)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _entry(
    target: Callable[..., None], args: tuple[Any, ...], index: int, port: int, ready: Any
) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker installs its own handling

    def report(address: tuple[str, int]) -> None:  # once per worker: flush it at once
        ready.put((index, os.getpid(), address))
        ready.close()
        ready.join_thread()

    target(*args, index=index, port=port, ready=report)


class _Pool:
    def __init__(
        self,
        config: PoolConfig,
        target: Callable[..., None],
        args: tuple[Any, ...],
        port: int,
        on_worker_exit: Callable[[int], None] | None,
    ) -> None:
        self.config, self.target, self.args, self.port = config, target, args, port
        self.on_worker_exit = on_worker_exit
        self.ctx = multiprocessing.get_context("spawn")
        self.ready: Any = self.ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.deaths: deque[float] = deque()
        self.stopping = False
        self.gave_up = False

    def start(self, index: int) -> None:
        p = self.ctx.Process(
            target=_entry,
            args=(self.target, self.args, index, self.port, self.ready),
            name=f"{self.config.name}-{index}",
        )
        p.start()
        self.procs[index] = p

    def signal_all(self, signum: int) -> None:
        for p in self.procs.values():
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    def reap(self) -> list[int]:
        """Indexes of workers that died (logged, hook called)."""
        dead = []
        for index, p in self.procs.items():
            if p.exitcode is None:
                continue
            dead.append(index)
            code = p.exitcode
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            if not self.stopping:
                log.warning("worker exited", worker=index, pid=p.pid, reason=how)
            if self.on_worker_exit is not None and p.pid is not None:
                try:
                    self.on_worker_exit(p.pid)
                except Exception as exc:  # a metrics hook must not take the pool down
                    log.warning("worker exit hook failed", reason=str(exc))
        return dead


def run_pool(
    target: Callable[..., None],
    args: tuple[Any, ...],
    config: PoolConfig,
    *,
    reservation: socket.socket,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
    on_worker_exit: Callable[[int], None] | None = None,
) -> int:
    """Run the pool until SIGTERM/SIGINT (main thread only); returns the exit status:
    0 clean stop, 2 a worker failed to start or kept crashing. ``reservation`` (from
    :func:`reserve_port`) is closed once every worker listens."""
    if config.workers < 1:
        raise ValueError("workers must be at least 1")
    port = int(reservation.getsockname()[1])
    pool = _Pool(config, target, args, port, on_worker_exit)

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            pool.stopping = True
            signum = signal.SIGTERM
        pool.signal_all(signum)

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    try:
        for i in range(config.workers):
            pool.start(i)
        try:
            address = _wait_ready(pool, config.start_timeout)
        finally:
            reservation.close()
        if address is None and not pool.stopping:
            log.error("a worker failed to start", workers=config.workers)
            forward(signal.SIGTERM, None)
            pool.gave_up = True
        elif address is not None and not pool.stopping:
            log.info("workers listening", workers=config.workers, address=_show(address))
            if on_ready is not None:
                on_ready(address)
            _supervise(pool)
        _stop_all(pool)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if pool.gave_up:
        return int(ExitCode.ERROR)
    # a worker still starting when SIGTERM came dies of it before its handler is installed:
    # during a requested stop that is a clean exit too
    clean = {0, -signal.SIGTERM}
    return 0 if all(p.exitcode in clean for p in pool.procs.values()) else int(ExitCode.ERROR)


def _show(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _wait_ready(pool: _Pool, timeout: float) -> tuple[str, int] | None:
    """The address once every worker listens; None when one died first, on timeout, or when
    a stop was requested."""
    deadline = time.monotonic() + timeout
    address: tuple[str, int] | None = None
    pending = set(pool.procs)
    while pending:
        if pool.stopping or time.monotonic() > deadline:
            return None
        try:
            index, pid, address = pool.ready.get(timeout=0.1)
            pending.discard(index)
            log.info("worker listening", worker=index, pid=pid)
        except queue.Empty:
            if any(p.exitcode is not None for p in pool.procs.values()):
                return None
    return address


def _supervise(pool: _Pool) -> None:
    """Until a stop: restart dead workers, give up when they keep dying."""
    cfg = pool.config
    while not pool.stopping:
        sentinels = [p.sentinel for p in pool.procs.values()]
        multiprocessing.connection.wait(sentinels, timeout=0.5)
        _drain_ready(pool)
        if pool.stopping:
            return
        for index in pool.reap():
            now = time.monotonic()
            pool.deaths.append(now)
            while pool.deaths and now - pool.deaths[0] > cfg.restart_window:
                pool.deaths.popleft()
            if len(pool.deaths) > cfg.max_restarts:
                log.error(
                    "workers keep crashing, giving up",
                    deaths=len(pool.deaths),
                    window=cfg.restart_window,
                    reason=f"{len(pool.deaths)} worker deaths within {cfg.restart_window:g}s",
                )
                pool.gave_up = True
                pool.procs.pop(index).join(0)
                pool.stopping = True
                pool.signal_all(signal.SIGTERM)
                return
            old = pool.procs.pop(index)
            old.join(0)
            pool.start(index)
            log.warning("worker restarted", worker=index, pid=pool.procs[index].pid)


def _drain_ready(pool: _Pool) -> None:
    while True:
        try:
            index, pid, _ = pool.ready.get_nowait()
        except queue.Empty:
            return
        log.info("worker listening", worker=index, pid=pid)


def _stop_all(pool: _Pool) -> None:
    deadline = time.monotonic() + pool.config.stop_timeout
    for p in pool.procs.values():
        while p.is_alive():
            p.join(0.2)
            if time.monotonic() > deadline:
                p.kill()
                p.join(5)
    pool.reap()
