"""TFTP packet codec (RFC 1350, 2347, 2348, 2349, 7440): packets as values, bytes in and out.

Owns the six packet kinds (RRQ, WRQ, DATA, ACK, ERROR, OACK), the error codes, netascii
conversion and option negotiation (``blksize`` 8..65464, ``tsize``, ``timeout``,
``windowsize``; unknown options are ignored). It does not own timing, retransmission or
sockets: see ``transfer.py`` for the state machines and ``server.py`` / ``client.py`` for I/O.

Decoding obeys the fuzz invariant: whatever bytes arrive, ``decode_packet`` returns a packet
or raises ``MalformedPacket``. A request may carry one extra trailing NUL (some old phones
append it); it is tolerated.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping

import attrs

from .errors import MalformedPacket

__all__ = [
    "DEFAULT_BLKSIZE",
    "MAX_BLKSIZE",
    "MIN_BLKSIZE",
    "Ack",
    "Data",
    "ErrorCode",
    "ErrorPacket",
    "Opcode",
    "OptionAck",
    "Packet",
    "ReadRequest",
    "TransferOptions",
    "WriteRequest",
    "accept_oack",
    "decode_packet",
    "from_netascii",
    "negotiate_options",
    "to_netascii",
]

DEFAULT_BLKSIZE = 512
MIN_BLKSIZE = 8
MAX_BLKSIZE = 65464
MAX_WINDOWSIZE = 65535
MODES = ("octet", "netascii")

_HEADER = struct.Struct("!HH")
_OPCODE = struct.Struct("!H")


class Opcode(enum.IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


class ErrorCode(enum.IntEnum):
    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8


def _encode_str(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") + b"\0"


def _encode_options(options: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(_encode_str(name) + _encode_str(value) for name, value in options)


def _options_tuple(
    options: Mapping[str, str] | tuple[tuple[str, str], ...],
) -> tuple[tuple[str, str], ...]:
    items = options.items() if isinstance(options, Mapping) else options
    return tuple((str(name), str(value)) for name, value in items)


@attrs.frozen
class _Request:
    """RRQ/WRQ layout: ``filename`` in ``mode`` with RFC 2347 ``options`` (as sent, in order)."""

    filename: str
    mode: str = "octet"
    options: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_options_tuple)

    opcode = Opcode.RRQ  # overridden by the subclasses

    def option_map(self) -> dict[str, str]:
        """Options by lower-cased name (RFC 2347 names are case-insensitive); first one wins."""
        found: dict[str, str] = {}
        for name, value in self.options:
            found.setdefault(name.lower(), value)
        return found

    def to_bytes(self) -> bytes:
        return (
            _OPCODE.pack(self.opcode)
            + _encode_str(self.filename)
            + _encode_str(self.mode)
            + _encode_options(self.options)
        )


@attrs.frozen
class ReadRequest(_Request):
    """RRQ: ``filename`` in ``mode`` with RFC 2347 ``options`` (names as sent, in order)."""

    opcode = Opcode.RRQ


@attrs.frozen
class WriteRequest(_Request):
    """WRQ: same layout as RRQ (our server refuses it)."""

    opcode = Opcode.WRQ


@attrs.frozen
class Data:
    """DATA: 16-bit ``block`` number (wraps past 65535) and up to blksize bytes."""

    block: int
    payload: bytes

    def to_bytes(self) -> bytes:
        return _HEADER.pack(Opcode.DATA, self.block & 0xFFFF) + self.payload


@attrs.frozen
class Ack:
    """ACK of a 16-bit block number (0 acknowledges an OACK)."""

    block: int

    def to_bytes(self) -> bytes:
        return _HEADER.pack(Opcode.ACK, self.block & 0xFFFF)


@attrs.frozen
class ErrorPacket:
    """ERROR: a code (see ``ErrorCode``) and a message; it ends the transfer."""

    code: int
    message: str = ""

    def to_bytes(self) -> bytes:
        return _HEADER.pack(Opcode.ERROR, self.code & 0xFFFF) + _encode_str(self.message)


@attrs.frozen
class OptionAck:
    """OACK: the options the server accepted, with the values it chose."""

    options: tuple[tuple[str, str], ...] = attrs.field(converter=_options_tuple)

    def option_map(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.options}

    def to_bytes(self) -> bytes:
        return _OPCODE.pack(Opcode.OACK) + _encode_options(self.options)


Packet = ReadRequest | WriteRequest | Data | Ack | ErrorPacket | OptionAck


def _split_strings(body: bytes, what: str) -> list[str]:
    """NUL-terminated strings; a missing final NUL is malformed."""
    if not body.endswith(b"\0"):
        raise MalformedPacket(f"{what}: last string is not NUL-terminated")
    return [part.decode("utf-8", "surrogateescape") for part in body[:-1].split(b"\0")]


def _pairs(parts: list[str], what: str) -> tuple[tuple[str, str], ...]:
    if len(parts) % 2 == 1 and parts[-1] == "":
        parts = parts[:-1]  # the extra trailing NUL some old phones append
    if len(parts) % 2:
        raise MalformedPacket(f"{what}: option {parts[-1]!r} has no value")
    return tuple(zip(parts[0::2], parts[1::2], strict=True))


def _decode_request(opcode: int, body: bytes) -> ReadRequest | WriteRequest:
    parts = _split_strings(body, "request")
    if len(parts) < 2:
        raise MalformedPacket("request: no mode")
    filename, mode = parts[0], parts[1]
    if not filename:
        raise MalformedPacket("request: empty file name")
    options = _pairs(parts[2:], "request")
    if opcode == Opcode.RRQ:
        return ReadRequest(filename, mode, options)
    return WriteRequest(filename, mode, options)


def decode_packet(datagram: bytes) -> Packet:
    """Parse one datagram; raise ``MalformedPacket`` for anything that is not a TFTP packet."""
    if len(datagram) < 2:
        raise MalformedPacket(f"datagram of {len(datagram)} bytes")
    opcode = (datagram[0] << 8) | datagram[1]
    if opcode == Opcode.DATA or opcode == Opcode.ACK or opcode == Opcode.ERROR:
        if len(datagram) < 4:
            raise MalformedPacket(f"opcode {opcode}: {len(datagram)} bytes, need 4")
        number = (datagram[2] << 8) | datagram[3]
        if opcode == Opcode.DATA:
            return Data(number, bytes(datagram[4:]))
        if opcode == Opcode.ACK:
            if len(datagram) != 4:
                raise MalformedPacket(f"ACK of {len(datagram)} bytes")
            return Ack(number)
        body = bytes(datagram[4:])
        message = body.split(b"\0", 1)[0]  # tolerate a missing final NUL
        return ErrorPacket(number, message.decode("utf-8", "replace"))
    if opcode == Opcode.RRQ or opcode == Opcode.WRQ:
        return _decode_request(opcode, bytes(datagram[2:]))
    if opcode == Opcode.OACK:
        body = bytes(datagram[2:])
        parts = _split_strings(body, "OACK") if body else []
        return OptionAck(_pairs(parts, "OACK"))
    raise MalformedPacket(f"unknown opcode {opcode}")


# -- netascii --------------------------------------------------------------------------------


def to_netascii(data: bytes) -> bytes:
    """Local text (LF line ends) to netascii: LF becomes CR LF, a bare CR becomes CR NUL."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def from_netascii(data: bytes) -> bytes:
    """Netascii to local text: CR LF becomes LF, CR NUL becomes CR."""
    return data.replace(b"\r\n", b"\n").replace(b"\r\0", b"\r")


# -- option negotiation ----------------------------------------------------------------------


@attrs.frozen
class TransferOptions:
    """What a transfer runs with once negotiation is over."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float | None = None  # seconds the peer asked for; None keeps our own
    tsize: int | None = None


def _int_option(value: str) -> int | None:
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        return None
    return int(value)


def negotiate_options(
    requested: Mapping[str, str],
    *,
    size: int,
    max_blksize: int = MAX_BLKSIZE,
    max_windowsize: int = 64,
    max_window_bytes: int = 128 * 1024,
) -> tuple[tuple[tuple[str, str], ...], TransferOptions]:
    """Server side of RFC 2347: pick the options to acknowledge for a read of ``size`` bytes.

    ``requested`` maps lower-case option names to values. Unknown options and out-of-range
    values are ignored (left out of the OACK); an empty OACK means "send no OACK". A window
    is also capped at ``max_window_bytes`` of data (a burst beyond the socket buffers would be
    dropped). Returns the OACK options and the resulting ``TransferOptions``.
    """
    accepted: list[tuple[str, str]] = []
    blksize, windowsize, timeout, tsize = DEFAULT_BLKSIZE, 1, None, None
    value = _int_option(requested.get("blksize", ""))
    if value is not None and value >= MIN_BLKSIZE:
        blksize = min(value, max_blksize, MAX_BLKSIZE)
        accepted.append(("blksize", str(blksize)))
    value = _int_option(requested.get("tsize", ""))
    if value is not None:
        tsize = size
        accepted.append(("tsize", str(size)))
    value = _int_option(requested.get("timeout", ""))
    if value is not None and 1 <= value <= 255:
        timeout = float(value)
        accepted.append(("timeout", str(value)))
    value = _int_option(requested.get("windowsize", ""))
    if value is not None and 1 <= value <= MAX_WINDOWSIZE:
        windowsize = min(value, max_windowsize, max(1, max_window_bytes // blksize))
        accepted.append(("windowsize", str(windowsize)))
    return tuple(accepted), TransferOptions(blksize, windowsize, timeout, tsize)


def accept_oack(requested: Mapping[str, str], acknowledged: Mapping[str, str]) -> TransferOptions:
    """Client side of RFC 2347: check an OACK against what we asked for.

    Raises ``MalformedPacket`` when the server acknowledged an option we did not request,
    or chose a value we cannot accept (a bigger block or window, a different timeout).
    """
    blksize, windowsize, timeout, tsize = DEFAULT_BLKSIZE, 1, None, None
    for name, raw in acknowledged.items():
        if name not in requested:
            raise MalformedPacket(f"OACK carries option {name!r} we did not request")
        value = _int_option(raw)
        wanted = _int_option(requested[name])
        if value is None or wanted is None:
            raise MalformedPacket(f"OACK option {name}={raw!r} is not a number")
        if name == "blksize":
            if not MIN_BLKSIZE <= value <= wanted:
                raise MalformedPacket(f"OACK blksize {value} outside 8..{wanted}")
            blksize = value
        elif name == "windowsize":
            if not 1 <= value <= wanted:
                raise MalformedPacket(f"OACK windowsize {value} outside 1..{wanted}")
            windowsize = value
        elif name == "timeout":
            if value != wanted:
                raise MalformedPacket(f"OACK timeout {value}, we asked {wanted}")
            timeout = float(value)
        elif name == "tsize":
            tsize = value
    return TransferOptions(blksize, windowsize, timeout, tsize)
