"""Fleet shards: ``--shards N`` takes its slice from JOB_COMPLETION_INDEX (as in a Kubernetes
Indexed Job), N shards run locally cover every phone exactly once, and ``phone-emu report
merge`` of their reports equals the report of the same fleet run as one shard."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from phone_emu.cli import build_parser
from phone_emu.lab.config import LabConfig
from phone_emu.lab.fleet import FleetError
from phone_emu.lab.report import render_html
from phone_emu.lab.shards import MergeError, merge_reports, shard_from_index
from tvs.cluster import EmulatedCluster
from tvs.pki import LabPki

_MAIN = "import sys; from phone_emu.cli import main; sys.exit(main(sys.argv[1:]))"


# --- which shard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "index", "expected"), [(4, "0", (1, 4)), (4, "3", (4, 4))])
def test_job_completion_index_is_zero_based(n: int, index: str, expected: tuple[int, int]) -> None:
    assert shard_from_index(n, index) == expected


@pytest.mark.parametrize("index", [None, "", "4", "-1", "x"])
def test_bad_or_missing_index(index: str | None) -> None:
    with pytest.raises(FleetError):
        shard_from_index(4, index)


def test_fleet_parses_shards() -> None:
    args = build_parser().parse_args(["fleet", "--tftp", "a:69", "--shards", "3"])
    assert args.shards == 3 and args.shard is None
    args = build_parser().parse_args(["fleet", "--tftp", "a:69", "--shards", "3", "--shard", "2/5"])
    assert args.shard == (2, 5)


# --- shards against a real cluster ---------------------------------------------------------------


@pytest.fixture
async def source(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path):
    cfg = LabConfig.default().cluster_config("source", tmp_path).evolve(pki_dir=lab_pki_dir)
    async with trio.open_nursery() as nursery:
        cluster = await nursery.start(EmulatedCluster(cfg, pki=lab_pki).serve)
        yield cluster
        nursery.cancel_scope.cancel()


async def _phone_emu(args: list[str], env: dict[str, str] | None = None) -> trio.Process:
    full_env = {k: v for k, v in os.environ.items() if k != "JOB_COMPLETION_INDEX"}
    full_env.update(env or {})
    return await trio.run_process(
        [sys.executable, "-c", _MAIN, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=full_env,
    )


def _key(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (p["index"], p["device"], p["outcome"], p["step"], p["reason"]) for p in report["phones"]
    ]


_COUNTS = ("phones", "migrated", "stayed", "failed", "booted", "by_reason", "states", "passed")


async def test_shards_cover_the_fleet_and_merge_to_the_one_shard_report(
    source: EmulatedCluster, lab_pki_dir: Path, tmp_path: Path
) -> None:
    host, port = source.tftp_address
    n, phones = 3, 7
    base = ["fleet", "--tftp", f"{host}:{port}", "--phones", str(phones), "--pki", str(lab_pki_dir)]
    base += ["--concurrency", "4", "--no-progress", "--http-port", str(source.http_address[1])]
    shard_files = []
    for index in range(n):
        out = tmp_path / f"shard-{index}.json"
        done = await _phone_emu(
            [*base, "--shards", str(n), "--report", str(out), "--state-dir", str(tmp_path / "s")],
            {"JOB_COMPLETION_INDEX": str(index)},
        )
        assert done.returncode == 0, done.stderr
        shard_files.append(out)
    reports = [json.loads(f.read_text()) for f in shard_files]
    assert [r["shard"] for r in reports] == ["1/3", "2/3", "3/3"]
    indices = [p["index"] for r in reports for p in r["phones"]]
    assert sorted(indices) == list(range(phones))  # every phone exactly once
    assert len({p["device"] for r in reports for p in r["phones"]}) == phones
    assert len(list((tmp_path / "s").iterdir())) == phones

    # the same fleet as one shard, its report on stdout as one JSON document
    one = await _phone_emu([*base, "--report", "-", "--state-dir", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    single = json.loads(one.stdout)

    merged_path, html_path = tmp_path / "all.json", tmp_path / "all.html"
    done = await _phone_emu(
        [
            "report",
            "merge",
            *map(str, reversed(shard_files)),
            "--report",
            str(merged_path),
            "--html",
            str(html_path),
        ]
    )
    assert done.returncode == 0, done.stderr
    merged = json.loads(merged_path.read_text())
    assert _key(merged) == _key(single)
    assert {k: merged["summary"][k] for k in _COUNTS} == {k: single["summary"][k] for k in _COUNTS}
    assert merged["steps"][0]["counts"] == single["steps"][0]["counts"] == {"booted": phones}
    assert merged["missing_shards"] == [] and merged["passed"] is True
    assert "Phones migrated over time" in html_path.read_text()

    # a missing shard is said and fails the merge; a shard given twice is an error
    partial = await _phone_emu(["report", "merge", str(shard_files[0]), str(shard_files[2])])
    assert partial.returncode == 1 and b"missing shard(s): 2" in partial.stdout
    twice = await _phone_emu(["report", "merge", str(shard_files[0]), str(shard_files[0])])
    assert twice.returncode == 2 and b"given twice" in twice.stderr

    # --shards without JOB_COMPLETION_INDEX is a usage error; --shard wins over it
    usage = await _phone_emu([*base, "--shards", "3"])
    assert usage.returncode == 2 and b"JOB_COMPLETION_INDEX" in usage.stderr
    wins = await _phone_emu(
        [*base, "--shards", "3", "--shard", "1/7", "--json"], {"JOB_COMPLETION_INDEX": "2"}
    )
    assert wins.returncode == 0, wins.stderr
    assert json.loads(wins.stdout)["shard"] == "1/7"


# --- merging, on made-up reports -----------------------------------------------------------------


def _phone(index: int, outcome: str, finished_at: float, reason: str | None = None) -> dict:
    return {
        "index": index,
        "device": f"CP-8861-SEP{index:012X}",
        "outcome": outcome,
        "step": "itl" if reason else None,
        "reason": reason,
        "state": "registered" if reason is None else "rejected",
        "finished_at": finished_at,
        "moved": outcome == "migrated",
    }


def _shard(i: int, n: int, started_at: float, phones: list[dict]) -> dict[str, Any]:
    return {
        "tool": "phone-emu fleet",
        "shard": f"{i}/{n}",
        "started_at": started_at,
        "fleet": {"phones": 4, "mac_start": "B000B4BA0AEE"},
        "summary": {"wall_time": 2.0, "peak_rss_mb": 50.0 + i, "lsc_issue_time": 0.1},
        "steps": [{"cluster": "10.0.0.1:69"}],
        "phones": phones,
    }


def test_merge_aligns_timings_on_a_common_clock() -> None:
    a = _shard(1, 2, 1000.0, [_phone(0, "migrated", 1.0), _phone(1, "stayed", 1.5, "itl.bad")])
    b = _shard(2, 2, 1003.0, [_phone(2, "migrated", 0.5), _phone(3, "migrated", 1.0)])
    merged = merge_reports([b, a])
    assert [p["index"] for p in merged["phones"]] == [0, 1, 2, 3]
    assert merged["steps"][0]["migrated_times"] == [1.0, 3.5, 4.0]
    assert merged["steps"][0]["after_move"] is True
    s = merged["summary"]
    assert (s["migrated"], s["stayed"], s["by_reason"]) == (3, 1, {"itl.bad": 1})
    assert s["wall_time"] == 5.0 and s["shards_peak_rss_mb"] == [51.0, 52.0]
    assert merged["passed"] is False  # a phone stayed
    page = render_html(merged)
    assert "itl.bad (step 1)" in page and "3 phones" in page


def test_merge_refuses_other_fleets_and_overlaps() -> None:
    a = _shard(1, 2, 1000.0, [_phone(0, "booted", 1.0)])
    with pytest.raises(MergeError, match="different fleets"):
        merge_reports([a, _shard(1, 3, 1000.0, [])])
    with pytest.raises(MergeError, match="two shards"):
        merge_reports([a, _shard(2, 2, 1000.0, [_phone(0, "booted", 1.0)])])
    with pytest.raises(MergeError, match="not a"):
        merge_reports([{"tool": "phone-emu migrate"}])
    with pytest.raises(MergeError, match="no shard"):
        merge_reports([])
