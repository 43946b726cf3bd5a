"""A pytest plugin for users' own regression tests of a phone migration (entry point
``pytest11``: installed with the package, active in any pytest run).

Fixtures (all on loopback, ports chosen by the system):

- ``tvs_lab_pki_dir`` (session): a lab PKI generated once from the packaged recipe (clusters
  ``source`` and ``destination``); read-only, shared by the session's tests.
- ``tvs_lab`` (:class:`LabRunner`): runs a scenario (a packaged name, a TOML file, TOML text or
  a :class:`~phone_emu.lab.scenarios.Scenario`) with both clusters in-process and returns the
  report; ``report["passed"]`` says whether every phone did what the scenario expects. Plain
  synchronous: works without pytest-trio.
- ``tvs_cluster_pair`` (async, needs pytest-trio): the source and destination
  :class:`~tvs.cluster.EmulatedCluster` serving in the test's nursery (:class:`ClusterPair`).
- ``tvs_phone_fleet``: a factory, ``tvs_phone_fleet(n)`` -> :class:`PhoneFleet` of ``n`` phones
  whose LSCs the source CAPF issued (in memory); ``await fleet.boot(cluster)`` boots them all
  against a cluster (DHCP option 150 = its TFTP, its HTTP service beside it).

A ten-line test of a user's own scenario is in ``docs/reference/lab.md`` ("From Python").
Does not own running a scenario (:mod:`phone_emu.lab.migrate`) nor booting
(:mod:`phone_emu.lab.fleet`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tvs.cluster import EmulatedCluster
from tvs.pki import LabPki, Recipe, generate

from .lab.config import LabConfig
from .lab.fleet import FleetBoot, boot_fleet, fleet_macs, make_identities, make_phones
from .lab.migrate import run_scenario
from .lab.options import RunOptions
from .lab.scenarios import Scenario, builtin_scenarios, find_scenario
from .phone.driver import NetworkOptions, Phone
from .phone.fetch import FetchOptions

__all__ = ["ClusterPair", "LabRunner", "PhoneFleet"]


@pytest.fixture(scope="session")
def tvs_lab_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged recipe's lab PKI, generated once per session (treat as read-only)."""
    out = tmp_path_factory.mktemp("tvs-lab-pki")
    generate(Recipe.default(), out)
    return out


@attrs.frozen
class LabRunner:
    """Runs scenarios in a lab (the packaged seed lab unless ``lab`` is given)."""

    pki_dir: Path
    workdir: Path
    lab: LabConfig = attrs.field(factory=LabConfig.default)

    def scenario(self, which: str | Path | Scenario) -> Scenario:
        """A Scenario from a packaged name, a ``.toml`` path, or TOML text."""
        if isinstance(which, Scenario):
            return which
        if isinstance(which, Path) or str(which).endswith(".toml"):
            return Scenario.load(which)
        if "\n" in str(which):
            return Scenario.loads(str(which), source="test")
        return find_scenario(str(which), builtin_scenarios())

    def run(self, which: str | Path | Scenario, **options: Any) -> dict[str, Any]:
        """Run one scenario; ``options`` are :class:`~phone_emu.lab.options.RunOptions`
        fields (``phones``, ``concurrency``, ``register``, ...). Returns the report."""
        opts = RunOptions(pki_dir=self.pki_dir, workdir=self.workdir, **options)
        return trio.run(run_scenario, self.lab, self.scenario(which), opts)


@pytest.fixture
def tvs_lab(tvs_lab_pki_dir: Path, tmp_path: Path) -> LabRunner:
    """Run a migration scenario: ``report = tvs_lab.run("my.toml"); assert report["passed"]``."""
    return LabRunner(pki_dir=tvs_lab_pki_dir, workdir=tmp_path / "tvs-lab")


@attrs.frozen
class ClusterPair:
    """The source and destination clusters of the seed lab, serving."""

    source: EmulatedCluster
    destination: EmulatedCluster
    pki: LabPki

    def __getitem__(self, role: str) -> EmulatedCluster:
        return {"source": self.source, "destination": self.destination}[role]


@pytest.fixture
async def tvs_cluster_pair(tvs_lab_pki_dir: Path, tmp_path: Path) -> AsyncIterator[ClusterPair]:
    """Both clusters of the seed lab in this test's nursery (pytest-trio), stopped after."""
    pki = LabPki.load(tvs_lab_pki_dir)
    lab = LabConfig.default()
    async with trio.open_nursery() as nursery:
        started = []
        for role in ("source", "destination"):
            cfg = lab.cluster_config(role, tmp_path / role).evolve(pki_dir=tvs_lab_pki_dir)
            started.append(await nursery.start(EmulatedCluster(cfg, pki=pki).serve))
        yield ClusterPair(started[0], started[1], pki)
        nursery.cancel_scope.cancel()


@attrs.define
class PhoneFleet:
    """Phones in memory with LSCs from the source cluster's CAPF; they keep their trust
    between boots (reboot by booting again)."""

    phones: Sequence[Phone]

    async def boot(
        self, cluster: EmulatedCluster, *, concurrency: int = 16, register: bool = True
    ) -> list[FleetBoot]:
        """Boot every phone with DHCP option 150 pointing at ``cluster``'s TFTP."""
        from .phone.boot import BootOptions

        tftp = cluster.tftp_address
        http = {tftp: cluster.http_address[1]}
        options = NetworkOptions(
            boot=BootOptions(register=register), fetch=FetchOptions(http_ports=http)
        )
        return await boot_fleet(self.phones, tftp=tftp, concurrency=concurrency, options=options)


@pytest.fixture
def tvs_phone_fleet(tvs_lab_pki_dir: Path) -> Callable[..., PhoneFleet]:
    """``tvs_phone_fleet(n, mac_start="B000B4BA0AEE")`` -> a :class:`PhoneFleet`."""
    pki = LabPki.load(tvs_lab_pki_dir)

    def make(count: int, *, mac_start: str = "B000B4BA0AEE", model: str = "8861") -> PhoneFleet:
        ids = make_identities(pki.cluster("source").capf, fleet_macs(count, mac_start), model=model)
        return PhoneFleet(make_phones(ids))

    return make
