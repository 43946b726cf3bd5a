"""TVS load: completed TLS-per-request queries/s and latency, our server against ``openssl
s_server`` full handshakes/s (the ceiling for a TLS-per-request protocol here), same run.

Each request is what a booting phone does: TCP connect, TLS handshake presenting its LSC
(client certificate), one QUERY_CERT_REQ, the full QUERY_CERT_RES, close. The s_server
reference gets the same generator with a one-line echo (``-rev``, client certificate requested
and verified, OpenSSL's default session tickets) instead of the TVS message. Two kinds of
client (``--clients``): ``nodelay`` sets TCP_NODELAY, ``nagle`` leaves Nagle on as phones and
most TLS clients do (a server that sends nothing after a TLS 1.3 handshake stalls those ~40 ms
per request, issue 12 item 3). ``--base DIR`` also runs the server of another checkout (its
own ``.venv``), for a before/after in one run. The generator is lean (blocking ``ssl`` sockets
in threads) and runs in several processes (``--procs``, default 2); it is bounded by
``--seconds`` per cell and by ``--max-requests``. All servers run at once and the cells are
interleaved, best of ``--rounds``, so machine noise hits every target alike; each server's CPU
time per completed request is reported too (robust to a busy machine).

``--lockout SECONDS`` measures instead what issue 12 item 2 found: an attacker address
(127.0.0.2; ``--attack-addresses N`` spreads it over N) opening ``--attack-rate`` plain TCP
connections per second that never send a byte, while a good client (127.0.0.3) sends one query
per second; it prints how many good queries were answered, for each server. Loopback only;
every loop is bounded in count and time.

Run: ``.venv/bin/python benchmarks/tvs_load.py [--seconds 5] [--concurrency 1,16,128]
[--base ../tls-base] [--lockout 30]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import resource
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
    from tvs.tlsconfig import client_context, offer_only_legacy

    ctx = client_context(cert=Path(cert), key=Path(key), legacy=legacy)
    if legacy:
        offer_only_legacy(ctx, max_tls10=False)
    return ctx


def _one(ctx: ssl.SSLContext, port: int, payload: bytes, mode: str, nodelay: bool = True) -> None:
    from tvs.wire import Decoder, Frame, QueryCertResponse, Status

    with socket.create_connection((HOST, port), timeout=10) as raw:
        if nodelay:
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
    nodelay: bool,
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
                _one(ctx, port, payload, mode, nodelay)
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
    mode: str,
    port: int,
    concurrency: int,
    procs: int,
    seconds: float,
    args: Any,
    payload: bytes,
    nodelay: bool = True,
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
                nodelay,
                out,
            ),
        )
        for n in shares
    ]
    return gather(workers, out, limit=seconds + 120)[0]


def gather(
    workers: list[Any], out: Any, *, limit: float
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Start the generator processes, collect one ``(latencies, errors, wall, ...)`` tuple from
    each (at most ``limit`` seconds), and sum them up: requests done, errors by kind, rate,
    p50 and p99. Also returns the raw tuples (a benchmark may report their extra fields)."""
    for w in workers:
        w.start()
    results: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + limit
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
    summary = {
        "done": len(lat),
        "errors": errors,
        "rate": len(lat) / wall if wall else 0.0,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }
    return summary, results


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


def start_ours(
    args: Any, workers: int, python: str | None = None, max_connections: int = 4096
) -> tuple[subprocess.Popen[bytes], int]:
    """Our server (``python``: the interpreter of another checkout, for a before/after)."""
    port = _free_port()
    code = (
        "import sys; from tvs.server import TvsServerConfig, run_workers; "
        f"cfg = TvsServerConfig(store={str(args.store)!r}, cert={args.tvs_cert!r}, "
        f"key={args.tvs_key!r}, port={port}, legacy_tls={args.legacy!r}, "
        f"client_auth='optional', max_connections={max_connections}); "
        f"sys.exit(run_workers(cfg, {workers}, log_level={args.log_level!r}))"
    )
    log = Path(args.store).parent / f"server-{port}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [python or sys.executable, "-c", code],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd="/",  # so the interpreter imports its own checkout's package, not this directory
        )
    try:
        _wait_listening(port, proc)
    except RuntimeError:
        print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    return proc, port


def start_s_server(args: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", args.tvs_cert,
           "-key", args.tvs_key, "-rev", "-quiet",
           "-verify", "1", "-CAfile", args.capf]  # fmt: skip
    if args.legacy:
        from tvs.tlsconfig import LEGACY_ONLY_CIPHERS

        cmd += ["-cipher", LEGACY_ONLY_CIPHERS, "-tls1_2"]
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


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _lockout(args: Any, port: int, payload: bytes) -> tuple[int, int, int]:
    """Attacker (127.0.0.2) holds idle connections at ``--attack-rate``/s while a good client
    (127.0.0.3) sends one query per second for ``--lockout`` seconds: (good answered, good
    sent, attacker connections made)."""
    ctx = _context(args.lsc, args.lsc_key, args.legacy)
    stop = threading.Event()
    held: list[socket.socket] = []
    cap = int(args.attack_rate * args.lockout) + 1

    sources = ["127.0.0.2"] + [f"127.0.1.{i}" for i in range(10, 9 + args.attack_addresses)]

    def attack() -> None:
        interval = 1.0 / args.attack_rate
        next_at = time.monotonic()
        while not stop.is_set() and len(held) < cap:
            try:
                s = socket.socket()
                s.bind((sources[len(held) % len(sources)], 0))
                s.settimeout(2)
                s.connect((HOST, port))
                held.append(s)
            except OSError:
                s.close()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def good() -> bool:
        try:
            raw = socket.create_connection((HOST, port), timeout=5, source_address=("127.0.0.3", 0))
        except OSError:
            return False
        try:
            raw.settimeout(5)
            with ctx.wrap_socket(raw) as tls:
                from tvs.wire import Decoder, Frame

                tls.sendall(payload)
                dec = Decoder()
                while not isinstance(dec.next_frame(), Frame):
                    dec.receive_data(tls.recv(65536))
            return True
        except (OSError, ValueError):
            return False
        finally:
            raw.close()

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    ok = sent = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.lockout:
            t0 = time.monotonic()
            sent += 1
            ok += good()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    finally:
        stop.set()
        attacker.join(10)
        made = len(held)
        for s in held:
            s.close()
    return ok, sent, made


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per cell (5)")
    p.add_argument("--concurrency", default="1,16,128")
    p.add_argument("--procs", type=int, default=2, help="generator processes (2)")
    p.add_argument("--workers", default="1,2", help="our server's worker counts (1,2)")
    p.add_argument("--clients", default="nodelay,nagle", help="client kinds (nodelay,nagle)")
    p.add_argument(
        "--base", type=Path, metavar="DIR", help="also run the server of this checkout (DIR/.venv)"
    )
    p.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    p.add_argument("--legacy", action="store_true", help="TLS 1.2 AES256-SHA (old phones)")
    p.add_argument("--log-level", default="warning", help="our server's log level (warning)")
    p.add_argument(
        "--client-key",
        default="ec-p256",
        choices=("ec-p256", "rsa2048", "recipe"),
        help="the generator's LSC key (ec-p256: cheap for the generator; recipe: the lab phone's)",
    )
    p.add_argument("--rounds", type=int, default=2, help="best of N rounds per cell (2)")
    p.add_argument("--pki", type=Path, help="an existing lab PKI (default: generate one)")
    p.add_argument(
        "--lockout", type=float, metavar="S", help="measure the idle-connection lockout instead"
    )
    p.add_argument("--attack-rate", type=float, default=104.0, help="idle connections/s (104)")
    p.add_argument(
        "--attack-addresses", type=int, default=1, help="attacker source addresses (1)"
    )
    args = p.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    kinds = [k.strip() for k in args.clients.split(",")]
    if any(k not in ("nodelay", "nagle") for k in kinds):
        print("--clients: nodelay and/or nagle", file=sys.stderr)
        return 2
    if shutil.which("openssl") is None:
        print("openssl not found", file=sys.stderr)
        return 2
    base_python = None
    if args.base is not None:
        base_python = str((args.base / ".venv" / "bin" / "python").absolute())
        if not os.access(base_python, os.X_OK):
            print(f"--base: no {base_python}", file=sys.stderr)
            return 2
    _raise_open_files()
    print(f"cores: {os.cpu_count()}, generator processes: {args.procs}, {args.seconds}s per cell, "
          f"TLS: {'1.2 AES256-SHA' if args.legacy else 'default (1.3)'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tvs-load-") as tmp:
        payload = _prepare(args, Path(tmp))
        if args.lockout:
            return _run_lockout(args, payload, base_python)
        return _run_load(args, payload, levels, worker_counts, kinds, base_python)


def _run_lockout(args: Any, payload: bytes, base_python: str | None) -> int:
    targets = [("tvs serve (this tree)", None)]
    if base_python is not None:
        targets.insert(0, (f"tvs serve ({args.base})", base_python))
    print(f"lockout: attacker ({args.attack_addresses} address(es)) at "
          f"{args.attack_rate:.0f} idle connections/s, "
          f"good client 127.0.0.3 at 1 query/s, {args.lockout:.0f}s per server")  # fmt: skip
    for name, python in targets:
        proc, port = start_ours(args, 1, python, max_connections=1024)  # the default
        try:
            ok, sent, made = _lockout(args, port, payload)
        finally:
            _stop(proc)
        print(f"  {name:<40} good queries answered: {ok} of {sent} "
              f"(attacker connections: {made})", flush=True)  # fmt: skip
    return 0


def _run_load(
    args: Any,
    payload: bytes,
    levels: list[int],
    worker_counts: list[int],
    kinds: list[str],
    base_python: str | None,
) -> int:
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    errors: dict[tuple[str, int, str], int] = {}
    served: dict[str, int] = {}
    cpu: dict[str, float] = {}
    cell_cpu: dict[tuple[str, str], float] = {}  # (server, client kind): CPU seconds in its cells
    cell_done: dict[tuple[str, str], int] = {}
    ref_name = "openssl s_server -rev"
    servers: list[tuple[str, subprocess.Popen[bytes], int, str, bytes]] = []
    try:  # every server up front; cells interleaved so machine noise hits all alike
        proc, port = start_s_server(args)
        servers.append((ref_name, proc, port, "rev", REV_LINE))
        for w in worker_counts:
            if base_python is not None:
                proc, port = start_ours(args, w, base_python)
                servers.append((f"before: --workers {w}", proc, port, "tvs", payload))
            proc, port = start_ours(args, w)
            servers.append((f"tvs serve --workers {w}", proc, port, "tvs", payload))
        cpu_start = {name: _tree_cpu(proc.pid) for name, proc, *_ in servers}
        for rnd in range(args.rounds):
            for kind in kinds:
                for c in levels:
                    for name, sproc, port, mode, data in servers:
                        before_cpu = _tree_cpu(sproc.pid)
                        r = measure(
                            mode, port, c, args.procs, args.seconds, args, data, kind == "nodelay"
                        )
                        ck = (name, kind)
                        cell_cpu[ck] = cell_cpu.get(ck, 0.0) + _tree_cpu(sproc.pid) - before_cpu
                        cell_done[ck] = cell_done.get(ck, 0) + r["done"]
                        key = (name, c, kind)
                        errors[key] = errors.get(key, 0) + sum(r["errors"].values())
                        served[name] = served.get(name, 0) + r["done"]
                        if key not in best or r["rate"] > best[key]["rate"]:
                            best[key] = r
                        print(f"round {rnd + 1} {kind:<7} {name:<24} conc {c:>4}: "
                              f"{r['rate']:7.0f}/s", flush=True)  # fmt: skip
        for name, proc, *_ in servers:
            cpu[name] = _tree_cpu(proc.pid) - cpu_start[name]
    finally:
        for _, proc, *_ in servers:
            _stop(proc)
    print(f"\n{'client':<8} {'target':<24} {'conc':>5} {'done':>7} {'errors*':>7} {'req/s':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'x s_server':>10} {'x before':>9}")  # fmt: skip
    for kind in kinds:
        for c in levels:
            ref = best[(ref_name, c, kind)]["rate"]
            for name, *_ in servers:
                r = best[(name, c, kind)]
                errs = errors[(name, c, kind)]
                ratio = r["rate"] / ref if ref else float("nan")
                before = ""
                if name.startswith("tvs serve --workers") and base_python is not None:
                    old = best[(name.replace("tvs serve", "before:"), c, kind)]["rate"]
                    before = f"{r['rate'] / old:9.2f}" if old else f"{'inf':>9}"
                p50, p99 = r["p50_ms"], r["p99_ms"]
                print(f"{kind:<8} {name:<24} {c:>5} {r['done']:>7} {errs:>7} {r['rate']:>8.0f} "
                      f"{p50:>8.2f} {p99:>8.2f} {ratio:>10.2f} {before}")  # fmt: skip
                if r["errors"]:
                    print(f"{'':<33} errors (best round): {r['errors']}")
    print("req/s, p50, p99: best round; errors*: all rounds; x s_server: same client kind and "
          "concurrency; x before: this tree / --base")
    print(
        "\nserver CPU per completed request (all cells, after start-up; robust to a busy machine):"
    )
    ref_cpu = cpu[ref_name] / max(1, served[ref_name])
    for name, *_ in servers:
        per = cpu[name] / max(1, served[name])
        print(f"  {name:<24} {per * 1000:6.3f} ms  ({served[name]} requests, "
              f"{ref_cpu / per if per else float('nan'):.2f}x s_server efficiency)")  # fmt: skip
    print("by client kind (CPU during that kind's cells / requests done in them):")
    for kind in kinds:
        ref_k = cell_cpu[(ref_name, kind)] / max(1, cell_done[(ref_name, kind)])
        for name, *_ in servers:
            per = cell_cpu[(name, kind)] / max(1, cell_done[(name, kind)])
            extra = ""
            if name.startswith("tvs serve --workers") and base_python is not None:
                old_key = (name.replace("tvs serve", "before:"), kind)
                old = cell_cpu[old_key] / max(1, cell_done[old_key])
                extra = f", {old / per if per else float('nan'):.2f}x before"
            print(f"  {kind:<8} {name:<24} {per * 1000:6.3f} ms  "
                  f"({ref_k / per if per else float('nan'):.2f}x s_server{extra})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
