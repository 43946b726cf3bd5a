"""The lab's values: a phone's boot entry, a boot request to a pool, a worker's start-up settings,
and the one :class:`Pool` protocol the in-process and worker pools share.

Frozen attrs values with ``to_json`` / ``from_json``: the entry's JSON is a ``phones`` item of
the migration report (its format is the report's, unchanged), and all three travel between
the runner and its worker processes as JSON lines (``workers.py``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["BootEntry", "BootRequest", "HistoryItem", "Pool", "WorkerSettings"]


def _tuple_of_str(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen_map(
    value: Mapping[str, Any] | Sequence[tuple[str, Any]],
) -> tuple[tuple[str, Any], ...]:
    """A mapping as a tuple of pairs, in order (evolve passes the pairs back in)."""
    return tuple(value.items()) if isinstance(value, Mapping) else tuple(value)


@attrs.frozen
class HistoryItem:
    """One boot of a phone in a run: the step number, its outcome and reason."""

    step: int
    outcome: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "outcome": self.outcome, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HistoryItem:
        return cls(int(d["step"]), str(d["outcome"]), d.get("reason"))


@attrs.frozen(kw_only=True)
class BootEntry:
    """The report's view of one phone's boot (an item of the report's ``phones``).

    ``step`` is the failing boot step (``ctl``, ``itl``, ...), ``boot_step`` the scenario step
    number; ``steps`` and ``timings`` keep the boot steps' order. ``expected``/``ok`` are set
    once the scenario checked this boot, ``history`` when the report lists the phone.
    """

    index: int
    device: str
    mac: str
    outcome: str
    step: str | None
    reason: str | None
    cluster: str
    boot_step: int
    state: str
    elapsed: float
    finished_at: float
    tvs_queries: int = 0
    status: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    steps: tuple[tuple[str, str | None], ...] = attrs.field(default=(), converter=_frozen_map)
    timings: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_frozen_map)
    transports: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_frozen_map)
    """Per boot step, the transport that delivered its file (``http`` or ``tftp``)."""
    error: str | None = None
    checked: bool = False
    expected: str | None = None
    ok: bool | None = None
    history: tuple[HistoryItem, ...] | None = None

    @property
    def landed(self) -> bool:
        """The phone now holds the target cluster's files (``booted`` or ``migrated``)."""
        return self.outcome in ("booted", "migrated")

    def with_check(self, expected: str | None, ok: bool) -> BootEntry:
        return attrs.evolve(self, checked=True, expected=expected, ok=ok)

    def with_history(self, history: Sequence[HistoryItem]) -> BootEntry:
        return attrs.evolve(self, history=tuple(history))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "device": self.device,
            "mac": self.mac,
            "outcome": self.outcome,
            "step": self.step,
            "reason": self.reason,
            "cluster": self.cluster,
            "boot_step": self.boot_step,
            "state": self.state,
            "elapsed": self.elapsed,
            "finished_at": self.finished_at,
            "tvs_queries": self.tvs_queries,
            "status": list(self.status),
            "steps": dict(self.steps),
            "timings": dict(self.timings),
        }
        if self.transports:
            out["transports"] = dict(self.transports)
        if self.error:
            out["error"] = self.error
        if self.checked:
            out["expected"] = self.expected
            out["ok"] = self.ok
        if self.history is not None:
            out["history"] = [h.to_json() for h in self.history]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BootEntry:
        history = d.get("history")
        return cls(
            index=int(d["index"]),
            device=str(d["device"]),
            mac=str(d["mac"]),
            outcome=str(d["outcome"]),
            step=d.get("step"),
            reason=d.get("reason"),
            cluster=str(d["cluster"]),
            boot_step=int(d["boot_step"]),
            state=str(d["state"]),
            elapsed=float(d["elapsed"]),
            finished_at=float(d["finished_at"]),
            tvs_queries=int(d.get("tvs_queries", 0)),
            status=tuple(d.get("status", ())),
            steps=dict(d.get("steps", {})),
            timings=dict(d.get("timings", {})),
            transports=dict(d.get("transports", {})),
            error=d.get("error"),
            checked="ok" in d,
            expected=d.get("expected"),
            ok=d.get("ok"),
            history=(
                tuple(HistoryItem.from_json(h) for h in history) if history is not None else None
            ),
        )


def _address(value: Sequence[Any]) -> tuple[str, int]:
    host, port = value
    return (str(host), int(port))


def _addresses(value: Any) -> frozenset[tuple[str, int]] | None:
    return None if value is None else frozenset(_address(a) for a in value)


@attrs.frozen(kw_only=True)
class BootRequest:
    """Boot every phone of a pool against the TFTP server ``tftp`` of cluster ``target``, as
    scenario step ``step``; ``target_tvs`` (None: unknown) tells migrated from stayed."""

    step: int
    target: str
    tftp: tuple[str, int] = attrs.field(converter=_address)
    target_tvs: frozenset[tuple[str, int]] | None = attrs.field(default=None, converter=_addresses)
    capf_auth_string: str | None = None
    """The CAPF auth string the phones were given (typed by a user), if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "target": self.target,
            "tftp": list(self.tftp),
            "target_tvs": (
                sorted([h, p] for h, p in self.target_tvs) if self.target_tvs is not None else None
            ),
            "capf_auth_string": self.capf_auth_string,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BootRequest:
        return cls(
            step=int(d["step"]),
            target=str(d["target"]),
            tftp=d["tftp"],
            target_tvs=d["target_tvs"],
            capf_auth_string=d.get("capf_auth_string"),
        )


def _macs(value: Sequence[Sequence[Any]]) -> tuple[tuple[int, str], ...]:
    return tuple((int(i), str(m)) for i, m in value)


def _http_ports(value: Sequence[Sequence[Any]]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(h), int(p), int(hp)) for h, p, hp in value)


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """What a worker process needs to build its slice of the fleet: the lab PKI directory and
    the cluster whose CAPF issues the LSCs, the (index, MAC) pairs, and the boot options."""

    pki_dir: str
    cluster: str
    macs: tuple[tuple[int, str], ...] = attrs.field(converter=_macs)
    model: str = "8861"
    shared_key: bool = False
    register: bool = True
    tftp_blksize: int | None = None
    concurrency: int = 64
    fetch_mode: str = "http+tftp"
    http_port: int = 6970
    http_ports: tuple[tuple[str, int, int], ...] = attrs.field(default=(), converter=_http_ports)
    """(TFTP host, TFTP port, HTTP port) of the lab's clusters."""
    enroll: bool = False
    """Phones start with a MIC and no LSC (they enroll by CAPF at their first boot)."""

    @property
    def indices(self) -> list[int]:
        return [i for i, _ in self.macs]

    def to_json(self) -> dict[str, Any]:
        return {
            "pki_dir": self.pki_dir,
            "cluster": self.cluster,
            "macs": [list(m) for m in self.macs],
            "model": self.model,
            "shared_key": self.shared_key,
            "register": self.register,
            "tftp_blksize": self.tftp_blksize,
            "concurrency": self.concurrency,
            "fetch_mode": self.fetch_mode,
            "http_port": self.http_port,
            "http_ports": [list(t) for t in self.http_ports],
            "enroll": self.enroll,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WorkerSettings:
        blksize = d.get("tftp_blksize")
        return cls(
            pki_dir=str(d["pki_dir"]),
            cluster=str(d["cluster"]),
            macs=d["macs"],
            model=str(d["model"]),
            shared_key=bool(d["shared_key"]),
            register=bool(d["register"]),
            tftp_blksize=int(blksize) if blksize is not None else None,
            concurrency=int(d["concurrency"]),
            fetch_mode=str(d.get("fetch_mode", "http+tftp")),
            http_port=int(d.get("http_port", 6970)),
            http_ports=d.get("http_ports", ()),
            enroll=bool(d.get("enroll", False)),
        )


@runtime_checkable
class Pool(Protocol):
    """Phones with their fleet indices, in this process or in a worker process."""

    @property
    def indices(self) -> list[int]: ...

    async def boot(
        self, request: BootRequest, on_entry: Callable[[BootEntry], None] | None = None
    ) -> list[BootEntry]:
        """Boot every phone; one entry per phone in ``indices`` order (``on_entry`` as each
        boot ends)."""
        ...

    async def corrupt_itl(self, indices: Sequence[int], itl: bytes | None) -> list[str]:
        """Replace the ITL of the phones ``indices`` with ``itl`` (None: erase it); their
        names."""
        ...

    async def erase(
        self, indices: Sequence[int] | None, *, ctl: bool, itl: bool, everything: bool
    ) -> list[str]:
        """A user's erase on the phones ``indices`` (None: every phone): the CTL and/or ITL,
        with ``everything`` also the TVS answers and the configuration; their names."""
        ...

    async def aclose(self) -> None: ...
