"""The TFTP server's decisions, as pure functions: no sockets, no trio, no clock.

``admit`` says what to do with one datagram on the request port (start a transfer, refuse
it with an ERROR, drop it and why); ``plan_transfer`` builds the started ``Sender`` for a
file version and a request. The Trio server (``server.py``) only does the I/O around them
and adds each decision to its counters (``ServerCounters``, an attrs class).
"""

from __future__ import annotations

import enum
from collections.abc import Container
from typing import Any

import attrs

from .errors import MalformedPacket
from .protocol import (
    MAX_BLKSIZE,
    ErrorCode,
    ErrorPacket,
    ReadRequest,
    WriteRequest,
    decode_packet,
    negotiate_options,
)
from .providers import FileVersion
from .transfer import Sender

__all__ = [
    "Accept",
    "Decision",
    "Drop",
    "DropWhy",
    "Refuse",
    "RefuseWhy",
    "ServerCounters",
    "ServerLimits",
    "admit",
    "plan_transfer",
    "public_error",
]

Address = tuple[Any, ...]


@attrs.frozen
class ServerLimits:
    """What a TFTP server allows: concurrent transfers, retransmission, option ceilings."""

    max_transfers: int = 1024
    timeout: float = 1.0
    retries: int = 5
    max_blksize: int = MAX_BLKSIZE
    max_windowsize: int = 64


class DropWhy(enum.Enum):
    MALFORMED = "malformed"  # not a TFTP packet, or not a request (answered when it is not ERROR)
    DUPLICATE = "duplicate"  # a retransmitted RRQ for a transfer already running
    BUSY = "busy"  # at the concurrency limit


class RefuseWhy(enum.Enum):
    WRITE = "write"  # a WRQ: the server is read-only
    MODE = "mode"  # neither octet nor netascii
    NOT_FOUND = "not-found"
    DENIED = "denied"  # the provider refused the name
    PROVIDER = "provider-failed"


@attrs.frozen
class Accept:
    request: ReadRequest


@attrs.frozen
class Refuse:
    """Answer ``reply`` (an ERROR packet) and count a refused request."""

    why: RefuseWhy
    code: int
    reason: str  # for the log only: it may name server paths
    filename: str
    reply: bytes


@attrs.frozen
class Drop:
    """Send nothing (or ``reply``, for a stray non-request) and count why."""

    why: DropWhy
    reason: str = ""
    filename: str = ""
    reply: bytes | None = None


Decision = Accept | Refuse | Drop

_PUBLIC_MESSAGES: dict[int, str] = {
    ErrorCode.NOT_DEFINED: "Internal error",
    ErrorCode.FILE_NOT_FOUND: "File not found",
    ErrorCode.ACCESS_VIOLATION: "Access violation",
}


def public_error(why: RefuseWhy, code: int, reason: str, filename: str) -> Refuse:
    """A refusal whose ERROR packet tells the client the code, not our reasons."""
    message = _PUBLIC_MESSAGES.get(code, reason)
    return Refuse(why, int(code), reason, filename, ErrorPacket(code, message).to_bytes())


def admit(
    data: bytes, addr: Address, *, active: Container[Address], n_active: int, limits: ServerLimits
) -> Decision:
    """What to do with datagram ``data`` from ``addr`` on the request port."""
    try:
        packet = decode_packet(data)
    except MalformedPacket as exc:
        return Drop(DropWhy.MALFORMED, str(exc))
    if isinstance(packet, WriteRequest):
        return public_error(
            RefuseWhy.WRITE, ErrorCode.ACCESS_VIOLATION, "read-only server", packet.filename
        )
    if not isinstance(packet, ReadRequest):
        reply = None
        if not isinstance(packet, ErrorPacket):
            reply = ErrorPacket(ErrorCode.ILLEGAL_OPERATION, "not a request").to_bytes()
        reason = f"{type(packet).__name__} sent to the request port"
        return Drop(DropWhy.MALFORMED, reason, reply=reply)
    if packet.mode.lower() not in ("octet", "netascii"):
        reason = f"mode {packet.mode!r} not supported"
        return public_error(RefuseWhy.MODE, ErrorCode.ILLEGAL_OPERATION, reason, packet.filename)
    if addr in active:
        return Drop(DropWhy.DUPLICATE, filename=packet.filename)
    if n_active >= limits.max_transfers:
        return Drop(DropWhy.BUSY, f"{n_active} transfers running", packet.filename)
    return Accept(packet)


def plan_transfer(
    request: ReadRequest, version: FileVersion, addr: Address, limits: ServerLimits, now: float
) -> Sender:
    """The started sending machine for ``request`` of ``version`` (shared, never copied)."""
    data = version.netascii() if request.mode.lower() == "netascii" else version.data
    oack, options = negotiate_options(
        request.option_map(),
        size=len(data),
        max_blksize=limits.max_blksize,
        max_windowsize=limits.max_windowsize,
    )
    machine = Sender(
        data,
        addr,
        options=options,
        oack=oack,
        timeout=limits.timeout,
        retries=limits.retries,
        now=now,
    )
    machine.start(now)
    return machine


@attrs.define
class ServerCounters:
    """The server's running counters (``TftpServer.statistics()`` snapshots them)."""

    transfers_started: int = 0
    transfers_completed: int = 0
    transfers_failed: int = 0
    requests_refused: int = 0
    busy_dropped: int = 0
    duplicate_requests: int = 0
    malformed_dropped: int = 0
    unknown_tid: int = 0
    retransmits: int = 0
    bytes_sent: int = 0

    def count(self, decision: Refuse | Drop) -> None:
        if isinstance(decision, Refuse):
            self.requests_refused += 1
        elif decision.why is DropWhy.MALFORMED:
            self.malformed_dropped += 1
        elif decision.why is DropWhy.DUPLICATE:
            self.duplicate_requests += 1
        else:
            self.busy_dropped += 1

    def count_transfer(self, machine: Sender) -> None:
        if machine.state.value == "complete":
            self.transfers_completed += 1
        else:
            self.transfers_failed += 1
        self.retransmits += machine.retransmits
        self.malformed_dropped += machine.malformed
        self.unknown_tid += machine.unknown_tid
        self.bytes_sent += machine.bytes_acked
