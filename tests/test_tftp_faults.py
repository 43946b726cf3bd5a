"""Fault injection: transfers through a seeded UDP proxy that drops, duplicates and reorders.

At 10% loss (plus duplicates and reordering) in both directions, transfers between our client
and our server, and between our client and in.tftpd, still complete byte-exact; at 100% loss
the client fails with ``TftpTimeout`` within its bound of ``timeout * (retries + 1)``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from udp_proxy import UdpProxy

from tvs.tftp import CallableProvider, TftpServer, TftpTimeout, tftp_get

CONTENT = {"small.bin": os.urandom(700), "ctl.tlv": os.urandom(20_000)}


@asynccontextmanager
async def through_proxy(
    target: tuple[str, int] | None = None, **faults: float
) -> AsyncIterator[tuple[TftpServer | None, UdpProxy, tuple[str, int]]]:
    """Our server (unless ``target`` is given) behind a proxy with ``faults``."""
    async with trio.open_nursery() as nursery:
        server = None
        if target is None:
            server = TftpServer(
                CallableProvider(lambda name, client: CONTENT.get(name)), timeout=0.2, retries=20
            )
            target = await nursery.start(server.serve, "127.0.0.1", 0)
        proxy = UdpProxy(target, **faults)
        front = await nursery.start(proxy.run)
        yield server, proxy, front
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "options",
    [{}, {"blksize": 1024}, {"blksize": 512, "windowsize": 8}],
    ids=["plain", "blksize", "windowsize"],
)
async def test_ten_percent_loss_with_duplicates_and_reordering(seed: int, options: dict) -> None:
    async with through_proxy(loss=0.1, duplicate=0.1, reorder=0.1, seed=seed) as (
        _,
        proxy,
        front,
    ):
        for name, content in CONTENT.items():
            data = await tftp_get(*front, name, timeout=0.2, retries=20, **options)
            assert data == content
        assert proxy.stats.dropped > 0 and proxy.stats.duplicated > 0
        assert proxy.stats.reordered > 0


async def test_total_loss_times_out_within_the_bound(autojump_clock: trio.abc.Clock) -> None:
    async with through_proxy(loss=1.0) as (server, proxy, front):
        timeout, retries = 1.0, 4
        start = trio.current_time()
        with trio.fail_after(timeout * (retries + 1) + 0.01), pytest.raises(TftpTimeout):
            await tftp_get(*front, "small.bin", timeout=timeout, retries=retries)
        assert trio.current_time() - start == pytest.approx(timeout * (retries + 1))
        assert proxy.stats.dropped == retries + 1  # the request and each retransmission
        assert server is not None and server.statistics().transfers_started == 0


@pytest.mark.interop
async def test_lossy_path_to_tftpd_hpa(tmp_path: Path) -> None:
    binary = shutil.which("in.tftpd") or "/usr/sbin/in.tftpd"
    if not os.path.exists(binary):
        pytest.skip("in.tftpd is not installed (CI installs it in .ci/run)")
    tmp_path.chmod(0o755)
    (tmp_path / "ctl.tlv").write_bytes(CONTENT["ctl.tlv"])
    (tmp_path / "ctl.tlv").chmod(0o644)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = ["-u", "root"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [binary, "-L", "-a", f"127.0.0.1:{port}", "-T", "200000", "-s", str(tmp_path), *user],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with through_proxy(("127.0.0.1", port), loss=0.1, duplicate=0.1, seed=7) as (
            _,
            proxy,
            front,
        ):
            data = await tftp_get(*front, "ctl.tlv", timeout=0.3, retries=30)
            assert data == CONTENT["ctl.tlv"]
            assert proxy.stats.dropped > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
