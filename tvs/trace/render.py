"""Text and JSON views of timelines and diffs (for ``tvs trace``). Presentation only."""

from __future__ import annotations

from typing import Any

from ..capf.describe import capf_to_dict
from ..wire import message_to_dict
from .diff import Divergence, TraceDiff
from .model import Event, Timeline

__all__ = ["diff_to_dict", "event_to_dict", "format_diff", "format_timeline", "timeline_to_dict"]


def event_to_dict(ev: Event, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if index is not None:
        out["step"] = index
    out.update(
        source=ev.source.value,
        kind=ev.kind.value,
        time=ev.time,
        file=ev.file,
        line=ev.line,
        summary=ev.summary,
        fields=ev.fields,
    )
    mb = ev.message
    if mb is not None:
        msg: dict[str, Any] = {
            "declared_length": mb.declared_length,
            "present": len(mb.data),
            "truncated": mb.truncated,
            "hex": mb.data.hex(),
        }
        ins = mb.inspection
        if mb.capf is not None:
            if mb.capf.message is not None:
                msg["decoded"] = capf_to_dict(mb.capf.message)
            else:
                msg["note"] = mb.capf.error
        if ins is not None and ins.message is not None:
            msg["decoded"] = message_to_dict(ins.message)
        elif ins is not None and ins.header is not None:
            h = ins.header
            msg["header"] = {
                "discriminator": h.discriminator,
                "version": h.version,
                "type": h.type,
                "reserved": h.reserved,
                "request_id": h.request_id,
                "length": h.length,
            }
            if ins.cut_element is not None:
                tag, declared, present = ins.cut_element
                msg["cut_element"] = {
                    "tag": tag,
                    "declared_length": declared,
                    "present": len(present),
                }
        if ins is not None and ins.error:
            msg["note"] = ins.error
        out["message"] = msg
    return out


def timeline_to_dict(t: Timeline) -> dict[str, Any]:
    return {
        "files": list(t.files),
        "messages": len(t.messages),
        "events": [event_to_dict(e, i) for i, e in enumerate(t.events, start=1)],
        "stopped": t.stopped(),
    }


def _time(ev: Event) -> str:
    return (ev.time or "").split(" ")[-1]


def format_timeline(t: Timeline, *, details: bool = True) -> list[str]:
    cut = sum(1 for e in t.messages if e.message is not None and e.message.truncated)
    lines = [
        f"{', '.join(t.files) or '<text>'}: {len(t.events)} events, "
        f"{len(t.messages)} messages ({cut} cut short)"
    ]
    for i, ev in enumerate(t.events, start=1):
        lines.append(f"{i:3} {ev.source.value:<5} {_time(ev):<15} {ev.kind.value:<16} {ev.summary}")
        if details:
            lines += [f"{'':26}{d}" for d in ev.detail]
    lines.append(t.stopped())
    return lines


def _div_dict(d: Divergence) -> dict[str, Any]:
    return {
        "source": d.source.value,
        "step": d.step,
        "field": d.field,
        "reason": d.reason,
        "expected": event_to_dict(d.expected) if d.expected is not None else None,
        "actual": event_to_dict(d.actual) if d.actual is not None else None,
    }


def diff_to_dict(diff: TraceDiff) -> dict[str, Any]:
    return {
        "same": diff.same,
        "compared": [s.value for s in diff.compared],
        "matched_steps": diff.matched,
        "divergence": _div_dict(diff.divergence) if diff.divergence is not None else None,
        "note": diff.note or None,
    }


def format_diff(diff: TraceDiff) -> list[str]:
    sides = ", ".join(s.value for s in diff.compared) or "nothing"
    lines = [f"compared: {sides}; {diff.matched} steps match"]
    d = diff.divergence
    if d is None:
        lines.append("no divergence" if diff.compared else "no common side to compare")
    else:
        lines.append(f"first divergence: {d.source.value} step {d.step}: {d.reason}")
        for label, ev in (("expected", d.expected), ("actual", d.actual)):
            if ev is not None:
                lines.append(f"  {label + ':':<9} {ev.summary}  [{ev.where}]")
            else:
                lines.append(f"  {label + ':':<9} (nothing)")
    if diff.note:
        lines.append(diff.note)
    return lines
