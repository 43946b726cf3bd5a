"""The phones of one migration run: numbering them, their pools, booting them all, their history.

Owns the run's side of the fleet: numbering the phones and issuing their LSCs (here, or one
contiguous slice per worker process), the pools that hold the phones
(:class:`~phone_emu.lab.pool.PhonePool` in this process, or one
:class:`~phone_emu.lab.workers.WorkerPool` per worker), booting every pool at once, and each
phone's history as the report sees it (:class:`Member`). Does not own what a boot means
(``pool``, ``outcome``), the clusters (``clusters``) nor the steps (``steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from phone_emu.phone.boot import BootOptions
from phone_emu.phone.driver import NetworkOptions
from phone_emu.phone.fetch import FetchOptions
from phone_emu.phone.trust import TrustListCache
from tvs.pki import Identity

from .config import LabConfig
from .fleet import fleet_macs, make_identities, make_mic_identities, make_phones, shard_range
from .options import MigrationError, RunOptions, auto_workers
from .pool import PhonePool
from .progress import RunProgress
from .values import BootEntry, BootRequest, HistoryItem, Pool, WorkerSettings
from .workers import WorkerPool

__all__ = ["Member", "RunFleet"]


@attrs.define
class Member:
    """A phone of the run as the report sees it (the phone itself lives in a pool)."""

    index: int
    mac: str
    home: str | None = None
    history: list[HistoryItem] = attrs.Factory(list)
    last: BootEntry | None = None


class RunFleet:
    """``count`` phones booting ``concurrency`` at a time, in ``workers`` processes."""

    def __init__(
        self, lab: LabConfig, opts: RunOptions, count: int, *, enroll: bool = False
    ) -> None:
        self.settings = lab.fleet
        self.count = count
        self.enroll = enroll
        """Phones start with a MIC and no LSC: they enroll by CAPF at their first boot."""
        self.capf_auth_string: str | None = None
        """The CAPF auth string the phones are given (a ``reenroll`` step with one sets it)."""
        workers = auto_workers(count) if opts.workers is None else opts.workers
        self.workers = max(1, min(workers, count))
        self.concurrency = opts.concurrency or lab.fleet.concurrency
        self.shared_key = opts.shared_key
        self.log_level = opts.log_level
        register = lab.fleet.register if opts.register is None else opts.register
        self.http_ports: dict[tuple[str, int], int] = {}
        """The HTTP port beside each lab cluster's TFTP server (filled once they are bound)."""
        self.network = NetworkOptions(
            boot=BootOptions(register=register),
            lists=TrustListCache(max_entries=64),
            tftp_blksize=opts.tftp_blksize,
            fetch=FetchOptions(
                mode=opts.fetch_mode, http_port=opts.http_port, http_ports=self.http_ports
            ),
        )
        self.macs: list[tuple[int, str]] = []
        self.members: list[Member] = []
        self._position: dict[int, int] = {}
        self.pools: list[Pool] = []
        self._spawned: list[WorkerPool] = []

    # --- set-up and tear-down -------------------------------------------------------------
    def prepare(
        self, capf: Identity, progress: RunProgress, *, mic_ca: Identity | None = None
    ) -> None:
        """Number the phones; with one worker, issue their LSCs from ``capf`` (or, to enroll,
        their MICs from ``mic_ca``) here (blocking: run it in a thread). More workers issue
        their own slices (:meth:`start_workers`)."""
        macs = fleet_macs(self.count, self.settings.mac_start)
        self.macs = macs
        self.members = [Member(i, mac) for i, mac in macs]
        self._position = {m.index: k for k, m in enumerate(self.members)}
        if self.enroll:
            if mic_ca is None:
                raise MigrationError("enrolling phones need the lab PKI's manufacturing CA")
            progress.note(f"fleet: {self.count} phones with a MIC and no LSC (they enroll)")
            if self.workers > 1:
                return
            ids = make_mic_identities(
                mic_ca, macs, model=self.settings.model, shared_key=self.shared_key
            )
            self.pools = [
                PhonePool(
                    make_phones(ids),
                    [i for i, _ in macs],
                    concurrency=self.concurrency,
                    network=self.network,
                )
            ]
            return
        self._position = {m.index: k for k, m in enumerate(self.members)}
        progress.note(f"fleet: issuing {self.count} LSCs from {capf.cert.common_name}")
        if self.workers > 1:
            return
        ids = make_identities(capf, macs, model=self.settings.model, shared_key=self.shared_key)
        self.pools = [
            PhonePool(
                make_phones(ids),
                [i for i, _ in macs],
                concurrency=self.concurrency,
                network=self.network,
            )
        ]

    async def spawn_workers(self) -> None:
        """``workers`` > 1: start the worker processes now (Python and its imports take a
        while); :meth:`start_workers` gives them their phones once the PKI and the clusters are
        up."""
        while len(self._spawned) < (self.workers if self.workers > 1 else 0):
            self._spawned.append(await WorkerPool.spawn(log_level=self.log_level))

    async def start_workers(self, pki_dir: Path, cluster: str) -> None:
        """``workers`` > 1: one worker process per contiguous slice of the fleet, its LSCs
        issued by the CAPF of ``cluster`` in the lab PKI at ``pki_dir`` (the processes of
        :meth:`spawn_workers`, or new ones)."""
        if self.workers <= 1:
            return
        await self.spawn_workers()
        spawned, self._spawned = self._spawned, []
        pools: list[Pool | None] = [None] * self.workers
        per_worker = max(1, -(-self.concurrency // self.workers))

        async def start(k: int) -> None:
            part = [self.macs[i] for i in shard_range(len(self.macs), (k + 1, self.workers))]
            settings = WorkerSettings(
                pki_dir=str(pki_dir),
                cluster=cluster,
                macs=part,
                model=self.settings.model,
                shared_key=self.shared_key,
                register=self.network.boot.register,
                tftp_blksize=self.network.tftp_blksize,
                concurrency=per_worker,
                fetch_mode=self.network.fetch.mode,
                http_port=self.network.fetch.http_port,
                http_ports=[(h, p, hp) for (h, p), hp in self.http_ports.items()],
                enroll=self.enroll,
            )
            await spawned[k].init(settings)
            pools[k] = spawned[k]

        try:
            async with trio.open_nursery() as nursery:
                for k in range(self.workers):
                    nursery.start_soon(start, k)
        finally:
            self.pools = [p for p in pools if p is not None]
            for k, pool in enumerate(pools):
                if pool is None:  # its init failed: the process is still ours to end
                    await spawned[k].aclose()

    async def aclose(self) -> None:
        spawned, self._spawned = self._spawned, []
        for pool in [*self.pools, *spawned]:
            await pool.aclose()

    # --- what the steps do with the phones ------------------------------------------------
    async def boot(
        self, request: BootRequest, on_entry: Callable[[BootEntry], None]
    ) -> list[BootEntry]:
        """Boot every phone (all pools at once); each phone's entry, in fleet order, also
        recorded in its member's history."""
        got: dict[int, BootEntry] = {}

        async def run(pool: Pool) -> None:
            for entry in await pool.boot(request, on_entry):
                got[entry.index] = entry

        async with trio.open_nursery() as nursery:
            for pool in self.pools:
                nursery.start_soon(run, pool)
        entries = []
        for m in self.members:
            entry = got[m.index]
            if entry.landed:
                m.home = request.target
            m.history.append(HistoryItem(request.step, entry.outcome, entry.reason))
            m.last = entry
            entries.append(entry)
        return entries

    def record_check(self, index: int, expected: str | None, ok: bool) -> None:
        """What the scenario expected of phone ``index``'s last boot, and whether it held."""
        m = self.members[self._position[index]]
        assert m.last is not None
        m.last = m.last.with_check(expected, ok)

    def away_from(self, target: str) -> bool:
        """Whether some phone holds another cluster's files than ``target``'s."""
        return any(m.home not in (None, target) for m in self.members)

    async def corrupt_itl(self, indices: Sequence[int], itl: bytes | None) -> list[str]:
        names: list[str] = []
        for pool in self.pools:
            names += await pool.corrupt_itl(list(indices), itl)
        return names

    async def erase(
        self, indices: Sequence[int] | None, *, ctl: bool, itl: bool, everything: bool
    ) -> list[str]:
        names: list[str] = []
        for pool in self.pools:
            names += await pool.erase(indices, ctl=ctl, itl=itl, everything=everything)
        return names

    # --- the report -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The report's ``fleet`` section."""
        return {
            "phones": self.count,
            "concurrency": self.concurrency,
            "workers": self.workers,
            "register": self.network.boot.register,
            "tftp_blksize": self.network.tftp_blksize,
            "fetch": self.network.fetch.mode,
            "mac_start": self.settings.mac_start,
            "model": self.settings.model,
            "enroll": self.enroll,
        }

    def entries(self) -> list[BootEntry]:
        """Each booted phone's last entry with its history (the report's ``phones``)."""
        return [m.last.with_history(m.history) for m in self.members if m.last is not None]

    def workers_peak_rss_mb(self) -> list[float]:
        return [p.peak_rss_mb for p in self.pools if isinstance(p, WorkerPool)]
