"""Best-effort decoding of a message that may be cut short (a trace shows only its start).

Owns the tolerant path used by ``tvs decode`` and the trace reader: the header and every whole
element are decoded, the element the data stops in is reported with how much of it is there.
A complete message goes through the strict decoder instead, so both paths agree.
"""

from __future__ import annotations

import struct

import attrs

from .decoder import decode_message
from .errors import DecodeError
from .messages import DISCRIMINATOR, HEADER_SIZE, Element, Header, Message, Tag

__all__ = ["Inspection", "inspect_message"]


@attrs.frozen
class Inspection:
    """What could be read from ``data``: a whole message, or a header and some elements."""

    header: Header | None
    message: Message | None
    elements: tuple[Element, ...]
    cut_element: tuple[int, int, bytes] | None  # tag, declared length, bytes present
    error: str | None
    length: int
    truncated: bool = False

    @property
    def complete(self) -> bool:
        return self.message is not None

    @property
    def readable(self) -> bool:
        """True for a whole valid message, or a valid start of one cut short."""
        return self.header is not None and (self.message is not None or self.truncated)


def inspect_message(data: bytes) -> Inspection:
    """Decode as much of ``data`` as is there; never raises for bad or short input."""
    if len(data) < HEADER_SIZE:
        return Inspection(None, None, (), None, f"only {len(data)} of 10 header bytes", len(data))
    header = Header.decode(data[:HEADER_SIZE])
    if header.discriminator != DISCRIMINATOR:
        note = f"protocol discriminator 0x{header.discriminator:02x}, expected 0x57"
        return Inspection(None, None, (), None, note, len(data))
    if len(data) >= HEADER_SIZE + header.length:
        try:
            msg = decode_message(data[: HEADER_SIZE + header.length], max_size=HEADER_SIZE + 0xFFFF)
        except DecodeError as exc:
            return Inspection(header, None, (), None, str(exc), len(data))
        extra = len(data) - HEADER_SIZE - header.length
        after = f"{extra} bytes after the message" if extra else None
        return Inspection(header, msg, (), None, after, len(data))
    body = data[HEADER_SIZE:]
    elements: list[Element] = []
    pos = 0
    cut: tuple[int, int, bytes] | None = None
    while pos < len(body):
        if len(body) - pos < 3:
            cut = (body[pos], -1, b"")
            break
        tag, length = struct.unpack_from(">BH", body, pos)
        value = body[pos + 3 : pos + 3 + length]
        if len(value) < length:
            cut = (tag, length, value)
            break
        elements.append(Element(tag, value))
        pos += 3 + length
    note = f"cut short: {len(body)} of {header.length} body bytes present"
    return Inspection(header, None, tuple(elements), cut, note, len(data), truncated=True)


def describe_partial_value(tag: int, value: bytes) -> str:
    """A readable rendering of a (possibly partial) element value, by tag."""
    if tag == Tag.DEVICE_NAME and value[:1] == b"\x01":
        return value[1:].decode("utf-8", "replace")
    if tag in (Tag.SUBJECT, Tag.ISSUER) and value.rstrip(b"\x00").isascii():
        return value.rstrip(b"\x00").decode("ascii")
    if tag == Tag.STATUS and len(value) == 1:
        return {0: "valid", 1: "invalid"}.get(value[0], str(value[0]))
    if tag == Tag.TTL and len(value) == 4:
        return str(int.from_bytes(value, "big"))
    return value.hex()
