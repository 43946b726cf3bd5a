"""The HTTP 6970 file service on loopback: curl byte for byte, CUCM's headers, 404/405, path
rules, keep-alive, size limits, slow and silent clients, the connection limit."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import h11
import pytest
import trio
from structlog.testing import capture_logs

from tvs.admission import AdmissionLimits
from tvs.http import HttpLimits, HttpServer, route
from tvs.http.policy import Lookup, Reply, error_reply, file_reply, reason_phrase, response_head
from tvs.tftp import CallableProvider, DirectoryProvider, TftpServer, tftp_get
from tvs.tftp.providers import FileVersion

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")

MAC = "00AABBCCDDEE"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(b"TOP-SECRET")
    served = tmp_path / "root"
    (served / "sub").mkdir(parents=True)
    (served / f"CTLSEP{MAC}.tlv").write_bytes(os.urandom(5000))
    (served / "big.bin").write_bytes(os.urandom(300_000))
    (served / "empty").write_bytes(b"")
    (served / "sub" / f"SEP{MAC}.cnf.xml").write_bytes(b"<device/>\n")
    (served / "link_out").symlink_to(tmp_path / "secret.txt")
    return served


@asynccontextmanager
async def running(provider, admission=None, **limits) -> AsyncIterator[tuple[HttpServer, int]]:
    server = HttpServer(provider, limits=HttpLimits(**limits), admission=admission)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, port
        nursery.cancel_scope.cancel()


async def curl(*args: str) -> trio.CompletedProcess[bytes]:
    assert CURL is not None
    return await trio.run_process(
        [CURL, "-sS", "--noproxy", "*", "--max-time", "20", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def head_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


async def raw_exchange(port: int, data: bytes, *, wait: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes (or ``wait`` passes)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        await stream.send_all(data)
        with trio.move_on_after(wait):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


# --- the pure decisions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        (b"POST", b"/x", 405),
        (b"PUT", b"/x", 405),
        (b"GET", b"x", 400),
        (b"GET", b"http://evil/x", 400),
        (b"GET", b"/", 404),
        (b"GET", b"/../secret", 404),
        (b"GET", b"/a/../../secret", 404),
        (b"GET", b"/%2e%2e/secret", 404),
        (b"GET", b"//etc/passwd", 404),
        (b"GET", b"/%2Fetc/passwd", 404),
        (b"GET", b"/a%00b", 404),
        (b"GET", b"/a%0Ab", 404),
        (b"GET", b"/%ff", 404),
        (b"GET", b"/" + b"a" * 2000, 414),
    ],
)
def test_route_refuses(method: bytes, target: bytes, status: int) -> None:
    reply = route(method, target, has_body=False, limits=HttpLimits())
    assert isinstance(reply, Reply) and reply.status == status


def test_route_maps_targets_to_names() -> None:
    limits = HttpLimits()
    assert route(b"GET", b"/CTLFile.tlv", has_body=False, limits=limits) == Lookup(
        "CTLFile.tlv", False
    )
    assert route(b"HEAD", b"/sub/a%20b?x=1", has_body=False, limits=limits) == Lookup(
        "sub/a b", True
    )
    reply = route(b"GET", b"/x", has_body=True, limits=limits)
    assert isinstance(reply, Reply) and reply.status == 413 and reply.close


def test_405_says_what_is_allowed() -> None:
    reply = route(b"DELETE", b"/x", has_body=False, limits=HttpLimits())
    assert isinstance(reply, Reply) and (b"Allow", b"GET, HEAD") in reply.headers


def _h11_head(request: bytes, reply: Reply) -> bytes:
    """What h11 writes for ``reply`` after ``request`` (the server before its own writer)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    assert isinstance(conn.next_event(), h11.Request)
    status, reason = reply.status, reason_phrase(reply.status)
    response = h11.Response(status_code=status, headers=list(reply.headers), reason=reason)
    return conn.send(response) or b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
        b"GET /x HTTP/1.0\r\n\r\n",
        b"HEAD /x HTTP/1.1\r\nHost: a\r\nconnection: close\r\n\r\n",
    ],
)
@pytest.mark.parametrize(
    "reply",
    [
        file_reply(FileVersion(b"x" * 1234), head=False),
        file_reply(FileVersion(b"x" * 1234), head=True),
        error_reply(404, "not-found"),
        error_reply(405, "method", close=True),
        error_reply(599, "odd"),
    ],
)
def test_response_head_is_what_h11_writes(request_bytes: bytes, reply: Reply) -> None:
    close = reply.close or b"1.0" in request_bytes or b"lose" in request_bytes
    assert response_head(reply.status, reply.headers, close=close) == _h11_head(
        request_bytes, reply
    )


# --- against curl ------------------------------------------------------------------------------


@needs_curl
@pytest.mark.interop
@pytest.mark.parametrize("name", [f"CTLSEP{MAC}.tlv", "big.bin", "empty", f"sub/SEP{MAC}.cnf.xml"])
async def test_curl_gets_the_file_byte_for_byte_with_cucm_headers(root: Path, name: str) -> None:
    async with running(DirectoryProvider(root)) as (server, port):
        done = await curl(
            "-D", "-", "-o", str(root.parent / "out"), f"http://127.0.0.1:{port}/{name}"
        )
    assert done.returncode == 0, done.stderr
    assert (root.parent / "out").read_bytes() == (root / name).read_bytes()
    lines = head_lines(done.stdout)
    size = (root / name).stat().st_size
    assert lines == [
        b"HTTP/1.1 200 OK",
        b"Content-length: " + str(size).encode(),
        b"Cache-Control: no-store",
        b"Content-type: */*",
    ]
    assert server.statistics().files_sent == 1


@needs_curl
@pytest.mark.interop
async def test_curl_head_missing_and_method_not_allowed(root: Path) -> None:
    url = "http://127.0.0.1:{}/{}"
    async with running(DirectoryProvider(root)) as (server, port):
        head = await curl("-I", url.format(port, f"CTLSEP{MAC}.tlv"))
        missing = await curl("-D", "-", "-o", "/dev/null", url.format(port, "nothing.tlv"))
        post = await curl("-D", "-", "-o", "/dev/null", "-d", "x=1", url.format(port, "empty"))
        delete = await curl("-D", "-", "-o", "/dev/null", "-X", "DELETE", url.format(port, "x"))
        stats = server.statistics()
    assert head_lines(head.stdout)[:2] == [b"HTTP/1.1 200 OK", b"Content-length: 5000"]
    assert head_lines(missing.stdout)[0] == b"HTTP/1.1 404 Not Found"
    assert head_lines(post.stdout)[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert b"Allow: GET, HEAD" in head_lines(post.stdout)
    assert head_lines(delete.stdout)[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert stats.not_found == 1 and stats.bad_requests == 2


@needs_curl
@pytest.mark.interop
async def test_curl_keeps_the_connection_alive(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (server, port):
        base = f"http://127.0.0.1:{port}"
        done = await curl(
            "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
            f"{base}/CTLSEP{MAC}.tlv", f"{base}/nothing", f"{base}/big.bin",
        )  # fmt: skip
        stats = server.statistics()
    assert done.returncode == 0, done.stderr
    assert stats.requests == 3 and stats.connections == 1


@needs_curl
@pytest.mark.interop
async def test_curl_path_traversal_is_refused(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (server, port):
        for target in ("/../secret.txt", "/link_out", "/%2e%2e/secret.txt", "//etc/passwd"):
            done = await curl(
                "--path-as-is", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{port}{target}"
            )
            assert head_lines(done.stdout)[0] == b"HTTP/1.1 404 Not Found", target
    assert server.statistics().files_sent == 0


# --- raw clients -----------------------------------------------------------------------------


async def test_the_phones_own_request_bytes(root: Path) -> None:
    request = f"GET /CTLSEP{MAC}.tlv HTTP/1.1\r\nHost:127.0.0.1:6970\r\n\r\n".encode()
    async with running(DirectoryProvider(root), idle_timeout=0.5) as (_, port):
        answer = await raw_exchange(port, request)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-length: 5000\r\n")
    assert body == (root / f"CTLSEP{MAC}.tlv").read_bytes()


async def test_pipelined_requests_are_answered_in_order(root: Path) -> None:
    one = f"GET /CTLSEP{MAC}.tlv HTTP/1.1\r\nHost:x\r\n\r\n".encode()
    two = b"GET /missing HTTP/1.1\r\nHost:x\r\n\r\n"
    three = b"HEAD /empty HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
    async with running(DirectoryProvider(root)) as (server, port):
        answer = await raw_exchange(port, one + two + three)
    assert answer.count(b"HTTP/1.1 ") == 3
    assert answer.index(b"200 OK") < answer.index(b"404 Not Found")
    assert server.statistics().requests == 3


async def test_oversized_request_head_is_refused(root: Path) -> None:
    huge = b"GET /empty HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    with capture_logs() as logs:
        async with running(DirectoryProvider(root), max_request_bytes=4096) as (server, port):
            answer = await raw_exchange(port, huge)
    assert answer.startswith(b"HTTP/1.1 431 ") or answer.startswith(b"HTTP/1.1 400 ")
    assert server.statistics().files_sent == 0
    assert any(e["event"] == "http.request" and e["status"] >= 400 for e in logs)


async def test_garbage_gets_400_and_the_server_lives(root: Path) -> None:
    async with running(DirectoryProvider(root)) as (_, port):
        answer = await raw_exchange(port, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        again = await raw_exchange(
            port, b"GET /empty HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert again.startswith(b"HTTP/1.1 200 OK")


async def test_slowloris_is_closed_at_the_request_deadline(root: Path) -> None:
    async with running(DirectoryProvider(root), request_timeout=0.5) as (server, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        closed = False
        async with stream:
            with trio.fail_after(10):
                try:
                    for piece in (
                        b"GET /empty HTTP/1.1\r\n",
                        b"Host: x\r\n",
                        *[b"X-A: b\r\n"] * 50,
                    ):
                        await stream.send_all(piece)
                        await trio.sleep(0.1)
                    closed = await stream.receive_some(1) == b""
                except trio.BrokenResourceError:
                    closed = True
        stats = server.statistics()
    assert closed
    assert stats.timeouts == 1 and stats.requests == 0


async def test_silent_connection_is_closed_at_the_first_bytes_deadline(root: Path) -> None:
    quick = AdmissionLimits(first_bytes_timeout=0.3)
    with capture_logs() as logs:
        async with running(DirectoryProvider(root), admission=quick) as (server, port):
            answer = await raw_exchange(port, b"")
            stats = server.statistics()
    assert answer == b"" and stats.timeouts == 1
    assert any(e["event"] == "http.timeout" and e["reason"] == "first-bytes" for e in logs)


async def test_quiet_kept_alive_connection_is_closed_at_the_idle_deadline(root: Path) -> None:
    request = b"GET /empty HTTP/1.1\r\nHost:x\r\n\r\n"
    async with running(DirectoryProvider(root), idle_timeout=0.3) as (server, port):
        answer = await raw_exchange(port, request)  # reads until the server closes
        stats = server.statistics()
    assert answer.startswith(b"HTTP/1.1 200 OK") and stats.timeouts == 0


async def _kept_alive(port: int) -> trio.SocketStream:
    """A connection that has had one answer and stays open (established: never shed)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /empty HTTP/1.1\r\nHost:x\r\n\r\n")
    with trio.fail_after(10):
        got = b""
        while b"\r\n\r\n" not in got:
            got += await stream.receive_some(4096)
    return stream


async def test_connection_limit_answers_503(root: Path) -> None:
    async with running(DirectoryProvider(root), max_connections=2) as (server, port):
        held = [await _kept_alive(port) for _ in range(2)]
        answer = await raw_exchange(port, b"GET /empty HTTP/1.1\r\nHost:x\r\n\r\n")
        for s in held:
            await s.aclose()
        stats = server.statistics()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert stats.busy_rejected == 1


async def test_silent_connections_are_shed_for_a_good_client(root: Path) -> None:
    """A full server sheds its oldest idle connection, so a real request still gets through."""
    async with running(DirectoryProvider(root), max_connections=3) as (server, port):
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
        with trio.fail_after(10):
            while server.statistics().active_connections < 3:
                await trio.sleep(0.01)
        answer = await raw_exchange(
            port, b"GET /empty HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
        for s in idle:
            await s.aclose()
    assert answer.startswith(b"HTTP/1.1 200 OK")


async def test_per_address_limit_and_trusted_networks(root: Path) -> None:
    strict = AdmissionLimits(max_handshakes_per_address=1)
    async with running(DirectoryProvider(root), admission=strict) as (server, port):
        first = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):
            while server.statistics().active_connections < 1:
                await trio.sleep(0.01)
        second = await raw_exchange(port, b"GET /empty HTTP/1.1\r\nHost:x\r\n\r\n")
        await first.aclose()
    assert second.startswith(b"HTTP/1.1 503 ")
    trusted = AdmissionLimits(max_handshakes_per_address=1, trusted_networks=("127.0.0.0/8",))
    async with running(DirectoryProvider(root), admission=trusted) as (server, port):
        first = await trio.open_tcp_stream("127.0.0.1", port)
        second = await raw_exchange(
            port, b"GET /empty HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
        await first.aclose()
    assert second.startswith(b"HTTP/1.1 200 OK")


async def test_provider_crash_is_500_and_the_server_lives() -> None:
    def broken(name: str, client: tuple[str, int]) -> bytes | None:
        if name == "boom":
            raise RuntimeError("provider bug")
        return b"fine"

    async with running(CallableProvider(broken)) as (_, port):
        crash = await raw_exchange(
            port, b"GET /boom HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
        fine = await raw_exchange(port, b"GET /ok HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n")
    assert crash.startswith(b"HTTP/1.1 500 ")
    assert fine.endswith(b"\r\n\r\nfine")


async def test_http_and_tftp_serve_the_same_provider(root: Path) -> None:
    provider = DirectoryProvider(root)
    tftp = TftpServer(provider)
    async with trio.open_nursery() as nursery, running(provider) as (_, port):
        thost, tport = await nursery.start(tftp.serve, "127.0.0.1", 0)
        via_tftp = await tftp_get(thost, tport, "big.bin", blksize=1428)
        via_http = await raw_exchange(
            port, b"GET /big.bin HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
        nursery.cancel_scope.cancel()
    assert via_http.split(b"\r\n\r\n", 1)[1] == via_tftp == (root / "big.bin").read_bytes()
    assert provider.reads == 1  # one buffer served both


async def test_client_address_reaches_the_provider() -> None:
    seen: list[tuple[str, int]] = []

    def files(name: str, client: tuple[str, int]) -> bytes:
        seen.append(client)
        return name.encode()

    async with running(CallableProvider(files)) as (_, port):
        await raw_exchange(port, b"GET /n HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n")
    assert seen and seen[0][0] == "127.0.0.1"
    assert isinstance(socket.inet_aton(seen[0][0]), bytes)


# --- the command -----------------------------------------------------------------------------


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_serve_logs_one_line_per_request_and_stops_on_sigterm(root: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    port = _free_tcp_port()
    tvs = Path(sys.executable).with_name("tvs")
    proc = subprocess.Popen(
        [str(tvs), "http", "serve", "--root", str(root), "--listen", f"127.0.0.1:{port}",
         "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    request = f"GET /CTLSEP{MAC}.tlv HTTP/1.1\r\nHost:127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = await raw_exchange(port, request.encode())
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await trio.sleep(0.05)
        missing = await raw_exchange(
            port, b"GET /none HTTP/1.1\r\nHost:x\r\nConnection: close\r\n\r\n"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert answer.split(b"\r\n\r\n", 1)[1] == (root / f"CTLSEP{MAC}.tlv").read_bytes()
    assert missing.startswith(b"HTTP/1.1 404 ")
    lines = [line for line in output.splitlines() if b'"http.request"' in line]
    assert len(lines) == 2 and b'"status": 200' in lines[0] and b'"status": 404' in lines[1]


def test_cli_serve_bad_root_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tvs.cli import main as tvs_main

    assert tvs_main(["http", "serve", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--root" in err and "Traceback" not in err


async def test_a_client_that_stops_reading_is_closed_at_the_send_deadline(tmp_path: Path) -> None:
    (tmp_path / "huge.bin").write_bytes(bytes(32 * 1024 * 1024))
    with capture_logs() as logs:
        async with running(DirectoryProvider(tmp_path), send_timeout=0.5) as (server, port):
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", port))
            await sock.send(b"GET /huge.bin HTTP/1.1\r\nHost:x\r\n\r\n")
            with trio.fail_after(30):  # never read: the server must give up by itself
                while server.statistics().timeouts == 0:
                    await trio.sleep(0.05)
            sock.close()
    assert any(e["event"] == "http.timeout" and e["reason"] == "slow-reader" for e in logs)


async def test_cli_get_fetches_like_a_phone(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tvs.cli import main as tvs_main

    async with running(DirectoryProvider(root)) as (_, port):
        out = tmp_path / "got.tlv"
        args = ["http", "get", f"127.0.0.1:{port}", f"CTLSEP{MAC}.tlv", "--out", str(out)]
        code = await trio.to_thread.run_sync(tvs_main, [*args, "--json"])
        assert code == 0 and out.read_bytes() == (root / f"CTLSEP{MAC}.tlv").read_bytes()
        printed = capsys.readouterr().out  # server log lines share stdout here, in any order
        start = printed.index('{\n  "server"')
        assert json.loads(printed[start : printed.index("\n}", start) + 2])["size"] == 5000
        missing = ["http", "get", f"127.0.0.1:{port}", "nothing", "--out", str(out)]
        assert await trio.to_thread.run_sync(tvs_main, missing) == 1
        assert "404" in capsys.readouterr().err
        small = [*args, "--max-size", "100"]
        assert await trio.to_thread.run_sync(tvs_main, small) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the limit" in err and "Traceback" not in err
