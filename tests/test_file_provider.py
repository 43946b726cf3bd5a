"""The one file-provider contract (TFTP and HTTP): one immutable buffer per file version,
shared by every transfer; non-regular files refused without blocking."""

from __future__ import annotations

import gc
import os
import socket
import tracemalloc
from pathlib import Path

import pytest
import trio

from tvs.tftp import (
    CallableProvider,
    DirectoryProvider,
    FileRefused,
    FileVersion,
    TftpRemoteError,
    TftpServer,
    tftp_get,
)
from tvs.tftp.protocol import Data, OptionAck, ReadRequest, decode_packet

MIB = 1024 * 1024


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "root"
    served.mkdir()
    (served / "small").write_bytes(b"small file\n")
    return served


async def test_directory_provider_returns_one_version_per_file_version(root: Path) -> None:
    provider = DirectoryProvider(root)
    first = await provider.get("small", ("127.0.0.1", 1))
    again = await provider.get("small", ("127.0.0.1", 2))
    assert isinstance(first, FileVersion)
    assert again is first and again.data is first.data
    assert provider.reads == 1
    (root / "small").write_bytes(b"a new version, longer\n")
    changed = await provider.get("small", ("127.0.0.1", 1))
    assert changed is not first and changed.data == b"a new version, longer\n"
    assert provider.reads == 2


async def test_same_size_rewrite_with_new_mtime_is_a_new_version(root: Path) -> None:
    provider = DirectoryProvider(root)
    first = await provider.get("small", ("127.0.0.1", 1))
    assert first is not None
    (root / "small").write_bytes(b"SMALL FILE\n")
    st = os.stat(root / "small")
    os.utime(root / "small", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = await provider.get("small", ("127.0.0.1", 1))
    assert second is not None and second is not first and second.data == b"SMALL FILE\n"


async def test_cache_is_bounded_but_versions_in_use_stay_shared(root: Path) -> None:
    for i in range(5):
        (root / f"f{i}").write_bytes(bytes([i]) * 1000)
    provider = DirectoryProvider(root, cache_bytes=2500, cache_entries=10)
    held = [await provider.get(f"f{i}", ("h", 1)) for i in range(5)]
    assert provider._cached_bytes <= 2500 and len(provider._cache) == 2
    # f0 fell out of the cache, but a transfer still holds it: the same buffer comes back
    assert await provider.get("f0", ("h", 1)) is held[0]
    assert provider.reads == 5
    del held
    gc.collect()
    provider = DirectoryProvider(root, cache_entries=1)
    await provider.get("f0", ("h", 1))
    await provider.get("f1", ("h", 1))
    gc.collect()
    await provider.get("f0", ("h", 1))  # dropped and no longer held: read again
    assert provider.reads == 3


async def test_version_over_the_cache_bound_is_shared_while_held(root: Path) -> None:
    (root / "big").write_bytes(os.urandom(4096))
    provider = DirectoryProvider(root, cache_bytes=1024)
    one = await provider.get("big", ("h", 1))
    assert await provider.get("big", ("h", 2)) is one
    assert provider.reads == 1 and not provider._cache


async def test_callable_provider_shares_the_same_bytes_object() -> None:
    blob = os.urandom(1000)
    provider = CallableProvider(lambda name, client: blob)
    a = await provider.get("x", ("h", 1))
    b = await provider.get("y", ("h", 2))
    assert a is b and a is not None and a.data is blob
    mutable = bytearray(b"abc")
    provider = CallableProvider(lambda name, client: mutable)
    c = await provider.get("x", ("h", 1))
    mutable[0] = ord("X")
    assert c is not None and c.data == b"abc"  # copied once: it could change under us


async def test_netascii_form_is_computed_once_per_version() -> None:
    version = FileVersion(b"a\nb\n")
    assert version.netascii() == b"a\r\nb\r\n"
    assert version.netascii() is version.netascii()


# --- non-regular files ----------------------------------------------------------------------


async def test_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    provider = DirectoryProvider(root)
    with trio.fail_after(5), pytest.raises(FileRefused, match="not a regular file"):
        await provider.get("pipe", ("127.0.0.1", 1))


async def test_fifo_in_root_does_not_freeze_the_tftp_server(root: Path) -> None:
    os.mkfifo(root / "pipe")
    server = TftpServer(DirectoryProvider(root))
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        with trio.fail_after(10):
            with pytest.raises(TftpRemoteError) as info:
                await tftp_get(host, port, "pipe", retries=1)
            assert info.value.code == 2
            # the server still answers other requests
            assert await tftp_get(host, port, "small") == b"small file\n"
        nursery.cancel_scope.cancel()
    assert server.statistics().requests_refused == 1


async def test_directory_and_device_are_refused(root: Path) -> None:
    (root / "adir").mkdir()
    os.symlink("/dev/zero", root / "zero")  # resolves outside the root as well
    provider = DirectoryProvider(root)
    with pytest.raises(FileRefused):
        await provider.get("adir", ("h", 1))
    with pytest.raises(FileRefused):
        await provider.get("zero", ("h", 1))


# --- memory does not grow with transfers x file size -----------------------------------------


async def test_unacknowledged_requests_for_a_large_file_share_one_buffer(root: Path) -> None:
    size, clients = 8 * MIB, 100
    (root / "large.bin").write_bytes(os.urandom(size))
    provider = DirectoryProvider(root)
    server = TftpServer(provider, timeout=30, retries=1)
    socks: list[socket.socket] = []
    gc.collect()
    tracemalloc.start()
    try:
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.serve, "127.0.0.1", 0)
            before = tracemalloc.get_traced_memory()[0]
            request = ReadRequest("large.bin", "octet", (("blksize", "1428"),)).to_bytes()
            for _ in range(clients):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                s.sendto(request, (host, port))
                socks.append(s)
            with trio.fail_after(30):
                for s in socks:  # each gets its OACK and we never acknowledge it
                    await trio.lowlevel.wait_readable(s)
                    assert isinstance(decode_packet(s.recv(65536)), OptionAck | Data)
                while server.statistics().active_transfers < clients:
                    await trio.sleep(0.01)
            grown = tracemalloc.get_traced_memory()[0] - before
            assert server.statistics().active_transfers == clients
            assert provider.reads == 1  # one buffer for every transfer of this version
            assert grown < 2 * size, f"memory grew by {grown} bytes for {clients} transfers"
            nursery.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
        for s in socks:
            s.close()


async def test_stalled_http_downloads_of_a_large_file_share_one_buffer(root: Path) -> None:
    from tvs.http import HttpServer

    size, clients = 8 * MIB, 50
    (root / "large.bin").write_bytes(os.urandom(size))
    provider = DirectoryProvider(root)
    server = HttpServer(provider)
    socks: list[socket.socket] = []
    gc.collect()
    tracemalloc.start()
    try:
        async with trio.open_nursery() as nursery:
            _, port = await nursery.start(server.serve, "127.0.0.1", 0)
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(clients):  # each asks and never reads
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /large.bin HTTP/1.1\r\nHost:x\r\n\r\n")
                socks.append(s)
            with trio.fail_after(30):
                while server.statistics().connections < clients:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)  # every connection is now blocked sending
            grown = tracemalloc.get_traced_memory()[0] - before
            assert provider.reads == 1
            # one shared 8 MiB buffer plus at most a 64 KiB head segment per connection
            assert grown < size + clients * 256 * 1024, f"grew {grown} bytes"
            nursery.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
        for s in socks:
            s.close()
