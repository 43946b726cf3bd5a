"""Splitting trace text into log records by their line prefixes.

Owns recognising the CUCM prefix (``18:01:06.345 | debug``) and the phone console prefix
(``3321 DEB Nov 29 06:33:59.909364``) wherever they are, so text whose line breaks were lost
(copied from a web page, as in the seed) splits the same as a real log, and matching byte
dumps (``tvs.hexdump``) to the record that introduced them. Knows nothing of what lines mean.
"""

from __future__ import annotations

import bisect
import re

import attrs

from ..hexdump import HexDump
from .model import Source

__all__ = ["HEX_ROW", "Record", "dumps_by_record", "split_records"]

_RECORD = re.compile(
    r"(?P<ctime>\b\d{1,2}:\d{2}:\d{2}\.\d{3})(?!\d)\s*\|\s*(?P<clevel>[A-Za-z]+)\b ?"
    r"|(?:\b(?P<seq>\d+)\s+)?\b(?P<plevel>DEB|INF|NOT|WRN|ERR|CRT)\s+"
    r"(?P<ptime>[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\.\d+)\s+"
)


@attrs.frozen
class Record:
    """One log line (or, with line breaks lost, the text between two prefixes)."""

    source: Source
    time: str
    level: str
    text: str
    start: int  # offset of the prefix
    end: int  # offset just after the record's text
    line: int


# every prefix holds a clock; finding it first (a literal ':') is ~3x faster than scanning
# for the whole alternation at every position
_CLOCK = re.compile(r":\d\d:\d\d\.\d")


def _prefixes(text: str) -> list[re.Match[str]]:
    out: list[re.Match[str]] = []
    last = 0
    for hit in _CLOCK.finditer(text):
        if hit.start() < last:
            continue
        m = _RECORD.search(text, max(last, hit.start() - 40), hit.end() + 40)
        if m is not None and m.start() <= hit.start() < m.end():
            out.append(m)
            last = m.end()
    return out


def split_records(text: str) -> list[Record]:
    matches = _prefixes(text)
    out: list[Record] = []
    line = 1
    last = 0
    for i, m in enumerate(matches):
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        newline = text.find("\n", m.end(), stop)
        end = newline if newline >= 0 else stop
        line += text.count("\n", last, m.start())
        last = m.start()
        if m.group("ctime"):
            source, time, level = Source.TVS, m.group("ctime"), m.group("clevel").lower()
        else:
            source, level = Source.PHONE, m.group("plevel")
            time = " ".join(m.group("ptime").split())
        out.append(Record(source, time, level, text[m.end() : end].strip(), m.start(), end, line))
    return out


HEX_ROW = re.compile(r"(?:[0-9A-Fa-f]{2}(?: |$))*")


def dumps_by_record(records: list[Record], dumps: list[HexDump]) -> list[list[HexDump]]:
    starts = [r.start for r in records]
    out: list[list[HexDump]] = [[] for _ in records]
    for d in dumps:
        i = bisect.bisect_right(starts, d.offset) - 1
        if i >= 0 and d.offset <= records[i].end:
            out[i].append(d)
    return out
