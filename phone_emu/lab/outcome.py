"""What one boot meant for one phone: ``booted``, ``migrated``, ``stayed`` or ``failed``.

Owns the outcome rules the migration runner and the scenario expectations share. Pure: it
looks at the phone's boot result and at what the phone held before and after.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from phone_emu.phone.boot import Outcome
from phone_emu.phone.trust import TrustState

from .fleet import FleetBoot

__all__ = ["Snapshot", "classify", "snapshot"]

Snapshot = tuple[bytes | None, bytes | None, bytes | None]


def snapshot(trust: TrustState, config: Any) -> Snapshot:
    """What a phone holds: CTL, ITL and configuration digests."""
    return (
        trust.ctl.sha256 if trust.ctl is not None else None,
        trust.itl.sha256 if trust.itl is not None else None,
        config.sha256 if config is not None else None,
    )


def classify(
    boot: FleetBoot,
    before: Snapshot,
    after: Snapshot,
    *,
    home: str | None,
    target: str,
    target_tvs: AbstractSet[tuple[str, int]] | None = None,
) -> tuple[str, str | None, str | None]:
    """(outcome, failing step, reason) of one boot pointed at cluster ``target`` by a phone
    that held ``home``'s files (None: nothing yet).

    ``booted``/``migrated``: every step passed (the TVS list must be ``target_tvs`` when
    known); ``stayed``: the phone refused something and holds what it held before;
    ``failed``: anything else (a server unreachable, a half-updated phone, a crash).
    """
    r = boot.result
    if r is None:
        return "failed", None, "lab.exception"
    bad = next((s for s in r.steps if s.outcome in (Outcome.REJECTED, Outcome.ERROR)), None)
    if bad is None:
        if target_tvs is not None and r.config is not None:
            held = {(m.address, m.port) for m in r.config.tvs_members}
            if held != target_tvs:
                return "failed", "config", "lab.wrong-cluster"
        return ("booted" if home in (None, target) else "migrated"), None, None
    if bad.outcome is Outcome.REJECTED and after == before:
        return "stayed", bad.name, bad.reason
    return "failed", bad.name, bad.reason
