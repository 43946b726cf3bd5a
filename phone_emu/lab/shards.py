"""Fleet shards: which slice a process takes, each shard's report, and merging shard reports.

Owns the shard a ``phone-emu fleet`` process boots when it is one pod of a Kubernetes Indexed
Job (:func:`shard_from_index`: ``JOB_COMPLETION_INDEX`` is 0-based, ``--shard`` 1-based), the
report of one shard in the shape of a migration report (:func:`fleet_report`: ``phones``,
one ``boot`` step, ``summary``; so the same HTML page renders it), and :func:`merge_reports`,
which combines the reports of the shards of one fleet into the report the same fleet would
have given as one shard, timings aligned on a common clock (each report carries the Unix time
its boots started, ``started_at``). Pure: dictionaries in, dictionaries out. Does not own
booting (``fleet``), what a boot means (``outcome``) nor the file formats (``report``).
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from phone_emu.phone.config import PhoneConfig

from .fleet import FleetBoot, FleetError
from .outcome import Snapshot, classify
from .pool import boot_entry

__all__ = [
    "FLEET_TOOL",
    "MergeError",
    "fleet_entry",
    "fleet_report",
    "merge_reports",
    "shard_from_index",
    "summarize",
]

FLEET_TOOL = "phone-emu fleet"
_OK_OUTCOMES = ("booted", "migrated")


class MergeError(ValueError):
    """Shard reports that cannot be merged (not fleet reports, other fleets, overlaps)."""


def shard_from_index(shards: int, index: str | None) -> tuple[int, int]:
    """``--shards N`` with ``JOB_COMPLETION_INDEX`` = ``index`` (0-based) -> (I, N), 1-based."""
    if shards < 1:
        raise FleetError(f"--shards {shards}: need at least 1")
    if index is None or not index.strip():
        raise FleetError(
            "--shards needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or --shard"
        )
    try:
        i = int(index)
    except ValueError:
        raise FleetError(f"JOB_COMPLETION_INDEX {index!r} is not a number") from None
    if not 0 <= i < shards:
        raise FleetError(f"JOB_COMPLETION_INDEX {i} outside 0..{shards - 1} (--shards {shards})")
    return i + 1, shards


def _tvs_key(config: PhoneConfig | None) -> str | None:
    """The cluster a phone's configuration points at, named by its TVS members."""
    if config is None:
        return None
    return ",".join(sorted(f"{m.address}:{m.port}" for m in config.tvs_members)) or "no-tvs"


def fleet_entry(
    b: FleetBoot,
    mac: str,
    before: Snapshot,
    after: Snapshot,
    config_before: PhoneConfig | None,
    target: str,
) -> dict[str, Any]:
    """One phone's entry: ``booted`` (first boot, or same cluster), ``migrated`` (its
    configuration now names another TVS than before), ``stayed`` or ``failed``."""
    after_key = _tvs_key(b.result.config) if b.result is not None else None
    home = _tvs_key(config_before)
    outcome, step, reason = classify(
        b, before, after, home=home, target=after_key or home or "", target_tvs=None
    )
    entry = boot_entry(b, mac, outcome, step, reason, target=target, step=1).to_json()
    entry["moved"] = home is not None and after_key is not None and home != after_key
    return entry


def summarize(phones: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts of a report's summary, from its phones (the same for a shard and a merge)."""
    final = Counter(p["outcome"] for p in phones)
    reasons = Counter(p["reason"] for p in phones if p["outcome"] in ("stayed", "failed"))
    return {
        "phones": len(phones),
        "migrated": final.get("migrated", 0),
        "stayed": final.get("stayed", 0),
        "failed": final.get("failed", 0),
        "booted": final.get("booted", 0),
        "by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "states": dict(sorted(Counter(p["state"] for p in phones).items())),
        "passed": all(p["outcome"] in _OK_OUTCOMES for p in phones),
    }


def _boot_step(phones: Sequence[Mapping[str, Any]], target: str, elapsed: float) -> dict[str, Any]:
    counts = Counter(p["outcome"] for p in phones)
    not_migrated = Counter(
        p["reason"] or "unknown" for p in phones if p["outcome"] in ("stayed", "failed")
    )
    return {
        "index": 1,
        "action": "boot",
        "description": f"boot on {target}",
        "params": {},
        "started": 0.0,
        "elapsed": round(elapsed, 6),
        "cluster": target,
        "tftp": target,
        "after_move": any(p.get("moved") for p in phones),
        "counts": dict(sorted(counts.items())),
        "not_migrated": dict(sorted(not_migrated.items(), key=lambda kv: (-kv[1], kv[0]))),
        "migrated_times": sorted(p["finished_at"] for p in phones if p["outcome"] == "migrated"),
        "checks": None,
    }


def fleet_report(
    entries: Sequence[Mapping[str, Any]],
    *,
    target: str,
    shard: tuple[int, int],
    started_at: float,
    boot_time: float,
    fleet: Mapping[str, Any],
    extra_summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One shard's report (``phone-emu fleet --report``); ``started_at`` is the Unix time the
    boots started, ``finished_at`` of each phone counts from there."""
    phones = sorted(entries, key=lambda e: e["index"])
    summary = summarize(phones)
    summary.update(
        {
            "wall_time": round(boot_time, 3),
            "peak_rss_mb": 0.0,
            "workers_peak_rss_mb": [],
            **(extra_summary or {}),
        }
    )
    i, n = shard
    return {
        "tool": FLEET_TOOL,
        "scenario": f"fleet shard {i}/{n}",
        "description": f"{fleet.get('phones', len(phones))} phones in {n} shard(s) booting "
        f"on {target}",
        "started": _iso(started_at),
        "started_at": started_at,
        "shard": f"{i}/{n}",
        "shards": [f"{i}/{n}"],
        "lab": {"target": {"name": "target", "tftp": target}},
        "fleet": dict(fleet),
        "passed": summary["passed"],
        "summary": summary,
        "steps": [_boot_step(phones, target, boot_time)],
        "phones": phones,
    }


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")


# --- merging -------------------------------------------------------------------------------------


def _shard_of(report: Mapping[str, Any], where: str) -> tuple[int, int]:
    if report.get("tool") != FLEET_TOOL:
        raise MergeError(f"{where}: not a `phone-emu fleet --report` shard report")
    try:
        i_text, n_text = str(report["shard"]).split("/")
        return int(i_text), int(n_text)
    except (KeyError, ValueError):
        raise MergeError(f"{where}: no shard I/N in the report") from None


def merge_reports(
    reports: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The report of the whole fleet from its shards' reports (any order). Raises
    :class:`MergeError` for reports of other fleets, a shard given twice, or overlapping
    phones. Missing shards are listed in ``missing_shards`` (and the merge does not pass)."""
    if not reports:
        raise MergeError("no shard reports to merge")
    where = list(names) if names is not None else [f"report {k + 1}" for k in range(len(reports))]
    shards = [_shard_of(r, w) for r, w in zip(reports, where, strict=True)]
    totals = {n for _, n in shards}
    fleets = {(r["fleet"].get("phones"), r["fleet"].get("mac_start")) for r in reports}
    targets = {r["steps"][0]["cluster"] for r in reports}
    if len(totals) > 1 or len(fleets) > 1 or len(targets) > 1:
        raise MergeError("the reports are of different fleets (shard count, size or target)")
    seen: dict[int, str] = {}
    for (i, _), w in zip(shards, where, strict=True):
        if i in seen:
            raise MergeError(f"shard {i} given twice ({seen[i]} and {w})")
        seen[i] = w
    n = totals.pop()
    t0 = min(float(r["started_at"]) for r in reports)
    phones: list[dict[str, Any]] = []
    indices: set[int] = set()
    for r in reports:
        shift = float(r["started_at"]) - t0
        for p in r["phones"]:
            if p["index"] in indices:
                raise MergeError(f"phone {p['index']} ({p['device']}) is in two shards")
            indices.add(p["index"])
            phones.append({**p, "finished_at": round(p["finished_at"] + shift, 6)})
    phones.sort(key=lambda p: p["index"])
    end = max(float(r["started_at"]) + float(r["summary"]["wall_time"]) for r in reports)
    wall = end - t0
    summary = summarize(phones)
    missing = sorted(set(range(1, n + 1)) - set(seen))
    summary["passed"] = summary["passed"] and not missing
    summary.update(
        {
            "wall_time": round(wall, 3),
            "peak_rss_mb": max(float(r["summary"].get("peak_rss_mb", 0.0)) for r in reports),
            "workers_peak_rss_mb": [],
            "shards_peak_rss_mb": [
                float(r["summary"].get("peak_rss_mb", 0.0))
                for r in sorted(reports, key=lambda r: _shard_of(r, "")[0])
            ],
            "lsc_issue_time": max(float(r["summary"].get("lsc_issue_time", 0.0)) for r in reports),
            "boot_time": round(wall, 3),
            "boots_per_second": round(len(phones) / wall, 1) if wall > 0 else None,
        }
    )
    target = targets.pop()
    fleet = {k: v for k, v in reports[0]["fleet"].items() if k not in ("shard", "phones_in_shard")}
    fleet["phones_in_shard"] = len(phones)
    return {
        "tool": FLEET_TOOL,
        "scenario": f"fleet, {len(reports)} of {n} shard(s) merged",
        "description": f"{fleet.get('phones', len(phones))} phones in {n} shard(s) booting "
        f"on {target}",
        "started": _iso(t0),
        "started_at": t0,
        "shard": f"all/{n}",
        "shards": [f"{i}/{n}" for i in sorted(seen)],
        "missing_shards": missing,
        "lab": {"target": {"name": "target", "tftp": target}},
        "fleet": fleet,
        "passed": summary["passed"],
        "summary": summary,
        "steps": [_boot_step(phones, target, wall)],
        "phones": phones,
    }
