"""Pulling byte dumps out of CUCM TVS traces and phone console logs.

Owns recognising ``HEX_DUMP: Len = N:`` (CUCM TVS detailed trace) and
``byte dump ====, len = N`` (phone console) markers and collecting the hex byte rows that
follow, skipping the per-line prefixes the logs interleave (``18:01:06.345 | debug``,
``3321 DEB Nov 29 06:33:59.909364 SECUREAPP-``).
Works on text whose line breaks were lost (copied from a web page), as in the seed. Knows
nothing of what the bytes mean.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["HexDump", "extract_hex_dumps", "parse_hex"]

_MARKER = re.compile(
    r"HEX_DUMP:\s*Len\s*=\s*(?P<n1>\d+)\s*:?"
    r"|byte dump\s*=*\s*,?\s*len\s*=\s*(?P<n2>\d+)",
    re.IGNORECASE,
)
# prefixes a log writer puts before each row of a dump
_PREFIXES = (
    re.compile(r"\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\s*\|\s*[A-Za-z]+"),  # CUCM: 18:01:06.345 | debug
    re.compile(  # phone: 3321 DEB Nov 29 06:33:59.909364 SECUREAPP-
        r"(?:\d+\s+)?(?:DEB|INF|NOT|WRN|ERR|CRT)\s+[A-Z][a-z]{2}\s+\d{1,2}\s+"
        r"\d{2}:\d{2}:\d{2}(?:\.\d+)?\s+[A-Za-z0-9_]+-"
    ),
)
_BYTE = re.compile(r"([0-9A-Fa-f]{2})(?=\s|$)")
_WS = re.compile(r"\s+")
_LABEL = re.compile(r"(?:\|\s*[a-z]+\s+|SECUREAPP-|^)(?P<label>[^|\n]{0,60}?)\s*$")


@attrs.frozen
class HexDump:
    """One dump: its declared length, the bytes found, and the words that introduced it."""

    label: str
    declared_length: int | None
    data: bytes
    offset: int

    @property
    def truncated(self) -> bool:
        return self.declared_length is not None and len(self.data) < self.declared_length


def _collect(text: str, pos: int, limit: int | None) -> tuple[bytes, int]:
    out = bytearray()
    while limit is None or len(out) < limit:
        m = _WS.match(text, pos)
        if m:
            pos = m.end()
        for prefix in _PREFIXES:
            m = prefix.match(text, pos)
            if m:
                pos = m.end()
                break
        else:
            m = _BYTE.match(text, pos)
            if not m:
                break
            out.append(int(m.group(1), 16))
            pos = m.end()
    return bytes(out), pos


def extract_hex_dumps(text: str) -> list[HexDump]:
    """Every dump in ``text``, in order. A dump cut short has fewer bytes than declared."""
    dumps: list[HexDump] = []
    pos = 0
    while True:
        m = _MARKER.search(text, pos)
        if not m:
            return dumps
        declared = int(m.group("n1") or m.group("n2"))
        data, end = _collect(text, m.end(), declared)
        before = text[max(0, m.start() - 80) : m.start()]
        lm = _LABEL.search(before)
        label = lm.group("label").strip(" :.=") if lm else ""
        dumps.append(HexDump(label=label, declared_length=declared, data=data, offset=m.start()))
        pos = max(end, m.end())


def parse_hex(text: str) -> bytes:
    """Bytes from plain hex: spaces, newlines, ``0x`` prefixes, ``:`` and ``-`` are ignored."""
    cleaned = re.sub(r"0x|[\s:,\-]", "", text.strip(), flags=re.IGNORECASE)
    if len(cleaned) % 2:
        raise ValueError("odd number of hex digits")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        bad = re.search(r"[^0-9A-Fa-f]", cleaned)
        where = f" ({cleaned[bad.start()]!r} at digit {bad.start()})" if bad else ""
        raise ValueError(f"not hex{where}") from None
