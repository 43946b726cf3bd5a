"""HTTP 6970 load: whole-file downloads/s of our HTTP service beside nginx, and beside our TFTP
server (blksize 1428), all in the same run.

For each file (8 KiB, 64 KiB) and client count (16, 64) a load generator keeps that many
downloads in flight for a fixed time and counts complete, length-checked downloads. HTTP is
measured two ways: ``keep-alive`` (each client reuses its connection, as a browser would) and
``per-file`` (a new connection per download, as a phone does: one GET per file). The servers
take turns (A/B/C/A/B/C) and each cell reports the median, because a shared machine is noisy.
Every server is a separate process of one worker on loopback: ``tvs http serve`` (request log
off, like nginx's ``access_log off``), ``nginx`` (Debian's nginx-light, one worker process,
``sendfile on``, started with a temporary configuration), ``tvs tftp serve`` driven by
``tftp_load.py``'s generator. Bounded in time and count; loopback only.
Run: ``.venv/bin/python benchmarks/http_load.py [--seconds 1 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tftp_load  # the TFTP generator and server starter, same directory

SIZES = {"8KiB": 8 * 1024, "64KiB": 64 * 1024}
CLIENTS = (16, 64)
MODES = ("keep-alive", "per-file")
MAX_DOWNLOADS = 500_000  # per cell: a hard bound on top of the time bound


class _Client:
    __slots__ = ("body", "buf", "deadline", "expect", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""
        self.expect: int | None = None  # body length once the head is read
        self.body = 0
        self.deadline = 0.0


def run_http_load(
    port: int, name: str, size: int, clients: int, seconds: float, *, keep_alive: bool
) -> tuple[float, int, int]:
    """Keep ``clients`` GETs of ``name`` in flight for ``seconds``; (downloads/s, done, failed)."""
    request = f"GET /{name} HTTP/1.1\r\nHost:127.0.0.1:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    done = failed = 0
    start = time.monotonic()
    stop_at = start + seconds
    active: set[_Client] = set()

    def connect(c: _Client, now: float) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(("127.0.0.1", port))  # loopback: immediate
        s.setblocking(False)
        c.sock = s
        sel.register(s, selectors.EVENT_READ, c)

    def close(c: _Client) -> None:
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()
            c.sock = None

    def ask(c: _Client, now: float) -> None:
        if c.sock is None:
            connect(c, now)
        assert c.sock is not None
        c.buf, c.expect, c.body = b"", None, 0
        c.deadline = now + 5.0
        c.sock.send(request)

    def next_or_stop(c: _Client, now: float) -> None:
        if not keep_alive:
            close(c)
        if now < stop_at and done + failed < MAX_DOWNLOADS:
            try:
                ask(c, now)
            except OSError:
                close(c)
                active.discard(c)
        else:
            close(c)
            active.discard(c)

    now = time.monotonic()
    for _ in range(clients):
        c = _Client()
        active.add(c)
        ask(c, now)
    while active:
        events = sel.select(timeout=0.05)
        now = time.monotonic()
        for key, _ in events:
            c: _Client = key.data
            try:
                data = c.sock.recv(262144) if c.sock is not None else b""
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed under us: count it and start over
                close(c)
                failed += 1
                next_or_stop(c, now)
                continue
            if c.expect is None:
                c.buf += data
                end = c.buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = c.buf[:end].lower()
                at = head.find(b"content-length:")
                if not head.startswith(b"http/1.1 200") or at < 0:
                    close(c)
                    failed += 1
                    next_or_stop(c, now)
                    continue
                c.expect = int(head[at + 15 :].split(b"\r\n", 1)[0])
                c.body = len(c.buf) - end - 4
                c.buf = b""
            else:
                c.body += len(data)
            if c.body >= c.expect:
                if c.body == c.expect == size:
                    done += 1
                else:
                    failed += 1
                    close(c)
                next_or_stop(c, now)
        for c in [c for c in active if c.deadline <= now]:
            close(c)
            failed += 1
            next_or_stop(c, now)
    elapsed = time.monotonic() - start
    return done / elapsed, done, failed


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _, done, _ = run_http_load(port, "8KiB", SIZES["8KiB"], 1, 0.0, keep_alive=False)
            if done:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"HTTP server on port {port} did not answer")


def start_ours(root: Path, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    tvs = Path(sys.executable).with_name("tvs")
    return subprocess.Popen(
        [str(tvs), "http", "serve", "--root", str(root), "--listen", f"127.0.0.1:{port}",
         "--max-connections", "4096", "--no-request-log", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


NGINX_CONF = """
worker_processes 1;
master_process off;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-body;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {root};
        location / {{ }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def start_nginx(root: Path, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    binary = nginx_binary()
    assert binary is not None
    user = "user root;" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, root=root, port=port, user=user))
    return subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per run (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--clients", type=int, nargs="*", default=list(CLIENTS))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    has_nginx = nginx_binary() is not None
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)
        root = tmp / "root"
        root.mkdir(mode=0o755)
        for label, size in SIZES.items():
            (root / label).write_bytes(os.urandom(size))
            (root / label).chmod(0o644)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports: dict[str, int] = {}
        try:
            ports["ours"] = _free_port()
            procs["ours"] = start_ours(root, ports["ours"], tmp)
            _wait_http(ports["ours"])
            if has_nginx:
                ports["nginx"] = _free_port()
                procs["nginx"] = start_nginx(root, ports["nginx"], tmp)
                _wait_http(ports["nginx"])
            ports["tftp"] = tftp_load._free_port()
            procs["tftp"] = tftp_load.start_ours(root, ports["tftp"])
            tftp_load._wait_ready(ports["tftp"], "8KiB")
            http_servers = [k for k in ("ours", "nginx") if k in ports]
            table = Table(
                title=f"Whole-file downloads/s, median of {args.rounds} interleaved rounds of "
                f"{args.seconds:g} s (one process each; TFTP blksize 1428), and server CPU ms "
                "per download"
            )
            for col in ("file", "clients", "HTTP mode", "ours HTTP", "nginx", "ours TFTP",
                        "ours/nginx", "HTTP/TFTP", "CPU ms/dl ours", "nginx", "TFTP"):  # fmt: skip
                table.add_column(col, justify="right")
            for label, size in SIZES.items():
                for clients in args.clients:
                    tftp_rates: list[float] = []
                    tftp_failed = 0
                    cells: dict[str, dict[str, list[float]]] = {
                        m: {k: [] for k in http_servers} for m in args.modes
                    }
                    failed: dict[tuple[str, str], int] = {}
                    cpu: dict[tuple[str, str], list[float]] = {}  # server CPU ms per download
                    for _ in range(args.rounds):  # interleaved: the machine is noisy
                        for mode in args.modes:
                            for key in http_servers:
                                before = _cpu(procs[key].pid)
                                rate, done, bad = run_http_load(
                                    ports[key], label, size, clients, args.seconds,
                                    keep_alive=mode == "keep-alive",
                                )  # fmt: skip
                                used = _cpu(procs[key].pid) - before
                                cpu.setdefault((mode, key), []).append(1e3 * used / max(done, 1))
                                cells[mode][key].append(rate)
                                failed[(mode, key)] = failed.get((mode, key), 0) + bad
                        before = _cpu(procs["tftp"].pid)
                        rate, done, bad = tftp_load.run_load(
                            ("127.0.0.1", ports["tftp"]), label, size, 1428, clients, args.seconds
                        )
                        used = _cpu(procs["tftp"].pid) - before
                        cpu.setdefault(("", "tftp"), []).append(1e3 * used / max(done, 1))
                        tftp_rates.append(rate)
                        tftp_failed += bad
                    tftp = statistics.median(tftp_rates)
                    for mode in args.modes:
                        med = {k: statistics.median(v) for k, v in cells[mode].items()}
                        ours, nginx = med["ours"], med.get("nginx")

                        def show(
                            key: str, mode: str = mode, med: dict = med, failed: dict = failed
                        ) -> str:
                            bad = failed.get((mode, key), 0)
                            return f"{med[key]:,.0f}" + (f" ({bad} failed)" if bad else "")

                        table.add_row(
                            label,
                            str(clients),
                            mode,
                            show("ours"),
                            show("nginx") if nginx is not None else "-",
                            f"{tftp:,.0f}" + (f" ({tftp_failed} failed)" if tftp_failed else ""),
                            f"{ours / nginx:.2f}" if nginx else "-",
                            f"{ours / tftp:.2f}" if tftp else "-",
                            *(
                                f"{statistics.median(cpu[k]):.3f}" if k in cpu else "-"
                                for k in ((mode, "ours"), (mode, "nginx"), ("", "tftp"))
                            ),
                        )
                        print(
                            f"{label} clients {clients} {mode}: {cells[mode]} tftp {tftp_rates}",
                            file=sys.stderr,
                            flush=True,
                        )
            Console(width=160).print(table)
            if not has_nginx:
                print(
                    "nginx not found (apt-get install nginx-light): no peer column", file=sys.stderr
                )
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
