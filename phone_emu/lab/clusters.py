"""The two clusters of a migration run: started in-process, or started elsewhere.

Owns the cluster lifecycle of a run: refusing, before anything starts, a scenario whose steps
need a cluster the runner does not run (:func:`check_external`); starting the in-process
clusters in the run's nursery (they stop with it); the TFTP address of each role (in-process
or ``--source`` / ``--destination``); handing a step the in-process cluster it acts on; and the
``lab`` section of the report. Does not own what the steps do to the clusters (``steps``) nor
the PKI they use (``migrate`` generates or loads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tvs.cluster import EmulatedCluster
from tvs.pki import LabPki

from .config import CLUSTER_ROLES, LabConfig
from .options import MigrationError, RunOptions
from .progress import RunProgress
from .scenarios import Scenario

__all__ = ["RunClusters", "check_external", "format_addr"]

Address = tuple[str, int]

# actions that act on a cluster, and which (None: the step's ``cluster`` parameter)
_NEEDS_CLUSTER = {"import": CLUSTER_ROLES, "restart-tvs": None, "set-rollback": None}


def format_addr(a: Address) -> str:
    return f"{a[0]}:{a[1]}"


def check_external(scenario: Scenario, opts: RunOptions) -> None:
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


class RunClusters:
    """The source and the destination of one run, by role (``source``, ``destination``)."""

    def __init__(
        self, lab: LabConfig, opts: RunOptions, workdir: Path, progress: RunProgress
    ) -> None:
        self.lab = lab
        self.workdir = workdir
        self.pki_dir = opts.pki_dir  # None: the clusters' own <workdir>/pki
        self.external = opts.external
        self.progress = progress
        self.running: dict[str, EmulatedCluster] = {}

    async def start(self, nursery: trio.Nursery, pki: LabPki | None) -> None:
        """Start every cluster not started elsewhere; they serve until ``nursery`` ends."""
        for role in CLUSTER_ROLES:
            if role in self.external:
                continue
            cfg = self.lab.cluster_config(role, self.workdir)
            if self.pki_dir is not None:
                cfg = cfg.evolve(pki_dir=self.pki_dir)
            cluster = EmulatedCluster(cfg, pki=pki)
            self.running[role] = await nursery.start(cluster.serve)
            h, p = cluster.tftp_address
            self.progress.note(
                f"{role}: {cfg.name} CUCM {cfg.version} {cfg.security_mode}, TFTP {h}:{p}"
            )

    def tftp(self, role: str) -> Address:
        if role in self.external:
            return self.external[role]
        return self.running[role].tftp_address

    def http_ports(self) -> dict[Address, int]:
        """The HTTP port beside each in-process cluster's TFTP server (what phones ask)."""
        return {c.tftp_address: c.http_address[1] for c in self.running.values()}

    def tvs_addresses(self, role: str) -> set[Address] | None:
        """The TVS addresses of an in-process cluster (None: started elsewhere, unknown)."""
        c = self.running.get(role)
        return set(c.tvs_addresses) if c is not None else None

    def need(self, role: str, what: str) -> EmulatedCluster:
        """The in-process cluster ``role`` that step ``what`` acts on."""
        c = self.running.get(role)
        if c is None:
            raise MigrationError(f"{what} needs the {role} cluster in-process (not --{role})")
        return c

    def describe(self) -> dict[str, Any]:
        """The report's ``lab`` section."""
        lab: dict[str, Any] = {}
        for role in CLUSTER_ROLES:
            if role in self.running:
                c = self.running[role]
                lab[role] = {
                    "name": c.config.name,
                    "version": c.config.version,
                    "security_mode": c.config.security_mode,
                    "rollback_pre80": c.config.rollback_pre80,
                    "tftp": format_addr(c.tftp_address),
                    "http": format_addr(c.http_address) if c.config.http else None,
                    "tvs": [format_addr(a) for a in c.tvs_addresses],
                }
            elif role in self.external:
                lab[role] = {
                    "name": role,
                    "tftp": format_addr(self.external[role]),
                    "external": True,
                }
        return lab
