"""The lines the trace reader recognises, and what each one adds to the timeline.

Owns one rule per known line (a keyword, a pattern and a handler) for the CUCM TVS trace
(:data:`TVS_RULES`) and the phone console (:data:`PHONE_RULES`), and the reading state that
lets later lines fill in the event an earlier line started (the signer lines after a request
dump, the role lines after a lookup, the trust-list lines after a file fetch).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from ..hexdump import HexDump
from .decode import message_bytes, message_fields
from .model import Kind, MessageBytes, Source
from .records import Record

__all__ = ["PHONE_RULES", "TVS_RULES", "RawEvent", "ReadState", "Rule"]


@attrs.define
class RawEvent:
    """An event being built while its lines are read (fields are filled in by later lines)."""

    source: Source
    kind: Kind
    time: str
    line: int
    fields: dict[str, Any] = attrs.field(factory=dict)
    message: MessageBytes | None = None


Handler = Callable[["ReadState", Record, "re.Match[str]", list[HexDump]], None]


@attrs.frozen
class Rule:
    """A line pattern, tried only on lines containing ``keyword`` (a cheap test first)."""

    keyword: str | None
    pattern: re.Pattern[str]

    def search(self, text: str) -> re.Match[str] | None:
        if self.keyword is not None and self.keyword not in text:
            return None
        return self.pattern.search(text)


def _rule(keyword: str | None, pattern: str) -> Rule:
    return Rule(keyword, re.compile(pattern))


class ReadState:
    """Per-file reading state: the events so far and the current one of each kind per side."""

    def __init__(self) -> None:
        self.events: list[RawEvent] = []
        self.current_file: dict[Source, str] = {}

    def new(self, rec: Record, kind: Kind, **fields: Any) -> RawEvent:
        ev = RawEvent(rec.source, kind, rec.time, rec.line, dict(fields))
        self.events.append(ev)
        return ev

    def last(self, source: Source, *kinds: Kind, within: int = 0) -> RawEvent | None:
        """The latest event of one of ``kinds`` from ``source``; with ``within``, only if it
        is among that side's last ``within`` events."""
        seen = 0
        for ev in reversed(self.events):
            if ev.source != source:
                continue
            if ev.kind in kinds:
                return ev
            seen += 1
            if within and seen >= within:
                return None
        return None

    def current(self, rec: Record, kind: Kind, **fields: Any) -> RawEvent:
        """The event of ``kind`` still being built on this side, else a new one."""
        ev = self.last(rec.source, kind, within=1)
        return ev if ev is not None else self.new(rec, kind, **fields)


def _attach(ev: RawEvent, dumps: list[HexDump]) -> None:
    if dumps:
        ev.message = message_bytes(dumps[0])
        for key, value in message_fields(ev.message).items():
            if key == "type" or key not in ev.fields:
                ev.fields[key] = value


# --- CUCM TVS trace ------------------------------------------------------------------------


def _accepted(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.CONNECTION, fd=int(m.group(1)))


def _new_conn(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.CONNECTION) or st.new(rec, Kind.CONNECTION)
    ev.fields["peer"] = m.group(1)


def _tvs_handshake(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.HANDSHAKE, peer=m.group(1), cipher=m.group(2))


def _hs_peer(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.current(rec, Kind.HANDSHAKE)
    ev.fields["client"] = m.group(1).strip()


def _hs_done(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.current(rec, Kind.HANDSHAKE)


def _incoming(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    _attach(st.new(rec, Kind.REQUEST), dumps)


def _msg_type(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.REQUEST, Kind.RESPONSE)
    if ev is not None:
        ev.fields["cucm_type"] = m.group(1)


def _query_field(name: str) -> Handler:
    def handle(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
        ev = st.last(Source.TVS, Kind.REQUEST) or st.new(rec, Kind.REQUEST)
        ev.fields[name] = m.group(1).strip()

    return handle


def _lookup(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    by = "sha256" if m.group(1) == "SHA256" else "serial+issuer"
    st.new(rec, Kind.LOOKUP, by=by, key=m.group(2).strip())


def _found(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.LOOKUP) or st.new(rec, Kind.LOOKUP)
    ev.fields.update(found=True, rolecount=int(m.group(1)))
    ev.fields.setdefault("roles", [])


def _role(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.LOOKUP) or st.new(rec, Kind.LOOKUP, found=True)
    ev.fields.setdefault("roles", []).append(int(m.group(1)))


def _not_found(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.LOOKUP) or st.new(rec, Kind.LOOKUP)
    ev.fields["found"] = False


def _ctl_lookup(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    """The cache missed and the TVS looks in the current CTL (the lab's ``cucm`` trace)."""
    ev = st.last(Source.TVS, Kind.LOOKUP) or st.new(rec, Kind.LOOKUP)
    ev.fields["source"] = "ctl"


def _sending(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.RESPONSE, type=m.group(1))


def _cert_dump(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.RESPONSE) or st.new(rec, Kind.RESPONSE)
    if dumps and dumps[0].declared_length is not None:
        ev.fields.setdefault("certificate_length", dumps[0].declared_length)


def _ttl_dump(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.RESPONSE) or st.new(rec, Kind.RESPONSE)
    if dumps and len(dumps[0].data) == 4:
        ev.fields.setdefault("ttl", int.from_bytes(dumps[0].data, "big"))


def _sent(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.TVS, Kind.RESPONSE, within=12)
    if ev is None or ev.message is not None:
        ev = st.new(rec, Kind.RESPONSE)
    _attach(ev, dumps)


def _tvs_failure(kind: Kind, what: str) -> Handler:
    def handle(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
        reason = (m.group("reason") or "").strip() if "reason" in m.groupdict() else ""
        st.new(rec, kind, what=what, reason=reason)

    return handle


def _reloaded(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.RELOAD, entries=int(m.group(1)))


TVS_RULES: list[tuple[Rule, Handler]] = [
    (_rule("Accepted TCP", r"Accepted TCP connection from socket \S+, fd = (\d+)"), _accepted),
    (_rule("new ph conn", r"Got a new ph conn (\S+) on"), _new_conn),
    (_rule("Session ciphers", r"(\S+): tvsSSLHandShake Session ciphers - (\S+)"), _tvs_handshake),
    (_rule("Peer certificate", r"tvsSSLHandShake Peer certificate - (.*)"), _hs_peer),
    (_rule("TLS HS Done", r"TLS HS Done"), _hs_done),
    (_rule("Incoming Phone Msg", r"Incoming Phone Msg"), _incoming),
    (_rule("MsgType", r"MsgType : (\S+)"), _msg_type),
    (_rule("Subject Name is", r"Subject Name is: (.*)"), _query_field("subject")),
    (_rule("Issuer Name is", r"Issuer Name is: (.*)"), _query_field("issuer")),
    (_rule("Serial Number is", r"Serial Number is: (\S*)"), _query_field("serial")),
    (_rule("cache using", r"cache using (Unique MAP ID|SHA256) : (.*)"), _lookup),
    (_rule("Found entry", r"Found entry \{rolecount : (\d+)\}"), _found),
    (_rule("{role :", r"\{role : (\d+)\}"), _role),
    (_rule("Entry not found", r"getCertificateInformation - Entry not found"), _not_found),
    (_rule("current CTL file", r"Looking up the current CTL file"), _ctl_lookup),
    (_rule("Sending", r"Sending (\w+) msg"), _sending),
    (_rule("Cert Type", r"Cert Type : \d+ HEX_DUMP"), _cert_dump),
    (_rule("PublicKey", r"PublicKey : HEX_DUMP"), _ttl_dump),
    (_rule("Sending TLS Msg", r"Sending TLS Msg"), _sent),
    (
        _rule("handshake failed", r"handshake failed(?: reason=(?P<reason>.*))?"),
        _tvs_failure(Kind.HANDSHAKE_FAILED, "TLS handshake failed"),
    ),
    (
        _rule("bad request", r"bad request(?: reason=(?P<reason>.*))?"),
        _tvs_failure(Kind.FAILURE, "bad request"),
    ),
    (
        _rule("connection rejected", r"connection rejected(?: .*?reason=(?P<reason>.*))?"),
        _tvs_failure(Kind.FAILURE, "connection rejected"),
    ),
    (
        _rule("response not delivered", r"response not delivered(?: reason=(?P<reason>.*))?"),
        _tvs_failure(Kind.FAILURE, "response not delivered"),
    ),
    (_rule("cache reloaded", r"cache reloaded entries=(\d+)"), _reloaded),
]

# --- phone console ---------------------------------------------------------------------------


def _getfile(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.current_file[Source.PHONE] = m.group(1)
    st.new(rec, Kind.FILE_REQUEST, file=m.group(1), dest=m.group(2))


def _xxtp_done(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.FILE_DONE, status=int(m.group(1)), file=st.current_file.get(Source.PHONE))


def _xxtp_server(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.current(rec, Kind.FILE_DONE).fields["server"] = m.group(1)


def _connect(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.TVS_CONNECT, address=m.group(1))


def _bio(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.PHONE, Kind.TVS_CONNECT) or st.new(rec, Kind.TVS_CONNECT)
    ev.fields.setdefault("address", m.group(1))
    ev.fields["port"] = int(m.group(2))


def _cert_role(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.TVS_CERT_CHECK, role=int(m.group(1)))


def _cert_valid(valid: bool) -> Handler:
    def handle(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
        ev = st.last(Source.PHONE, Kind.TVS_CERT_CHECK, within=8)
        (ev or st.new(rec, Kind.TVS_CERT_CHECK)).fields["valid"] = valid

    return handle


def _phone_handshake(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.HANDSHAKE)


def _phone_hs_failed(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.HANDSHAKE_FAILED, what="TLS handshake with TVS failed", reason=rec.text)


def _processing(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.REQUEST, operation=m.group(1).strip())


def _written(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.PHONE, Kind.REQUEST, within=3) or st.new(rec, Kind.REQUEST)
    ev.fields["length"] = int(m.group(1))


def _request_dump(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.PHONE, Kind.REQUEST, within=3)
    if ev is None or ev.message is not None:
        ev = st.new(rec, Kind.REQUEST)
    _attach(ev, dumps)


def _receives(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.RESPONSE, length=int(m.group(1)))


def _response_dump(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    ev = st.last(Source.PHONE, Kind.RESPONSE, within=3)
    if ev is None or ev.message is not None:
        ev = st.new(rec, Kind.RESPONSE)
    _attach(ev, dumps)


def _tvs_cache(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.TVS_CACHE, ttl=int(m.group(1)) * 3600)


def _trust(**update: Any) -> Handler:
    def handle(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
        ev = st.last(Source.PHONE, Kind.TRUST_LIST, Kind.FILE_REQUEST)
        if ev is None or ev.kind != Kind.TRUST_LIST or ev.fields.get("ok") is not None:
            ev = st.new(rec, Kind.TRUST_LIST, file=st.current_file.get(Source.PHONE))
        ev.fields.update(update)
        if "parse" in update:
            ev.fields["parse"] = m.group(1)
        if "SGN file" in rec.text:
            ev.fields["signed_file"] = True

    return handle


def _status(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    text = m.group(1).strip()
    st.new(rec, Kind.STATUS, text=text, ok="fail" not in text.lower() and "No " not in text)


def _cache_hit(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
    st.new(rec, Kind.TVS_CACHE, hit=True)


def _phone_failure(what: str) -> Handler:
    def handle(st: ReadState, rec: Record, m: re.Match[str], dumps: list[HexDump]) -> None:
        reason = (m.group("reason") or "").strip() if "reason" in m.groupdict() else ""
        st.new(rec, Kind.FAILURE, what=what, reason=reason)

    return handle


PHONE_RULES: list[tuple[Rule, Handler]] = [
    (_rule("GETXXTP", r"GETXXTP \S*\[src=([^\]]*)\]\[dest=([^\]]*)\]"), _getfile),
    (_rule("XXTP complete", r"XXTP complete - status = (\d+)"), _xxtp_done),
    (_rule("XXTP actualserver", r"XXTP actualserver \[([^\]]*)\]"), _xxtp_server),
    (_rule("XXTP failed", r"XXTP failed - (?P<reason>.*)"), _phone_failure("file transfer failed")),
    (
        _rule("TCP connect() failed", r"TCP connect\(\) failed,? (?P<reason>.*)"),
        _phone_failure("TCP connect failed"),
    ),
    (
        _rule("Attempting connect to TVS", r"Attempting connect to TVS server addr \[([^\]]*)\]"),
        _connect,
    ),
    (_rule("BIO created", r"BIO created with: addr:([^,\s]+), port:(\d+)"), _bio),
    (_rule("Role is", r"Cert Verification - Role is = (\d+)"), _cert_role),
    (_rule("Certificate is valid", r"Cert Verification - Certificate is valid"), _cert_valid(True)),
    (
        _rule(
            "Cert Verification", r"Cert Verification - (?:Certificate is (?:in|not )valid|.*fail)"
        ),
        _cert_valid(False),
    ),
    (_rule("Handshake successful", r"Handshake successful"), _phone_handshake),
    (_rule("andshake ", r"[Hh]andshake (?:failed|failure|error)"), _phone_hs_failed),
    (_rule("processing TVS", r"processing TVS (.*?) request"), _processing),
    (_rule("bytes written", r"bytes written : (\d+)"), _written),
    (_rule("request byte dump", r"request byte dump"), _request_dump),
    (_rule("TVS Service receives", r"TVS Service receives (\d+) bytes"), _receives),
    (_rule("response byte dump", r"response byte dump"), _response_dump),
    (_rule("TVS added cert", r"TVS added cert to TVS cache - expires in (\d+) hours"), _tvs_cache),
    (_rule("TVS cache hit", r"TVS cache hit"), _cache_hit),
    (
        _rule("TVS process response", r"TVS process response - (?P<reason>.*)"),
        _phone_failure("TVS answer not accepted"),
    ),
    (
        _rule("No trust list installed", r"No trust list installed - accepting"),
        _trust(first_use=True),
    ),
    (_rule("Hashes do not match", r"Hashes do not match"), _trust(signature="bad", ok=False)),
    (_rule("file unchanged", r"(?:TL|SGN) file unchanged"), _trust(unchanged=True, ok=True)),
    (_rule("Hashes match", r"Hashes match"), _trust(signature="ok")),
    (_rule("TL parse to table", r"TL parse to table: (\w+)"), _trust(parse="")),
    (
        _rule("file verified successfully", r"(?:TL|SGN) file verified successfully"),
        _trust(verified=True),
    ),
    (_rule(None, r"TL file updated|Configuration file applied"), _trust(updated=True, ok=True)),
    (
        _rule(
            None,
            r"(?:TL|SGN) file (?:verification|update) failed|(?:TL|SGN) file not verified"
            r"|AUTH: .*(?:fail|mismatch)",
        ),
        _trust(ok=False),
    ),
    (_rule("Phone status", r"Phone status: (.*)"), _status),
    (
        _rule(
            None,
            r"(CTL and ITL installed|ITL installed|CTL Installed|Trust List updated|"
            r"Trust List update failed|CTL update failed|ITL update failed"
            r"|No Trust List installed)",
        ),
        _status,
    ),
]
