"""A pool of phones in one process: boots them all and turns each boot into a report entry.

Owns the per-phone bookkeeping a migration needs between boots: which cluster's files each
phone holds (its "home"), what it held before a boot (to tell ``stayed`` from ``failed``), and
the report entry of each boot (outcome, failing step, reason, timings). The migration runner
uses one pool in-process, or one per worker process (``workers.py``) to use every core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from phone_emu.phone.driver import NetworkOptions, Phone
from phone_emu.phone.trust import FileKind, TrustList

from .fleet import FleetBoot, boot_fleet
from .outcome import classify, snapshot
from .values import BootEntry, BootRequest

__all__ = ["PhonePool", "boot_entry"]


def boot_entry(
    b: FleetBoot,
    mac: str,
    outcome: str,
    failed_step: str | None,
    reason: str | None,
    *,
    target: str,
    step: int,
) -> BootEntry:
    """The report's view of one phone's boot (``phones`` items of the JSON report)."""
    r = b.result
    return BootEntry(
        index=b.index,
        device=b.device,
        mac=mac,
        outcome=outcome,
        step=failed_step,
        reason=reason,
        cluster=target,
        boot_step=step,
        state=r.state.value if r else "error",
        elapsed=round(b.elapsed, 6),
        finished_at=round(b.finished, 6),
        tvs_queries=r.tvs_queries if r else 0,
        status=r.status_lines if r else (),
        steps=tuple((s.name, s.reason) for s in r.steps) if r else (),
        timings=tuple((s.name, round(s.elapsed, 6)) for s in r.steps) if r else (),
        transports=tuple((s.name, s.fetched[-1].transport) for s in r.steps if s.fetched)
        if r
        else (),
        error=b.error or None,
    )


class PhonePool:
    """Phones with their fleet indices; ``boot`` reboots every one, ``corrupt_itl`` damages
    some phones' ITL. A :class:`~phone_emu.lab.values.Pool`."""

    def __init__(
        self,
        phones: Sequence[Phone],
        indices: Sequence[int],
        *,
        concurrency: int,
        network: NetworkOptions,
    ) -> None:
        self.phones = list(phones)
        self.indices = list(indices)
        self.concurrency = concurrency
        self.network = network
        self.home: dict[int, str | None] = dict.fromkeys(self.indices)

    async def boot(
        self, request: BootRequest, on_entry: Callable[[BootEntry], None] | None = None
    ) -> list[BootEntry]:
        """Boot every phone against the request's TFTP server; entries in phone order."""
        target, step = request.target, request.step
        pos = {idx: i for i, idx in enumerate(self.indices)}
        before = [snapshot(p.trust, p.config) for p in self.phones]
        entries: dict[int, BootEntry] = {}

        def done(b: FleetBoot) -> None:
            i = pos[b.index]
            phone = self.phones[i]
            after = snapshot(phone.trust, phone.config)
            outcome, failed_step, reason = classify(
                b,
                before[i],
                after,
                home=self.home[b.index],
                target=target,
                target_tvs=request.target_tvs,
            )
            if outcome in ("booted", "migrated"):
                self.home[b.index] = target
            entry = boot_entry(
                b, phone.identity.mac, outcome, failed_step, reason, target=target, step=step
            )
            entries[b.index] = entry
            if on_entry is not None:
                on_entry(entry)

        network = self.network
        if request.capf_auth_string != network.boot.capf_auth_string:
            boot = attrs.evolve(network.boot, capf_auth_string=request.capf_auth_string)
            network = attrs.evolve(network, boot=boot)
        await boot_fleet(
            self.phones,
            tftp=request.tftp,
            concurrency=self.concurrency,
            options=network,
            on_done=done,
            indices=self.indices,
            keep=False,  # each boot is an entry as it ends (``done``)
        )
        return [entries[i] for i in self.indices]

    async def corrupt_itl(self, indices: Sequence[int], itl: bytes | None) -> list[str]:
        """Replace the ITL of the phones ``indices`` with ``itl`` (None: erase it)."""
        tl = TrustList.parse(itl) if itl is not None else None
        names = []
        for idx, phone in zip(self.indices, self.phones, strict=True):
            if idx not in indices:
                continue
            phone.trust = phone.trust.with_list(FileKind.ITL, tl)
            if phone.store is not None:
                phone.store.save(phone.trust, phone.config)
            names.append(phone.identity.name)
        return names

    async def erase(
        self, indices: Sequence[int] | None, *, ctl: bool, itl: bool, everything: bool
    ) -> list[str]:
        """A user's erase on the phones ``indices`` (None: all); see the Pool protocol."""
        names = []
        for idx, phone in zip(self.indices, self.phones, strict=True):
            if indices is not None and idx not in indices:
                continue
            phone.trust = phone.trust.erased(
                ctl=ctl or everything, itl=itl or everything, tvs_cache=everything
            )
            if everything:
                phone.config = None
            if phone.store is not None:
                phone.store.save(phone.trust, phone.config)
            names.append(phone.identity.name)
        return names

    async def aclose(self) -> None:
        return None
