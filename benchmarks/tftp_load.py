"""TFTP load: whole-file downloads/s, our server against tftpd-hpa (``in.tftpd``), same run.

For each file size (8 KiB, 64 KiB), blksize (512, 1428) and client count (1, 16, 64), a load
generator process keeps that many downloads in flight for a fixed time and counts complete,
byte-checked downloads; the two servers take turns (A/B/A/B) and each cell reports the
median, because a shared machine is noisy. Both servers run as separate processes on
loopback and are driven by the same generator, so the figures compare like with like.
Bounded in time and count; loopback only.
Run: ``.venv/bin/python benchmarks/tftp_load.py [--seconds 1 --rounds 3]``.

The generator is a plain ``selectors`` loop over non-blocking sockets in its own process
(lean enough that the servers, not the generator, set the pace).
"""

from __future__ import annotations

import argparse
import functools
import os
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SIZES = {"8KiB": 8 * 1024, "64KiB": 64 * 1024}
BLKSIZES = (512, 1428)
CLIENTS = (1, 16, 64)
MAX_DOWNLOADS = 200_000  # per cell: a hard bound on top of the time bound


class _Download:
    __slots__ = ("acked", "blksize", "deadline", "last", "peer", "received", "sock", "tries")

    def __init__(self, server: tuple[str, int], name: str, blksize: int, now: float):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        self.blksize = blksize
        self.peer: tuple[str, int] | None = None
        self.received = 0
        self.acked = 0
        self.tries = 0
        options = b"" if blksize == 512 else b"blksize\0%d\0" % blksize
        self.last = b"\0\1" + name.encode() + b"\0octet\0" + options
        self.sock.sendto(self.last, server)
        self.deadline = now + 1.0


def run_load(
    server: tuple[str, int], name: str, size: int, blksize: int, clients: int, seconds: float
) -> tuple[float, int, int]:
    """Keep ``clients`` downloads in flight for ``seconds``; (downloads/s, done, failed)."""
    sel = selectors.DefaultSelector()
    done = failed = 0
    start = time.monotonic()
    stop_at = start + seconds
    active: set[_Download] = set()

    def launch(now: float) -> None:
        d = _Download(server, name, blksize, now)
        sel.register(d.sock, selectors.EVENT_READ, d)
        active.add(d)

    def finish(d: _Download) -> None:
        sel.unregister(d.sock)
        d.sock.close()
        active.discard(d)

    now = time.monotonic()
    for _ in range(clients):
        launch(now)
    while active:
        events = sel.select(timeout=0.05)
        now = time.monotonic()
        for key, _ in events:
            d: _Download = key.data
            while True:
                try:
                    data, addr = d.sock.recvfrom(65536)
                except BlockingIOError:
                    break
                if d.peer is None:
                    d.peer = addr
                elif addr != d.peer:
                    continue
                opcode, block = struct.unpack_from("!HH", data)
                if opcode == 6:  # OACK
                    d.last = b"\0\4\0\0"
                    d.sock.sendto(d.last, addr)
                    d.deadline = now + 1.0
                    continue
                if opcode != 3:
                    finish(d)
                    failed += 1
                    break
                if block != (d.acked + 1) & 0xFFFF:
                    d.sock.sendto(d.last, addr)
                    continue
                d.acked += 1
                d.received += len(data) - 4
                d.last = b"\0\4" + data[2:4]
                d.sock.sendto(d.last, addr)
                d.deadline = now + 1.0
                d.tries = 0
                if len(data) - 4 < d.blksize:
                    finish(d)
                    if d.received == size:
                        done += 1
                    else:
                        failed += 1
                    if now < stop_at and done + failed < MAX_DOWNLOADS:
                        launch(now)
                    break
        for d in [d for d in active if d.deadline <= now]:
            d.tries += 1
            if d.tries > 5 or now > stop_at + 10:
                finish(d)
                failed += 1
                if now < stop_at:
                    launch(now)
            else:
                d.sock.sendto(d.last, d.peer or server)
                d.deadline = now + 1.0
    elapsed = time.monotonic() - start
    return done / elapsed, done, failed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, done, _ = run_load(("127.0.0.1", port), name, SIZES["8KiB"], 512, 1, 0.0)
        if done:
            return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer")


def start_ours(root: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    tvs = Path(sys.executable).with_name("tvs")
    return subprocess.Popen(
        [
            str(tvs),
            "tftp",
            "serve",
            "--root",
            str(root),
            "--listen",
            f"127.0.0.1:{port}",
            "--max-transfers",
            "4096",
            "--workers",
            str(workers),
            # in.tftpd logs no line per transfer unless -v: compare like with like
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )


def start_hpa(root: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("in.tftpd") or "/usr/sbin/in.tftpd"
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return subprocess.Popen(
        [binary, "-L", "-a", f"127.0.0.1:{port}", "-s", str(root), *user],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per run (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--clients", type=int, nargs="*", default=list(CLIENTS))
    parser.add_argument("--no-hpa", action="store_true", help="skip in.tftpd")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    has_hpa = not args.no_hpa and (
        shutil.which("in.tftpd") is not None or Path("/usr/sbin/in.tftpd").exists()
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        for label, size in SIZES.items():
            (root / label).write_bytes(os.urandom(size))
            (root / label).chmod(0o644)
        servers: dict[str, Callable[[Path, int], subprocess.Popen[bytes]]] = {
            "ours": start_ours,
            "ours x2": functools.partial(start_ours, workers=2),
        }
        if has_hpa:
            servers["in.tftpd"] = start_hpa
        procs, ports = {}, {}
        try:
            for key, starter in servers.items():
                ports[key] = _free_port()
                procs[key] = starter(root, ports[key])
                _wait_ready(ports[key], "8KiB")
            table = Table(
                title=f"TFTP whole-file downloads/s, median of {args.rounds} interleaved "
                f"rounds of {args.seconds:g} s"
            )
            for col in ("file", "blksize", "clients", *servers, "ours/in.tftpd", "x2/in.tftpd"):
                table.add_column(col, justify="right")
            for label, size in SIZES.items():
                for blksize in BLKSIZES:
                    for clients in args.clients:
                        rates: dict[str, list[float]] = {key: [] for key in servers}
                        failures = dict.fromkeys(servers, 0)
                        for _ in range(args.rounds):  # A/B/A/B: the machine is noisy
                            for key in servers:
                                rate, _, failed = run_load(
                                    ("127.0.0.1", ports[key]),
                                    label,
                                    size,
                                    blksize,
                                    clients,
                                    args.seconds,
                                )
                                rates[key].append(rate)
                                failures[key] += failed
                        medians = {key: statistics.median(r) for key, r in rates.items()}
                        cells = {
                            key: f"{medians[key]:,.0f}"
                            + (f" ({failures[key]} failed)" if failures[key] else "")
                            for key in servers
                        }
                        hpa = medians.get("in.tftpd")
                        ratios = [
                            f"{medians[key] / hpa:.2f}" if hpa else "-"
                            for key in ("ours", "ours x2")
                        ]
                        row = [cells[key] for key in servers]
                        table.add_row(label, str(blksize), str(clients), *row, *ratios)
                        print(
                            f"{label} blksize {blksize} clients {clients}: {rates}",
                            file=sys.stderr,
                            flush=True,
                        )
            Console().print(table)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
