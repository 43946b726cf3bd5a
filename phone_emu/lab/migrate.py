"""The migration runner: two clusters, a fleet, and a scenario's steps, with a report at the end.

Owns running a :class:`~phone_emu.lab.scenarios.Scenario` (``phone-emu migrate`` builds one
from its flags): generating the lab PKI in a working directory, starting both clusters
in-process (or using clusters started elsewhere: their TFTP addresses), booting the fleet,
the import methods (bulk: export, consolidate, import on both; manual: the destination's
CallManager and ITLRecovery certificates into the source's Phone-SAST-trust and
CallManager-trust), TVS restarts, the rollback parameter, moving DHCP option 150, classifying
each phone's boot (``outcome.classify``), and the report dictionary (``report.py`` writes it).
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

import attrs
import trio

from phone_emu.phone.boot import BootOptions
from phone_emu.phone.driver import NetworkOptions
from phone_emu.phone.trust import TrustListCache
from tvs.cluster import EmulatedCluster, consolidate
from tvs.pki import LabPki, generate
from tvs.roles import Role
from tvs.tlv import build_trust_list

from .config import CLUSTER_ROLES, LabConfig
from .fleet import fleet_macs, make_identities, make_phones, shard_range
from .pool import PhonePool
from .progress import RunProgress
from .scenarios import Check, Scenario, ScenarioStep, check_outcomes
from .workers import WorkerPool

__all__ = [
    "MigrationError",
    "RunOptions",
    "peak_rss_mb",
    "run_scenario",
    "run_scenario_sync",
]


class MigrationError(RuntimeError):
    """The lab cannot run (PKI, clusters, a step that needs an in-process cluster)."""


@attrs.frozen
class RunOptions:
    phones: int | None = None  # None: the scenario's (or the lab's) count
    concurrency: int | None = None
    register: bool | None = None
    tftp_blksize: int | None = None  # RFC 2348 block size the phones ask for (None: plain 512)
    workdir: Path | None = None  # None: a temporary directory, removed unless keep
    keep: bool = False
    pki_dir: Path | None = None  # an existing lab PKI instead of generating one
    external: dict[str, tuple[str, int]] = attrs.field(factory=dict)  # role -> TFTP address
    shared_key: bool = False
    workers: int = 1  # processes booting phones (1: the runner's own process)
    log_level: str = "error"  # of worker processes
    progress: RunProgress = attrs.field(factory=lambda: RunProgress(enabled=False))


# --- the run -------------------------------------------------------------------------------------


@attrs.define
class _Member:
    """A phone of the run as the report sees it (the phone itself lives in a pool)."""

    index: int
    mac: str
    home: str | None = None
    history: list[dict[str, Any]] = attrs.Factory(list)
    last: dict[str, Any] | None = None


Pool = PhonePool | WorkerPool


class _Run:
    def __init__(self, lab: LabConfig, scenario: Scenario, opts: RunOptions, workdir: Path):
        self.lab = lab
        self.scenario = scenario
        self.opts = opts
        self.workdir = workdir
        self.progress = opts.progress
        self.clusters: dict[str, EmulatedCluster] = {}
        self.pointed = "source"
        self.members: list[_Member] = []
        self.pools: list[Pool] = []
        self.steps: list[dict[str, Any]] = []
        self.checks: list[Check] = []
        self.count = opts.phones or scenario.phones
        self.workers = max(1, min(opts.workers, self.count))
        self.macs: list[tuple[int, str]] = []
        self.pki_dir = opts.pki_dir or workdir / "pki"
        self.concurrency = opts.concurrency or lab.fleet.concurrency
        register = lab.fleet.register if opts.register is None else opts.register
        self.network = NetworkOptions(
            boot=BootOptions(register=register),
            lists=TrustListCache(max_entries=64),
            tftp_blksize=opts.tftp_blksize,
        )
        self.pki: LabPki | None = None
        self.t0 = time.monotonic()

    # --- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        pki_dir = self.opts.pki_dir or self.workdir / "pki"
        if self.opts.pki_dir is None:
            self.progress.note(f"lab PKI: generating in {pki_dir}")
            generate(self.lab.recipe, pki_dir)
        self.pki = LabPki.load(pki_dir, self.lab.recipe)
        self.pki_dir = pki_dir
        source = self.lab.cluster_config("source", self.workdir)
        capf = self.pki.cluster(source.name).capf
        macs = fleet_macs(self.count, self.lab.fleet.mac_start)
        self.macs = macs
        self.members = [_Member(i, mac) for i, mac in macs]
        self.progress.note(f"fleet: issuing {self.count} LSCs from {capf.cert.common_name}")
        if self.workers > 1:
            return  # each worker issues its own slice (start_pools)
        ids = make_identities(
            capf, macs, model=self.lab.fleet.model, shared_key=self.opts.shared_key
        )
        self.pools = [
            PhonePool(
                make_phones(ids),
                [i for i, _ in macs],
                concurrency=self.concurrency,
                network=self.network,
            )
        ]

    async def start_pools(self) -> None:
        """``workers`` > 1: one worker process per contiguous slice of the fleet."""
        if self.workers <= 1:
            return
        pools: list[Pool | None] = [None] * self.workers
        source = self.lab.cluster_config("source", self.workdir).name
        per_worker = max(1, -(-self.concurrency // self.workers))

        async def start(k: int) -> None:
            part = [self.macs[i] for i in shard_range(len(self.macs), (k + 1, self.workers))]
            pools[k] = await WorkerPool.start(
                pki_dir=str(self.pki_dir),
                cluster=source,
                macs=part,
                model=self.lab.fleet.model,
                shared_key=self.opts.shared_key,
                register=self.network.boot.register,
                tftp_blksize=self.network.tftp_blksize,
                concurrency=per_worker,
                log_level=self.opts.log_level,
            )

        try:
            async with trio.open_nursery() as nursery:
                for k in range(self.workers):
                    nursery.start_soon(start, k)
        finally:
            self.pools = [p for p in pools if p is not None]

    async def start_clusters(self, nursery: trio.Nursery) -> None:
        for role in CLUSTER_ROLES:
            if role in self.opts.external:
                continue
            cfg = self.lab.cluster_config(role, self.workdir)
            if self.opts.pki_dir is not None:
                cfg = cfg.evolve(pki_dir=self.opts.pki_dir)
            cluster = EmulatedCluster(cfg, pki=self.pki)
            self.clusters[role] = await nursery.start(cluster.serve)
            h, p = cluster.tftp_address
            self.progress.note(
                f"{role}: {cfg.name} CUCM {cfg.version} {cfg.security_mode}, TFTP {h}:{p}"
            )

    def tftp(self, role: str) -> tuple[str, int]:
        if role in self.opts.external:
            return self.opts.external[role]
        return self.clusters[role].tftp_address

    def _cluster(self, role: str, what: str) -> EmulatedCluster:
        c = self.clusters.get(role)
        if c is None:
            raise MigrationError(f"{what} needs the {role} cluster in-process (not --{role})")
        return c

    # --- steps ----------------------------------------------------------------------------
    async def step(self, n: int, step: ScenarioStep) -> None:
        started = time.monotonic()
        record: dict[str, Any] = {
            "index": n,
            "action": step.action,
            "description": step.describe(),
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in step.params.items()},
            "started": round(started - self.t0, 6),
        }
        if step.action == "boot":
            record.update(await self._boot(n, step))
        else:
            record["detail"] = await getattr(self, "_" + step.action.replace("-", "_"))(step)
            self.progress.note(f"step {n}: {step.describe()}: {record['detail']}")
        record["elapsed"] = round(time.monotonic() - started, 6)
        self.steps.append(record)

    async def _boot(self, n: int, step: ScenarioStep) -> dict[str, Any]:
        target = self.pointed
        addr = self.tftp(target)
        after_move = any(m.home not in (None, target) for m in self.members)
        target_tvs = set(self.clusters[target].tvs_addresses) if target in self.clusters else None
        self.progress.begin(f"step {n}: boot on the {target} ({addr[0]}:{addr[1]})", self.count)
        got: dict[int, dict[str, Any]] = {}

        def on_entry(entry: dict[str, Any]) -> None:
            self.progress.advance(entry["outcome"])

        async def run(pool: Pool) -> None:
            for entry in await pool.boot(n, target, addr, target_tvs, on_entry):
                got[entry["index"]] = entry

        try:
            async with trio.open_nursery() as nursery:
                for pool in self.pools:
                    nursery.start_soon(run, pool)
        finally:
            self.progress.end()
        counts: Counter[str] = Counter()
        not_migrated: Counter[str] = Counter()
        migrated_times: list[float] = []
        outcomes = []
        for m in self.members:
            entry = got[m.index]
            outcome, reason = entry["outcome"], entry["reason"]
            counts[outcome] += 1
            if outcome in ("stayed", "failed"):
                not_migrated[reason or "unknown"] += 1
            if outcome == "migrated":
                migrated_times.append(entry["finished_at"])
            if outcome in ("booted", "migrated"):
                m.home = target
            m.history.append({"step": n, "outcome": outcome, "reason": reason})
            m.last = entry
            outcomes.append((m.index, entry["device"], outcome, reason))
        checks = check_outcomes(step, outcomes) if step.expect else []
        self.checks.extend(checks)
        for c in checks:
            last = got[c.index]
            last["expected"] = c.expected.describe() if c.expected else None
            last["ok"] = c.ok
        return {
            "cluster": target,
            "tftp": f"{addr[0]}:{addr[1]}",
            "after_move": after_move,
            "counts": dict(sorted(counts.items())),
            "not_migrated": dict(not_migrated.most_common()),
            "migrated_times": sorted(migrated_times),
            "checks": (
                {
                    "total": len(checks),
                    "ok": sum(c.ok for c in checks),
                    "differ": [_check_dict(c) for c in checks if not c.ok][:20],
                }
                if step.expect
                else None
            ),
        }

    async def _move(self, step: ScenarioStep) -> str:
        self.pointed = str(step.params["to"])
        h, p = self.tftp(self.pointed)
        return f"DHCP option 150 -> {self.pointed} TFTP {h}:{p}"

    async def _import(self, step: ScenarioStep) -> str:
        method = step.params["method"]
        src = self._cluster("source", f"{method} import")
        dst = self._cluster("destination", f"{method} import")
        if method == "bulk":
            shared = self.workdir / "sftp"
            if shared.exists():
                shutil.rmtree(shared)
            exported = src.bulk_export(shared) + dst.bulk_export(shared)
            consolidate(shared)
            got_src = src.bulk_import(shared)
            got_dst = dst.bulk_import(shared)
            detail = (
                f"{len(exported)} bundles exported and consolidated; "
                f"{len(got_src.imported)} entries imported on the source, "
                f"{len(got_dst.imported)} on the destination"
            )
            restart = [src, dst]
        else:
            detail = self._manual(dst, src)
            restart = [src]
            if step.params["reverse"]:
                detail += "; reverse: " + self._manual(src, dst)
                restart.append(dst)
        if step.params["restart"]:
            for c in restart:
                await c.restart_tvs()
            detail += "; TVS restarted on " + " and ".join(c.config.name for c in restart)
        else:
            detail += "; TVS not restarted"
        return detail

    def _manual(self, frm: EmulatedCluster, into: EmulatedCluster) -> str:
        """CallManager.pem of every TFTP node of ``frm`` -> CallManager-trust and
        Phone-SAST-trust of ``into``; ITLRecovery.pem -> Phone-SAST-trust."""
        cms = [frm.pki.nodes[n.name].callmanager.cert for n in frm.config.tftp_nodes]
        into.import_certificates("CallManager-trust", cms)
        into.import_certificates("Phone-SAST-trust", [*cms, frm.pki.itlrecovery.cert])
        return (
            f"{len(cms)} CallManager.pem + ITLRecovery.pem of {frm.config.name} uploaded to "
            f"{into.config.name}"
        )

    async def _restart_tvs(self, step: ScenarioStep) -> str:
        which = step.params["cluster"]
        roles = CLUSTER_ROLES if which == "both" else (which,)
        for role in roles:
            await self._cluster(role, "restart-tvs").restart_tvs()
        return "TVS restarted on " + " and ".join(roles)

    async def _set_rollback(self, step: ScenarioStep) -> str:
        role, value = step.params["cluster"], bool(step.params["value"])
        self._cluster(role, "set-rollback").set_rollback_pre80(value)
        return f"Prepare Cluster for Rollback to pre 8.0 = {value} on the {role}"

    async def _corrupt_itl(self, step: ScenarioStep) -> str:
        mode = step.params["mode"]
        itl = self._stale_itl() if mode == "stale" else None
        names: list[str] = []
        for pool in self.pools:
            names += await pool.corrupt_itl(list(step.params["phones"]), itl)
        what = "stale (TVS record of another certificate)" if mode == "stale" else "erased"
        return f"ITL {what} on {len(names)} phone(s): " + ", ".join(names)

    def _stale_itl(self) -> bytes:
        """An ITL signed by the source's ITLRecovery whose TVS record is a certificate the
        source TVS does not present (as after the TVS certificate was regenerated)."""
        assert self.pki is not None
        src = self.pki.cluster(self.lab.cluster_config("source", self.workdir).name)
        other = next(c for c in self.pki.clusters.values() if c.name != src.name)
        wrong_tvs = next(iter(other.nodes.values())).tvs.cert
        records = [
            (Role.SAST, src.itlrecovery.cert),
            (Role.CCM_TFTP, src.publisher.callmanager.cert),
            (Role.TVS, wrong_tvs),
            (Role.CAPF, src.capf.cert),
        ]
        signer = src.itlrecovery
        return build_trust_list(records, signer=signer.cert, key=signer.key, filename="ITLFile.tlv")

    # --- report ---------------------------------------------------------------------------
    def report(self, wall: float) -> dict[str, Any]:
        phones = []
        for m in self.members:
            if m.last is not None:
                m.last["history"] = m.history
                phones.append(m.last)
        final = Counter(p["outcome"] for p in phones)
        reasons = Counter(p["reason"] for p in phones if p["outcome"] in ("stayed", "failed"))
        passed = all(c.ok for c in self.checks)
        lab: dict[str, Any] = {}
        for role in CLUSTER_ROLES:
            if role in self.clusters:
                c = self.clusters[role]
                lab[role] = {
                    "name": c.config.name,
                    "version": c.config.version,
                    "security_mode": c.config.security_mode,
                    "rollback_pre80": c.config.rollback_pre80,
                    "tftp": _addr(c.tftp_address),
                    "tvs": [_addr(a) for a in c.tvs_addresses],
                }
            elif role in self.opts.external:
                lab[role] = {
                    "name": role,
                    "tftp": _addr(self.opts.external[role]),
                    "external": True,
                }
        return {
            "tool": "phone-emu migrate",
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "method": self.scenario.method,
            "started": _dt.datetime.fromtimestamp(time.time() - wall, _dt.UTC).isoformat(
                timespec="seconds"
            ),
            "lab": lab,
            "fleet": {
                "phones": self.count,
                "concurrency": self.concurrency,
                "workers": self.workers,
                "register": self.network.boot.register,
                "tftp_blksize": self.network.tftp_blksize,
                "mac_start": self.lab.fleet.mac_start,
                "model": self.lab.fleet.model,
            },
            "passed": passed,
            "summary": {
                "phones": len(phones),
                "migrated": final.get("migrated", 0),
                "stayed": final.get("stayed", 0),
                "failed": final.get("failed", 0),
                "booted": final.get("booted", 0),
                "by_reason": dict(reasons.most_common()),
                "expectations": {"total": len(self.checks), "ok": sum(c.ok for c in self.checks)},
                "passed": passed,
                "wall_time": round(wall, 3),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "workers_peak_rss_mb": [
                    p.peak_rss_mb for p in self.pools if isinstance(p, WorkerPool)
                ],
            },
            "steps": self.steps,
            "phones": phones,
        }


def _addr(a: tuple[str, int]) -> str:
    return f"{a[0]}:{a[1]}"


def _check_dict(c: Check) -> dict[str, Any]:
    return {
        "index": c.index,
        "device": c.device,
        "outcome": c.outcome,
        "reason": c.reason,
        "expected": c.expected.describe() if c.expected else None,
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
    _check_external(scenario, opts)
    t0 = time.monotonic()
    run = _Run(lab, scenario, opts, workdir)
    try:
        await trio.to_thread.run_sync(run.prepare)
        try:
            async with trio.open_nursery() as nursery:
                await run.start_clusters(nursery)
                try:
                    await run.start_pools()
                    for n, step in enumerate(scenario.steps, start=1):
                        await run.step(n, step)
                finally:
                    for pool in run.pools:
                        await pool.aclose()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        return run.report(time.monotonic() - t0)
    finally:
        if own_dir and not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)


_NEEDS_CLUSTER = {"import": CLUSTER_ROLES, "restart-tvs": None, "set-rollback": None}


def _check_external(scenario: Scenario, opts: RunOptions) -> None:
    """Refuse, before starting anything, steps that need a cluster the runner does not run,
    and clusters elsewhere without their PKI (their CAPF must issue the phones' LSCs)."""
    if opts.external and opts.pki_dir is None:
        raise MigrationError(
            "clusters started elsewhere (--source/--destination) need their lab PKI: --pki DIR"
        )
    for n, step in enumerate(scenario.steps, start=1):
        if step.action not in _NEEDS_CLUSTER:
            continue
        which = step.params.get("cluster", "both")
        roles = CLUSTER_ROLES if which == "both" or step.action == "import" else (which,)
        for role in roles:
            if role in opts.external:
                raise MigrationError(
                    f"scenario {scenario.name!r} step {n} ({step.describe()}) needs the {role} "
                    f"cluster in-process, not --{role} (do it there with `tvs store` / a restart)"
                )


def _single(group: BaseExceptionGroup) -> BaseException:
    """The one error a failed run raised (nurseries wrap errors in groups)."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group


def run_scenario_sync(
    lab: LabConfig, scenario: Scenario, opts: RunOptions | None = None
) -> dict[str, Any]:
    return trio.run(run_scenario, lab, scenario, opts)
