"""Reading CUCM TVS detailed traces and phone console logs into timeline events.

Owns the reading loop: split the text into records (:mod:`tvs.trace.records`), pull the byte
dumps out (:func:`tvs.hexdump.extract_hex_dumps`), and apply the first matching line rule
(:mod:`tvs.trace.rules`) to each record. Lines no rule knows are skipped (ERR-level phone
lines are kept as errors). Merging several sources into one timeline is
:mod:`tvs.trace.timeline`.
"""

from __future__ import annotations

from ..hexdump import extract_hex_dumps
from .model import Kind, Source
from .records import HEX_ROW, dumps_by_record, split_records
from .rules import PHONE_RULES, TVS_RULES, RawEvent, ReadState

__all__ = ["RawEvent", "read_events"]


def read_events(text: str) -> list[RawEvent]:
    """Every recognised event of one text, in line order (the phone's and the TVS's mixed
    as they appear; :func:`tvs.trace.timeline.build_timeline` orders them)."""
    records = split_records(text)
    dumps = dumps_by_record(records, extract_hex_dumps(text))
    st = ReadState()
    for rec, rec_dumps in zip(records, dumps, strict=True):
        if not rec_dumps and HEX_ROW.fullmatch(rec.text):
            continue  # a row of a dump: its bytes were collected with the dump
        table = TVS_RULES if rec.source == Source.TVS else PHONE_RULES
        for pattern, handler in table:
            m = pattern.search(rec.text)
            if m:
                handler(st, rec, m, rec_dumps)
                break
        else:
            if rec.source == Source.PHONE and rec.level == "ERR":
                st.new(rec, Kind.ERROR, text=rec.text)
    return st.events
