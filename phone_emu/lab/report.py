"""Migration reports: the JSON document and a self-contained HTML page with inline SVG charts.

Owns the report's file formats. The JSON report (``phone-emu migrate --report``) holds
``phones`` (one object per phone with at least ``device``, ``outcome``, ``step``, ``reason``),
``steps`` (what the run did, with per-step counts and expectation checks) and ``summary``. The
HTML page (``--html``) is rendered from that same dictionary, so a saved JSON report can be
rendered again; it has a chart of phones migrated over time and a bar chart of failures by
reason, drawn as inline SVG (no scripts, no external resources). Does not own the run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = [
    "failure_chart",
    "failures_by_reason",
    "migration_chart",
    "migration_series",
    "render_html",
    "write_html",
    "write_json",
]

_COLORS: Final = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22")
_OUTCOME_COLORS: Final = {
    "migrated": "#2ca02c",
    "booted": "#1f77b4",
    "stayed": "#ff7f0e",
    "failed": "#d62728",
}


def write_json(path: str | Path, report: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_html(path: str | Path, report: Mapping[str, Any]) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _nice_max(v: float) -> float:
    """A round axis maximum at or above ``v``."""
    if v <= 0:
        return 1.0
    for m in (1, 2, 2.5, 5, 10):
        scale = 10 ** (len(str(int(v))) - 1) if v >= 1 else 0.1
        if v <= m * scale:
            return float(m * scale)
    return float(v)


def migration_chart(series: Sequence[Mapping[str, Any]], *, width: int = 640) -> str:
    """Cumulative phones migrated against seconds since each boot step started (SVG)."""
    height, left, right, top, bottom = 260, 56, 16, 16, 40
    pw, ph = width - left - right, height - top - bottom
    total = max((len(s["times"]) for s in series), default=0)
    t_max = _nice_max(max((max(s["times"], default=0.0) for s in series), default=0.0))
    y_max = _nice_max(float(max(total, 1)))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="phones migrated over time">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for i in range(5):
        y = top + ph - ph * i / 4
        t = t_max * i / 4
        x = left + pw * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{y_max * i / 4:g}</text>"
        )
        out.append(
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">'
            f"{t:.3g}</text>"
        )
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" font-size="12">'
        "seconds since the boot step started</text>"
    )
    out.append(
        f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + ph / 2})">phones migrated</text>'
    )
    if not any(s["times"] for s in series):
        out.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
            f'font-size="14" fill="#888">no phone migrated</text>'
        )
    for n, s in enumerate(series):
        color = _COLORS[n % len(_COLORS)]
        pts: list[tuple[float, float]] = [(float(left), float(top + ph))]
        for count, t in _steps(sorted(s["times"])):
            x = left + pw * t / t_max
            pts.append((x, pts[-1][1]))
            pts.append((x, top + ph - ph * count / y_max))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 14 + 16 * n
        out.append(
            f'<rect x="{left + 10}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + 26}" y="{ly}" font-size="12">{_e(s["label"])} '
            f"({len(s['times'])} phones)</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _steps(times: list[float], limit: int = 1000) -> list[tuple[int, float]]:
    """(phones migrated so far, time) for the cumulative line, at most ``limit`` points."""
    n = len(times)
    if n <= limit:
        return [(i + 1, t) for i, t in enumerate(times)]
    picks = sorted({(j * n) // limit for j in range(1, limit)} | {n - 1})
    return [(i + 1, times[i]) for i in picks]


def failure_chart(counts: Mapping[str, int], *, width: int = 640) -> str:
    """Horizontal bars: phones that did not migrate, by reason code (SVG)."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    bar, gap, left, right, top = 22, 8, 260, 60, 10
    height = max(60, top * 2 + len(rows) * (bar + gap))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="failures by reason">'
    ]
    if not rows:
        out.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="14" '
            f'fill="#888">no failures</text></svg>'
        )
        return "\n".join(out)
    top_count = max(v for _, v in rows)
    pw = width - left - right
    for i, (reason, count) in enumerate(rows):
        y = top + i * (bar + gap)
        w = max(2.0, pw * count / top_count)
        out.append(
            f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end" font-size="12">'
            f"{_e(reason)}</text>"
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#d62728"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + bar * 0.7:.1f}" font-size="12">{count}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def migration_series(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One series per boot step that follows a move: when each phone migrated."""
    out = []
    for step in report.get("steps", []):
        if step.get("action") == "boot" and step.get("after_move"):
            out.append(
                {
                    "label": f"step {step['index']}: to the {step.get('cluster', '?')}",
                    "times": list(step.get("migrated_times", [])),
                }
            )
    return out


def failures_by_reason(report: Mapping[str, Any]) -> dict[str, int]:
    """Phones that stayed or failed, by reason code and boot step (``reason (step N)``)."""
    counts: dict[str, int] = {}
    for step in report.get("steps", []):
        for reason, n in step.get("not_migrated", {}).items():
            key = f"{reason} (step {step['index']})"
            counts[key] = counts.get(key, 0) + n
    return counts


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:980px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f3f3} .ok{color:#2ca02c;font-weight:bold} .bad{color:#d62728;font-weight:bold}
.cards span{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:8px 14px;
margin:0 8px 8px 0;font-size:15px}
"""


def render_html(report: Mapping[str, Any], *, max_phone_rows: int = 500) -> str:
    """The whole page as a string (UTF-8, no external resources, no scripts)."""
    s = report.get("summary", {})
    passed = report.get("passed")
    verdict = (
        '<span class="ok">as expected</span>'
        if passed
        else '<span class="bad">differs from the expectation</span>'
    )
    cards = "".join(
        f'<span style="border-color:{_OUTCOME_COLORS.get(k, "#ddd")}">{_e(k)}: '
        f"<b>{s.get(k, 0)}</b></span>"
        for k in ("migrated", "stayed", "failed", "booted")
        if k != "booted" or s.get(k)
    )
    lab = report.get("lab", {})
    lab_rows = [
        (
            role,
            c.get("name", ""),
            c.get("version", ""),
            c.get("security_mode", ""),
            c.get("tftp", ""),
            ", ".join(c.get("tvs", [])),
        )
        for role, c in lab.items()
    ]
    step_rows = [
        (
            st["index"],
            st["description"],
            f"{st['elapsed']:.2f} s",
            ", ".join(f"{k} {v}" for k, v in st.get("counts", {}).items()),
            "" if st.get("checks") is None else f"{st['checks']['ok']}/{st['checks']['total']}",
            st.get("detail", ""),
        )
        for st in report.get("steps", [])
    ]
    phones = report.get("phones", [])
    phone_rows = [
        (
            p["device"],
            p["outcome"],
            p.get("step") or "",
            p.get("reason") or "",
            p.get("expected") or "",
            "" if p.get("ok") is None else ("yes" if p["ok"] else "NO"),
            f"{p.get('elapsed', 0.0):.3f}",
        )
        for p in phones[:max_phone_rows]
    ]
    more = (
        f"<p>{len(phones) - max_phone_rows} more phones in the JSON report.</p>"
        if len(phones) > max_phone_rows
        else ""
    )
    title = f"Migration report: {report.get('scenario', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(report.get('description', ''))}</p>",
        f"<p>{s.get('phones', len(phones))} phones, outcome {verdict}; wall time "
        f"{s.get('wall_time', 0.0):.1f} s; peak memory {s.get('peak_rss_mb', 0.0):.0f} MiB; "
        f"started {_e(report.get('started', ''))}.</p>",
        f'<div class="cards">{cards}</div>',
        "<h2>Phones migrated over time</h2>",
        migration_chart(migration_series(report)),
        "<h2>Failures by reason</h2>",
        failure_chart(failures_by_reason(report)),
        "<h2>Clusters</h2>",
        _table(("role", "name", "version", "mode", "TFTP", "TVS"), lab_rows),
        "<h2>Steps</h2>",
        _table(("#", "step", "time", "phones", "as expected", "detail"), step_rows),
        "<h2>Phones</h2>",
        _table(
            ("device", "outcome", "step", "reason", "expected", "as expected", "boot s"),
            phone_rows,
        ),
        more,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
