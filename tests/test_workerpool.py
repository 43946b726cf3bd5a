"""Worker processes on a shared port (tvs.workerpool, ``tvs serve --workers N``): a worker
killed with ``kill -9`` is logged and restarted, the metrics gauge drops its connections,
SIGTERM still exits 0; workers that keep crashing make the pool give up with one clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs
from test_server_process import LogReader, _client, _port, _query, _serve_cmd, store_dir  # noqa: F401

from phone_emu.tvs_client import tvs_request
from tvs.pki import LabPki
from tvs.tlsconfig import client_context
from tvs.workerpool import PoolConfig, WorkerReady, reserve_port, run_pool


def _in_use(url: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("tvs_connections_in_use"):
            return float(line.split()[-1])
    return 0.0


async def _established(port: int) -> trio.SSLStream[trio.SocketStream]:
    tls = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), client_context())
    await tls.do_handshake()
    return tls


async def _gone(tls: trio.SSLStream[trio.SocketStream]) -> bool:
    """True when the server side of ``tls`` is closed (its worker died)."""
    with trio.move_on_after(0.3):
        try:
            return await tls.receive_some() == b""
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return True
    return False


@pytest.mark.slow
async def test_a_killed_worker_is_restarted_and_sigterm_exits_0(
    store_dir: Path,  # noqa: F811
    lab_pki: LabPki,
) -> None:
    cmd = _serve_cmd(
        store_dir, lab_pki, "--workers", "2", "--metrics", "127.0.0.1:0",
        "--request-timeout", "120",
    )  # fmt: skip
    proc = await trio.lowlevel.open_process(cmd, stderr=subprocess.PIPE)
    held: list[trio.SSLStream[trio.SocketStream]] = []
    try:
        log = LogReader(proc)
        url = str((await log.wait_for("metrics listening"))["url"])
        port = _port(await log.wait_for("workers listening"))
        pids = {int(e["pid"]) for e in log.events if e.get("event") == "worker listening"}
        assert len(pids) == 2
        held = [await _established(port) for _ in range(12)]
        with trio.fail_after(30):
            while await trio.to_thread.run_sync(_in_use, url) != 12:
                await trio.sleep(0.05)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        exited = await log.wait_for("worker exited")
        assert exited["pid"] == victim and exited["reason"] == "signal SIGKILL"
        restarted = await log.wait_for("worker restarted")
        assert restarted["pid"] not in pids
        alive = [t for t in held if not await _gone(t)]
        assert len(alive) < 12  # the kernel gave the victim some of them
        with trio.fail_after(30):  # the dead worker's connections left the gauge
            while await trio.to_thread.run_sync(_in_use, url) != len(alive):
                await trio.sleep(0.05)
        for tls in held:
            await trio.aclose_forcefully(tls)
        held = []
        cert = lab_pki.clusters["source"].capf.cert
        for _ in range(4):  # both workers (the new one included) answer
            resp = await tvs_request("127.0.0.1", port, _query(cert), _client(lab_pki))
            assert resp.status.name == "VALID"
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            assert await proc.wait() == 0
    finally:
        for tls in held:
            await trio.aclose_forcefully(tls)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _crashing_worker(*, index: int, port: int, ready: WorkerReady) -> None:
    ready(("127.0.0.1", port))
    os._exit(3)


def _never_ready(*, index: int, port: int, ready: WorkerReady) -> None:
    os._exit(4)


def test_workers_that_keep_crashing_make_the_pool_give_up() -> None:
    config = PoolConfig(workers=1, max_restarts=3, restart_window=60, start_timeout=60)
    with capture_logs() as logs:
        status = run_pool(_crashing_worker, (), config, reservation=reserve_port("127.0.0.1", 0))
    assert status == 2
    events = [e["event"] for e in logs]
    assert events.count("worker exited") == 4 and events.count("worker restarted") == 3
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "workers keep crashing, giving up"
    ]
    assert all(e["reason"] == "exit status 3" for e in logs if e["event"] == "worker exited")


def test_a_worker_that_never_starts_is_one_clear_error() -> None:
    config = PoolConfig(workers=1, start_timeout=60)
    with capture_logs() as logs:
        status = run_pool(_never_ready, (), config, reservation=reserve_port("127.0.0.1", 0))
    assert status == 2
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["a worker failed to start"]
