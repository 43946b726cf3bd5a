"""The lab's typed values: JSON round trips, the report's phone items unchanged, one Pool."""

from __future__ import annotations

import json

import attrs
from hypothesis import given
from hypothesis import strategies as st

from phone_emu.lab.pool import PhonePool
from phone_emu.lab.values import BootEntry, BootRequest, HistoryItem, Pool, WorkerSettings
from phone_emu.lab.workers import WorkerPool
from phone_emu.phone.driver import NetworkOptions

# a phones item of a report written before the values were typed (keys in that order)
REPORT_ITEM = {
    "index": 3,
    "device": "CP-8861-SEPB000B4BA0AF1",
    "mac": "B000B4BA0AF1",
    "outcome": "stayed",
    "step": "ctl",
    "reason": "ctl.signer-unknown",
    "cluster": "destination",
    "boot_step": 2,
    "state": "rejected",
    "elapsed": 0.123456,
    "finished_at": 1.5,
    "tvs_queries": 1,
    "status": ["CTL update failed"],
    "steps": {"ctl": "ctl.signer-unknown", "itl": None},
    "timings": {"ctl": 0.1, "itl": 0.0},
    "expected": "stayed (ctl.signer-unknown)",
    "ok": True,
    "history": [
        {"step": 1, "outcome": "booted", "reason": None},
        {"step": 2, "outcome": "stayed", "reason": "ctl.signer-unknown"},
    ],
}


def test_a_report_item_round_trips_byte_for_byte() -> None:
    entry = BootEntry.from_json(REPORT_ITEM)
    assert entry.checked and entry.ok and entry.history is not None
    assert json.dumps(entry.to_json()) == json.dumps(REPORT_ITEM)


def test_optional_keys_appear_only_when_set() -> None:
    item = {k: v for k, v in REPORT_ITEM.items() if k not in ("expected", "ok", "history")}
    entry = BootEntry.from_json(item)
    assert entry.to_json() == item
    checked = entry.with_check(None, False).with_history([HistoryItem(2, "stayed", None)])
    out = checked.to_json()
    assert out["expected"] is None and out["ok"] is False
    assert out["history"] == [{"step": 2, "outcome": "stayed", "reason": None}]
    failed = attrs.evolve(entry, error="boom")
    assert failed.to_json()["error"] == "boom"
    assert BootEntry.from_json(json.loads(json.dumps(failed.to_json()))) == failed


@given(
    step=st.integers(0, 99),
    target=st.sampled_from(["source", "destination"]),
    port=st.integers(1, 65535),
    tvs=st.none() | st.frozensets(st.tuples(st.just("127.0.2.1"), st.integers(1, 65535))),
)
def test_boot_request_round_trips(
    step: int, target: str, port: int, tvs: frozenset[tuple[str, int]] | None
) -> None:
    req = BootRequest(step=step, target=target, tftp=("127.0.2.1", port), target_tvs=tvs)
    assert BootRequest.from_json(json.loads(json.dumps(req.to_json()))) == req


def test_worker_settings_round_trip() -> None:
    s = WorkerSettings(
        pki_dir="/tmp/pki",
        cluster="source",
        macs=[(0, "B000B4BA0AEE"), (1, "B000B4BA0AEF")],
        shared_key=True,
        tftp_blksize=1428,
        concurrency=8,
    )
    assert s.indices == [0, 1]
    assert WorkerSettings.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_both_pools_are_pools() -> None:
    """One Protocol for the in-process and the worker pool (mypy checks the signatures where
    the runner keeps its pools)."""
    pool = PhonePool([], [], concurrency=1, network=NetworkOptions())
    assert isinstance(pool, Pool)
    for name in ("boot", "corrupt_itl", "aclose"):
        assert callable(getattr(WorkerPool, name))
