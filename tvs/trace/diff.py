"""Comparing two timelines step by step and naming the first divergence.

Owns the comparison rules: only the core steps (:data:`~tvs.trace.model.CORE_KINDS`) of the
sides both timelines have (phone, TVS) are compared, each side in its own order; a step matches
when its kind is the same and every compared field known on *both* sides agrees (a dump cut
short leaves fields unknown, which is not a divergence). Names are compared by attributes
(``tvs.names.names_match``), roles as sets. The first divergence is the earliest one in the
expected timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ..names import names_match
from ..roles import role_names
from .model import CORE_KINDS, Event, Kind, Source, Timeline

__all__ = ["COMPARED_FIELDS", "Divergence", "TraceDiff", "diff_timelines"]

COMPARED_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.FILE_REQUEST: ("file",),
    Kind.CONNECTION: (),
    Kind.HANDSHAKE: (),
    Kind.HANDSHAKE_FAILED: (),
    Kind.REQUEST: ("type", "device", "subject", "issuer", "serial", "length"),
    Kind.LOOKUP: ("found", "roles"),
    Kind.RESPONSE: ("type", "status", "roles", "ttl", "length"),
    Kind.TVS_CACHE: ("ttl",),
    Kind.TRUST_LIST: ("verified", "updated", "ok"),
    Kind.STATUS: ("text",),
    Kind.FAILURE: ("what",),
}
_NAME_FIELDS = frozenset({"subject", "issuer"})


@attrs.frozen
class Divergence:
    """The first step where the timelines differ. ``step`` counts that side's compared steps
    from 1; ``expected``/``actual`` is None where one timeline has no such step."""

    source: Source
    step: int
    expected: Event | None
    actual: Event | None
    reason: str
    field: str | None = None
    position: int = 0  # index in the expected timeline, for ordering


@attrs.frozen
class TraceDiff:
    compared: tuple[Source, ...]
    matched: int
    divergence: Divergence | None
    note: str = ""

    @property
    def same(self) -> bool:
        return self.divergence is None and bool(self.compared)


def _show(field: str, value: Any) -> str:
    if field == "roles" and isinstance(value, list):
        return ", ".join(role_names(value)) or "none"
    return str(value)


def _field_conflict(field: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if field in _NAME_FIELDS and isinstance(a, str) and isinstance(b, str):
        try:
            return not names_match(a, b)
        except ValueError:
            return a != b
    if field == "roles":
        return sorted(a) != sorted(b)
    if field == "serial" and isinstance(a, str) and isinstance(b, str):
        return a.upper().lstrip("0") != b.upper().lstrip("0")
    return bool(a != b)


def _compare(exp: Event, act: Event, ignore: frozenset[str]) -> tuple[str, str | None] | None:
    if exp.kind != act.kind:
        return (
            f"expected {exp.kind.value} ({exp.summary}), actual {act.kind.value} ({act.summary})",
            None,
        )
    for field in COMPARED_FIELDS.get(exp.kind, ()):
        if field in ignore:
            continue
        a, b = exp.fields.get(field), act.fields.get(field)
        if _field_conflict(field, a, b):
            return (
                f"{exp.kind.value} {field}: expected {_show(field, a)}, actual {_show(field, b)}",
                field,
            )
    return None


def _steps(timeline: Timeline, source: Source) -> list[tuple[int, Event]]:
    return [
        (i, e) for i, e in enumerate(timeline.events) if e.source == source and e.kind in CORE_KINDS
    ]


def _diff_side(
    expected: Timeline, actual: Timeline, source: Source, ignore: frozenset[str]
) -> tuple[int, Divergence | None]:
    exp, act = _steps(expected, source), _steps(actual, source)
    for n, ((pos, e), (_, a)) in enumerate(zip(exp, act, strict=False), start=1):
        found = _compare(e, a, ignore)
        if found is not None:
            reason, field = found
            return n - 1, Divergence(source, n, e, a, reason, field, pos)
    n = min(len(exp), len(act))
    if len(exp) > n:
        pos, e = exp[n]
        reason = f"the actual {source.value} trace stops; expected next: {e.summary}"
        return n, Divergence(source, n + 1, e, None, reason, None, pos)
    if len(act) > n:
        a = act[n][1]
        pos = exp[-1][0] + 1 if exp else 0
        reason = f"the actual {source.value} trace goes on: {a.summary}"
        return n, Divergence(source, n + 1, None, a, reason, None, pos)
    return n, None


def diff_timelines(
    expected: Timeline, actual: Timeline, *, ignore: Iterable[str] = ()
) -> TraceDiff:
    """Compare ``actual`` with ``expected``; ``ignore`` names fields not to compare
    (e.g. ``serial`` when a lab PKI stands in for the real one)."""
    skip = frozenset(ignore)
    sides = tuple(s for s in Source if s in expected.sources and s in actual.sources)
    if not sides:
        note = f"nothing to compare: expected has {_sides(expected)}, actual has {_sides(actual)}"
        return TraceDiff((), 0, None, note)
    matched = 0
    first: Divergence | None = None
    for side in sides:
        n, div = _diff_side(expected, actual, side, skip)
        matched += n
        if div is not None and (first is None or div.position < first.position):
            first = div
    only = [s.value for s in Source if (s in expected.sources) != (s in actual.sources)]
    note = f"not compared (only one timeline has it): {', '.join(only)}" if only else ""
    return TraceDiff(sides, matched, first, note)


def _sides(t: Timeline) -> str:
    return " and ".join(sorted(s.value for s in t.sources)) or "no events"
