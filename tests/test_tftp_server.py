"""Our TFTP server and client on loopback sockets: providers, path safety, TIDs, limits, CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from tvs.cli import main as tvs_main
from tvs.tftp import (
    CallableProvider,
    DirectoryProvider,
    FileRefused,
    TftpRemoteError,
    TftpServer,
    serve_tftp,
    tftp_get,
)
from tvs.tftp.protocol import Ack, Data, ErrorPacket, ReadRequest, WriteRequest, decode_packet


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A served directory (``root/``) next to a secret file outside it (``secret.txt``)."""
    (tmp_path / "secret.txt").write_bytes(b"TOP-SECRET-CONTENT")
    served = tmp_path / "root"
    (served / "sub").mkdir(parents=True)
    (served / "ITLFile.tlv").write_bytes(os.urandom(3000))
    (served / "empty").write_bytes(b"")
    (served / "block").write_bytes(os.urandom(512))
    (served / "sub" / "SEP001122334455.cnf.xml").write_bytes(b"<device/>\n")
    (served / "text.txt").write_bytes(b"line one\nline two\n")
    (served / "link_out").symlink_to(tmp_path / "secret.txt")
    (served / "link_in").symlink_to(served / "block")
    (served / "dir_out").symlink_to(tmp_path)
    return served


@asynccontextmanager
async def running(provider, host: str = "127.0.0.1", **kwargs) -> AsyncIterator[tuple]:
    server = TftpServer(provider, **kwargs)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, host, 0)
        yield server, bound
        nursery.cancel_scope.cancel()


async def idle(server: TftpServer) -> None:
    """Wait until the server has finished its transfers (a client is done one ACK earlier)."""
    with trio.fail_after(10):
        while server.statistics().active_transfers:
            await trio.sleep(0.01)


class RawPeer:
    """A hand-driven UDP endpoint for packets the client would never send."""

    def __init__(self, host: str = "127.0.0.1"):
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.host = host

    async def __aenter__(self) -> RawPeer:
        await self.sock.bind((self.host, 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sock.close()

    async def send(self, data: bytes, addr: tuple) -> None:
        await self.sock.sendto(data, addr)

    async def recv(self, timeout: float = 5.0) -> tuple[object, tuple]:
        with trio.fail_after(timeout):
            data, addr = await self.sock.recvfrom(65536)
        return decode_packet(data), addr

    async def nothing(self, wait: float = 0.3) -> bool:
        with trio.move_on_after(wait):
            await self.sock.recvfrom(65536)
            return False
        return True


@pytest.mark.parametrize("name", ["ITLFile.tlv", "empty", "block", "sub/SEP001122334455.cnf.xml"])
@pytest.mark.parametrize(
    "options", [{}, {"blksize": 100}, {"blksize": 1428, "windowsize": 4}, {"tsize": True}]
)
async def test_serves_directory_files(root: Path, name: str, options: dict) -> None:
    async with running(DirectoryProvider(root)) as (server, (host, port)):
        assert await tftp_get(host, port, name, **options) == (root / name).read_bytes()
        await idle(server)
        stats = server.statistics()
    assert (stats.transfers_started, stats.transfers_completed) == (1, 1)
    assert stats.bytes_sent == (root / name).stat().st_size


async def test_one_task_per_transfer_without_epoll(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where select.epoll is missing the server drives each transfer in its own task."""
    monkeypatch.setattr("tvs.tftp.server.Reactor", None)
    async with running(DirectoryProvider(root)) as (server, (host, port)):
        assert server._reactor is None
        for options in ({}, {"blksize": 64, "windowsize": 4}):
            data = await tftp_get(host, port, "ITLFile.tlv", **options)
            assert data == (root / "ITLFile.tlv").read_bytes()
        await idle(server)
        assert server.statistics().transfers_completed == 2


async def test_serve_tftp_function_and_symlink_inside_root(root: Path) -> None:
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_tftp, DirectoryProvider(root), "127.0.0.1", 0)
        assert port != 0
        assert await tftp_get(host, port, "link_in") == (root / "block").read_bytes()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../secret.txt", 2),
        ("sub/../../secret.txt", 2),
        ("/etc/passwd", 2),
        ("link_out", 2),
        ("dir_out/secret.txt", 2),
        ("bad\x01name", 2),
        ("bad\x7fname", 2),
        ("sub", 2),
        ("missing.tlv", 1),
    ],
)
async def test_refused_names(root: Path, name: str, code: int) -> None:
    async with running(DirectoryProvider(root)) as (server, (host, port)):
        with capture_logs() as logs, pytest.raises(TftpRemoteError) as info:
            await tftp_get(host, port, name, timeout=1.0, retries=3)
        assert await tftp_get(host, port, "block") == (root / "block").read_bytes()
        assert server.statistics().requests_refused == 1
    assert info.value.code == code
    assert info.value.message in ("File not found", "Access violation")  # no server paths
    refused = [e for e in logs if e["event"] == "tftp.refused"]
    assert len(refused) == 1 and refused[0]["file"] == name and refused[0]["reason"]
    assert "TOP-SECRET-CONTENT" not in repr(logs)


async def test_directory_provider_refuses_nul_directly(root: Path) -> None:
    provider = DirectoryProvider(root)
    for name in ("a\x00b", "", "..", "C:evil"):
        with pytest.raises(FileRefused):
            await provider.get(name, ("127.0.0.1", 1))


async def test_callable_provider_per_client_sync_and_async(root: Path) -> None:
    seen: list[tuple[str, str]] = []

    def generate(name: str, client: tuple[str, int]) -> bytes | None:
        seen.append((name, client[0]))
        return None if name == "nothing" else f"{name} for {client[0]}".encode() * 100

    async def agenerate(name: str, client: tuple[str, int]) -> bytes:
        await trio.sleep(0)
        return name.encode()

    async with running(CallableProvider(generate)) as (_, (host, port)):
        data = await tftp_get(host, port, "SEPAABBCCDDEEFF.cnf.xml")
        assert data == b"SEPAABBCCDDEEFF.cnf.xml for 127.0.0.1" * 100
        with pytest.raises(TftpRemoteError) as info:
            await tftp_get(host, port, "nothing")
        assert info.value.code == 1
    assert seen == [("SEPAABBCCDDEEFF.cnf.xml", "127.0.0.1"), ("nothing", "127.0.0.1")]
    async with running(CallableProvider(agenerate)) as (_, (host, port)):
        assert await tftp_get(host, port, "x.bin") == b"x.bin"


async def test_provider_crash_answers_error_0_and_server_lives() -> None:
    def broken(name: str, client: tuple[str, int]) -> bytes:
        if name == "boom":
            raise RuntimeError("provider bug")
        return b"fine"

    async with running(CallableProvider(broken)) as (server, (host, port)):
        with capture_logs() as logs, pytest.raises(TftpRemoteError) as info:
            await tftp_get(host, port, "boom", timeout=1.0, retries=3)
        assert await tftp_get(host, port, "ok") == b"fine"
        await idle(server)
    assert info.value.code == 0
    assert any(e["event"] == "tftp.transfer_crashed" for e in logs)
    assert server.statistics().transfers_failed == 1


async def test_write_request_is_an_access_violation(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (server, addr), RawPeer() as peer:
        await peer.send(WriteRequest("upload.bin", "octet").to_bytes(), addr)
        packet, _ = await peer.recv()
        assert isinstance(packet, ErrorPacket) and packet.code == 2
    assert not (root / "upload.bin").exists()
    assert server.statistics().requests_refused == 1


async def test_unknown_tid_gets_error_5_and_the_transfer_goes_on(root: Path) -> None:
    content = (root / "ITLFile.tlv").read_bytes()
    async with (
        running(DirectoryProvider(root)) as (server, addr),
        RawPeer() as client,
        RawPeer() as stranger,
    ):
        await client.send(ReadRequest("ITLFile.tlv").to_bytes(), addr)
        first, tid = await client.recv()
        assert first == Data(1, content[:512])
        assert tid[1] != addr[1]  # a transfer runs on its own port
        await stranger.send(Ack(1).to_bytes(), tid)
        error, source = await stranger.recv()
        assert isinstance(error, ErrorPacket) and error.code == 5 and source == tid
        await client.send(Ack(1).to_bytes(), tid)
        second, _ = await client.recv()
        assert second == Data(2, content[512:1024])
        assert server.statistics().unknown_tid == 0  # counted when the transfer ends


async def test_malformed_and_odd_datagrams_do_not_hurt(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (server, addr), RawPeer() as peer:
        with capture_logs() as logs:
            for junk in (b"", b"\x00", b"\x00\x09", b"\x00\x01noterminator", b"\xff" * 600):
                await peer.send(junk, addr)
            await peer.send(Ack(3).to_bytes(), addr)
            packet, _ = await peer.recv()
            assert isinstance(packet, ErrorPacket) and packet.code == 4
            assert await tftp_get(*addr, "block") == (root / "block").read_bytes()
        await idle(server)
        assert server.statistics().malformed_dropped == 6
    assert sum(e["event"] == "tftp.malformed" for e in logs) == 6


async def test_request_with_extra_trailing_nul(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (_, addr), RawPeer() as peer:
        await peer.send(b"\x00\x01block\x00octet\x00\x00", addr)
        packet, _ = await peer.recv()
        assert packet == Data(1, (root / "block").read_bytes())


async def test_unsupported_mode_is_refused(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (_, addr), RawPeer() as peer:
        await peer.send(ReadRequest("block", "mail").to_bytes(), addr)
        packet, _ = await peer.recv()
        assert isinstance(packet, ErrorPacket) and packet.code == 4


async def test_netascii_mode(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (_, addr), RawPeer() as peer:
        await peer.send(ReadRequest("text.txt", "netascii").to_bytes(), addr)
        packet, _ = await peer.recv()
        assert packet == Data(1, b"line one\r\nline two\r\n")
        assert await tftp_get(*addr, "text.txt", mode="netascii") == b"line one\nline two\n"


async def test_duplicate_request_and_transfer_limit(root: Path) -> None:
    async with (
        running(DirectoryProvider(root), max_transfers=1) as (server, addr),
        RawPeer() as first,
        RawPeer() as second,
    ):
        await first.send(ReadRequest("ITLFile.tlv").to_bytes(), addr)
        _, tid = await first.recv()
        await first.send(ReadRequest("ITLFile.tlv").to_bytes(), addr)  # retransmitted RRQ
        await second.send(ReadRequest("block").to_bytes(), addr)
        assert await second.nothing()  # dropped: the one slot is taken
        stats = server.statistics()
        assert (stats.duplicate_requests, stats.busy_dropped, stats.active_transfers) == (1, 1, 1)
        await first.send(Ack(1).to_bytes(), tid)
        packet, _ = await first.recv()
        assert isinstance(packet, Data) and packet.block == 2  # only one transfer answers


async def test_one_log_line_per_transfer(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (server, (host, port)):
        with capture_logs() as logs:
            await tftp_get(host, port, "ITLFile.tlv", blksize=1000)
            await idle(server)
    [line] = [e for e in logs if e["event"] == "tftp.transfer"]
    assert line["file"] == "ITLFile.tlv" and line["client"].startswith("127.0.0.1:")
    assert (line["bytes"], line["blksize"], line["retransmits"]) == (3000, 1000, 0)
    assert line["outcome"] == "complete" and line["duration"] >= 0


async def test_silent_client_transfer_fails_after_retries(root: Path, autojump_clock) -> None:
    async with (
        running(DirectoryProvider(root), timeout=1.0, retries=2) as (server, addr),
        RawPeer() as peer,
    ):
        await peer.send(ReadRequest("ITLFile.tlv").to_bytes(), addr)
        with trio.fail_after(30):
            while server.statistics().transfers_failed == 0:
                await trio.sleep(0.5)
        stats = server.statistics()
        assert (stats.retransmits, stats.active_transfers) == (2, 0)


async def test_servers_on_several_loopback_addresses_answer_from_their_own() -> None:
    async with (
        running(CallableProvider(lambda n, c: b"one"), host="127.0.1.1") as (_, addr1),
        running(CallableProvider(lambda n, c: b"two"), host="127.0.2.1") as (_, addr2),
    ):
        for addr, expected in ((addr1, b"one"), (addr2, b"two")):
            async with RawPeer() as peer:
                await peer.send(ReadRequest("f").to_bytes(), addr)
                packet, tid = await peer.recv()
                assert packet == Data(1, expected) and tid[0] == addr[0]
            assert await tftp_get(*addr, "f") == expected


# -- CLI ---------------------------------------------------------------------------------------


async def test_cli_get(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "got.tlv"
    async with running(DirectoryProvider(root)) as (_, (host, port)):
        argv = [
            "tftp",
            "get",
            f"{host}:{port}",
            "ITLFile.tlv",
            "--out",
            str(out),
            "--blksize",
            "1428",
        ]
        assert await trio.to_thread.run_sync(tvs_main, argv) == 0
        missing = ["tftp", "get", f"{host}:{port}", "nope", "--out", str(tmp_path / "x")]
        assert await trio.to_thread.run_sync(tvs_main, missing) == 1
    assert out.read_bytes() == (root / "ITLFile.tlv").read_bytes()
    assert "File not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
async def test_cli_serve(root: Path, workers: int) -> None:
    port = _free_udp_port()
    tvs = Path(sys.executable).with_name("tvs")
    proc = subprocess.Popen(
        [
            str(tvs),
            "tftp",
            "serve",
            "--root",
            str(root),
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                data = await tftp_get("127.0.0.1", port, "block", timeout=0.2, retries=2)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
        assert data == (root / "block").read_bytes()
        # a second transfer: by the time it is served, the first one has been logged
        for _ in range(4):  # with two workers, requests spread over both
            assert await tftp_get("127.0.0.1", port, "empty") == b""
        await trio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0  # the workers were stopped and reaped too
    assert b"tftp.transfer" in output and b"file=block" in output
    assert output.count(b"tftp.listening") == workers
