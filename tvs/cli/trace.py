"""``tvs trace FILE...`` and ``tvs trace diff EXPECTED ACTUAL``: timelines from traces.

``trace`` reads CUCM TVS detailed traces and phone console logs (any mix, line breaks lost or
not) and prints the timeline. ``trace diff`` compares two timelines and names the first
divergence. Since FILE may be any path, ``diff`` is recognised only as the first word; to read
a file named ``diff``, write ``./diff``. A FILE may be ``-`` (standard input) or a directory
(every file in it, by name), so a lab run's cluster and phone logs can be given together.

Exit codes: ``trace`` 0 timeline printed, 1 nothing recognised, 2 unreadable input;
``trace diff`` 0 same, 1 divergence, 2 unreadable input or nothing to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..trace import (
    build_timeline,
    diff_timelines,
    diff_to_dict,
    format_diff,
    format_timeline,
    timeline_to_dict,
)
from ..trace.model import Timeline

__all__ = ["register"]

_USAGE = "tvs trace FILE... [--json] [--brief]\n       tvs trace diff EXPECTED ACTUAL [--json]"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "trace",
        help="timeline of TVS traces / phone console logs; trace diff compares two",
        usage=_USAGE,
        description="Read CUCM TVS detailed traces and phone console logs into a timeline "
        "(files fetched, signers asked about, TVS answers, where it stopped), or with "
        "'diff EXPECTED ACTUAL' name the first step where two timelines diverge. "
        "Run 'tvs trace diff --help' for the diff options.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="FILE", help="trace files, - = stdin")
    p.set_defaults(func=_dispatch)


def _files_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvs trace", usage=_USAGE)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--brief", action="store_true", help="summaries only, no decoded messages")
    return p


def _diff_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tvs trace diff",
        description="Compare ACTUAL's timeline with EXPECTED's, step by step, and name the "
        "first divergence. Each is a file, a directory (its files together) or -.",
    )
    p.add_argument("expected", metavar="EXPECTED")
    p.add_argument("actual", metavar="ACTUAL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--ignore",
        default="",
        metavar="FIELDS",
        help="comma-separated fields not to compare (e.g. serial,length when a lab PKI "
        "stands in for the real certificates)",
    )
    return p


def _fail(message: str) -> int:
    print(f"tvs trace: {message}", file=sys.stderr)
    return 2


def _read(path: str) -> list[tuple[str, str]]:
    if path == "-":
        return [("<stdin>", sys.stdin.read())]
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    return [(str(f), f.read_text(encoding="utf-8", errors="replace")) for f in files]


def _timeline(paths: Sequence[str]) -> Timeline:
    texts: list[tuple[str, str]] = []
    for path in paths:
        texts += _read(path)
    return build_timeline(texts)


def _dispatch(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if rest and rest[0] == "diff":
        d = _diff_parser().parse_args(rest[1:])
        return _diff(d.expected, d.actual, as_json=d.json or args.json, ignore=d.ignore)
    if not rest:
        return _fail("give FILE... or diff EXPECTED ACTUAL")
    f = _files_parser().parse_args(rest)
    return _trace(f.files, as_json=f.json or args.json, brief=f.brief)


def _trace(paths: Sequence[str], *, as_json: bool, brief: bool) -> int:
    try:
        timeline = _timeline(paths)
    except OSError as exc:
        return _fail(str(exc))
    if as_json:
        json.dump(timeline_to_dict(timeline), sys.stdout, indent=2)
        print()
    else:
        for line in format_timeline(timeline, details=not brief):
            print(line)
    return 0 if timeline.events else 1


def _diff(expected: str, actual: str, *, as_json: bool, ignore: str) -> int:
    try:
        exp, act = _timeline([expected]), _timeline([actual])
    except OSError as exc:
        return _fail(str(exc))
    fields = [f.strip() for f in ignore.split(",") if f.strip()]
    result = diff_timelines(exp, act, ignore=fields)
    if as_json:
        json.dump(diff_to_dict(result), sys.stdout, indent=2)
        print()
    else:
        for line in format_diff(result):
            print(line)
    if not result.compared:
        return 2
    return 0 if result.same else 1
