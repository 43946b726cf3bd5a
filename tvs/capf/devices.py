"""Fleet ranges of device names for CAPF administration (single names: :mod:`tvs.device`).

Owns the one syntax ``tvs capf schedule`` accepts: a device name ``SEP001122334455`` (any
case; a bare MAC or ``CP-8861-SEP<MAC>`` is also read), or a range written with one bracketed
hexadecimal span at the end: ``SEP0011223344[00-FF]`` (256 devices),
``SEP00112233[0000-01FF]`` (512). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from .. import device
from ..device import DeviceNameError

__all__ = ["MAX_EXPANSION", "DeviceNameError", "device_name", "expand_devices"]

MAX_EXPANSION: Final = 1 << 20
_RANGE = re.compile(r"^(?:SEP)?([0-9A-F]*)\[([0-9A-F]+)-([0-9A-F]+)\]$", re.IGNORECASE)


def device_name(text: str) -> str:
    """``SEP<MAC>`` in upper case, from ``SEP...``, ``CP-8861-SEP...`` or a bare MAC."""
    mac = device.mac_in(text.upper()) if text.strip().upper().startswith("CP-") else None
    return device.device_name(mac or text)


def expand_devices(specs: Iterable[str], *, limit: int = MAX_EXPANSION) -> list[str]:
    """Every device named by ``specs`` (names and bracket ranges), in order, without repeats."""
    out: dict[str, None] = {}
    for spec in specs:
        m = _RANGE.match(spec.strip())
        if not m:
            out[device_name(spec)] = None
            continue
        prefix, first, last = m.groups()
        if len(first) != len(last) or len(prefix) + len(first) != 12:
            raise DeviceNameError(
                f"{spec!r}: the prefix and the bracketed span must make 12 hex digits,"
                " both ends of the span the same width"
            )
        lo, hi = int(first, 16), int(last, 16)
        if lo > hi:
            raise DeviceNameError(f"{spec!r}: the span runs backwards")
        if hi - lo + 1 + len(out) > limit:
            raise DeviceNameError(f"{spec!r}: more than {limit} devices")
        width = len(first)
        for n in range(lo, hi + 1):
            out[device.device_name(f"{prefix}{n:0{width}X}")] = None
    return list(out)
