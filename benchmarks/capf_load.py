"""CAPF load: enrollments/s and latency at 1, 16 and 64 concurrent phones, EC P-256 and
RSA-2048 phone keys, beside the TVS server's TLS-per-request rate measured in the same run.

Each enrollment is a whole install by null string over a new TLS connection to
``tvs capf serve`` (a separate process): handshake, AUTH_REQUEST/RESPONSE, KEY_GENERATE
(REQUEST_IN_PROGRESS, public key), the CAPF issues and signs the LSC and stores it in sqlite,
STORE_CERTIFICATE, END_SESSION. Phone keys are made before the clock starts (key generation is
the phone's cost, not the server's: its rate is reported apart); the generator runs Trio in
``--procs`` processes. The TVS figure comes from ``benchmarks/tvs_load.py``'s own generator and
server, run in between the CAPF cells. Every cell is bounded by ``--seconds`` and
``--max-enrollments``; everything stays on 127.0.0.1. The server's CPU seconds per enrollment
are reported too (robust to a busy machine).

Run: ``.venv/bin/python benchmarks/capf_load.py [--seconds 5] [--concurrency 1,16,64]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import tvs_load

HOST = tvs_load.HOST
MAX_ENROLLMENTS = 5000  # per cell, on top of the time bound


# --- the generator (child processes) -----------------------------------------------------------


def _generator(
    port: int, tasks: int, seconds: float, devices: list[str], key: str, trust: str, out: Any
) -> None:
    import trio

    from phone_emu.capf_client import CapfClientConfig, capf_enroll, trust_from_file
    from tvs.capf.client import generate_key
    from tvs.capf.session import KeySpec

    spec = KeySpec.parse(key)
    pool_size = min(len(devices), 64)
    t0 = time.perf_counter()
    keys = [generate_key(spec) for _ in range(pool_size)]
    keygen_rate = pool_size / (time.perf_counter() - t0)
    anchors = trust_from_file(trust)
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def run() -> float:
        todo = iter(enumerate(devices))
        start = time.perf_counter()
        stop_at = start + seconds

        async def phone() -> None:
            for i, name in todo:
                if time.perf_counter() >= stop_at:
                    return
                k = keys[i % len(keys)]
                config = CapfClientConfig(
                    device_name=name,
                    trust=anchors,
                    keygen=lambda _spec, k=k: k,
                    keygen_in_thread=False,
                    timeout=30.0,
                )
                t = time.perf_counter()
                try:
                    result = await capf_enroll(HOST, port, config)
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if result.result != "installed":
                    errors[result.reason_code] = errors.get(result.reason_code, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t)

        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(phone)
        return time.perf_counter() - start

    wall = trio.run(run)
    out.put((latencies, errors, wall, keygen_rate))


def measure(
    port: int,
    concurrency: int,
    procs: int,
    seconds: float,
    devices: list[str],
    key: str,
    trust: str,
) -> dict[str, Any]:
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    nprocs = max(1, min(procs, concurrency))
    shares = [concurrency // nprocs + (1 if i < concurrency % nprocs else 0) for i in range(nprocs)]
    workers = [
        mp.Process(target=_generator, args=(port, n, seconds, devices[i::nprocs], key, trust, out))
        for i, n in enumerate(shares)
    ]
    summary, results = tvs_load.gather(workers, out, limit=seconds + 300)
    return {**summary, "keygen_per_s": statistics.mean(r[3] for r in results)}


# --- the server -----------------------------------------------------------------------------


def start_capf(work: Path, db: Path, log_level: str) -> tuple[subprocess.Popen[bytes], int]:
    port = tvs_load._free_port()
    cmd = [sys.executable, "-c", "import sys; from tvs.cli import main; sys.exit(main())",
           "capf", "serve", "--listen", f"{HOST}:{port}", "--cert", str(work / "capf.pem"),
           "--key", str(work / "capf.key"), "--db", str(db), "--log-level", log_level,
           "--max-handshakes-per-address", "0", "--max-connections", "4096"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tvs_load._wait_listening(port, proc)
    return proc, port


def _prepare_capf(work: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from tvs.pki import Recipe, generate_key
    from tvs.pki.issue import make_capf

    spec = Recipe.default().cluster("source")
    key = generate_key("rsa2048")  # CUCM's CAPF certificate is RSA
    cert = make_capf(spec, key)
    (work / "capf.pem").write_bytes(cert.to_pem())
    (work / "capf.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per cell (5)")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--keys", default="ec-p256,rsa-2048", help="phone key types")
    p.add_argument("--procs", type=int, default=2, help="generator processes (2)")
    p.add_argument("--max-enrollments", type=int, default=MAX_ENROLLMENTS)
    p.add_argument("--log-level", default="warning", help="the CAPF server's log level")
    p.add_argument("--no-tvs", action="store_true", help="skip the TVS reference cells")
    p.add_argument("--rounds", type=int, default=1, help="best of N rounds per cell (1)")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    keys = args.keys.split(",")
    from tvs.capf.db import CapfDb

    with tempfile.TemporaryDirectory(prefix="capf-load-") as tmp:
        work = Path(tmp)
        _prepare_capf(work)
        db_path = work / "capf.sqlite3"
        proc, port = start_capf(work, db_path, args.log_level)
        tvs_proc = None
        targs = argparse.Namespace(
            pki=None, client_key="ec-p256", legacy=False, max_requests=args.max_enrollments,
            log_level="warning",
        )  # fmt: skip
        try:
            payload = b""
            if not args.no_tvs:
                payload = tvs_load._prepare(targs, work)
                tvs_proc, tvs_port = tvs_load.start_ours(targs, 1)
            # warm-up (discarded): the server's first sessions pay for imports and caches
            warm = [f"SEPFFFF{i:08X}" for i in range(20)]
            with CapfDb(db_path) as db:
                db.schedule(warm, operation="install", auth_mode="null", key="ec-p256")
            measure(port, 1, 1, 1.0, warm, "ec-p256", str(work / "capf.pem"))
            rows = []
            cell = 0
            for c in levels:
                for key in keys:
                    cell += 1
                    devices = [f"SEP{cell:04X}{i:08X}" for i in range(args.max_enrollments)]
                    with CapfDb(db_path) as db:
                        db.schedule(devices, operation="install", auth_mode="null", key=key)
                    best: dict[str, Any] | None = None
                    for rnd in range(args.rounds):
                        todo = devices[rnd :: args.rounds]
                        cpu0 = tvs_load._tree_cpu(proc.pid)
                        r = measure(
                            port, c, args.procs, args.seconds, todo, key, str(work / "capf.pem")
                        )
                        cpu = tvs_load._tree_cpu(proc.pid) - cpu0
                        r["server_cpu_ms"] = 1000 * cpu / r["done"] if r["done"] else 0.0
                        if best is None or r["rate"] > best["rate"]:
                            best = r
                    assert best is not None
                    r = best
                    rows.append(("capf", key, c, r))
                    print(_line("CAPF", key, c, r), flush=True)
                if tvs_proc is not None:
                    if tvs_proc.poll() is not None:
                        raise RuntimeError(f"the TVS server exited with {tvs_proc.returncode}")
                    cpu0 = tvs_load._tree_cpu(tvs_proc.pid)
                    r = tvs_load.measure(
                        "tvs", tvs_port, c, args.procs, args.seconds, targs, payload
                    )
                    cpu = tvs_load._tree_cpu(tvs_proc.pid) - cpu0
                    r["server_cpu_ms"] = 1000 * cpu / r["done"] if r["done"] else 0.0
                    rows.append(("tvs", "ec-p256 LSC", c, r))
                    print(_line("TVS", "query", c, r), flush=True)
        finally:
            tvs_load._stop(proc)
            if tvs_proc is not None:
                tvs_load._stop(tvs_proc)
    print()
    print(
        "| target | phone key | concurrency | per s | p50 ms | p99 ms | server CPU ms | keygen/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for what, key, c, r in rows:
        kg = f"{r['keygen_per_s']:.0f}" if "keygen_per_s" in r else "-"
        print(
            f"| {what} | {key} | {c} | {r['rate']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"
            f" | {r['server_cpu_ms']:.1f} | {kg} |"
        )
    return 0


def _line(what: str, key: str, c: int, r: dict[str, Any]) -> str:
    errs = f" errors={r['errors']}" if r["errors"] else ""
    return (
        f"{what:<4} {key:<9} c={c:<3} {r['rate']:8.1f}/s  p50 {r['p50_ms']:7.1f} ms"
        f"  p99 {r['p99_ms']:7.1f} ms  done {r['done']}{errs}"
    )


if __name__ == "__main__":
    sys.exit(main())
