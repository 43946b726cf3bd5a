"""What the operator sees while a lab runs: a rich progress bar per boot step and the summary.

Owns the terminal presentation only (stderr for progress, the given console for the summary
table); the runner reports through :class:`RunProgress` and never prints itself. ``quiet``
progress (tests, ``--no-progress``) records nothing and draws nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = ["RunProgress", "summary_table"]


class RunProgress:
    """Step lines and one progress bar per boot step: ``begin(label, total)``, ``advance(outcome)``
    per phone, ``end()``. ``enabled=False`` makes every call a no-op."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._counts: Counter[str] = Counter()
        self._label = ""

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def begin(self, label: str, total: int) -> None:
        if not self.enabled:
            return
        self._counts = Counter()
        self._label = label
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, outcome: str) -> None:
        if self._progress is None or self._task is None:
            return
        self._counts[outcome] += 1
        counts = " ".join(f"{k} {v}" for k, v in sorted(self._counts.items()))
        self._progress.update(self._task, advance=1, description=f"{self._label} [{counts}]")

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._task = None


def summary_table(report: Mapping[str, Any]) -> Table:
    """One row per step: what the phones did at each boot (with the reasons of those that did
    not migrate) or what the step did, whether the expectation held, and how long it took."""
    s = report.get("summary", {})
    title = (
        f"{report.get('scenario', 'migration')}: {s.get('phones', 0)} phones, "
        f"{s.get('wall_time', 0.0):.1f} s, peak {s.get('peak_rss_mb', 0.0):.0f} MiB"
    )
    workers = s.get("workers_peak_rss_mb") or []
    if workers:
        title += " (workers " + ", ".join(f"{mb:.0f}" for mb in workers) + " MiB)"
    t = Table(title=title, title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("step", max_width=24)
    t.add_column("phones / what was done", ratio=1, overflow="fold")
    t.add_column("expected", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    for st in report.get("steps", []):
        checks = st.get("checks")
        if checks is None:
            verdict = ""
        elif checks["ok"] == checks["total"]:
            verdict = f"[green]ok {checks['ok']}/{checks['total']}[/green]"
        else:
            verdict = f"[red]{checks['total'] - checks['ok']} differ[/red]"
        if st.get("action") == "boot":
            step = f"boot on the {st['cluster']}"
            what = ", ".join(f"{k} {v}" for k, v in st.get("counts", {}).items())
            reasons = ", ".join(f"{r} {n}" for r, n in st.get("not_migrated", {}).items())
            if reasons:
                what += f" ({reasons})"
        else:
            step, what = st["description"], st.get("detail", "")
        t.add_row(str(st["index"]), step, what, verdict, f"{st['elapsed']:.2f}s")
    verdict = "[green]PASS[/green]" if report.get("passed") else "[red]FAIL[/red]"
    # "booted" (a phone that only booted on its own cluster) is worth a word only when any did
    booted = f", booted {s['booted']}" if s.get("booted") else ""
    t.caption = (
        f"final: migrated {s.get('migrated', 0)}, stayed {s.get('stayed', 0)}, "
        f"failed {s.get('failed', 0)}{booted}  {verdict}"
    )
    t.caption_justify = "left"
    return t
