"""TVS load: completed TLS-per-request queries/s and latency, our server against ``openssl
s_server`` full handshakes/s (the ceiling for a TLS-per-request protocol here), same run.

Each request is what a booting phone does: TCP connect, TLS handshake presenting its LSC
(client certificate), one QUERY_CERT_REQ, the full QUERY_CERT_RES, close. The s_server
reference gets the same generator with a one-line echo (``-rev``, client certificate requested
and verified, no session tickets) instead of the TVS message. The generator is lean (blocking
``ssl`` sockets in threads) and runs in several processes (``--procs``, default 2); it is
bounded by ``--seconds`` per cell and by ``--max-requests``. All servers run at once and the
cells are interleaved, best of ``--rounds``, so machine noise hits every target alike; each
server's CPU time per completed request is reported too (robust to a busy machine). Loopback
only.

Run: ``.venv/bin/python benchmarks/tvs_load.py [--seconds 5] [--concurrency 1,16,128]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_REQUESTS = 200_000  # per cell, on top of the time bound
REV_LINE = b"QUERY_CERT_REQ\n"


# --- the generator (runs in child processes) -----------------------------------------------------


def _context(cert: str, key: str, legacy: bool) -> ssl.SSLContext:
    from tvs.tlsconfig import client_context

    ctx = client_context(cert=Path(cert), key=Path(key), legacy=legacy)
    if legacy:
        ctx.set_ciphers("AES256-SHA:@SECLEVEL=0")
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _one(ctx: ssl.SSLContext, port: int, payload: bytes, mode: str) -> None:
    from tvs.wire import Decoder, Frame, QueryCertResponse, Status

    with socket.create_connection((HOST, port), timeout=10) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw) as tls:
            tls.sendall(payload)
            if mode == "tvs":
                dec = Decoder()
                while not isinstance(frame := dec.next_frame(), Frame):
                    dec.receive_data(tls.recv(65536))  # b"": closed (the decoder raises)
                msg = frame.message
                if not isinstance(msg, QueryCertResponse) or msg.status != Status.VALID:
                    raise ValueError(f"unexpected answer {msg!r}")
            else:  # s_server -rev echoes the line reversed
                got = b""
                while not got.endswith(b"\n"):
                    data = tls.recv(65536)
                    if not data:
                        raise ConnectionError("closed before the echo")
                    got += data


def _generator(
    mode: str,
    port: int,
    threads: int,
    seconds: float,
    max_requests: int,
    cert: str,
    key: str,
    payload: bytes,
    legacy: bool,
    out: Any,
) -> None:
    ctx = _context(cert, key, legacy)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    start = time.perf_counter()
    stop_at = start + seconds

    def loop() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                if len(latencies) + sum(errors.values()) >= max_requests:
                    return
            t0 = time.perf_counter()
            try:
                _one(ctx, port, payload, mode)
            except Exception as exc:
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 30)
    out.put((latencies, errors, time.perf_counter() - start))


def measure(
    mode: str, port: int, concurrency: int, procs: int, seconds: float, args: Any, payload: bytes
) -> dict[str, Any]:
    """Keep ``concurrency`` requests in flight (spread over ``procs`` processes)."""
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    nprocs = max(1, min(procs, concurrency))
    shares = [concurrency // nprocs + (1 if i < concurrency % nprocs else 0) for i in range(nprocs)]
    workers = [
        mp.Process(
            target=_generator,
            args=(
                mode,
                port,
                n,
                seconds,
                args.max_requests // nprocs,
                args.lsc,
                args.lsc_key,
                payload,
                args.legacy,
                out,
            ),
        )
        for n in shares
    ]
    for w in workers:
        w.start()
    results = []
    deadline = time.monotonic() + seconds + 120
    while len(results) < len(workers):
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            if time.monotonic() > deadline or not any(w.is_alive() for w in workers):
                raise RuntimeError("a generator process died") from None
    for w in workers:
        w.join(30)
    lat = sorted(x for r in results for x in r[0])
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r[1].items():
            errors[k] = errors.get(k, 0) + v
    wall = max(r[2] for r in results)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0] if lat else 0.0] * 99
    return {
        "done": len(lat),
        "errors": errors,
        "rate": len(lat) / wall if wall else 0.0,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


# --- the servers --------------------------------------------------------------------------------


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in os.listdir(f"/proc/{p}/task"):
                stack += [
                    int(x) for x in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                ]
        except (OSError, ValueError, IndexError):
            continue
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_ours(args: Any, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    code = (
        "import sys; from tvs.server import TvsServerConfig, run_workers; "
        f"cfg = TvsServerConfig(store={str(args.store)!r}, cert={args.tvs_cert!r}, "
        f"key={args.tvs_key!r}, port={port}, legacy_tls={args.legacy!r}, "
        "client_auth='optional', max_connections=4096); "
        f"sys.exit(run_workers(cfg, {workers}, log_level={args.log_level!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_listening(port, proc)
    return proc, port


def start_s_server(args: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", args.tvs_cert,
           "-key", args.tvs_key, "-rev", "-quiet", "-num_tickets", "0",
           "-verify", "1", "-CAfile", args.capf]  # fmt: skip
    if args.legacy:
        cmd += ["-cipher", "AES256-SHA:@SECLEVEL=0", "-tls1_2"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_listening(port, proc)
    return proc, port


# --- main -----------------------------------------------------------------------------------------


def _prepare(args: Any, work: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from tvs.pki import LabPki, Recipe, generate, issue_lsc
    from tvs.store import TrustStore
    from tvs.wire import QueryCertRequest, encode_message

    pki_dir = args.pki or work / "pki"
    if args.pki is None:
        generate(Recipe.default(), pki_dir)
    pki = LabPki.load(pki_dir, Recipe.default())
    src = pki.clusters["source"]
    node = next(iter(src.nodes.values()))
    phone = next(iter(src.phones.values()))
    store = TrustStore.init_from_pki(work / "store", pki_dir / "source")
    cm = next(iter(pki.clusters["destination"].nodes.values())).callmanager.cert
    store.import_certificates("Phone-SAST-trust", [cm])
    store.import_certificates("CallManager-trust", [cm])
    args.store = store.root
    args.tvs_cert, args.tvs_key = str(node.tvs.cert_path), str(node.tvs.key_path)
    args.lsc, args.lsc_key = str(phone.cert_path), str(phone.key_path)
    if args.client_key != "recipe":  # a cheap LSC keeps the generator from setting the pace
        lsc = issue_lsc(src.capf, mac="00BE0C000001", key_type=args.client_key)
        Path(work / "lsc.pem").write_bytes(lsc.cert.to_pem())
        Path(work / "lsc.key").write_bytes(
            lsc.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
        args.lsc, args.lsc_key = str(work / "lsc.pem"), str(work / "lsc.key")
    args.capf = str(src.capf.cert_path)
    client_key = args.client_key
    if client_key == "recipe":
        client_key = type(phone.cert.public_key).__name__
    print(f"server key: {type(node.tvs.cert.public_key).__name__}, client LSC key: {client_key}")
    req = QueryCertRequest(f"CP-8861-SEP{phone.cert.common_name[-12:]}", cm.subject, cm.issuer,
                           cm.serial, request_id=1001)  # fmt: skip
    return encode_message(req)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per cell (5)")
    p.add_argument("--concurrency", default="1,16,128")
    p.add_argument("--procs", type=int, default=2, help="generator processes (2)")
    p.add_argument("--workers", default="1,2", help="our server's worker counts (1,2)")
    p.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    p.add_argument("--legacy", action="store_true", help="TLS 1.2 AES256-SHA (old phones)")
    p.add_argument("--log-level", default="info", help="our server's log level (info)")
    p.add_argument(
        "--client-key",
        default="ec-p256",
        choices=("ec-p256", "rsa2048", "recipe"),
        help="the generator's LSC key (ec-p256: cheap for the generator; recipe: the lab phone's)",
    )
    p.add_argument("--rounds", type=int, default=2, help="best of N rounds per cell (2)")
    p.add_argument("--pki", type=Path, help="an existing lab PKI (default: generate one)")
    args = p.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    if shutil.which("openssl") is None:
        print("openssl not found", file=sys.stderr)
        return 2
    print(f"cores: {os.cpu_count()}, generator processes: {args.procs}, {args.seconds}s per cell, "
          f"TLS: {'1.2 AES256-SHA' if args.legacy else 'default (1.3)'}")  # fmt: skip
    best: dict[tuple[str, int], dict[str, Any]] = {}
    errors: dict[tuple[str, int], int] = {}
    served: dict[str, int] = {}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tvs-load-") as tmp:
        payload = _prepare(args, Path(tmp))
        servers: list[tuple[str, subprocess.Popen[bytes], int, str, bytes]] = []
        try:  # every server up front; cells interleaved so machine noise hits all alike
            proc, port = start_s_server(args)
            servers.append(("openssl s_server -rev", proc, port, "rev", REV_LINE))
            for w in worker_counts:
                proc, port = start_ours(args, w)
                servers.append((f"tvs serve --workers {w}", proc, port, "tvs", payload))
            cpu_start = {name: _tree_cpu(proc.pid) for name, proc, *_ in servers}
            for rnd in range(args.rounds):
                for c in levels:
                    for name, _, port, mode, data in servers:
                        r = measure(mode, port, c, args.procs, args.seconds, args, data)
                        key = (name, c)
                        errors[key] = errors.get(key, 0) + sum(r["errors"].values())
                        served[name] = served.get(name, 0) + r["done"]
                        if key not in best or r["rate"] > best[key]["rate"]:
                            best[key] = r
                        print(f"round {rnd + 1} {name:<24} conc {c:>4}: {r['rate']:7.0f}/s",
                              flush=True)  # fmt: skip
            for name, proc, *_ in servers:
                cpu[name] = _tree_cpu(proc.pid) - cpu_start[name]
        finally:
            for _, proc, *_ in servers:
                _stop(proc)
    rows = [(name, c, best[(name, c)]) for c in levels for name, *_ in servers]
    ref = {c: best[("openssl s_server -rev", c)]["rate"] for c in levels}
    print(f"\n{'target':<24} {'conc':>5} {'done':>7} {'errors*':>7} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'x s_server':>10}")  # fmt: skip
    for name, c, r in rows:
        errs = errors[(name, c)]
        ratio = r["rate"] / ref[c] if ref.get(c) else float("nan")
        print(f"{name:<24} {c:>5} {r['done']:>7} {errs:>7} {r['rate']:>8.0f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {ratio:>10.2f}")  # fmt: skip
        if r["errors"]:
            print(f"{'':<24} errors (best round): {r['errors']}")
    print("req/s, p50, p99: best round; errors*: all rounds; x s_server: same concurrency")
    print(
        "\nserver CPU per completed request (all cells, after start-up; robust to a busy machine):"
    )
    ref_cpu = cpu["openssl s_server -rev"] / max(1, served["openssl s_server -rev"])
    for name, *_ in servers:
        per = cpu[name] / max(1, served[name])
        print(f"  {name:<24} {per * 1000:6.3f} ms  ({served[name]} requests, "
              f"{ref_cpu / per if per else float('nan'):.2f}x s_server efficiency)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
