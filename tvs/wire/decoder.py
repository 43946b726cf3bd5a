"""Decoding TVS messages: an incremental decoder for streams and a one-shot function.

Owns validation of everything that arrives from the network, framing and end of stream.
Whatever bytes come in, the decoder returns a :class:`Frame` (the message and its exact bytes),
:data:`NEED_DATA`, :data:`CLOSED`, or raises a :class:`~tvs.wire.DecodeError` subclass naming
the fault (its ``reason`` is a stable code for logs and metrics); any other exception is a bug
(the property tests hold it to that). Like h11, ``receive_data(b"")`` means the peer closed, and
the decoder, not the adapter, says whether that cut a message short (a TVS connection that
closes before its first message is truncated too). The server and the client keep no buffers
of their own. The buffer is bounded by ``max_size``: a header announcing a larger body fails as
soon as its 10 bytes are in, without waiting for the body.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

import attrs

from .errors import (
    BadDeviceName,
    BadDiscriminator,
    BadName,
    BadValue,
    ElementOverrun,
    ElementSizeError,
    MessageTooLarge,
    MissingElement,
    TrailingData,
    TruncatedMessage,
    UnsupportedVersion,
)
from .messages import (
    DEVICE_NAME_PREFIX,
    DISCRIMINATOR,
    HEADER_SIZE,
    VERSION,
    Element,
    Header,
    Message,
    MessageType,
    QueryCertRequest,
    QueryCertResponse,
    Status,
    Tag,
    UnknownMessage,
    VerifyRequest,
    VerifyResponse,
)

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_MESSAGE",
    "NEED_DATA",
    "Decoder",
    "Frame",
    "Signal",
    "decode_body",
    "decode_message",
    "parse_elements",
]

DEFAULT_MAX_MESSAGE: Final = 16 * 1024
"""Largest message (header included) accepted by default: a certificate chain fits easily."""


class Signal(enum.Enum):
    NEED_DATA = "need-data"
    CLOSED = "closed"


NEED_DATA: Final = Signal.NEED_DATA
"""More bytes are needed for the next message."""
CLOSED: Final = Signal.CLOSED
"""The peer closed cleanly between messages, after at least one."""


@attrs.frozen
class Frame:
    """One decoded message with the exact bytes it came in (header and body)."""

    message: Message
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")


def parse_elements(body: bytes, *, offset: int = HEADER_SIZE) -> tuple[Element, ...]:
    """Split a body into elements; ``offset`` only makes error messages point at the message."""
    out: list[Element] = []
    pos = 0
    view = memoryview(body)
    while pos < len(body):
        if len(body) - pos < 3:
            raise ElementOverrun(
                f"element header at offset {offset + pos} needs 3 bytes, {len(body) - pos} left"
            )
        tag, length = struct.unpack_from(">BH", body, pos)
        end = pos + 3 + length
        if end > len(body):
            raise ElementOverrun(
                f"element tag {tag} at offset {offset + pos} declares {length} bytes, "
                f"only {len(body) - pos - 3} left in the body"
            )
        out.append(Element(tag, bytes(view[pos + 3 : end])))
        pos = end
    return tuple(out)


def _device(el: Element) -> str:
    if not el.value.startswith(DEVICE_NAME_PREFIX):
        raise BadDeviceName(
            f"device name must start with byte 0x01, got {el.value[:1].hex() or 'nothing'}"
        )
    raw = el.value[1:].rstrip(b"\x00")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadDeviceName(f"device name is not UTF-8: {raw[:40]!r}") from None


def _is_cstring(value: bytes) -> bool:
    """A NUL-terminated UTF-8 string with no other NUL: what a name element holds."""
    if not value.endswith(b"\x00") or b"\x00" in value[:-1]:
        return False
    try:
        value[:-1].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _cstring(el: Element, what: str) -> str:
    if not el.value.endswith(b"\x00"):
        raise BadName(f"{what} (tag {el.tag}) is not NUL-terminated")
    try:
        return el.value[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise BadName(f"{what} (tag {el.tag}) is not UTF-8: {el.value[:40]!r}") from None


def _status(el: Element) -> Status:
    if len(el.value) != 1:
        raise ElementSizeError(f"status element must be 1 byte, got {len(el.value)}")
    try:
        return Status(el.value[0])
    except ValueError:
        raise BadValue(f"status byte {el.value[0]} is neither 0 (valid) nor 1 (invalid)") from None


def _ttl(el: Element) -> int:
    if len(el.value) != 4:
        raise ElementSizeError(f"TTL element must be 4 bytes, got {len(el.value)}")
    return int.from_bytes(el.value, "big")


class _Fields:
    """First occurrence of each tag; repeats and unknown tags go to ``extra`` in order."""

    def __init__(self, elements: tuple[Element, ...], known: frozenset[int]) -> None:
        self.first: dict[int, Element] = {}
        extra: list[Element] = []
        for el in elements:
            if el.tag in known and el.tag not in self.first:
                self.first[el.tag] = el
            else:
                extra.append(el)
        self.extra = tuple(extra)

    def need(self, tag: int, what: str, msg: str) -> Element:
        try:
            return self.first[tag]
        except KeyError:
            raise MissingElement(f"{msg} has no {what} element (tag {tag})") from None


_NAME_TAGS = frozenset({Tag.ISSUER, Tag.SERIAL, Tag.ALT_SERIAL})


def _query_request(header: Header, elements: tuple[Element, ...]) -> QueryCertRequest:
    f = _Fields(elements, frozenset({Tag.DEVICE_NAME, Tag.SUBJECT}) | _NAME_TAGS)
    msg = "QUERY_CERT_REQ"
    device = _device(f.need(Tag.DEVICE_NAME, "device name", msg))
    subject = _cstring(f.need(Tag.SUBJECT, "subject", msg), "subject")
    # issuer/serial travel as 4/5 or as 5/6 (Low confidence): the lower tag is the issuer,
    # unless it cannot be a name (not a NUL-terminated string) and the other one can
    pair = sorted((el for tag, el in f.first.items() if tag in _NAME_TAGS), key=lambda e: e.tag)
    if len(pair) < 2:
        raise MissingElement(f"{msg} needs an issuer and a serial element (tags 4/5 or 5/6)")
    issuer_el, serial_el = pair[0], pair[1]
    if not _is_cstring(issuer_el.value) and _is_cstring(serial_el.value):
        issuer_el, serial_el = serial_el, issuer_el
    extra = f.extra + tuple(pair[2:])
    return QueryCertRequest(
        device=device,
        subject=subject,
        issuer=_cstring(issuer_el, "issuer"),
        serial=serial_el.value,
        request_id=header.request_id,
        reserved=header.reserved,
        extra=extra,
    )


def _query_response(header: Header, elements: tuple[Element, ...]) -> QueryCertResponse:
    f = _Fields(elements, frozenset({Tag.STATUS, Tag.CERTIFICATE, Tag.ROLES, Tag.TTL}))
    cert = f.first.get(Tag.CERTIFICATE)
    roles = f.first.get(Tag.ROLES)
    ttl = f.first.get(Tag.TTL)
    return QueryCertResponse(
        status=_status(f.need(Tag.STATUS, "status", "QUERY_CERT_RES")),
        certificate=cert.value if cert else None,
        roles=tuple(roles.value) if roles else (),
        ttl=_ttl(ttl) if ttl else None,
        request_id=header.request_id,
        reserved=header.reserved,
        extra=f.extra,
    )


def _verify_request(header: Header, elements: tuple[Element, ...]) -> VerifyRequest:
    f = _Fields(elements, frozenset({Tag.DEVICE_NAME, Tag.CERTIFICATE}))
    return VerifyRequest(
        device=_device(f.need(Tag.DEVICE_NAME, "device name", "VERIFY_REQUEST")),
        certificate=f.need(Tag.CERTIFICATE, "certificate", "VERIFY_REQUEST").value,
        request_id=header.request_id,
        reserved=header.reserved,
        extra=f.extra,
    )


def _verify_response(header: Header, elements: tuple[Element, ...]) -> VerifyResponse:
    f = _Fields(elements, frozenset({Tag.STATUS, Tag.ROLES, Tag.TTL}))
    roles = f.first.get(Tag.ROLES)
    ttl = f.first.get(Tag.TTL)
    return VerifyResponse(
        status=_status(f.need(Tag.STATUS, "status", "VERIFY_RESPONSE")),
        roles=tuple(roles.value) if roles else (),
        ttl=_ttl(ttl) if ttl else None,
        request_id=header.request_id,
        reserved=header.reserved,
        extra=f.extra,
    )


_BY_TYPE = {
    MessageType.QUERY_CERT_REQ: _query_request,
    MessageType.QUERY_CERT_RES: _query_response,
    MessageType.VERIFY_REQUEST: _verify_request,
    MessageType.VERIFY_RESPONSE: _verify_response,
}


def decode_body(header: Header, body: bytes) -> Message:
    """Turn a validated header and its body into a message value."""
    elements = parse_elements(body)
    builder = _BY_TYPE.get(header.type)  # type: ignore[call-overload]
    if builder is None:
        return UnknownMessage(header.type, elements, header.request_id, header.reserved)
    result: Message = builder(header, elements)
    return result


class Decoder:
    """Incremental decoder: feed bytes with :meth:`receive_data` (``b""`` = end of stream), take
    frames with :meth:`next_frame` (or messages with :meth:`next_message`) until they return
    :data:`NEED_DATA` or :data:`CLOSED`."""

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_size < HEADER_SIZE:
            raise ValueError(f"max_size must be at least {HEADER_SIZE}")
        self.max_size = max_size
        self._buf = bytearray()
        self._header: Header | None = None
        self._closed = False
        self._frames = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned in a frame."""
        return len(self._buf)

    @property
    def closed(self) -> bool:
        """The peer has closed (``receive_data(b"")`` was called)."""
        return self._closed

    @property
    def header(self) -> Header | None:
        """The header of the message being received, once its 10 bytes are in."""
        return self._header

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed the stream."""
        if self._closed:
            if data:
                raise RuntimeError("receive_data after end of stream")
            return
        if not data:
            self._closed = True
            return
        self._buf += data

    def _check_prefix(self) -> None:
        if self._buf and self._buf[0] != DISCRIMINATOR:
            raise BadDiscriminator(
                f"protocol discriminator 0x{self._buf[0]:02x}, expected 0x{DISCRIMINATOR:02x}"
            )
        if len(self._buf) >= 2 and self._buf[1] != VERSION:
            raise UnsupportedVersion(f"protocol version {self._buf[1]}, only {VERSION} is known")

    def next_frame(self) -> Frame | Signal:
        """The next whole message and its bytes, :data:`NEED_DATA`, or :data:`CLOSED`; raises
        a DecodeError for a bad message, or TruncatedMessage when the peer closed inside one
        (or before the first)."""
        if self._header is None:
            self._check_prefix()
            if len(self._buf) < HEADER_SIZE:
                return self._short()
            header = Header.decode(bytes(self._buf[:HEADER_SIZE]))
            if HEADER_SIZE + header.length > self.max_size:
                raise MessageTooLarge(
                    f"body of {header.length} bytes exceeds the {self.max_size - HEADER_SIZE}"
                    " byte limit"
                )
            self._header = header
        total = HEADER_SIZE + self._header.length
        if len(self._buf) < total:
            return self._short()
        data = bytes(self._buf[:total])
        header, self._header = self._header, None
        del self._buf[:total]
        message = decode_body(header, data[HEADER_SIZE:])
        self._frames += 1
        return Frame(message, data)

    def next_message(self) -> Message | Signal:
        """Like :meth:`next_frame`, without the bytes."""
        frame = self.next_frame()
        return frame.message if isinstance(frame, Frame) else frame

    def _short(self) -> Signal:
        if not self._closed:
            return NEED_DATA
        have = len(self._buf)
        if not have:
            if self._frames:
                return CLOSED
            raise TruncatedMessage("peer closed before sending a message")
        if self._header is None:
            raise TruncatedMessage(
                f"peer closed mid-message after {have} bytes ({have} of {HEADER_SIZE} header bytes)"
            )
        raise TruncatedMessage(
            f"peer closed mid-message after {have} bytes "
            f"({have - HEADER_SIZE} of {self._header.length} body bytes)"
        )


def decode_message(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE) -> Message:
    """Decode exactly one whole message; short input or trailing bytes are errors."""
    decoder = Decoder(max_size)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    msg = decoder.next_message()
    if not isinstance(msg, Message):  # pragma: no cover - end of stream raised already
        raise TruncatedMessage("empty input")
    if decoder.buffered:
        raise TrailingData(f"{decoder.buffered} bytes after the end of the message")
    return msg
