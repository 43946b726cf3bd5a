"""``phone-emu scenarios list`` and ``scenarios run``: the migration scenario suite.

Owns listing the scenarios (the packaged suite plus ``--dir``; a table or ``--json``) and
running some or ``--all`` of them one after another with one summary table per scenario and a
suite table at the end. Does not own the scenario format (``phone_emu.lab.scenarios``) nor
running one (``phone_emu.lab.migrate``). ``run`` exits 1 if any scenario's outcome differs from
its expectation, 2 on a usage, configuration or lab error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from ..lab.migrate import run_scenario
from ..lab.progress import summary_table
from ..lab.scenarios import Scenario, ScenarioError, find_scenario, load_scenarios
from .lab_options import (
    EXIT_DIFFERS,
    EXIT_OK,
    LAB_ERRORS,
    add_lab_options,
    add_phones,
    add_scenario_dirs,
    fail,
    load_lab,
    progress_for,
    run_options,
    setup_logging,
)

__all__ = ["register"]


def register(sub: Any) -> None:
    s = sub.add_parser(
        "scenarios",
        help="list or run the migration scenario suite",
        description="Scenarios are TOML files (phone_emu/lab/scenarios/*.toml, plus --dir). "
        "`run --all` exits 1 if any scenario's outcome differs from its expectation.",
    )
    ssub = s.add_subparsers(dest="scenarios_command", metavar="COMMAND", required=True)
    sl = ssub.add_parser("list", help="list the scenarios")
    add_scenario_dirs(sl)
    sl.add_argument("--json", action="store_true", help="JSON on stdout")
    sl.set_defaults(func=_list)
    sr = ssub.add_parser("run", help="run scenarios by name, or --all")
    sr.add_argument("names", nargs="*", metavar="NAME")
    sr.add_argument("--all", action="store_true", help="run every scenario")
    add_scenario_dirs(sr)
    add_phones(sr, "fleet size for every scenario (default: each scenario's own)")
    sr.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="write every scenario's report (a JSON list)",
    )
    sr.add_argument("--json", action="store_true", help="print the reports on stdout")
    add_lab_options(sr)
    sr.set_defaults(func=_run)


# --- list ----------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    try:
        scenarios = load_scenarios(args.dir)
    except ScenarioError as exc:
        return fail(str(exc))
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


# --- run -----------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    setup_logging(args)
    try:
        scenarios = load_scenarios(args.dir)
        if args.all:
            chosen = scenarios
        elif args.names:
            chosen = [find_scenario(n, scenarios) for n in args.names]
        else:
            return fail("scenarios run: name one or more scenarios, or --all")
        lab = load_lab(args)
    except LAB_ERRORS as exc:
        return fail(str(exc))
    out = Console()
    progress = progress_for(args)
    reports = []
    for s in chosen:
        progress.note(f"[bold]scenario {s.name}[/bold]: {s.description}")
        try:
            report = trio.run(run_scenario, lab, s, run_options(args, progress))
        except LAB_ERRORS as exc:
            return fail(f"scenario {s.name}: {exc}")
        reports.append(report)
        if not args.json:
            out.print(summary_table(report))
    if args.report:
        args.report.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        out.print(_suite_table(reports))
    return EXIT_OK if all(r["passed"] for r in reports) else EXIT_DIFFERS


def _suite_table(reports: Sequence[dict[str, Any]]) -> Table:
    """One row per scenario run: phones, as expected or not, final outcomes, wall time."""
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
    return t
