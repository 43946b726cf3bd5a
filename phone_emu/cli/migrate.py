"""``phone-emu migrate``: migrate a fleet between two clusters and report per phone.

Owns the command's flags and turning them into a scenario (``--method``, ``--back``; or a named
``--scenario``) and the clusters started elsewhere (``--source``, ``--destination``), then
printing or writing the report (summary table, ``--json``, ``--report``, ``--html``). Does not
own running it (``phone_emu.lab.migrate``). Exit 0 every phone did what was expected, 1 some
did not, 2 usage, configuration or lab error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from ..lab.migrate import run_scenario
from ..lab.progress import summary_table
from ..lab.report import write_html, write_json
from ..lab.scenarios import find_scenario, load_scenarios, migration_scenario
from .lab_options import (
    EXIT_DIFFERS,
    EXIT_OK,
    LAB_ERRORS,
    add_lab_options,
    add_phones,
    fail,
    hostport,
    load_lab,
    progress_for,
    run_options,
    setup_logging,
)

__all__ = ["register"]


def register(sub: Any) -> None:
    m = sub.add_parser(
        "migrate",
        help="migrate a fleet between two emulated clusters and report per phone",
        description="Start both clusters in-process (the embedded seed lab by default), boot "
        "the fleet on the source, import (bulk or manual), point DHCP option 150 at the "
        "destination, reboot the fleet and report per phone. Exit 0 every phone did what "
        "was expected, 1 some did not, 2 lab error.",
    )
    add_lab_options(m)
    add_phones(m, "fleet size (default 50)")
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
        type=hostport,
        metavar="HOST:PORT",
        help="TFTP of a source cluster started elsewhere (import steps need it here)",
    )
    m.add_argument(
        "--destination",
        type=hostport,
        metavar="HOST:PORT",
        help="TFTP of a destination cluster started elsewhere",
    )
    m.add_argument("--report", type=Path, metavar="FILE.json", help="write the JSON report")
    m.add_argument("--html", type=Path, metavar="FILE.html", help="write the HTML report")
    m.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    setup_logging(args)
    out = Console()
    progress = progress_for(args)
    try:
        lab = load_lab(args)
        if args.scenario:
            scenario = find_scenario(args.scenario, load_scenarios())
            if args.back:
                return fail("--back is part of the migration; scenarios declare their own steps")
        else:
            elsewhere = args.source is not None or args.destination is not None
            method = args.method or ("none" if elsewhere else "bulk")
            scenario = migration_scenario(method, back=args.back, phones=lab.fleet.phones)
        external = {
            role: addr
            for role, addr in (("source", args.source), ("destination", args.destination))
            if addr is not None
        }
        opts = run_options(args, progress, external=external)
        report = trio.run(run_scenario, lab, scenario, opts)
    except LAB_ERRORS as exc:
        return fail(str(exc))
    _emit(report, args, out)
    return EXIT_OK if report["passed"] else EXIT_DIFFERS


def _emit(report: dict[str, Any], args: argparse.Namespace, out: Console) -> None:
    if args.report:
        write_json(args.report, report)
    if args.html:
        write_html(args.html, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(summary_table(report))
        for what, path in (("JSON report", args.report), ("HTML report", args.html)):
            if path:
                out.print(f"{what}: {path}", highlight=False)
