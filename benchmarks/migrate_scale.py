"""Migration at scale: ``phone-emu migrate`` (bulk, defaults otherwise) for 1,000, 3,000 and
10,000 phones, against the machine's floor measured in the same run.

For each fleet size it reports wall time, phones migrated per second, the peak RSS of every
process of the run (the runner, its worker processes, any server processes) and the CPU
seconds per phone split by process, read from ``/proc`` every 50 ms while the run lasts (and
the report's own ``summary.peak_rss_mb`` / ``workers_peak_rss_mb``).

The floor is ``openssl speed -seconds 3 rsa2048 ecdsap256`` on this machine, converted to the
public-key operations one phone's migration needs (:data:`OPS_PER_PHONE`, explained there). The
ratio (our CPU per phone) / (floor CPU per phone) says how far above pure crypto we are.

The machine's load average is printed before and after each run (the machine may be shared):
CPU seconds per phone are robust to noise, wall time is not.

Run: ``.venv/bin/python benchmarks/migrate_scale.py [--sizes 1000,3000,10000] [--json OUT]
[-- EXTRA MIGRATE FLAGS]``. Loopback only; every run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

OPS_PER_PHONE: dict[str, tuple[int, str]] = {
    # the public-key work of one phone's bulk migration with today's defaults (RSA-2048 cluster
    # keys, EC P-256 LSCs; the authenticated security profile: the phone presents its LSC at
    # secure SIP, which verifies it; TVS does not ask for it, client_auth "none"):
    # before: the phone's LSC (an EC P-256 key, the certificate signed by the source's CAPF);
    # boot 1 on the source: CTL, ITL, signed config, secure SIP (1 TLS handshake);
    # boot 2 on the destination: CTL, ITL, signed config, one TVS query to the source TVS about
    # the destination's CallManager certificate (1 handshake), secure SIP (1 handshake).
    "rsa2048 sign": (
        6,
        "3 TLS handshakes (server CertificateVerify) + 2 per-phone signed configs "
        "(SEP<MAC>.cnf.xml.sgn, one per cluster; CTL/ITL are shared by the fleet) + the "
        "phone's LSC, issued by the source CAPF when the run starts",
    ),
    "rsa2048 verify": (
        11,
        "3 server CertificateVerify + 2 LSC chains (CAPF-signed) checked at secure SIP + "
        "CTL, ITL and config signatures checked by the phone in each of the 2 boots",
    ),
    "ecdsap256 sign": (2, "the phone's CertificateVerify with its LSC at secure SIP (2 boots)"),
    "ecdsap256 verify": (2, "the SIP servers checking those 2 CertificateVerify"),
}
"""Operations per migrated phone: (count, why). Key exchange (X25519), hashing and symmetric
crypto are left out: they are small beside these, so the floor is a lower bound."""


# --- the floor ----------------------------------------------------------------------------------


def openssl_floor(seconds: int = 3) -> dict[str, Any]:
    """``openssl speed`` sign/verify rates and the CPU seconds one phone's crypto needs."""
    exe = shutil.which("openssl")
    if exe is None:
        return {"error": "openssl not found"}
    out = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "rsa2048", "ecdsap256"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rates: dict[str, float] = {}
    rsa = re.search(r"^rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out, re.M)
    ec = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if rsa is None or ec is None:
        return {"error": "cannot read openssl speed output", "output": out[-2000:]}
    rates["rsa2048 sign"], rates["rsa2048 verify"] = float(rsa[1]), float(rsa[2])
    rates["ecdsap256 sign"], rates["ecdsap256 verify"] = float(ec[1]), float(ec[2])
    per_phone = sum(n / rates[op] for op, (n, _) in OPS_PER_PHONE.items())
    return {
        "rates_per_second": rates,
        "ops_per_phone": {op: n for op, (n, _) in OPS_PER_PHONE.items()},
        "cpu_seconds_per_phone": per_phone,
    }


# --- watching a process tree ---------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def _sample(pid: int) -> tuple[float, float, str] | None:
    """(CPU seconds, peak RSS MiB, role) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    rss = int(hwm[1]) / 1024 if hwm else 0.0
    return cpu, rss, _role(cmd)


def _role(cmd: list[bytes]) -> str:
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    if "phone_emu.lab.workers" in text:
        return "fleet worker"
    if "phone-emu" in text and "migrate" in text:
        return "runner"
    m = re.search(r"(tvs \w+(?: \w+)?|phone-emu \w+)", text)
    return m[1] if m else (Path(cmd[0].decode(errors="replace")).name if cmd[0] else "?")


def run_migrate(phones: int, extra: list[str], timeout: float) -> dict[str, Any]:
    """One ``phone-emu migrate`` run; its report's summary and per-process CPU and memory."""
    exe = ROOT / ".venv" / "bin" / "phone-emu"
    with tempfile.TemporaryDirectory(prefix="migrate-scale-") as tmp:
        report_path = Path(tmp) / "report.json"
        argv = [str(exe), "migrate", "--phones", str(phones), "--method", "bulk"]
        argv += ["--no-progress", "--report", str(report_path), *extra]
        load_before = os.getloadavg()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen: dict[int, dict[str, Any]] = {}
        deadline = t0 + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                return {"phones": phones, "error": f"timed out after {timeout:.0f} s"}
            for pid in _descendants(proc.pid):
                got = _sample(pid)
                if got is not None:
                    cpu, rss, role = got
                    rec = seen.setdefault(pid, {"role": role, "cpu": 0.0, "rss": 0.0})
                    rec["cpu"], rec["rss"] = max(rec["cpu"], cpu), max(rec["rss"], rss)
                    if rec["role"] not in ("runner", "fleet worker"):
                        rec["role"] = role
            time.sleep(0.05)
        wall = time.monotonic() - t0
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        # the runner's own total, exact (children it reaped are counted in their own rows)
        if not report_path.exists():
            return {"phones": phones, "error": f"exit {proc.returncode}: {stderr[-800:]}"}
        report = json.loads(report_path.read_text())
    summary = report["summary"]
    procs = sorted(seen.items(), key=lambda kv: (kv[1]["role"] != "runner", kv[0]))
    return {
        "phones": phones,
        "exit": proc.returncode,
        "wall_seconds": round(wall, 2),
        "report_wall_seconds": summary.get("wall_time"),
        "migrated": summary.get("migrated"),
        "failed": summary.get("failed"),
        "stayed": summary.get("stayed"),
        "migrated_per_second": round((summary.get("migrated") or 0) / wall, 1),
        "report_peak_rss_mb": summary.get("peak_rss_mb"),
        "report_workers_peak_rss_mb": summary.get("workers_peak_rss_mb"),
        "report_peak_total_mb": round(
            (summary.get("peak_rss_mb") or 0) + sum(summary.get("workers_peak_rss_mb") or []),
            1,
        ),
        "fleet": report.get("fleet"),
        "processes": [
            {
                "pid": pid,
                "role": r["role"],
                "cpu_seconds": round(r["cpu"], 2),
                "cpu_ms_per_phone": round(1000 * r["cpu"] / phones, 3),
                "peak_rss_mb": round(r["rss"], 1),
            }
            for pid, r in procs
        ],
        "cpu_ms_per_phone": round(1000 * sum(r["cpu"] for r in seen.values()) / phones, 3),
        "peak_rss_sum_mb": round(sum(r["rss"] for r in seen.values()), 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "stderr_tail": stderr[-400:] if proc.returncode else "",
    }


# --- output --------------------------------------------------------------------------------------


def _print(run: dict[str, Any], floor_ms: float | None) -> None:
    if "error" in run:
        print(f"{run['phones']:>6} phones: ERROR {run['error']}")
        return
    ratio = f"{run['cpu_ms_per_phone'] / floor_ms:.1f}x" if floor_ms else "n/a"
    print(
        f"{run['phones']:>6} phones: wall {run['wall_seconds']:.1f} s (the run itself "
        f"{run['report_wall_seconds']:.1f} s: without interpreter start and report writing), "
        f"{run['migrated_per_second']:.0f} migrated/s, migrated {run['migrated']} failed "
        f"{run['failed']} stayed {run['stayed']} (exit {run['exit']}); CPU "
        f"{run['cpu_ms_per_phone']:.2f} ms/phone = {ratio} the floor; peak RSS (report) "
        f"{run['report_peak_total_mb']:.0f} MiB (/proc, all processes: "
        f"{run['peak_rss_sum_mb']:.0f} MiB); load {run['load_before']} -> {run['load_after']}"
    )
    for p in run["processes"]:
        if p["cpu_seconds"] < 0.05 and p["role"] not in ("runner", "fleet worker"):
            continue  # helpers (ldconfig...) the run spawned for a moment
        print(
            f"        {p['role']:<14} pid {p['pid']:<7} CPU {p['cpu_seconds']:7.2f} s "
            f"({p['cpu_ms_per_phone']:.2f} ms/phone)  peak RSS {p['peak_rss_mb']:6.1f} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,3000,10000", help="fleet sizes (comma-separated)")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per run at most")
    p.add_argument("--no-floor", action="store_true", help="skip openssl speed")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(not 1 <= s <= 100_000 for s in sizes):
        p.error("sizes must be 1..100000")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    floor = {} if args.no_floor else openssl_floor()
    floor_ms = None
    if "cpu_seconds_per_phone" in floor:
        floor_ms = 1000 * floor["cpu_seconds_per_phone"]
        rates = ", ".join(f"{k} {v:,.0f}/s" for k, v in floor["rates_per_second"].items())
        print(f"floor (openssl speed): {rates}")
        for op, (n, why) in OPS_PER_PHONE.items():
            print(f"  {n:>2} x {op}: {why}")
        print(f"  = {floor_ms:.3f} ms of CPU per phone")
    elif floor:
        print(f"floor: {floor['error']}")
    runs = []
    for n in sizes:
        run = run_migrate(n, extra, args.timeout)
        runs.append(run)
        _print(run, floor_ms)
    if args.json:
        args.json.write_text(
            json.dumps({"floor": floor, "extra_flags": extra, "runs": runs}, indent=2) + "\n"
        )
    return 0 if all("error" not in r and r["failed"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
