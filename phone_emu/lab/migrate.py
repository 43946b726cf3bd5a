"""The migration runner: two clusters, a fleet, and a scenario's steps, with a report at the end.

Owns running a :class:`~phone_emu.lab.scenarios.Scenario` (``phone-emu migrate`` builds one
from its flags) from start to end: the working directory, generating or loading the lab PKI,
then in order the clusters (``clusters``), the phones and their pools (``runfleet``), every
step (``steps``), closing the pools and stopping the clusters, and the report dictionary
(``report.py`` writes it). Does not own what a step does, what a boot means (``outcome``) nor
the report's file formats. :class:`RunOptions` and :class:`MigrationError` live in
``options`` and are re-exported here.
"""

from __future__ import annotations

import datetime as _dt
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from tvs.excgroup import leaves
from tvs.pki import LabPki, generate

from .clusters import RunClusters, check_external
from .config import LabConfig
from .options import MigrationError, RunOptions
from .runfleet import RunFleet
from .scenarios import Scenario
from .steps import StepRunner
from .workers import freeze_long_lived, thaw

__all__ = [
    "MigrationError",
    "RunOptions",
    "peak_rss_mb",
    "run_scenario",
]


class _Run:
    """One run's parts: the clusters, the fleet, and (once the PKI is there) the steps."""

    def __init__(self, lab: LabConfig, scenario: Scenario, opts: RunOptions, workdir: Path):
        self.lab = lab
        self.scenario = scenario
        self.opts = opts
        self.workdir = workdir
        self.progress = opts.progress
        self.t0 = time.monotonic()
        self.clusters = RunClusters(lab, opts, workdir, self.progress)
        self.fleet = RunFleet(lab, opts, opts.phones or scenario.phones, enroll=scenario.enroll)
        self.pki_dir = opts.pki_dir or workdir / "pki"
        self.pki: LabPki | None = None
        self.steps = StepRunner(
            lab, workdir, self.pki, self.clusters, self.fleet, self.progress, self.t0
        )

    def prepare(self) -> None:
        """The lab PKI and the phones' LSCs (blocking: run it in a thread)."""
        if self.opts.pki_dir is None:
            self.progress.note(f"lab PKI: generating in {self.pki_dir}")
            self.pki = generate(self.lab.recipe, self.pki_dir)  # in memory: no need to read back
        else:
            self.pki = LabPki.load(self.pki_dir, self.lab.recipe)
        self.steps.pki = self.pki
        capf = self.pki.cluster(self._source_name()).capf
        self.fleet.prepare(capf, self.progress, mic_ca=self.pki.manufacturing_ca)

    def _source_name(self) -> str:
        return self.lab.cluster_config("source", self.workdir).name

    async def run(self, nursery: trio.Nursery) -> None:
        """Start the clusters in ``nursery``, then the pools, then every step in order."""
        await self.clusters.start(nursery, self.pki)
        self.fleet.http_ports.update(self.clusters.http_ports())  # bound ports: tell the phones
        try:
            await self.fleet.start_workers(self.pki_dir, self._source_name())
            frozen = freeze_long_lived()  # the clusters and the fleet live until the run ends
            try:
                for n, step in enumerate(self.scenario.steps, start=1):
                    await self.steps.run(n, step)
            finally:
                thaw(frozen)
        finally:
            await self.fleet.aclose()

    def report(self, wall: float) -> dict[str, Any]:
        phones = [p.to_json() for p in self.fleet.entries()]
        checks = self.steps.checks
        final = Counter(p["outcome"] for p in phones)
        reasons = Counter(p["reason"] for p in phones if p["outcome"] in ("stayed", "failed"))
        passed = all(c.ok for c in checks)
        return {
            "tool": "phone-emu migrate",
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "method": self.scenario.method,
            "started": _dt.datetime.fromtimestamp(time.time() - wall, _dt.UTC).isoformat(
                timespec="seconds"
            ),
            "lab": self.clusters.describe(),
            "fleet": self.fleet.describe(),
            "passed": passed,
            "summary": {
                "phones": len(phones),
                "migrated": final.get("migrated", 0),
                "stayed": final.get("stayed", 0),
                "failed": final.get("failed", 0),
                "booted": final.get("booted", 0),
                "by_reason": dict(reasons.most_common()),
                "expectations": {"total": len(checks), "ok": sum(c.ok for c in checks)},
                "passed": passed,
                "wall_time": round(wall, 3),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "workers_peak_rss_mb": self.fleet.workers_peak_rss_mb(),
            },
            "steps": self.steps.records,
            "phones": phones,
        }


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_scenario(
    lab: LabConfig, scenario: Scenario, opts: RunOptions | None = None
) -> dict[str, Any]:
    """Run ``scenario`` in ``lab`` and return the report dictionary (``report["passed"]``)."""
    opts = opts or RunOptions()
    lab = lab.with_overrides(scenario.clusters) if scenario.clusters else lab
    own_dir = opts.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="phone-emu-lab-")) if own_dir else opts.workdir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)
    check_external(scenario, opts)
    t0 = time.monotonic()
    run = _Run(lab, scenario, opts, workdir)
    try:
        await run.fleet.spawn_workers()  # their start-up overlaps the PKI and the clusters'
        try:
            await trio.to_thread.run_sync(run.prepare)
            async with trio.open_nursery() as nursery:
                await run.run(nursery)
                nursery.cancel_scope.cancel()  # the clusters serve until cancelled
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            await run.fleet.aclose()  # workers spawned for a run that failed before them
        return run.report(time.monotonic() - t0)
    finally:
        if own_dir and not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _single(group: BaseExceptionGroup) -> BaseException:
    """The one error a failed run raised (nurseries wrap errors in groups)."""
    found = leaves(group)
    return found[0] if len(found) == 1 else group


