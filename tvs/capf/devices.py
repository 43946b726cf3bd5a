"""Device names for CAPF administration: ``SEP<MAC>`` and fleet ranges of them.

Owns the one syntax ``tvs capf schedule`` accepts: a device name ``SEP001122334455`` (any
case; a bare MAC or ``CP-8861-SEP<MAC>`` is also read), or a range written with one bracketed
hexadecimal span at the end: ``SEP0011223344[00-FF]`` (256 devices),
``SEP00112233[0000-01FF]`` (512). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_EXPANSION", "DeviceNameError", "device_name", "expand_devices"]

MAX_EXPANSION: Final = 1 << 20
_RANGE = re.compile(r"^(?:SEP)?([0-9A-F]*)\[([0-9A-F]+)-([0-9A-F]+)\]$", re.IGNORECASE)
_SEP = re.compile(r"SEP([0-9A-F]{12})$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9A-F]{12}$", re.IGNORECASE)


class DeviceNameError(ValueError):
    """Not a device name or range (the message names the offending text)."""


def device_name(text: str) -> str:
    """``SEP<MAC>`` in upper case, from ``SEP...``, ``CP-8861-SEP...`` or a bare MAC."""
    t = text.strip()
    mac = t.replace(":", "").replace(".", "").replace("-", "")
    if _MAC.match(mac):
        return f"SEP{mac.upper()}"
    m = _SEP.search(t)
    if m:
        return f"SEP{m.group(1).upper()}"
    raise DeviceNameError(f"{text!r} is not a device name SEP<12 hex digits>")


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
            out[f"SEP{prefix.upper()}{n:0{width}X}"] = None
    return list(out)
