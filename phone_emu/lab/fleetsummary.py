"""The summary of one ``phone-emu fleet`` boot storm, and its exit policy.

Owns what a fleet run reports beside the per-phone entries: phones by state and by first
failing reason, how many enrolled by CAPF, the times (LSC issuing, booting, boots per second)
and the peak memory (:class:`FleetSummary`, ``--json``'s document), each phone's detail for
``--report`` (:func:`boot_detail`), and the exit code (:attr:`FleetSummary.exit_code`: 0 every
phone registered or configured, 1 some phone rejected something, 2 some boot could not run).
Does not own booting (:mod:`phone_emu.lab.fleet`) nor printing (the command).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tvs.exitcodes import ExitCode

from .fleet import FleetBoot

__all__ = ["FleetSummary", "boot_detail", "first_reason"]

_GOOD_STATES = frozenset({"registered", "configured"})


def first_reason(b: FleetBoot) -> str:
    """The reason of a boot's first rejected or failed step (``ok``: none)."""
    if not b.result:
        return "lab.exception"
    return next(
        (s.reason for s in b.result.steps if s.outcome.value in ("rejected", "error")), "ok"
    )


def boot_detail(b: FleetBoot) -> dict[str, Any]:
    """One phone in ``--report``'s ``phones_detail``."""
    return {
        "index": b.index,
        "device": b.device,
        "elapsed": round(b.elapsed, 6),
        **(b.result.to_dict() if b.result else {"state": "error", "error": b.error}),
    }


def _enrolled(b: FleetBoot) -> bool:
    return b.result is not None and any(
        (s.name, s.reason) == ("capf", "capf.installed") for s in b.result.steps
    )


@attrs.frozen(kw_only=True)
class FleetSummary:
    """A fleet run in numbers; durations in seconds."""

    tftp: str
    shard: tuple[int, int]
    phones: int
    states: Mapping[str, int]
    reasons: Mapping[str, int]
    """Phones by the reason of their first failing step, most frequent first (``ok``: none)."""
    enrolled: int
    lsc_issue_time: float
    boot_time: float
    peak_rss_mb: float

    @classmethod
    def of(
        cls,
        boots: Sequence[FleetBoot],
        *,
        tftp: str,
        shard: tuple[int, int],
        lsc_issue_time: float,
        boot_time: float,
        peak_rss_mb: float,
    ) -> FleetSummary:
        states = Counter(b.result.state.value if b.result else "error" for b in boots)
        reasons = Counter(first_reason(b) for b in boots)
        return cls(
            tftp=tftp,
            shard=shard,
            phones=len(boots),
            states=dict(states),
            reasons=dict(reasons.most_common()),
            enrolled=sum(1 for b in boots if _enrolled(b)),
            lsc_issue_time=lsc_issue_time,
            boot_time=boot_time,
            peak_rss_mb=peak_rss_mb,
        )

    @property
    def boots_per_second(self) -> float | None:
        return round(self.phones / self.boot_time, 1) if self.boot_time else None

    @property
    def exit_code(self) -> ExitCode:
        """2 some boot could not run (a server unreachable, a lab fault); else 0 when every
        phone registered (or was configured without registering), 1 otherwise."""
        if self.states.get("error"):
            return ExitCode.ERROR
        return ExitCode.OK if set(self.states) <= _GOOD_STATES else ExitCode.INVALID

    def to_dict(self) -> dict[str, Any]:
        """``phone-emu fleet --json`` (the field names and rounding are the JSON contract)."""
        i, n = self.shard
        return {
            "tftp": self.tftp,
            "shard": f"{i}/{n}",
            "phones": self.phones,
            "states": dict(self.states),
            "reasons": dict(self.reasons),
            "enrolled": self.enrolled,
            "lsc_issue_time": round(self.lsc_issue_time, 3),
            "boot_time": round(self.boot_time, 3),
            "boots_per_second": self.boots_per_second,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }
