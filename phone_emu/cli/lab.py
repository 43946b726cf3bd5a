"""``phone-emu fleet``, ``phone-emu migrate`` and ``phone-emu scenarios``: the lab commands.

``fleet`` boots N phones in one process against one TFTP server (a slice of them with
``--shard I/N``); ``migrate`` runs a migration between two clusters it starts in-process (or
clusters started elsewhere) and reports per phone; ``scenarios`` lists and runs the scenario
suite. Exit codes: 0 as expected (every phone booted / migrated / did what the scenario
says), 1 some phone did not, 2 usage, configuration or lab error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from tvs.cluster import ClusterError
from tvs.pki import LabPki, PkiError
from tvs.server.logsetup import configure_logging
from tvs.tftp.protocol import MAX_BLKSIZE, MIN_BLKSIZE

from ..lab.config import LabConfig, LabConfigError
from ..lab.fleet import (
    FleetError,
    boot_fleet,
    fleet_macs,
    make_identities,
    make_phones,
    parse_shard,
)
from ..lab.migrate import MigrationError, RunOptions, peak_rss_mb, run_scenario
from ..lab.progress import RunProgress, summary_table
from ..lab.report import write_html, write_json
from ..lab.scenarios import (
    Scenario,
    ScenarioError,
    find_scenario,
    load_scenarios,
    migration_scenario,
)
from ..lab.workers import WorkerError
from ..phone.boot import BootOptions
from ..phone.driver import NetworkOptions
from ..phone.identity import IdentityError
from ..phone.persist import StateError
from ..phone.trust import TrustListCache

__all__ = ["register"]

EXIT_OK, EXIT_DIFFERS, EXIT_ERROR = 0, 1, 2
_LAB_ERRORS = (
    LabConfigError,
    ScenarioError,
    FleetError,
    MigrationError,
    ClusterError,
    PkiError,
    WorkerError,
)


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 69
    try:
        value = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host.strip("[]") or "127.0.0.1", value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _blksize(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_BLKSIZE <= value <= MAX_BLKSIZE:
        raise argparse.ArgumentTypeError(f"block size {value} outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except FleetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="phones booting at once: the boot-storm limit (default 64)",
    )
    p.add_argument(
        "--no-register",
        action="store_true",
        help="skip the secure SIP TLS handshake at the end of each boot",
    )
    p.add_argument(
        "--shared-key",
        action="store_true",
        help="one EC key for every phone's LSC (default: one key per phone)",
    )
    p.add_argument(
        "--tftp-blksize",
        type=_blksize,
        metavar="BYTES",
        help="ask for this TFTP block size (RFC 2348; default: plain 512-byte blocks). Larger "
        "blocks make big fleets lighter on this machine",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
    p.add_argument(
        "--log-level",
        default="error",
        metavar="LEVEL",
        help="server and phone log lines on stderr at or above LEVEL (default error)",
    )


def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        metavar="LAB.toml",
        help="lab configuration (default: the embedded seed lab)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where the PKI and the stores go (default: a temporary directory)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="boot the phones in N worker processes (use every core; default 1: in-process)",
    )
    p.add_argument(
        "--pki",
        type=Path,
        metavar="DIR",
        help="use this lab PKI (tvs certs generate) instead of generating one",
    )
    _common(p)


def register(sub: Any) -> None:
    m = sub.add_parser(
        "migrate",
        help="migrate a fleet between two emulated clusters and report per phone",
        description="Start both clusters in-process (the embedded seed lab by default), boot "
        "the fleet on the source, import (bulk or manual), point DHCP option 150 at the "
        "destination, reboot the fleet and report per phone. Exit 0 every phone did what "
        "was expected, 1 some did not, 2 lab error.",
    )
    _lab_args(m)
    m.add_argument("--phones", type=_positive, metavar="N", help="fleet size (default 50)")
    m.add_argument(
        "--method",
        choices=("bulk", "manual", "none"),
        help="certificate import method: bulk (default), manual, or none (done elsewhere: the "
        "default with --source/--destination); ignored with --scenario",
    )
    m.add_argument("--scenario", metavar="NAME", help="run a scenario (name or TOML file)")
    m.add_argument(
        "--back",
        action="store_true",
        help="then migrate the phones back to the source (manual: with the reverse upload)",
    )
    m.add_argument(
        "--source",
        type=_hostport,
        metavar="HOST:PORT",
        help="TFTP of a source cluster started elsewhere (import steps need it here)",
    )
    m.add_argument(
        "--destination",
        type=_hostport,
        metavar="HOST:PORT",
        help="TFTP of a destination cluster started elsewhere",
    )
    m.add_argument("--report", type=Path, metavar="FILE.json", help="write the JSON report")
    m.add_argument("--html", type=Path, metavar="FILE.html", help="write the HTML report")
    m.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    m.set_defaults(func=_migrate)

    f = sub.add_parser(
        "fleet",
        help="boot N emulated phones concurrently against one TFTP server",
        description="Boot N phones in one process, each with its own MAC (counting up from "
        "--mac-start), an LSC issued on the fly by the cluster's CAPF, and its state (in "
        "memory, or --state-dir DIR/SEP<MAC>). --shard I/N boots the I-th of N slices, so N "
        "processes share one fleet. Exit 0 every phone booted, 1 some phone rejected "
        "something, 2 a server was unreachable or usage error.",
    )
    f.add_argument(
        "--tftp",
        required=True,
        type=_hostport,
        metavar="HOST:PORT",
        help="TFTP server (DHCP option 150)",
    )
    f.add_argument(
        "--phones",
        type=_positive,
        default=1,
        metavar="N",
        help="fleet size, all shards together (default 1)",
    )
    f.add_argument(
        "--shard",
        type=_shard,
        default=(1, 1),
        metavar="I/N",
        help="boot only the I-th of N slices (1-based; default 1/1)",
    )
    f.add_argument(
        "--pki",
        type=Path,
        default=Path("lab/pki"),
        metavar="DIR",
        help="lab PKI whose CAPF issues the LSCs (default lab/pki)",
    )
    f.add_argument(
        "--cluster",
        default="source",
        metavar="NAME",
        help="cluster of the lab PKI whose CAPF issues the LSCs (default source)",
    )
    f.add_argument(
        "--mac-start",
        default="B000B4BA0AEE",
        metavar="MAC",
        help="MAC of phone 0 (default the seed's B000B4BA0AEE)",
    )
    f.add_argument("--model", default="8861", help="phone model (default 8861)")
    f.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep each phone's state in DIR/SEP<MAC> (default: in memory)",
    )
    f.add_argument("--report", type=Path, metavar="FILE.json", help="write per-phone results")
    f.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    _common(f)
    f.set_defaults(func=_fleet)

    s = sub.add_parser(
        "scenarios",
        help="list or run the migration scenario suite",
        description="Scenarios are TOML files (phone_emu/lab/scenarios/*.toml, plus --dir). "
        "`run --all` exits 1 if any scenario's outcome differs from its expectation.",
    )
    ssub = s.add_subparsers(dest="scenarios_command", metavar="COMMAND", required=True)
    sl = ssub.add_parser("list", help="list the scenarios")
    sl.add_argument(
        "--dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also read scenarios from DIR/*.toml (or a file); repeatable",
    )
    sl.add_argument("--json", action="store_true", help="JSON on stdout")
    sl.set_defaults(func=_scenarios_list)
    sr = ssub.add_parser("run", help="run scenarios by name, or --all")
    sr.add_argument("names", nargs="*", metavar="NAME")
    sr.add_argument("--all", action="store_true", help="run every scenario")
    sr.add_argument(
        "--dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also read scenarios from DIR/*.toml (or a file); repeatable",
    )
    sr.add_argument(
        "--phones",
        type=_positive,
        metavar="N",
        help="fleet size for every scenario (default: each scenario's own)",
    )
    sr.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="write every scenario's report (a JSON list)",
    )
    sr.add_argument("--json", action="store_true", help="print the reports on stdout")
    _lab_args(sr)
    sr.set_defaults(func=_scenarios_run)


# --- helpers -------------------------------------------------------------------------------------


def _setup_logging(args: argparse.Namespace) -> None:
    configure_logging("console", args.log_level, stream=sys.stderr)


def _lab(args: argparse.Namespace) -> LabConfig:
    return LabConfig.load(args.config) if args.config else LabConfig.default()


def _options(args: argparse.Namespace, progress: RunProgress, **extra: Any) -> RunOptions:
    return RunOptions(
        phones=getattr(args, "phones", None),
        concurrency=args.concurrency,
        register=False if args.no_register else None,
        tftp_blksize=args.tftp_blksize,
        workdir=args.workdir,
        keep=args.keep,
        pki_dir=args.pki,
        shared_key=args.shared_key,
        workers=args.workers,
        log_level=args.log_level,
        progress=progress,
        **extra,
    )


def _err(text: str) -> int:
    print(f"phone-emu: {text}", file=sys.stderr)
    return EXIT_ERROR


# --- migrate -------------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    _setup_logging(args)
    out = Console()
    progress = RunProgress(enabled=not (args.no_progress or args.json))
    try:
        lab = _lab(args)
        if args.scenario:
            scenario = find_scenario(args.scenario, load_scenarios())
            if args.back:
                return _err("--back is part of the migration; scenarios declare their own steps")
        else:
            elsewhere = args.source is not None or args.destination is not None
            method = args.method or ("none" if elsewhere else "bulk")
            scenario = migration_scenario(method, back=args.back, phones=lab.fleet.phones)
        external = {
            role: addr
            for role, addr in (("source", args.source), ("destination", args.destination))
            if addr is not None
        }
        opts = _options(args, progress, external=external)
        report = trio.run(run_scenario, lab, scenario, opts)
    except _LAB_ERRORS as exc:
        return _err(str(exc))
    _emit(report, args, out)
    return EXIT_OK if report["passed"] else EXIT_DIFFERS


def _emit(report: dict[str, Any], args: argparse.Namespace, out: Console) -> None:
    if args.report:
        write_json(args.report, report)
    if getattr(args, "html", None):
        write_html(args.html, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(summary_table(report))
        for what, path in (
            ("JSON report", args.report),
            ("HTML report", getattr(args, "html", None)),
        ):
            if path:
                out.print(f"{what}: {path}", highlight=False)


# --- scenarios -----------------------------------------------------------------------------------


def _scenarios_list(args: argparse.Namespace) -> int:
    try:
        scenarios = load_scenarios(args.dir)
    except ScenarioError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps([_scenario_dict(s) for s in scenarios], indent=2))
        return EXIT_OK
    out = Console()
    for s in scenarios:
        last = next((st for st in reversed(s.steps) if st.expect), None)
        expected = "; ".join(
            (f"phones {','.join(map(str, e.phones))}: " if e.phones is not None else "")
            + e.describe()
            for e in (last.expect if last else ())
        )
        out.print(f"[bold]{s.name}[/bold] ({s.phones} phones): {s.description}")
        out.print(f"    steps: {' > '.join(st.describe() for st in s.steps)}", highlight=False)
        out.print(f"    last boot: {expected}", highlight=False)
    return EXIT_OK


def _scenario_dict(s: Scenario) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "phones": s.phones,
        "source": s.source,
        "steps": [st.describe() for st in s.steps],
    }


def _scenarios_run(args: argparse.Namespace) -> int:
    _setup_logging(args)
    try:
        scenarios = load_scenarios(args.dir)
        if args.all:
            chosen = scenarios
        elif args.names:
            chosen = [find_scenario(n, scenarios) for n in args.names]
        else:
            return _err("scenarios run: name one or more scenarios, or --all")
        lab = _lab(args)
    except _LAB_ERRORS as exc:
        return _err(str(exc))
    out = Console()
    progress = RunProgress(enabled=not (args.no_progress or args.json))
    reports = []
    for s in chosen:
        progress.note(f"[bold]scenario {s.name}[/bold]: {s.description}")
        try:
            report = trio.run(run_scenario, lab, s, _options(args, progress))
        except _LAB_ERRORS as exc:
            return _err(f"scenario {s.name}: {exc}")
        reports.append(report)
        if not args.json:
            out.print(summary_table(report))
    if args.report:
        args.report.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        t = Table(title="scenario suite", title_justify="left")
        for col in ("scenario", "phones", "result", "final outcomes", "time"):
            t.add_column(col)
        for r in reports:
            s = r["summary"]
            finals = ", ".join(
                f"{k} {s[k]}" for k in ("migrated", "stayed", "failed", "booted") if s[k]
            )
            t.add_row(
                r["scenario"],
                str(s["phones"]),
                "[green]as expected[/green]" if r["passed"] else "[red]DIFFERS[/red]",
                finals,
                f"{s['wall_time']:.1f}s",
            )
        out.print(t)
    return EXIT_OK if all(r["passed"] for r in reports) else EXIT_DIFFERS


# --- fleet ---------------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace) -> int:
    _setup_logging(args)
    try:
        pki = LabPki.load(args.pki)
        capf = pki.cluster(args.cluster).capf
        macs = fleet_macs(args.phones, args.mac_start, args.shard)
    except (PkiError, FleetError) as exc:
        return _err(str(exc))
    progress = RunProgress(enabled=not (args.no_progress or args.json))
    t0 = time.monotonic()
    try:
        ids = make_identities(capf, macs, model=args.model, shared_key=args.shared_key)
        phones = make_phones(ids, args.state_dir)
    except (IdentityError, StateError) as exc:
        return _err(str(exc))
    issue_time = time.monotonic() - t0
    options = NetworkOptions(
        boot=BootOptions(register=not args.no_register),
        lists=TrustListCache(max_entries=64),
        tftp_blksize=args.tftp_blksize,
    )
    i, n = args.shard
    progress.begin(
        f"shard {i}/{n}: {len(phones)} phones -> {args.tftp[0]}:{args.tftp[1]}", len(phones)
    )

    def done(b: Any) -> None:
        progress.advance(b.result.state.value if b.result else "error")

    t1 = time.monotonic()
    try:
        boots = trio.run(
            lambda: boot_fleet(
                phones,
                tftp=args.tftp,
                concurrency=args.concurrency or 64,
                options=options,
                on_done=done,
                indices=[x for x, _ in macs],
            )
        )
    finally:
        progress.end()
    boot_time = time.monotonic() - t1
    states = Counter(b.result.state.value if b.result else "error" for b in boots)
    reasons = Counter(
        next((s.reason for s in b.result.steps if s.outcome.value in ("rejected", "error")), "ok")
        if b.result
        else "lab.exception"
        for b in boots
    )
    summary = {
        "tftp": f"{args.tftp[0]}:{args.tftp[1]}",
        "shard": f"{i}/{n}",
        "phones": len(boots),
        "states": dict(states),
        "reasons": dict(reasons.most_common()),
        "lsc_issue_time": round(issue_time, 3),
        "boot_time": round(boot_time, 3),
        "boots_per_second": round(len(boots) / boot_time, 1) if boot_time else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if args.report:
        doc = {
            **summary,
            "phones_detail": [
                {
                    "index": b.index,
                    "device": b.device,
                    "elapsed": round(b.elapsed, 6),
                    **(b.result.to_dict() if b.result else {"state": "error", "error": b.error}),
                }
                for b in boots
            ],
        }
        args.report.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        t = Table(
            title=f"fleet {summary['shard']}: {len(boots)} phones, boot {boot_time:.1f}s "
            f"({summary['boots_per_second']}/s), LSCs {issue_time:.1f}s, "
            f"peak {summary['peak_rss_mb']:.0f} MiB",
            title_justify="left",
        )
        t.add_column("first failing step reason")
        t.add_column("phones", justify="right")
        for reason, count in reasons.most_common():
            t.add_row(reason, str(count))
        Console().print(t)
    if states.get("error"):
        return EXIT_ERROR
    return EXIT_OK if set(states) <= {"registered", "configured"} else EXIT_DIFFERS
