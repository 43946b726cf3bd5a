"""Reading CUCM TVS detailed traces and phone console logs into timelines, and diffing them.

Pure: text in, values out. ``read_timeline`` / ``build_timeline`` give a :class:`Timeline` of
:class:`Event` values (file fetches, handshakes, TVS requests and responses with their
reassembled bytes, lookups, trust-list updates, failures); ``diff_timelines`` names the first
step where two timelines diverge; ``timeline_to_dict`` / ``format_timeline`` present them.
"""

from __future__ import annotations

from .diff import COMPARED_FIELDS, Divergence, TraceDiff, diff_timelines
from .model import CORE_KINDS, Event, Kind, MessageBytes, Source, Timeline
from .render import diff_to_dict, event_to_dict, format_diff, format_timeline, timeline_to_dict
from .timeline import build_timeline, read_timeline

__all__ = [
    "COMPARED_FIELDS",
    "CORE_KINDS",
    "Divergence",
    "Event",
    "Kind",
    "MessageBytes",
    "Source",
    "Timeline",
    "TraceDiff",
    "build_timeline",
    "diff_timelines",
    "diff_to_dict",
    "event_to_dict",
    "format_diff",
    "format_timeline",
    "read_timeline",
    "timeline_to_dict",
]
