"""The phone's HTTP fetch: its exact request bytes, bounded parsing of the answer, and each
failure a phone falls back on (refused, 404, 503, timeout, too large, garbage)."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from tvs.http import (
    HttpConnectError,
    HttpProtocolError,
    HttpServer,
    HttpStatusError,
    HttpTimeout,
    HttpTooLarge,
    http_get,
    phone_request,
)
from tvs.tftp import CallableProvider

MAC = "00AABBCCDDEE"
Handler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


def test_phone_request_is_the_real_phones_bytes() -> None:
    assert phone_request(f"CTLSEP{MAC}.tlv", "10.1.1.1", 6970) == (
        f"GET /CTLSEP{MAC}.tlv HTTP/1.1\r\nHost:10.1.1.1:6970\r\n\r\n".encode()
    )


async def _fake_server(nursery: trio.Nursery, handler: Handler, seen: list[bytes]) -> int:
    """A TCP server that reads the request head, records it, and runs ``handler``."""

    async def serve(stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
        seen.append(data)
        with contextlib.suppress(trio.BrokenResourceError):
            await handler(stream, data)
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


def _answer(raw: bytes) -> Handler:
    async def handler(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(raw)

    return handler


async def test_sends_exactly_the_phone_request(nursery: trio.Nursery) -> None:
    seen: list[bytes] = []
    port = await _fake_server(
        nursery, _answer(b"HTTP/1.1 200 OK\r\nContent-length: 3\r\n\r\nabc"), seen
    )
    assert await http_get("127.0.0.1", port, f"CTLSEP{MAC}.tlv") == b"abc"
    assert seen == [f"GET /CTLSEP{MAC}.tlv HTTP/1.1\r\nHost:127.0.0.1:{port}\r\n\r\n".encode()]


@pytest.mark.parametrize("split", ["whole", "byte-by-byte"])
async def test_answer_arriving_in_pieces(nursery: trio.Nursery, split: str) -> None:
    body = os.urandom(3000)
    raw = b"HTTP/1.1 200 OK\r\nContent-length: 3000\r\nCache-Control: no-store\r\n\r\n" + body

    async def handler(stream: trio.SocketStream, request: bytes) -> None:
        if split == "whole":
            await stream.send_all(raw + b"trailing junk")
        else:
            for i in range(0, len(raw), 1):
                await stream.send_all(raw[i : i + 1])

    port = await _fake_server(nursery, handler, [])
    assert await http_get("127.0.0.1", port, "f") == body


async def test_status_errors(nursery: trio.Nursery) -> None:
    port = await _fake_server(
        nursery, _answer(b"HTTP/1.1 503 Service Unavailable\r\nContent-length: 0\r\n\r\n"), []
    )
    with pytest.raises(HttpStatusError) as info:
        await http_get("127.0.0.1", port, "f")
    assert info.value.status == 503


async def test_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = s.getsockname()[1]
        with pytest.raises(HttpConnectError):
            await http_get("127.0.0.1", port, "f")


async def test_silent_server_times_out(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream, request: bytes) -> None:
        await trio.sleep_forever()

    port = await _fake_server(nursery, silent, [])
    with pytest.raises(HttpTimeout):
        await http_get("127.0.0.1", port, "f", timeout=0.3)


async def test_declared_size_over_the_cap_is_refused_before_the_body(nursery: trio.Nursery) -> None:
    port = await _fake_server(
        nursery, _answer(b"HTTP/1.1 200 OK\r\nContent-length: 100000000\r\n\r\nxx"), []
    )
    with pytest.raises(HttpTooLarge) as info:
        await http_get("127.0.0.1", port, "f", max_size=65536)
    assert info.value.size == 100_000_000


async def test_undeclared_body_over_the_cap_is_cut(nursery: trio.Nursery) -> None:
    async def endless(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(b"HTTP/1.0 200 OK\r\n\r\n")  # body until close
        for _ in range(100):
            await stream.send_all(b"x" * 4096)

    port = await _fake_server(nursery, endless, [])
    with pytest.raises(HttpTooLarge):
        await http_get("127.0.0.1", port, "f", max_size=65536)


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 40000 + b"\r\n\r\n",
        b"",
    ],
)
async def test_garbage_is_a_protocol_error(nursery: trio.Nursery, raw: bytes) -> None:
    port = await _fake_server(nursery, _answer(raw), [])
    with pytest.raises(HttpProtocolError):
        await http_get("127.0.0.1", port, "f")


async def test_against_our_server(nursery: trio.Nursery) -> None:
    files = {f"CTLSEP{MAC}.tlv": os.urandom(9000)}
    server = HttpServer(CallableProvider(lambda name, client: files.get(name)))
    _, port = await nursery.start(server.serve, "127.0.0.1", 0)
    assert await http_get("127.0.0.1", port, f"CTLSEP{MAC}.tlv") == files[f"CTLSEP{MAC}.tlv"]
    with pytest.raises(HttpStatusError) as info:
        await http_get("127.0.0.1", port, "ITLFile.tlv")
    assert info.value.status == 404
