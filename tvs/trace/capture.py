"""Packet captures (pcap / pcapng) as timeline input: the TVS and CAPF exchanges they hold.

Two parts. :func:`read_capture` is the one impure function of :mod:`tvs.trace`: it runs
``tshark`` (Wireshark's, which decrypts TLS with a key log) and returns each TCP segment of the
chosen ports with its decrypted application bytes (:class:`Segment`). :func:`capture_events`
is pure: it turns the HTTP file service's GETs and answers (port 6970) into file-request
and file-done events, and follows each TLS connection, reassembles each direction's bytes
into TVS messages (discriminator 0x57) or CAPF messages (0x55) and gives timeline events: the
connection, the
TLS handshake (or the alert that ended it), each request the client sent and each response
the server sent, with their decoded fields (the same fields a CUCM trace gives, so
``tvs trace diff`` compares a capture with a trace).

Without a key log, or with a key log that does not match, TLS application data stays
encrypted and no message is found: the timeline then says so. Does not own decoding
(:mod:`tvs.wire`, :mod:`tvs.capf`) nor the event model (:mod:`tvs.trace.model`).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..capf.describe import inspect_capf, is_capf
from ..capf.messages import HEADER_SIZE as CAPF_HEADER_SIZE
from ..capf.messages import Header as CapfHeader
from ..wire import DISCRIMINATOR, HEADER_SIZE, inspect_message
from .model import Kind, MessageBytes, Source
from .rules import RawEvent

__all__ = [
    "DEFAULT_PORTS",
    "CaptureError",
    "Segment",
    "capture_events",
    "is_capture",
    "read_capture",
]

DEFAULT_PORTS = (2445, 3804)
"""TVS and CAPF."""
HTTP_PORTS = (6970,)
"""The HTTP file service phones download CTL/ITL/configuration from (before TFTP)."""

_MAGICS = (
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
    b"\xd4\xc3\xb2\xa1",  # pcap, little endian
    b"\xa1\xb2\xc3\xd4",  # pcap, big endian
    b"\x4d\x3c\xb2\xa1",  # pcap, nanoseconds, little endian
    b"\xa1\xb2\x3c\x4d",  # pcap, nanoseconds, big endian
)

_FIELDS = (
    "frame.time_epoch",
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tls.handshake.type",
    "tls.alert_message.desc",
    "data.data",
    "http.request.uri",
    "http.response.code",
)


class CaptureError(Exception):
    """The capture cannot be read (no tshark, tshark failed, not a capture)."""


@attrs.frozen
class Segment:
    """One TCP segment: when, which connection, who to whom, what TLS showed, the decrypted
    application bytes (empty when none or not decrypted)."""

    time: float
    stream: int
    src: str
    dst: str
    syn: bool = False
    handshake: tuple[int, ...] = ()
    alert: str | None = None
    data: bytes = b""
    http_request: str | None = None
    """The path of an HTTP GET (the phone's provisioning download)."""
    http_status: int | None = None


def is_capture(head: bytes) -> bool:
    """``head`` (the first 4 bytes of a file) is a pcap or pcapng magic number."""
    return head[:4] in _MAGICS


# --- the impure part: tshark --------------------------------------------------------------------


def read_capture(
    path: Path,
    *,
    keylog: Path | None = None,
    ports: Sequence[int] = DEFAULT_PORTS,
    http_ports: Sequence[int] = HTTP_PORTS,
) -> list[Segment]:
    """The TCP segments of ``ports`` (TLS: TVS, CAPF) and ``http_ports`` (the HTTP file
    service) in the capture, decrypted with ``keylog`` (by tshark)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise CaptureError(
            f"{path}: reading a capture needs tshark (Wireshark's command-line tool, which "
            "decrypts TLS with a key log): install it (Debian: apt install tshark), or export "
            "the decrypted exchanges from Wireshark"
        )
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=,"]
    for port in ports:
        cmd += ["-d", f"tcp.port=={port},tls"]  # TLS on the port, whatever the heuristics say
    for port in http_ports:
        cmd += ["-d", f"tcp.port=={port},http"]
    cmd += ["--disable-protocol", "tvs"]  # our Lua dissector, when installed, eats the bytes
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    cmd += ["-Y", " or ".join(f"tcp.port=={p}" for p in (*ports, *http_ports))]
    for field in _FIELDS:
        cmd += ["-e", field]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CaptureError(f"{path}: tshark failed: {exc}") from None
    if done.returncode != 0:
        why = " ".join(line for line in done.stderr.splitlines() if "root" not in line)
        raise CaptureError(f"{path}: tshark could not read it: {why.strip() or done.returncode}")
    return [s for s in (_segment(line) for line in done.stdout.splitlines()) if s is not None]


def _segment(line: str) -> Segment | None:
    cols = line.split("\t")
    if len(cols) < len(_FIELDS):
        return None
    f = dict(zip(_FIELDS, cols, strict=False))
    try:
        src = _endpoint(f["ip.src"] or f["ipv6.src"], f["tcp.srcport"])
        dst = _endpoint(f["ip.dst"] or f["ipv6.dst"], f["tcp.dstport"])
        data = b"".join(bytes.fromhex(h) for h in f["data.data"].split(",") if h)
        handshake = tuple(int(t) for t in f["tls.handshake.type"].split(",") if t.isdigit())
        return Segment(
            time=float(f["frame.time_epoch"]),
            stream=int(f["tcp.stream"]),
            src=src,
            dst=dst,
            syn=f["tcp.flags.syn"] in ("1", "True") and f["tcp.flags.ack"] not in ("1", "True"),
            handshake=handshake,
            alert=f["tls.alert_message.desc"] or None,
            data=data,
            http_request=f["http.request.uri"].split(",")[0] or None,
            http_status=int(f["http.response.code"].split(",")[0])
            if f["http.response.code"]
            else None,
        )
    except ValueError:
        return None


def _endpoint(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- the pure part: segments to events ----------------------------------------------------------

_HELLO_DONE = 20  # Finished


def _time(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%H:%M:%S.%f")


def _frames(buf: bytearray) -> Iterable[bytes]:
    """Whole TVS / CAPF messages at the start of ``buf`` (removed from it); bytes that start
    neither are returned whole, once, as an undecodable message."""
    while buf:
        if buf[0] == DISCRIMINATOR:
            if len(buf) < HEADER_SIZE:
                return
            ins = inspect_message(bytes(buf[:HEADER_SIZE]))
            if ins.header is None:
                yield bytes(buf)
                buf.clear()
                return
            size = HEADER_SIZE + ins.header.length
        elif is_capf(bytes(buf[:1])):
            if len(buf) < CAPF_HEADER_SIZE:
                return
            size = CAPF_HEADER_SIZE + CapfHeader.decode(bytes(buf[:CAPF_HEADER_SIZE])).length
        else:
            yield bytes(buf)
            buf.clear()
            return
        if len(buf) < size:
            return
        yield bytes(buf[:size])
        del buf[:size]


def _message(data: bytes) -> MessageBytes:
    if is_capf(data):
        return MessageBytes(data=data, declared_length=len(data), inspection=None,
                            capf=inspect_capf(data))  # fmt: skip
    ins = inspect_message(data) if data[:1] == bytes([DISCRIMINATOR]) else None
    return MessageBytes(data=data, declared_length=len(data), inspection=ins)


def capture_events(
    segments: Iterable[Segment],
    *,
    server_ports: Sequence[int] = DEFAULT_PORTS,
    http_ports: Sequence[int] = HTTP_PORTS,
) -> list[RawEvent]:
    """Timeline events of the capture's connections, in capture order (see module doc)."""
    from .decode import message_fields

    events: list[RawEvent] = []
    seen: dict[int, dict[str, Any]] = {}
    ports = {str(p) for p in server_ports}
    http: dict[int, str] = {}  # stream -> the path asked for
    web = {str(p) for p in http_ports}
    for n, seg in enumerate(segments, start=1):
        on_web = {seg.src.rsplit(":", 1)[1], seg.dst.rsplit(":", 1)[1]} & web
        if on_web or seg.http_request is not None or seg.http_status is not None:
            _http_event(seg, n, http, events)
            continue
        conn = seen.get(seg.stream)
        if conn is None:
            server, client = _roles(seg, ports)
            conn = {"server": server, "client": client, "handshake": False, "data": False}
            conn["buffers"] = {server: bytearray(), client: bytearray()}
            seen[seg.stream] = conn
            events.append(
                RawEvent(Source.TVS, Kind.CONNECTION, _time(seg.time), n,
                         {"peer": client, "server": server, "stream": seg.stream})
            )  # fmt: skip
        to_server = seg.dst == conn["server"]
        if seg.alert and not conn["data"]:
            events.append(
                RawEvent(Source.TVS if to_server else Source.PHONE, Kind.HANDSHAKE_FAILED,
                         _time(seg.time), n,
                         {"what": "TLS alert", "reason": seg.alert, "peer": conn["client"]})
            )  # fmt: skip
        if not conn["handshake"] and (_HELLO_DONE in seg.handshake or seg.data):
            conn["handshake"] = True
            events.append(
                RawEvent(Source.TVS, Kind.HANDSHAKE, _time(seg.time), n,
                         {"client": conn["client"], "cipher": "(capture)"})
            )  # fmt: skip
        if not seg.data:
            continue
        conn["data"] = True
        buf = conn["buffers"].setdefault(seg.src, bytearray())
        buf += seg.data
        for data in _frames(buf):
            mb = _message(data)
            fields = message_fields(mb)
            fields["peer"] = conn["client"]
            if to_server:
                events.append(RawEvent(Source.PHONE, Kind.REQUEST, _time(seg.time), n, fields, mb))
            else:
                events.append(RawEvent(Source.TVS, Kind.RESPONSE, _time(seg.time), n, fields, mb))
    return events


def _http_event(seg: Segment, n: int, http: dict[int, str], events: list[RawEvent]) -> None:
    """A provisioning download over HTTP: the GET, then the status of its answer."""
    if seg.http_request is not None:
        name = seg.http_request.rsplit("/", 1)[-1] or seg.http_request
        http[seg.stream] = name
        fields: dict[str, Any] = {"file": name, "dest": name, "server": seg.dst}
        fields["transport"] = "http"
        events.append(RawEvent(Source.PHONE, Kind.FILE_REQUEST, _time(seg.time), n, fields))
    if seg.http_status is not None:
        fields = {"file": http.get(seg.stream), "status": seg.http_status, "server": seg.src}
        fields["transport"] = "http"
        events.append(RawEvent(Source.PHONE, Kind.FILE_DONE, _time(seg.time), n, fields))


def _roles(seg: Segment, server_ports: set[str]) -> tuple[str, str]:
    """(server, client) of a connection from its first segment: the side on a server port,
    else the receiver of the SYN (or of the first segment)."""
    src_port, dst_port = seg.src.rsplit(":", 1)[1], seg.dst.rsplit(":", 1)[1]
    if dst_port in server_ports and src_port not in server_ports:
        return seg.dst, seg.src
    if src_port in server_ports and dst_port not in server_ports:
        return seg.src, seg.dst
    return seg.dst, seg.src
