"""``phone-emu report merge``: one report and one HTML page from the reports of a fleet's shards.

Owns the command's flags (the shard reports, ``--report``, ``--html``, ``--json``) and reading
the shard files; the merge itself is ``phone_emu.lab.shards.merge_reports`` and the formats
``phone_emu.lab.report``. Exit 0 every shard is there and every phone booted or migrated, 1 a
shard is missing or some phone stayed or failed, 2 an unreadable or inconsistent report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ..lab.progress import summary_table
from ..lab.report import write_html, write_json
from ..lab.shards import MergeError, merge_reports
from .lab_options import EXIT_DIFFERS, EXIT_OK, fail

__all__ = ["register"]


def register(sub: Any) -> None:
    r = sub.add_parser("report", help="work with lab reports (merge shard reports)")
    rsub = r.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    m = rsub.add_parser(
        "merge",
        help="merge the reports of a fleet's shards into one report and one HTML page",
        description="Combine `phone-emu fleet --report` files of the shards of one fleet (any "
        "order) into the report the fleet would give as one shard, timings on a common clock. "
        "Exit 0 all shards there and every phone booted or migrated, 1 a shard missing or "
        "some phone stayed or failed, 2 unreadable or inconsistent reports.",
    )
    m.add_argument(
        "shards",
        nargs="+",
        type=Path,
        metavar="SHARD.json",
        help="shard reports, or directories of them (every *.json inside)",
    )
    m.add_argument("--report", type=Path, metavar="ALL.json", help="write the merged report")
    m.add_argument("--html", type=Path, metavar="ALL.html", help="write the merged HTML page")
    m.add_argument("--json", action="store_true", help="print the merged report on stdout")
    m.set_defaults(func=_merge)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise MergeError(f"{path}: not a JSON report (not an object)")
    return data


def _files(paths: list[Path]) -> list[Path]:
    """The shard files: each path, or every ``*.json`` in a directory (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise MergeError(f"{p}: no *.json shard reports in this directory")
            out += found
        else:
            out.append(p)
    return out


def _merge(args: argparse.Namespace) -> int:
    try:
        files = _files(args.shards)
        reports = [_load(p) for p in files]
        merged = merge_reports(reports, [str(p) for p in files])
    except (MergeError, KeyError, TypeError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, MergeError) else f"malformed shard report ({exc!r})"
        return fail(detail)
    try:
        if args.report:
            write_json(args.report, merged)
        if args.html:
            write_html(args.html, merged)
    except OSError as exc:
        return fail(f"{exc.filename}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps(merged, indent=2))
    else:
        out = Console()
        out.print(summary_table(merged))
        if merged["missing_shards"]:
            shards = ", ".join(map(str, merged["missing_shards"]))
            out.print(f"[red]missing shard(s): {shards}[/red]")
    return EXIT_OK if merged["passed"] else EXIT_DIFFERS
