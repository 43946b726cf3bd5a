"""Proof against independent TFTP implementations (Debian packages installed by ``.ci/run``).

Our server serves byte-identical files to tftp-hpa's ``tftp``, ``atftp`` (with and without
``--option blksize``, and with RFC 7440 ``windowsize``) and ``curl tftp://``; our client
fetches byte-identical files from ``in.tftpd`` (tftpd-hpa) run in the foreground on loopback.
Sizes: 0 bytes, exactly one block, a multiple of the block size, 1 MiB, and one needing
block-number rollover (blksize 8, so 65537 blocks: through atftp with a window of 16, and
lockstep from in.tftpd). Tests skip only when the peer's binary is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tvs.tftp import DirectoryProvider, TftpServer, tftp_get

pytestmark = pytest.mark.interop

ROLLOVER = 8 * 65536 + 5  # blksize 8: blocks 1..65537, block 65536 travels as 0
FILES = {
    "empty.bin": 0,
    "one512.bin": 512,
    "three512.bin": 3 * 512,
    "one1428.bin": 1428,
    "two1428.bin": 2 * 1428,
    "mib.bin": 1024 * 1024,
    "rollover.bin": ROLLOVER,
}
SLOW = pytest.mark.slow


def _need(binary: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None
    )
    if path is None:
        pytest.skip(f"{binary} is not installed (CI installs it in .ci/run)")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world-readable directory holding FILES, random content (tftpd-hpa needs o+r)."""
    root = tmp_path_factory.mktemp("tftp-interop")
    root.chmod(0o755)
    for name, size in FILES.items():
        (root / name).write_bytes(os.urandom(size))
        (root / name).chmod(0o644)
    return root


@asynccontextmanager
async def our_server(root: Path) -> AsyncIterator[tuple[TftpServer, int]]:
    server = TftpServer(DirectoryProvider(root))
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, port
        nursery.cancel_scope.cancel()


async def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(timeout):
        return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


def _cases(*names: str, slow: tuple[str, ...] = ()) -> list:
    return [pytest.param(n, id=n) for n in names] + [
        pytest.param(n, id=n, marks=SLOW) for n in slow
    ]


# -- our server, their clients -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", _cases("empty.bin", "one512.bin", "three512.bin", slow=("mib.bin",))
)
async def test_tftp_hpa_client(served: Path, tmp_path: Path, name: str) -> None:
    tftp = _need("tftp")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        result = await _run(
            [tftp, "127.0.0.1", str(port), "-m", "binary", "-c", "get", name, str(out)]
        )
    assert out.read_bytes() == (served / name).read_bytes(), result


@pytest.mark.parametrize(
    "name", _cases("empty.bin", "one512.bin", "three512.bin", slow=("mib.bin",))
)
async def test_atftp_client(served: Path, tmp_path: Path, name: str) -> None:
    atftp = _need("atftp")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        result = await _run([atftp, "--get", "-r", name, "-l", str(out), "127.0.0.1", str(port)])
    assert result.returncode == 0, result
    assert out.read_bytes() == (served / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "blksize"),
    [
        pytest.param("empty.bin", 1428, id="empty.bin"),
        pytest.param("one1428.bin", 1428, id="one1428.bin"),
        pytest.param("two1428.bin", 1428, id="two1428.bin"),
        pytest.param("mib.bin", 1428, id="mib.bin", marks=SLOW),
    ],
)
async def test_atftp_client_with_blksize(
    served: Path, tmp_path: Path, name: str, blksize: int
) -> None:
    atftp = _need("atftp")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        result = await _run(
            [
                atftp,
                "--get",
                "-r",
                name,
                "-l",
                str(out),
                "--option",
                f"blksize {blksize}",
                "127.0.0.1",
                str(port),
            ]
        )
    assert result.returncode == 0, result
    assert out.read_bytes() == (served / name).read_bytes()
    assert f"blksize = {blksize}".encode() in result.stdout + result.stderr


@SLOW
async def test_atftp_client_with_windowsize_and_rollover(served: Path, tmp_path: Path) -> None:
    atftp = _need("atftp")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        result = await _run(
            [
                atftp,
                "--get",
                "-r",
                "rollover.bin",
                "-l",
                str(out),
                "--option",
                "blksize 8",
                "--option",
                "windowsize 16",
                "127.0.0.1",
                str(port),
            ]
        )
    assert result.returncode == 0, result
    assert out.read_bytes() == (served / "rollover.bin").read_bytes()


CURL_EMPTY = pytest.mark.xfail(
    reason="curl 7.88 cannot fetch a 0-byte TFTP file from any server: it fails with "
    "'getpeername() failed with errno 107' against tftpd-hpa too",
    strict=False,
)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("empty.bin", id="empty.bin", marks=CURL_EMPTY),
        pytest.param("one512.bin", id="one512.bin"),
        pytest.param("three512.bin", id="three512.bin"),
        pytest.param("mib.bin", id="mib.bin", marks=SLOW),
    ],
)
async def test_curl_client(served: Path, tmp_path: Path, name: str) -> None:
    curl = _need("curl")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        limit = ["--max-time", "2"] if name == "empty.bin" else []  # see CURL_EMPTY
        result = await _run(
            [curl, "-sS", *limit, f"tftp://127.0.0.1:{port}/{name}", "-o", str(out)]
        )
    assert result.returncode == 0, result
    assert out.read_bytes() == (served / name).read_bytes()


@pytest.mark.parametrize(
    ("blksize", "name"),
    [("1428", "two1428.bin"), pytest.param("8", "rollover.bin", marks=SLOW)],
)
async def test_curl_client_with_blksize(
    served: Path, tmp_path: Path, blksize: str, name: str
) -> None:
    """curl's --tftp-blksize; at 8 bytes a block the file needs block-number rollover."""
    curl = _need("curl")
    out = tmp_path / "out"
    async with our_server(served) as (_, port):
        url = f"tftp://127.0.0.1:{port}/{name}"
        result = await _run([curl, "-sS", "--tftp-blksize", blksize, url, "-o", str(out)])
    assert result.returncode == 0, result
    assert out.read_bytes() == (served / name).read_bytes()


@SLOW
async def test_tftp_hpa_client_rollover(served: Path, tmp_path: Path) -> None:
    """tftp-hpa's client cannot ask for a block size: rollover at 512 takes 32 MiB."""
    tftp = _need("tftp")
    big = tmp_path / "root"
    big.mkdir()
    big.chmod(0o755)
    content = os.urandom(512 * 65536 + 100)
    (big / "rollover512.bin").write_bytes(content)
    out = tmp_path / "out"
    async with our_server(big) as (_, port):
        result = await _run(
            [tftp, "127.0.0.1", str(port), "-m", "binary", "-c", "get", "rollover512.bin", str(out)]
        )
    assert out.read_bytes() == content, result


async def test_curl_file_not_found(served: Path, tmp_path: Path) -> None:
    curl = _need("curl")
    async with our_server(served) as (_, port):
        result = await _run(
            [curl, "-sS", f"tftp://127.0.0.1:{port}/missing.bin", "-o", str(tmp_path / "out")]
        )
    assert result.returncode == 68  # CURLE_TFTP_NOTFOUND


# -- their server, our client ------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tftpd_hpa(served: Path) -> Iterator[int]:
    """``in.tftpd`` in the foreground on 127.0.0.1, serving ``served``; yields its port."""
    binary = _need("in.tftpd")
    port = _free_udp_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [binary, "-L", "-a", f"127.0.0.1:{port}", "-s", str(served), *user],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if proc.poll() is not None:
                pytest.fail(f"in.tftpd exited with status {proc.returncode}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.settimeout(0.1)
                probe.sendto(b"\x00\x01empty.bin\x00octet\x00", ("127.0.0.1", port))
                try:
                    probe.recvfrom(100)
                    break
                except OSError:
                    continue
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("name", "blksize", "windowsize"),
    [
        pytest.param("empty.bin", None, None, id="empty"),
        pytest.param("one512.bin", None, None, id="one-block"),
        pytest.param("three512.bin", None, None, id="three-blocks"),
        pytest.param("two1428.bin", 1428, None, id="two-blocks-1428"),
        pytest.param("three512.bin", None, 4, id="windowsize-ignored-by-server"),
        pytest.param("mib.bin", 1428, None, id="mib", marks=SLOW),
        pytest.param("rollover.bin", 8, None, id="rollover", marks=SLOW),
    ],
)
async def test_our_client_against_tftpd_hpa(
    served: Path, tftpd_hpa: int, name: str, blksize: int | None, windowsize: int | None
) -> None:
    data = await tftp_get(
        "127.0.0.1", tftpd_hpa, name, blksize=blksize, windowsize=windowsize, tsize=True
    )
    assert data == (served / name).read_bytes()


async def test_our_client_file_not_found_from_tftpd_hpa(tftpd_hpa: int) -> None:
    from tvs.tftp import TftpRemoteError

    with pytest.raises(TftpRemoteError) as info:
        await tftp_get("127.0.0.1", tftpd_hpa, "missing.bin")
    assert info.value.code == 1
