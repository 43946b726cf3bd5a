"""The steps of a scenario: what each action does to the clusters and the phones, and its record.

Owns the actions (``boot``: reboot every phone on the TFTP that DHCP option 150 points at,
tally the outcomes and check the step's expectations; ``import``: bulk (export, consolidate,
import on both) or manual (the other cluster's CallManager and ITLRecovery certificates into
CallManager-trust and Phone-SAST-trust), then the TVS restarts; ``move``: DHCP option 150;
``restart-tvs``; ``set-rollback``; ``corrupt-itl``; ``erase`` (a user's erase on the phones);
``reenroll``: a CAPF install scheduled for the fleet) and the ``steps`` records of the report.
Does not own starting the clusters (``clusters``), the phones' pools (``runfleet``), what a
boot means (``outcome``) nor the order of a run (``migrate``).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from tvs import device
from tvs.cluster import EmulatedCluster, consolidate
from tvs.pki import LabPki
from tvs.roles import Role
from tvs.tlv import build_trust_list

from .clusters import RunClusters, format_addr
from .config import CLUSTER_ROLES, LabConfig
from .progress import RunProgress
from .runfleet import RunFleet
from .scenarios import Check, ScenarioStep, check_outcomes
from .values import BootEntry, BootRequest

__all__ = ["StepRunner"]


class StepRunner:
    """Runs one scenario step after another on started clusters and pools; ``records`` and
    ``checks`` are what the report shows. Times are relative to ``t0`` (``time.monotonic``)."""

    def __init__(
        self,
        lab: LabConfig,
        workdir: Path,
        pki: LabPki | None,
        clusters: RunClusters,
        fleet: RunFleet,
        progress: RunProgress,
        t0: float,
    ) -> None:
        self.lab = lab
        self.workdir = workdir
        self.pki = pki
        self.clusters = clusters
        self.fleet = fleet
        self.progress = progress
        self.t0 = t0
        self.pointed = "source"  # where DHCP option 150 points
        self.records: list[dict[str, Any]] = []
        self.checks: list[Check] = []

    async def run(self, n: int, step: ScenarioStep) -> None:
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
        self.records.append(record)

    # --- boot -----------------------------------------------------------------------------
    async def _boot(self, n: int, step: ScenarioStep) -> dict[str, Any]:
        target = self.pointed
        addr = self.clusters.tftp(target)
        after_move = self.fleet.away_from(target)
        target_tvs = self.clusters.tvs_addresses(target)
        self.progress.begin(
            f"step {n}: boot on the {target} ({format_addr(addr)})", self.fleet.count
        )

        def on_entry(entry: BootEntry) -> None:
            self.progress.advance(entry.outcome)

        request = BootRequest(
            step=n,
            target=target,
            tftp=addr,
            target_tvs=target_tvs,
            capf_auth_string=self.fleet.capf_auth_string,
        )
        try:
            entries = await self.fleet.boot(request, on_entry)
        finally:
            self.progress.end()
        counts: Counter[str] = Counter()
        not_migrated: Counter[str] = Counter()
        migrated_times: list[float] = []
        outcomes = []
        for entry in entries:
            outcome, reason = entry.outcome, entry.reason
            counts[outcome] += 1
            if outcome in ("stayed", "failed"):
                not_migrated[reason or "unknown"] += 1
            if outcome == "migrated":
                migrated_times.append(entry.finished_at)
            outcomes.append((entry.index, entry.device, outcome, reason))
        checks = check_outcomes(step, outcomes) if step.expect else []
        self.checks.extend(checks)
        for c in checks:
            self.fleet.record_check(c.index, c.expected.describe() if c.expected else None, c.ok)
        return {
            "cluster": target,
            "tftp": format_addr(addr),
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

    # --- the other actions: each returns the step's one-line detail -------------------------
    async def _move(self, step: ScenarioStep) -> str:
        self.pointed = str(step.params["to"])
        h, p = self.clusters.tftp(self.pointed)
        return f"DHCP option 150 -> {self.pointed} TFTP {h}:{p}"

    async def _import(self, step: ScenarioStep) -> str:
        method = step.params["method"]
        src = self.clusters.need("source", f"{method} import")
        dst = self.clusters.need("destination", f"{method} import")
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
            detail = _manual(dst, src)
            restart = [src]
            if step.params.get("upload_capf", True):
                detail += "; " + _upload_capf(src, dst)
            if step.params["reverse"]:
                detail += "; reverse: " + _manual(src, dst)
                if step.params.get("upload_capf", True):
                    detail += "; " + _upload_capf(dst, src)
                restart.append(dst)
        if step.params["restart"]:
            for c in restart:
                await c.restart_tvs()
            detail += "; TVS restarted on " + " and ".join(c.config.name for c in restart)
        else:
            detail += "; TVS not restarted"
        return detail

    async def _reenroll(self, step: ScenarioStep) -> str:
        """The cluster's administrator schedules a CAPF install for every phone of the fleet
        (CUCM's Certificate Operation "Install/Upgrade"); the phones see it in their next
        configuration. With an auth string, the phones are given ``phone_auth_string``."""
        p = step.params
        cluster = self.clusters.need(str(p["cluster"]), "reenroll")
        names = [device.device_name(mac) for _, mac in self.fleet.macs]
        auth_string = str(p["auth_string"]) or None
        cluster.capf_db.schedule(
            names,
            operation="install",
            auth_mode=str(p["auth"]),
            auth_string=auth_string if p["auth"] == "string" else None,
            key=str(p["key"]),
        )
        typed = str(p["phone_auth_string"]) or auth_string
        self.fleet.capf_auth_string = typed if p["auth"] == "string" else None
        detail = (
            f"CAPF install ({p['auth']}, {p['key']}) scheduled for {len(names)} phone(s) on "
            f"the {p['cluster']}"
        )
        if self.fleet.capf_auth_string is not None:
            detail += f"; phones given the auth string {self.fleet.capf_auth_string!r}"
        return detail

    async def _restart_tvs(self, step: ScenarioStep) -> str:
        which = step.params["cluster"]
        roles = CLUSTER_ROLES if which == "both" else (which,)
        for role in roles:
            await self.clusters.need(role, "restart-tvs").restart_tvs()
        return "TVS restarted on " + " and ".join(roles)

    async def _ctl_update(self, step: ScenarioStep) -> str:
        which = step.params["cluster"]
        roles = CLUSTER_ROLES if which == "both" else (which,)
        for role in roles:
            self.clusters.need(role, "ctl-update").ctl_update()
        return "utils ctl update CTLFile on " + " and ".join(roles)

    async def _wait(self, step: ScenarioStep) -> str:
        seconds = float(step.params["seconds"])
        await trio.sleep(seconds)
        return f"waited {seconds:g} s"

    async def _set_rollback(self, step: ScenarioStep) -> str:
        role, value = step.params["cluster"], bool(step.params["value"])
        self.clusters.need(role, "set-rollback").set_rollback_pre80(value)
        return f"Prepare Cluster for Rollback to pre 8.0 = {value} on the {role}"

    async def _erase(self, step: ScenarioStep) -> str:
        p = step.params
        indices = None if p["phones"] == "all" else p["phones"]
        names = await self.fleet.erase(indices, ctl=p["ctl"], itl=p["itl"], everything=p["all"])
        what = "everything" if p["all"] else " and ".join(k.upper() for k in ("ctl", "itl") if p[k])
        return f"erased {what} on {len(names)} phone(s)"

    async def _corrupt_itl(self, step: ScenarioStep) -> str:
        mode = step.params["mode"]
        itl = self._stale_itl() if mode == "stale" else None
        names = await self.fleet.corrupt_itl(step.params["phones"], itl)
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


def _manual(frm: EmulatedCluster, into: EmulatedCluster) -> str:
    """CallManager.pem of every TFTP node of ``frm`` -> CallManager-trust and
    Phone-SAST-trust of ``into``; ITLRecovery.pem -> Phone-SAST-trust."""
    cms = [frm.pki.nodes[n.name].callmanager.cert for n in frm.config.tftp_nodes]
    into.import_certificates("CallManager-trust", cms)
    into.import_certificates("Phone-SAST-trust", [*cms, frm.pki.itlrecovery.cert])
    return (
        f"{len(cms)} CallManager.pem + ITLRecovery.pem of {frm.config.name} uploaded to "
        f"{into.config.name}"
    )


def _upload_capf(frm: EmulatedCluster, into: EmulatedCluster) -> str:
    """CAPF.pem of ``frm`` -> CAPF-trust of ``into``: the security guide's fix for "a secure
    phone moved to another cluster is not trusted because its LSC came from another CAPF"."""
    into.import_certificates("CAPF-trust", [frm.pki.capf.cert])
    return f"CAPF.pem of {frm.config.name} uploaded to {into.config.name} CAPF-trust"


def _check_dict(c: Check) -> dict[str, Any]:
    return {
        "index": c.index,
        "device": c.device,
        "outcome": c.outcome,
        "reason": c.reason,
        "expected": c.expected.describe() if c.expected else None,
    }
