"""``phone-emu fleet``: boot N phones in one process against one TFTP server.

Owns the command's flags (``--tftp``, ``--phones``, ``--shard I/N`` so N processes share one
fleet, the lab PKI whose CAPF issues the LSCs, ``--state-dir``), printing the boot storm's
summary (:class:`phone_emu.lab.fleetsummary.FleetSummary`: states, first failing reasons, LSC
and boot times, peak memory, and the exit policy) as a table or JSON, and the
per-phone ``--report`` (one shard's report, ``phone_emu.lab.shards``); ``--shards N`` takes the
slice JOB_COMPLETION_INDEX names (a Kubernetes Indexed Job). Does not own booting
(``phone_emu.lab.fleet``). Exit 0 every phone booted, 1 some phone rejected something, 2 a
server was unreachable or usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from tvs.exitcodes import ExitCode
from tvs.pki import LabPki, PkiError

from ..lab.fleet import (
    FleetBoot,
    FleetError,
    boot_fleet,
    fleet_macs,
    make_identities,
    make_mic_identities,
    make_phones,
)
from ..lab.fleetsummary import FleetSummary, boot_detail
from ..lab.migrate import peak_rss_mb
from ..lab.outcome import snapshot
from ..lab.report import write_json
from ..lab.shards import fleet_entry, fleet_report, shard_from_index
from ..phone.boot import BootOptions
from ..phone.driver import NetworkOptions
from ..phone.identity import IdentityError
from ..phone.persist import StateError
from ..phone.trust import TrustListCache
from ..phone.values import CAPF_INTERVAL
from .lab_options import (
    add_boot_options,
    add_phones,
    fail,
    fetch_options,
    hostport,
    positive,
    progress_for,
    setup_logging,
    shard,
)

__all__ = ["register"]


def register(sub: Any) -> None:
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
        type=hostport,
        metavar="HOST:PORT",
        help="TFTP server (DHCP option 150)",
    )
    add_phones(f, "fleet size, all shards together (default 1)", default=1)
    f.add_argument(
        "--shard",
        type=shard,
        metavar="I/N",
        help="boot only the I-th of N slices (1-based; default 1/1)",
    )
    f.add_argument(
        "--shards",
        type=positive,
        metavar="N",
        help="one of N slices, the one JOB_COMPLETION_INDEX names (0-based, as a Kubernetes "
        "Indexed Job sets it); --shard I/N wins when both are given",
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
        "--enroll",
        action="store_true",
        help="phones fresh from the factory: a MIC from the lab PKI's manufacturing CA and no "
        "LSC; they enroll by CAPF at their first boot (schedule the install on the cluster "
        "first: tvs capf schedule ... --operation install)",
    )
    f.add_argument(
        "--capf-auth-string",
        metavar="DIGITS",
        help="the CAPF auth string the phones are given (used when the configuration asks for "
        "one, capfAuthMode 1; a real user types it on the phone)",
    )
    f.add_argument(
        "--capf-interval",
        type=float,
        default=CAPF_INTERVAL,
        metavar="SECONDS",
        help=f"wait between CAPF attempts (3 at most; a real phone waits 30 s; default "
        f"{CAPF_INTERVAL})",
    )
    f.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep each phone's state in DIR/SEP<MAC> (default: in memory)",
    )
    f.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="write this shard's report (per phone, and a summary; `phone-emu report merge` "
        "combines shards); - prints it on stdout as one JSON document",
    )
    f.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    add_boot_options(f)
    f.set_defaults(func=_fleet)


def _which_shard(args: argparse.Namespace) -> tuple[int, int]:
    """``--shard I/N``; else ``--shards N`` and JOB_COMPLETION_INDEX; else 1/1."""
    if args.shard is not None:
        return args.shard  # type: ignore[no-any-return]
    if args.shards is not None:
        return shard_from_index(args.shards, os.environ.get("JOB_COMPLETION_INDEX"))
    return 1, 1


def _fleet(args: argparse.Namespace) -> int:
    setup_logging(args)
    try:
        args.shard = _which_shard(args)
    except FleetError as exc:
        return fail(str(exc))
    try:
        pki = LabPki.load(args.pki)
        capf = pki.cluster(args.cluster).capf
        macs = fleet_macs(args.phones, args.mac_start, args.shard)
    except (PkiError, FleetError) as exc:
        return fail(str(exc))
    to_stdout = args.report is not None and str(args.report) == "-"
    progress = progress_for(args)
    t0 = time.monotonic()
    try:
        if args.enroll:
            if pki.manufacturing_ca is None:
                return fail(f"{args.pki}: the lab PKI has no manufacturing CA (regenerate it)")
            ids = make_mic_identities(
                pki.manufacturing_ca, macs, model=args.model, shared_key=args.shared_key
            )
        else:
            ids = make_identities(capf, macs, model=args.model, shared_key=args.shared_key)
        phones = make_phones(ids, args.state_dir)
    except (IdentityError, StateError) as exc:
        return fail(str(exc))
    issue_time = time.monotonic() - t0
    options = NetworkOptions(
        boot=BootOptions(
            register=not args.no_register,
            capf_auth_string=args.capf_auth_string,
            capf_interval=max(0.0, args.capf_interval),
        ),
        lists=TrustListCache(max_entries=64),
        tftp_blksize=args.tftp_blksize,
        fetch=fetch_options(args),
    )
    i, n = args.shard
    mac_of = {x: m for x, m in macs}
    befores = [(snapshot(p.trust, p.config), p.config) for p in phones]
    entries: list[dict[str, Any]] = []
    target = f"{args.tftp[0]}:{args.tftp[1]}"
    progress.begin(
        f"shard {i}/{n}: {len(phones)} phones -> {args.tftp[0]}:{args.tftp[1]}", len(phones)
    )

    pos = {x: k for k, (x, _) in enumerate(macs)}

    def done(b: FleetBoot) -> None:
        k = pos[b.index]
        phone = phones[k]
        after = snapshot(phone.trust, phone.config)
        before, config_before = befores[k]
        entries.append(fleet_entry(b, mac_of[b.index], before, after, config_before, target))
        progress.advance(b.result.state.value if b.result else "error")

    started_at = time.time()
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
    result = FleetSummary.of(
        boots,
        tftp=target,
        shard=(i, n),
        lsc_issue_time=issue_time,
        boot_time=boot_time,
        peak_rss_mb=peak_rss_mb(),
    )
    summary = result.to_dict()
    if args.report:
        fleet = {
            "phones": args.phones,
            "phones_in_shard": len(boots),
            "shard": [i, n],
            "concurrency": args.concurrency or 64,
            "register": not args.no_register,
            "tftp_blksize": args.tftp_blksize,
            "mac_start": args.mac_start,
            "model": args.model,
            "enroll": args.enroll,
        }
        extra = {k: summary[k] for k in ("reasons", "enrolled", "lsc_issue_time", "boot_time")}
        extra["boots_per_second"] = summary["boots_per_second"]
        extra["peak_rss_mb"] = summary["peak_rss_mb"]
        report = fleet_report(
            entries,
            target=target,
            shard=(i, n),
            started_at=started_at,
            boot_time=boot_time,
            fleet=fleet,
            extra_summary=extra,
        )
        report["phones_detail"] = [boot_detail(b) for b in boots]
        if to_stdout:
            print(json.dumps(report, indent=2))
        else:
            try:
                args.report.parent.mkdir(parents=True, exist_ok=True)
                write_json(args.report, report)
            except OSError as exc:
                return fail(f"{args.report}: {exc.strerror or exc}")
    if to_stdout:
        pass  # stdout holds the one JSON document
    elif args.json:
        print(json.dumps(summary, indent=2))
    else:
        Console().print(_table(result))
    if result.exit_code == ExitCode.ERROR:  # the one line saying why, on stderr
        failed = result.states.get("error", 0)
        reason = next((r for r in result.reasons if r != "ok"), "error")
        print(
            f"phone-emu fleet: error: TFTP {target}: {failed} of {result.phones} phones could "
            f"not boot (first reason {reason})",
            file=sys.stderr,
        )
    return result.exit_code


def _table(summary: FleetSummary) -> Table:
    """The terminal summary: times and memory in the title, phones by first failing reason."""
    i, n = summary.shard
    t = Table(
        title=f"fleet {i}/{n}: {summary.phones} phones, boot {summary.boot_time:.1f}s "
        f"({summary.boots_per_second}/s), LSCs {summary.lsc_issue_time:.1f}s, "
        f"peak {summary.peak_rss_mb:.0f} MiB",
        title_justify="left",
    )
    t.add_column("first failing step reason")
    t.add_column("phones", justify="right")
    for reason, count in summary.reasons.items():
        t.add_row(reason, str(count))
    return t
