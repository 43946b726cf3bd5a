"""A fleet of emulated phones in one process: identities made on the fly, sharding, boot storms.

Owns numbering phones (MACs counting up from a start MAC, so shards never collide), issuing
each phone an LSC from a CAPF in memory (EC P-256; one shared key with ``shared_key``) or, for
phones that enroll by CAPF at first boot, only a MIC from the lab's manufacturing CA, the
phones' state (in memory, or one state directory per phone), and booting many phones at once
under a :class:`trio.CapacityLimiter` (the boot-storm limit). A boot that raises is recorded
as an error for that phone; it never stops the others. Does not own the boot itself
(``phone_emu.phone.boot_phone``) nor what an outcome means for a migration (``migrate``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import structlog
import trio

from phone_emu.phone.boot import BootResult
from phone_emu.phone.driver import NetworkOptions, Phone, boot_phone
from phone_emu.phone.identity import PhoneIdentity
from tvs.certs import PrivateKey
from tvs.device import normalise_mac
from tvs.pki import Identity, generate_key, issue_lsc
from tvs.pki.issue import issue_mic

__all__ = [
    "FleetBoot",
    "FleetError",
    "boot_fleet",
    "fleet_macs",
    "make_identities",
    "make_mic_identities",
    "make_phones",
    "parse_shard",
    "shard_range",
]

log = structlog.get_logger("phone_emu.lab.fleet")


class FleetError(ValueError):
    """A fleet that cannot be built (bad shard, MAC range overflow, ...)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): this process takes the second of four slices (1-based)."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise FleetError(f"shard {text!r} is not I/N (e.g. 1/4)") from None
    if not 1 <= i <= n:
        raise FleetError(f"shard {text!r}: need 1 <= I <= N")
    return i, n


def shard_range(count: int, shard: tuple[int, int] = (1, 1)) -> range:
    """The phone indices shard ``(I, N)`` of ``count`` phones takes: contiguous, sizes differ
    by at most one, and the N slices together are ``range(count)``."""
    i, n = shard
    if not 1 <= i <= n:
        raise FleetError(f"shard {i}/{n}: need 1 <= I <= N")
    return range((i - 1) * count // n, i * count // n)


def fleet_macs(
    count: int, mac_start: str = "B000B4BA0AEE", shard: tuple[int, int] = (1, 1)
) -> list[tuple[int, str]]:
    """(index, MAC) for the shard's phones; phone ``index`` has MAC ``mac_start + index``."""
    start = int(normalise_mac(mac_start), 16)
    if start + count - 1 > 0xFFFFFFFFFFFF:
        raise FleetError(f"{count} phones from {mac_start} overflow the MAC space")
    return [(i, f"{start + i:012X}") for i in shard_range(count, shard)]


def make_identities(
    capf: Identity,
    macs: Sequence[tuple[int, str]],
    *,
    model: str = "8861",
    shared_key: bool = False,
    key_type: str = "ec-p256",
) -> list[PhoneIdentity]:
    """One identity per MAC with an LSC issued by ``capf`` in memory. ``shared_key`` makes one
    key for the whole fleet (faster for RSA; EC P-256 keys are cheap enough to make per phone)."""
    key: PrivateKey | None = generate_key(key_type) if shared_key else None
    out = []
    for _, mac in macs:
        lsc = issue_lsc(capf, mac=mac, model=model, key_type=key_type, key=key)
        out.append(PhoneIdentity(mac=mac, model=model, lsc=lsc.cert, key=lsc.key))
    return out


def make_mic_identities(
    manufacturing_ca: Identity,
    macs: Sequence[tuple[int, str]],
    *,
    model: str = "8861",
    shared_key: bool = False,
    key_type: str = "ec-p256",
) -> list[PhoneIdentity]:
    """Phones fresh from the factory: a MIC from the lab's manufacturing CA and no LSC. They
    present the MIC until CAPF installs an LSC (``fleet --enroll``, the ``enroll`` scenarios)."""
    key: PrivateKey | None = generate_key(key_type) if shared_key else None
    out = []
    for _, mac in macs:
        k = key if key is not None else generate_key(key_type)
        mic = issue_mic(manufacturing_ca, k, mac=mac, model=model)
        out.append(PhoneIdentity(mac=mac, model=model, key=k, mic=mic))
    return out


def make_phones(
    identities: Sequence[PhoneIdentity], state_dir: str | Path | None = None
) -> list[Phone]:
    """Phones in memory, or each with its state directory ``state_dir/SEP<MAC>`` (created,
    or loaded when it already holds state)."""
    if state_dir is None:
        return [Phone.open(i) for i in identities]
    root = Path(state_dir)
    return [Phone.open(i, root / i.name) for i in identities]


@attrs.frozen
class FleetBoot:
    """One phone's boot in a fleet run; ``started``/``finished`` are seconds since the fleet
    started booting. ``result`` is None when the boot raised (``error`` says what)."""

    index: int
    device: str
    started: float
    finished: float
    result: BootResult | None
    error: str | None = None

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


async def boot_fleet(
    phones: Sequence[Phone],
    *,
    tftp: tuple[str, int] | Callable[[int], tuple[str, int]],
    concurrency: int = 64,
    options: NetworkOptions | None = None,
    clock: Callable[[], float] = time.time,
    on_done: Callable[[FleetBoot], None] | None = None,
    indices: Sequence[int] | None = None,
    keep: bool = True,
) -> list[FleetBoot]:
    """Boot every phone (each updates its own state) with at most ``concurrency`` at once.

    ``tftp`` is the address DHCP option 150 gives, or a function of the phone's position.
    ``indices`` are the phones' fleet indices (default 0..n-1). Results come back in the
    phones' order; ``on_done`` is called as each boot finishes. ``keep=False``: nothing is
    kept nor returned (the caller takes each boot from ``on_done``), so a large fleet's
    finished boots do not pile up in memory until the last one ends.

    A phone's task is started once it holds a slot of the limiter, so a fleet of thousands is
    at most ``concurrency`` tasks at a time, not thousands of tasks queued on the limiter.
    """
    if concurrency < 1:
        raise FleetError("concurrency must be at least 1")
    opts = options or NetworkOptions()
    limiter = trio.CapacityLimiter(concurrency)
    t0 = trio.current_time()
    out: list[FleetBoot | None] = [None] * len(phones) if keep else []
    idx = list(indices) if indices is not None else list(range(len(phones)))

    async def one(pos: int, phone: Phone) -> None:
        try:
            started = trio.current_time() - t0
            addr = tftp(pos) if callable(tftp) else tftp
            structlog.contextvars.bind_contextvars(phone=phone.identity.name)
            try:
                result = await boot_phone(phone, tftp=addr, clock=clock, options=opts)
                error = None
            except Exception as exc:  # one phone's bug must not stop the fleet
                log.warning("boot raised", error=repr(exc))
                result, error = None, f"{type(exc).__name__}: {exc}"
            finished = trio.current_time() - t0
        finally:
            limiter.release_on_behalf_of(pos)
        rec = FleetBoot(idx[pos], phone.identity.device_name, started, finished, result, error)
        if keep:
            out[pos] = rec
        if on_done is not None:
            on_done(rec)

    async with trio.open_nursery() as nursery:
        for pos, phone in enumerate(phones):
            await limiter.acquire_on_behalf_of(pos)
            nursery.start_soon(one, pos, phone)
    return [r for r in out if r is not None]
