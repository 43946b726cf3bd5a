"""Building a :class:`~tvs.trace.model.Timeline` from trace texts.

Owns ordering and finishing events: each side (phone console, TVS trace) keeps its own line
order, and the two are interleaved by protocol step, since their clocks are unrelated (the
seed's phone says 06:33:59, its CUCM 18:01:06): the TVS accepts connection *k* after the
phone's *k*-th connect, receives request *k* after the phone sent it, and the phone receives
response *k* after the TVS sent it. Also fills what a cut-short response dump cannot show
(roles from the cache lookup, TTL from its own dump line) and writes each event's summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..roles import role_label, role_names
from .decode import message_lines
from .model import Event, Kind, Source, Timeline
from .reader import RawEvent, read_events

__all__ = ["build_timeline", "events_timeline", "read_timeline"]

# (waiting side's kind, other side's kind): the k-th waiting event comes after the k-th other
_TVS_WAITS = {Kind.CONNECTION: Kind.TVS_CONNECT, Kind.REQUEST: Kind.REQUEST}
_PHONE_WAITS = {Kind.HANDSHAKE: Kind.HANDSHAKE, Kind.RESPONSE: Kind.RESPONSE}


def _blockers(events: list[RawEvent], other: list[RawEvent], waits: dict[Kind, Kind]) -> list[int]:
    """For each event, the index in ``other`` that must be emitted before it (-1: none)."""
    positions: dict[Kind, list[int]] = {}
    for i, ev in enumerate(other):
        positions.setdefault(ev.kind, []).append(i)
    counts: dict[Kind, int] = {}
    out: list[int] = []
    for ev in events:
        block = -1
        if ev.kind in waits:
            k = counts.get(ev.kind, 0)
            counts[ev.kind] = k + 1
            theirs = positions.get(waits[ev.kind], [])
            if k < len(theirs):
                block = theirs[k]
        out.append(block)
    return out


def _merge(phone: list[RawEvent], tvs: list[RawEvent]) -> list[RawEvent]:
    block_t = _blockers(tvs, phone, _TVS_WAITS)
    block_p = _blockers(phone, tvs, _PHONE_WAITS)
    out: list[RawEvent] = []
    i = j = 0
    while i < len(phone) or j < len(tvs):
        if j < len(tvs) and block_t[j] < i:
            out.append(tvs[j])
            j += 1
        elif i < len(phone) and (block_p[i] < j or j >= len(tvs) or block_t[j] >= i):
            out.append(phone[i])
            i += 1
        else:  # inconsistent anchors: keep going rather than stall
            out.append(tvs[j])
            j += 1
    return out


def _roles(fields: dict[str, Any]) -> str:
    roles = fields.get("roles")
    if roles is None:
        return ""
    return ", ".join(role_names(roles)) or "none"


def _size(f: dict[str, Any]) -> str:
    if "length" not in f:
        return ""
    if f.get("truncated") and not f.get("present"):
        return f" ({f['length']} bytes, not dumped)"
    if f.get("truncated"):
        return f" ({f['length']} bytes, dump cut at {f['present']})"
    return f" ({f['length']} bytes)"


def _summary(ev: RawEvent) -> str:
    f = ev.fields
    k = ev.kind
    if k == Kind.FILE_REQUEST:
        return f"phone requests {f.get('file')} (saved as {f.get('dest')})"
    if k == Kind.FILE_DONE:
        server = f" from {f['server']}" if f.get("server") else ""
        return f"file transfer complete, status {f.get('status')}{server}"
    if k == Kind.TVS_CONNECT:
        port = f":{f['port']}" if f.get("port") else ""
        return f"phone connects to TVS {f.get('address')}{port}"
    if k == Kind.TVS_CERT_CHECK:
        valid = {True: "valid", False: "NOT valid", None: "result not shown"}[f.get("valid")]
        role = f.get("role")
        shown = f"role {role} ({role_label(role)})" if role is not None else "role ?"
        return f"phone checks the TVS server certificate against its ITL: {shown}, {valid}"
    if k == Kind.CONNECTION:
        return f"TVS accepts a connection from {f.get('peer', '?')}"
    if k == Kind.HANDSHAKE:
        if ev.source == Source.PHONE:
            return "phone: TLS handshake with TVS successful"
        client = f", client {f['client']}" if f.get("client") else ""
        return f"TVS: TLS handshake done, cipher {f.get('cipher', '?')}{client}"
    if k in (Kind.HANDSHAKE_FAILED, Kind.FAILURE):
        reason = f": {f['reason']}" if f.get("reason") else ""
        return f"{ev.source.value}: {f.get('what', 'failure')}{reason}"
    if k == Kind.REQUEST:
        what = f.get("type") or (f"TVS {f['operation']} request" if "operation" in f else "request")
        rid = f" id {f['request_id']}" if "request_id" in f else ""
        who = "phone sends" if ev.source == Source.PHONE else "TVS receives"
        signer = ""
        if f.get("subject"):
            signer = f": signer {f['subject']}"
            if f.get("issuer"):
                signer += f", issuer {f['issuer']}, serial {f.get('serial', '?')}"
        return f"{who} {what}{rid}{_size(f)}{signer}"
    if k == Kind.LOOKUP:
        found = f.get("found")
        result = f"found, roles {_roles(f)}" if found else "not found" if found is False else "?"
        return f"TVS looks up {f.get('key', '?')}: {result}"
    if k == Kind.RESPONSE:
        who = "phone receives" if ev.source == Source.PHONE else "TVS answers"
        what = f.get("type", "a response")
        rid = f" id {f['request_id']}" if "request_id" in f else ""
        parts = [str(f["status"])] if "status" in f else []
        if "roles" in f:
            parts.append(f"roles {_roles(f)}")
        if f.get("ttl") is not None:
            parts.append(f"TTL {f['ttl']} s")
        answer = ": " + ", ".join(parts) if parts else ""
        return f"{who} {what}{rid}{_size(f)}{answer}"
    if k == Kind.TVS_CACHE:
        if f.get("hit"):
            return "phone finds the signer in its TVS cache"
        return f"phone caches the TVS answer for {f.get('ttl', 0) // 3600} h"
    if k == Kind.TRUST_LIST:
        steps = [s for s in ("first_use", "verified", "updated", "unchanged") if f.get(s)]
        state = "FAILED" if f.get("ok") is False else ", ".join(steps) or "checked"
        sig = f"signature {f['signature']}, " if f.get("signature") else ""
        what = "signed file" if f.get("signed_file") else "trust list"
        return f"phone: {what} {f.get('file') or '?'}: {sig}{state.replace('_', ' ')}"
    if k == Kind.STATUS:
        return f"phone status: {f.get('text')}"
    if k == Kind.RELOAD:
        return f"TVS cache reloaded: {f.get('entries')} entries"
    return f"{ev.source.value}: {f.get('text', k.value)}"


def _finish(ev: RawEvent, name: str, lookup: dict[str, Any] | None) -> Event:
    fields = dict(ev.fields)
    from_lookup = ev.kind == Kind.RESPONSE and ev.source == Source.TVS and lookup is not None
    if from_lookup and lookup and "roles" not in fields and lookup.get("found"):
        fields["roles"] = list(lookup.get("roles", []))
        fields["roles_from"] = "cache lookup"
    if "roles" in fields:
        fields["role_names"] = role_names(fields["roles"])
    raw = RawEvent(ev.source, ev.kind, ev.time, ev.line, fields, ev.message)
    detail = tuple(message_lines(ev.message)) if ev.message is not None else ()
    return Event(
        source=ev.source,
        kind=ev.kind,
        summary=_summary(raw),
        fields=fields,
        time=ev.time,
        file=name,
        line=ev.line,
        message=ev.message,
        detail=detail,
    )


def build_timeline(texts: Iterable[tuple[str, str]]) -> Timeline:
    """A timeline from ``(name, text)`` pairs: each text may hold phone lines, TVS lines or both."""
    phone: list[tuple[str, RawEvent]] = []
    tvs: list[tuple[str, RawEvent]] = []
    names: list[str] = []
    for name, text in texts:
        names.append(name)
        for ev in read_events(text):
            (phone if ev.source == Source.PHONE else tvs).append((name, ev))
    origin = {id(ev): name for name, ev in (*phone, *tvs)}
    merged = _merge([e for _, e in phone], [e for _, e in tvs])
    events: list[Event] = []
    lookup: dict[str, Any] | None = None
    for ev in merged:
        if ev.kind == Kind.LOOKUP:
            lookup = ev.fields
        events.append(_finish(ev, origin[id(ev)], lookup))
        if ev.kind == Kind.RESPONSE and ev.source == Source.TVS:
            lookup = None
    return Timeline(events=tuple(events), files=tuple(names))


def events_timeline(name: str, raw: Iterable[RawEvent]) -> Timeline:
    """A timeline of events already in order (a packet capture's, :mod:`.capture`)."""
    events: list[Event] = []
    lookup: dict[str, Any] | None = None
    for ev in raw:
        events.append(_finish(ev, name, lookup))
    return Timeline(events=tuple(events), files=(name,))


def read_timeline(text: str, name: str = "") -> Timeline:
    """A timeline from one text."""
    return build_timeline([(name, text)])
