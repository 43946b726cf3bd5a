"""The ``cucm`` log format: server events rendered as CUCM's detailed TVS trace.

Mirrors the seed's TVS trace (steps 3, 5, 6) line for line, so a lab run can be diffed
against a real CUCM trace and read by the same trace reader (``tvs.trace``)::

    18:01:05.333 | debug Accepted TCP connection from socket 0x00000012, fd = 8
    18:01:05.855 | debug 192.168.11.100: tvsSSLHandShake Session ciphers - AES256-SHA
    18:01:06.345 | debug 8:UNKNOWN:Incoming Phone Msg: HEX_DUMP: Len = 153:
    18:01:06.345 | debug 57 01 03 00 00 00 03 e9
    18:01:06.345 | debug CertificateDBCache::getCertificateInformation - Looking up ...

Hex dumps are complete (the seed's were cut at 50 bytes by the note's author). "Session Id : 0"
is printed as CUCM prints it (always 0 in the seed, whatever the request id). Lines the seed
does not show (not-found lookups, errors, reloads) are our own wording and say so in a comment.
This module only renders; the server decides what happens.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from ..wire import (
    DISCRIMINATOR,
    HEADER_SIZE,
    MessageType,
    QueryCertRequest,
    QueryCertResponse,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["CucmRenderer", "hex_rows"]

EventDict = MutableMapping[str, Any]
_AWAIT = "TVS_STATE_AWAIT_REQ"


def hex_rows(data: bytes, per_row: int = 8) -> list[str]:
    """Rows of lower-case hex bytes, 8 per row, as CUCM's HEX_DUMP prints them."""
    return [
        " ".join(f"{b:02x}" for b in data[i : i + per_row]) for i in range(0, len(data), per_row)
    ]


def _ip(ev: EventDict) -> str:
    peer = str(ev.get("peer", ""))
    return peer.rsplit(":", 1)[0] if ":" in peer else peer


def _fd(ev: EventDict) -> int:
    return int(ev.get("conn", 0))


def _accepted(ev: EventDict) -> list[str]:
    fd, ip = _fd(ev), _ip(ev)
    return [
        f"Accepted TCP connection from socket 0x{fd:08x}, fd = {fd}",
        f"Total Session attempted = {ev.get('attempted', 0)} accepted = {ev.get('accepted', 0)}",
        "tvsGetNextThread",
        "Recd event",
        f"new ph on fd {fd}",
        f"ipAddrStr (Phone) {ip}",
        f"{fd}:UNKNOWN:Got a new ph conn {ip} on {fd}, Total Acc = {ev.get('accepted', 0)}..",
        f"addded {fd} to readset",
    ]


def _handshake(ev: EventDict) -> list[str]:
    fd, ip = _fd(ev), _ip(ev)
    lines = ["tvsSSLHandShakeNotify", f"{ip}: tvsSSLHandShake Session ciphers - {ev.get('cipher')}"]
    if ev.get("client_subject"):  # ours: the phone certificate's subject
        lines.append(f"{ip}: tvsSSLHandShake Peer certificate - {ev['client_subject']}")
    return [*lines, f"addded {fd} to readset", "Recd event", "TLS HS Done for ph_conn"]


def _decoded(msg: Any, length: int) -> list[str]:
    name = MessageType(msg.type).cucm_name if int(msg.type) in (1, 2, 3, 4) else f"{int(msg.type)}"
    return [
        "tvsPhoneDecodeMsg - Decoded Phone Msg:",
        f"Protocol Discriminator: {DISCRIMINATOR:02x}",
        f"MsgType : {name}",
        "Session Id : 0",
        f"Length : {length}",
    ]


def _received(ev: EventDict) -> list[str]:
    fd = _fd(ev)
    raw: bytes = ev.get("_raw", b"")
    msg = ev.get("_message")
    lines = [f"{fd}:UNKNOWN:Incoming Phone Msg: HEX_DUMP: Len = {len(raw)}:", *hex_rows(raw)]
    if msg is None:
        return lines
    lines += _decoded(msg, len(raw) - HEADER_SIZE)
    if isinstance(msg, QueryCertRequest):
        lines += [
            f"{fd}:UNKNOWN:TVS CORE: Rcvd Event: TVS_EV_QUERY_CERT_REQ in State: {_AWAIT}",
            "tvsHandleQueryCertReq",
            f"tvsHandleQueryCertReq : Subject Name is: {msg.subject}",
            f"tvsHandleQueryCertReq : Issuer Name is: {msg.issuer}",
            f"tvsHandleQueryCertReq : Serial Number is: {msg.serial_hex}",
        ]
    elif isinstance(msg, VerifyRequest):
        lines += [
            f"{fd}:UNKNOWN:TVS CORE: Rcvd Event: TVS_EV_VERIFY_REQUEST in State: {_AWAIT}",
            "tvsHandleVerifyReq",  # ours: the seed shows no VERIFY handling
        ]
    return lines


def _lookup(ev: EventDict) -> list[str]:
    prefix = "CertificateDBCache::getCertificateInformation - "
    if ev.get("kind") == "sha256":
        lines = [f"{prefix}Looking up the certificate cache using SHA256 : {ev.get('key')}"]
    else:
        lines = [f"{prefix}Looking up the certificate cache using Unique MAP ID : {ev.get('key')}"]
    roles = ev.get("roles")
    if roles is None:
        return [*lines, f"{prefix}Entry not found"]  # ours
    if ev.get("source") == "ctl":
        # ours: the cache missed and the current CTL answered (CUCM's TVS falls back to the
        # CTL, TAC 212051; its exact trace wording for this is not public)
        ctl = "CTLFileCache::getCertificateInformation - "
        lines += [
            f"{prefix}Entry not found",
            f"{ctl}Looking up the current CTL file (CTLFile.tlv)",
        ]
        prefix = ctl
    lines.append(f"{prefix}Found entry {{rolecount : {len(roles)}}}")
    lines += [f"{prefix}{{role : {r}}}" for r in roles]
    return lines


def _sent(ev: EventDict) -> list[str]:
    fd = _fd(ev)
    raw: bytes = ev.get("_raw", b"")
    msg = ev.get("_message")
    name = MessageType(msg.type).name if msg is not None else "RESPONSE"
    lines = [f"{fd}:UNKNOWN:Sending {name} msg"]
    if msg is not None:
        lines += _decoded(msg, len(raw) - HEADER_SIZE)
    if isinstance(msg, QueryCertResponse) and msg.certificate:
        cert = msg.certificate
        lines += ["Number of Certs : 1", "Cert[0] :", f"Cert Type : 0 HEX_DUMP: Len = {len(cert)}:"]
        lines += hex_rows(cert)
        lines.append("Version : 0")
    if isinstance(msg, QueryCertResponse | VerifyResponse) and msg.ttl is not None:
        # CUCM labels the TTL bytes "PublicKey" (seed); kept for a faithful diff
        lines += ["PublicKey : HEX_DUMP: Len = 4:", *hex_rows(msg.ttl.to_bytes(4, "big"))]
    lines += [f"Sending TLS Msg .. HEX_DUMP: Len = {len(raw)}:", *hex_rows(raw)]
    lines.append(f"ipAddrStr (Phone) {_ip(ev)}")
    return lines


def _generic(ev: EventDict) -> list[str]:
    skip = {"event", "level", "timestamp", "_raw", "_message", "conn", "peer"}
    fd = ev.get("conn")
    head = f"{fd}:UNKNOWN:" if fd is not None else ""
    rest = " ".join(f"{k}={v}" for k, v in ev.items() if k not in skip)
    return [f"{head}{ev.get('event', '')}" + (f" {rest}" if rest else "")]


_RENDERERS: dict[str, Callable[[EventDict], list[str]]] = {
    "connection accepted": _accepted,
    "handshake done": _handshake,
    "message received": _received,
    "cache lookup": _lookup,
    "response sent": _sent,
}


_DROPPED = frozenset({"request"})
"""Summary events the detailed trace already shows line by line."""


class CucmRenderer:
    """A structlog renderer producing ``HH:MM:SS.mmm | level text`` lines."""

    def __init__(self, clock: Callable[[], _dt.datetime] | None = None) -> None:
        self._clock = clock or (lambda: _dt.datetime.now())  # CUCM prints local time

    def __call__(self, logger: object, method_name: str, event_dict: EventDict) -> str:
        now = self._clock()
        stamp = now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
        level = str(event_dict.get("level", method_name)).lower()
        level = "debug" if level in ("debug", "info") else level
        if event_dict.get("event") in _DROPPED:
            raise structlog.DropEvent
        render = _RENDERERS.get(str(event_dict.get("event")), _generic)
        return "\n".join(f"{stamp} | {level} {line}" for line in render(event_dict))
