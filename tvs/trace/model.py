"""Timeline values: what the trace reader found, one event per step of the exchange.

Owns :class:`Event` (one recognised step: a file fetch, a TLS handshake, a TVS request or
response with its reassembled bytes, a cache lookup, a trust-list update, a failure) and
:class:`Timeline` (the ordered events of one or more trace files and where they stopped).
Values only: reading is in :mod:`tvs.trace.reader`, comparing in :mod:`tvs.trace.diff`.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..capf.describe import CapfInspection
from ..wire import Inspection

__all__ = ["CORE_KINDS", "Event", "Kind", "MessageBytes", "Source", "Timeline"]


class Source(enum.StrEnum):
    """Who wrote the line: the phone's console or the CUCM TVS service."""

    PHONE = "phone"
    TVS = "tvs"


class Kind(enum.StrEnum):
    FILE_REQUEST = "file-request"  # phone: dgetfile GETXXTP [src=...]
    FILE_DONE = "file-done"  # phone: XXTP complete - status = N
    TVS_CONNECT = "tvs-connect"  # phone: Attempting connect to TVS server addr [...]
    TVS_CERT_CHECK = "tvs-cert-check"  # phone: TVS server certificate checked against the ITL
    CONNECTION = "connection"  # tvs: Accepted TCP connection
    HANDSHAKE = "handshake"  # both: TLS handshake done
    HANDSHAKE_FAILED = "handshake-failed"
    REQUEST = "request"  # phone: request sent; tvs: request received (with bytes)
    LOOKUP = "lookup"  # tvs: CertificateDBCache lookup
    RESPONSE = "response"  # tvs: response sent; phone: response received
    TVS_CACHE = "tvs-cache"  # phone: TVS added cert to TVS cache
    TRUST_LIST = "trust-list"  # phone: a CTL/ITL verified / updated / failed
    STATUS = "status"  # phone status line (ITL installed, Trust List update failed, ...)
    FAILURE = "failure"  # a reason-giving failure line (bad request, rejected, ...)
    RELOAD = "cache-reload"  # tvs: certificate cache (re)built
    ERROR = "error"  # any other ERR-level phone line


CORE_KINDS = frozenset(
    {
        Kind.FILE_REQUEST,
        Kind.CONNECTION,
        Kind.HANDSHAKE,
        Kind.HANDSHAKE_FAILED,
        Kind.REQUEST,
        Kind.LOOKUP,
        Kind.RESPONSE,
        Kind.TVS_CACHE,
        Kind.TRUST_LIST,
        Kind.STATUS,
        Kind.FAILURE,
    }
)
"""The steps a diff compares; the others are shown but not compared (a lab run and a real
trace differ in noise such as socket errors and TOS lines)."""


@attrs.frozen
class MessageBytes:
    """The bytes of one TVS message as reassembled from a dump, and what they decode to."""

    data: bytes
    declared_length: int | None
    inspection: Inspection | None
    """None when the dump holds no bytes at all (the phone console prints only the length),
    or when the bytes are a CAPF message (then ``capf``)."""
    capf: CapfInspection | None = None
    """The dump read as CAPF (discriminator 0x55, TCP 3804)."""

    @property
    def truncated(self) -> bool:
        return self.declared_length is not None and len(self.data) < self.declared_length


@attrs.frozen
class Event:
    """One step. ``fields`` are JSON-able and are what a diff compares."""

    source: Source
    kind: Kind
    summary: str
    fields: dict[str, Any] = attrs.field(factory=dict, hash=False)
    time: str | None = None
    file: str = ""
    line: int = 0
    message: MessageBytes | None = None
    detail: tuple[str, ...] = ()
    """Extra human lines (decoded message fields) shown under the summary."""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else f"line {self.line}"


@attrs.frozen
class Timeline:
    """The events of one reading, in causal order (phone and TVS lines interleaved by
    protocol step, each side in its own line order)."""

    events: tuple[Event, ...]
    files: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[Event, ...]:
        """Events carrying dumped message bytes (a phone dump line with no bytes is not one)."""
        return tuple(e for e in self.events if e.message is not None and e.message.data)

    @property
    def sources(self) -> frozenset[Source]:
        return frozenset(e.source for e in self.events)

    def stopped(self) -> str:
        """Where the sequence stopped, in words."""
        if not self.events:
            return "no events recognised"
        failures = [
            e
            for e in self.events
            if e.kind in (Kind.HANDSHAKE_FAILED, Kind.FAILURE)
            or (e.kind in (Kind.STATUS, Kind.TRUST_LIST) and e.fields.get("ok") is False)
        ]
        if failures:
            first = failures[0]
            return f"failed at step {self.events.index(first) + 1}: {first.summary}"
        last = self.events[-1]
        open_request = _unanswered(self.events)
        if open_request is not None:
            return (
                f"stopped after step {self.events.index(open_request) + 1}: "
                f"{open_request.summary}, no response in the trace"
            )
        return f"ended at step {len(self.events)}: {last.summary}"


def _unanswered(events: tuple[Event, ...]) -> Event | None:
    """The last request with no response after it (from either side), if any."""
    pending: Event | None = None
    for e in events:
        if e.kind == Kind.REQUEST:
            pending = e
        elif e.kind == Kind.RESPONSE:
            pending = None
    return pending
