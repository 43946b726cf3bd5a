"""What keeps big fleets fast by default: worker processes chosen from the fleet size and the
cores, the command line leaving the choice to that rule unless ``--workers`` is given, and
phone identities loaded into TLS contexts without file system work."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

import pytest
import trio

from phone_emu.cli import build_parser
from phone_emu.cli.lab_options import run_options
from phone_emu.lab.fleet import fleet_macs, make_identities
from phone_emu.lab.options import AUTO_WORKERS_FROM, auto_workers
from phone_emu.lab.progress import RunProgress
from tvs.tcpopen import open_tcp


@pytest.mark.parametrize(
    ("phones", "cpus", "expected"),
    [
        (4, 8, 1),  # scenario-sized fleets stay in the runner
        (AUTO_WORKERS_FROM - 1, 2, 1),
        (AUTO_WORKERS_FROM, 2, 2),
        (10_000, 2, 2),
        (10_000, 1, 1),
        (10_000, 16, 16),
    ],
)
def test_auto_workers(phones: int, cpus: int, expected: int) -> None:
    assert auto_workers(phones, cpus) == expected


def test_migrate_leaves_workers_to_the_rule_unless_given() -> None:
    args = build_parser().parse_args(["migrate", "--phones", "10000"])
    assert run_options(args, RunProgress(enabled=False)).workers is None
    args = build_parser().parse_args(["migrate", "--workers", "3"])
    assert run_options(args, RunProgress(enabled=False)).workers == 3


@pytest.mark.parametrize("memfd", [True, False])
def test_in_memory_identities_load_with_or_without_memfd(
    lab_pki: Any, memfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone's LSC and key load into a client context from memory (through a memfd, or the
    private temporary file where memfds are missing) and nothing is left behind."""
    from tvs import tlsconfig

    monkeypatch.setattr(tlsconfig, "_memfd_works", memfd)
    capf = lab_pki.cluster("source").capf
    [phone] = make_identities(capf, fleet_macs(1))
    pins = [lab_pki.cluster("source").publisher.callmanager.cert]
    ctx = tlsconfig.client_context(cert=phone.lsc, key=phone.key, pinned=pins)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1
    if not memfd:
        assert os.listdir(tlsconfig._identity_dir()) == []


async def test_open_tcp_is_open_tcp_stream_without_the_resolver() -> None:
    """An IP literal connects directly (TCP_NODELAY on, like trio.open_tcp_stream); a refused
    connect fails with the same message; a host name still resolves."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    got: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        got.append(await stream.receive_some(10))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        for host, bind in (("127.0.0.1", None), ("127.0.0.1", "127.0.0.1"), ("localhost", None)):
            stream = await open_tcp(host, port, local_address=bind)
            assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await stream.send_all(b"hello")
            assert await stream.receive_some(10) == b""
            await stream.aclose()
        nursery.cancel_scope.cancel()
    assert got == [b"hello"] * 3
    closed = trio.socket.socket()
    await closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    with pytest.raises(OSError, match=f"all attempts to connect to 127.0.0.1:{free} failed") as a:
        await open_tcp("127.0.0.1", free)
    with pytest.raises(OSError) as b:
        await trio.open_tcp_stream("127.0.0.1", free)
    assert str(a.value) == str(b.value) and a.value.strerror is None
