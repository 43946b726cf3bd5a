"""``tvs trace FILE...`` and ``tvs trace diff EXPECTED ACTUAL``: timelines from traces.

``trace`` reads CUCM TVS detailed traces and phone console logs (any mix, line breaks lost or
not) and prints the timeline. ``trace diff`` compares two timelines and names the first
divergence. Since FILE may be any path, ``diff`` is recognised only as the first word; to read
a file named ``diff``, write ``./diff``. A FILE may be ``-`` (standard input) or a directory
(every file in it, by name), so a lab run's cluster and phone logs can be given together.

A FILE may also be a packet capture (pcap or pcapng): its TVS and CAPF exchanges are decrypted
with ``--keylog`` by ``tshark`` (needed for captures; said plainly when missing) and become
timeline events too (:mod:`tvs.trace.capture`).

Exit codes: ``trace`` 0 timeline printed, 1 nothing recognised, 2 unreadable input;
``trace diff`` 0 same, 1 divergence, 2 unreadable input or nothing to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..exitcodes import ExitCode
from ..trace import (
    build_timeline,
    diff_timelines,
    diff_to_dict,
    format_diff,
    format_timeline,
    timeline_to_dict,
)
from ..trace.capture import DEFAULT_PORTS, CaptureError, capture_events, is_capture, read_capture
from ..trace.model import Timeline
from ..trace.timeline import events_timeline
from .common import CommandError, describe_error

__all__ = ["register"]

_USAGE = (
    "tvs trace FILE... [--keylog KEYS] [--port N]... [--json] [--brief]\n"
    "       tvs trace diff EXPECTED ACTUAL [--keylog KEYS] [--json]"
)


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
    _capture_options(p)
    p.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="FILE",
        help="trace files or packet captures (pcap/pcapng), - = stdin",
    )
    p.set_defaults(func=_dispatch)


def _capture_options(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    p.add_argument(
        "--keylog",
        type=Path,
        metavar="KEYS",
        default=None if defaults else argparse.SUPPRESS,
        help="TLS key log (SSLKEYLOGFILE; tvs serve/cluster serve --keylog) to decrypt the "
        "TVS and CAPF exchanges of a capture; captures are read with tshark",
    )
    p.add_argument(
        "--port",
        type=int,
        action="append",
        metavar="N",
        default=None if defaults else argparse.SUPPRESS,
        help="TCP port of TVS/CAPF in a capture (repeat; default 2445 and 3804)",
    )


def _files_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvs trace", usage=_USAGE)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--brief", action="store_true", help="summaries only, no decoded messages")
    _capture_options(p, defaults=False)
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
    _capture_options(p, defaults=False)
    p.add_argument(
        "--ignore",
        default="",
        metavar="FIELDS",
        help="comma-separated fields not to compare (e.g. serial,length when a lab PKI "
        "stands in for the real certificates)",
    )
    return p


def _fail(message: str) -> int:
    raise CommandError(message)


def _read(path: str) -> list[tuple[str, str | None]]:
    """(name, text) per file; text None for a packet capture (read with tshark)."""
    if path == "-":
        return [("<stdin>", sys.stdin.read())]
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    out: list[tuple[str, str | None]] = []
    for f in files:
        data = f.read_bytes()
        out.append((str(f), None if is_capture(data[:4]) else data.decode("utf-8", "replace")))
    return out


def _timeline(paths: Sequence[str], capture: argparse.Namespace | None = None) -> Timeline:
    texts: list[tuple[str, str]] = []
    captures: list[Timeline] = []
    keylog = getattr(capture, "keylog", None)
    ports = tuple(getattr(capture, "port", None) or DEFAULT_PORTS)
    if keylog is not None and not keylog.is_file():
        raise CommandError(f"--keylog {keylog}: no such file")
    for path in paths:
        for name, text in _read(path):
            if text is not None:
                texts.append((name, text))
                continue
            try:
                segments = read_capture(Path(name), keylog=keylog, ports=ports)
            except CaptureError as exc:
                raise CommandError(str(exc)) from None
            events = capture_events(segments, server_ports=ports)
            if not any(e.message is not None for e in events) and segments:
                hint = "give --keylog KEYS" if keylog is None else "does --keylog match it?"
                print(
                    f"tvs trace: note: {name}: no TVS or CAPF message could be decrypted "
                    f"({len(segments)} TCP segments on ports {', '.join(map(str, ports))}; "
                    f"{hint})",
                    file=sys.stderr,
                )
            captures.append(events_timeline(name, events))
    timeline = build_timeline(texts) if texts else Timeline(events=())
    for cap in captures:
        timeline = Timeline(
            events=timeline.events + cap.events, files=timeline.files + cap.files
        )
    return timeline


def _dispatch(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if rest and rest[0] == "diff":
        d = _diff_parser().parse_args(rest[1:], namespace=_capture_defaults(args))
        return _diff(d.expected, d.actual, as_json=d.json or args.json, ignore=d.ignore, cap=d)
    if not rest:
        return _fail("give FILE... or diff EXPECTED ACTUAL")
    f = _files_parser().parse_args(rest, namespace=_capture_defaults(args))
    return _trace(f.files, as_json=f.json or args.json, brief=f.brief, cap=f)


def _capture_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The capture options given before FILE (``tvs trace --keylog K cap.pcapng``)."""
    return argparse.Namespace(keylog=args.keylog, port=args.port)


def _trace(
    paths: Sequence[str], *, as_json: bool, brief: bool, cap: argparse.Namespace | None = None
) -> int:
    try:
        timeline = _timeline(paths, cap)
    except OSError as exc:
        return _fail(describe_error(exc))
    if as_json:
        json.dump(timeline_to_dict(timeline), sys.stdout, indent=2)
        print()
    else:
        for line in format_timeline(timeline, details=not brief):
            print(line)
    return ExitCode.OK if timeline.events else ExitCode.INVALID


def _diff(
    expected: str,
    actual: str,
    *,
    as_json: bool,
    ignore: str,
    cap: argparse.Namespace | None = None,
) -> int:
    try:
        exp, act = _timeline([expected], cap), _timeline([actual], cap)
    except OSError as exc:
        return _fail(describe_error(exc))
    fields = [f.strip() for f in ignore.split(",") if f.strip()]
    result = diff_timelines(exp, act, ignore=fields)
    if as_json:
        json.dump(diff_to_dict(result), sys.stdout, indent=2)
        print()
    else:
        for line in format_diff(result):
            print(line)
    if not result.compared:
        return ExitCode.ERROR
    return ExitCode.OK if result.same else ExitCode.INVALID
