"""Decoding CAPF messages from a byte stream: an incremental decoder and one-shot helpers.

Owns validation of everything that arrives from the network. Whatever bytes come in, the
decoder returns a :class:`~tvs.capf.Message`, :data:`NEED_DATA`, :data:`CLOSED`, or raises a
:class:`~tvs.capf.CapfDecodeError` subclass naming the fault; any other exception is a bug
(the property tests hold it to that). Like h11, ``receive_data(b"")`` means the peer closed:
the decoder (not the adapter) says whether that happened between messages or inside one.
The buffer is bounded by ``max_size``: a header announcing a larger body fails as soon as its
8 bytes are in. Readers reassemble: the open-source server writes header and body apart.
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import BadMagic, MessageTooLarge, TrailingData, TruncatedMessage
from .messages import HEADER_SIZE, MAGIC, Header, Message, parse_elements

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_MESSAGE",
    "NEED_DATA",
    "Decoder",
    "Signal",
    "decode_body",
    "decode_message",
    "decode_stream",
]

DEFAULT_MAX_MESSAGE: Final = 16 * 1024
"""Largest message (header included) accepted by default: an RSA-4096 LSC plus a MIC fit."""


class Signal(enum.Enum):
    NEED_DATA = "need-data"
    CLOSED = "closed"


NEED_DATA: Final = Signal.NEED_DATA
CLOSED: Final = Signal.CLOSED


def decode_body(header: Header, body: bytes) -> Message:
    """Turn a header and its body into a message; every known element's value is checked."""
    message = Message(header.command, header.session_id, parse_elements(body))
    message.validate()
    return message


class Decoder:
    """Incremental decoder: :meth:`receive_data` (``b""`` = end of stream), then
    :meth:`next_message` until it returns :data:`NEED_DATA` or :data:`CLOSED`."""

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_size < HEADER_SIZE:
            raise ValueError(f"max_size must be at least {HEADER_SIZE}")
        self.max_size = max_size
        self._buf = bytearray()
        self._header: Header | None = None
        self._closed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def header(self) -> Header | None:
        """The header of the message being received, once its 8 bytes are in."""
        return self._header

    def receive_data(self, data: bytes) -> None:
        if self._closed:
            if data:
                raise RuntimeError("receive_data after end of stream")
            return
        if not data:
            self._closed = True
            return
        self._buf += data

    def next_message(self) -> Message | Signal:
        if self._header is None:
            if self._buf and self._buf[0] != MAGIC:
                raise BadMagic(f"first byte 0x{self._buf[0]:02x}, expected 0x{MAGIC:02x}")
            if len(self._buf) < HEADER_SIZE:
                return self._short()
            header = Header.decode(bytes(self._buf[:HEADER_SIZE]))
            if HEADER_SIZE + header.length > self.max_size:
                raise MessageTooLarge(
                    f"body of {header.length} bytes exceeds the"
                    f" {self.max_size - HEADER_SIZE} byte limit"
                )
            self._header = header
        total = HEADER_SIZE + self._header.length
        if len(self._buf) < total:
            return self._short()
        body = bytes(self._buf[HEADER_SIZE:total])
        header, self._header = self._header, None
        del self._buf[:total]
        return decode_body(header, body)

    def _short(self) -> Signal:
        if not self._closed:
            return NEED_DATA
        if not self._buf:
            return CLOSED
        have = len(self._buf)
        if self._header is None:
            raise TruncatedMessage(f"peer closed after {have} of {HEADER_SIZE} header bytes")
        raise TruncatedMessage(
            f"peer closed after {have - HEADER_SIZE} of {self._header.length} body bytes"
        )


def decode_stream(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE) -> list[Message]:
    """Every message in ``data`` (a whole stream); a cut-off message is an error."""
    decoder = Decoder(max_size)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    out: list[Message] = []
    while isinstance(msg := decoder.next_message(), Message):
        out.append(msg)
    return out


def decode_message(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE) -> Message:
    """Decode exactly one whole message; short input or trailing bytes are errors."""
    decoder = Decoder(max_size)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    msg = decoder.next_message()
    if not isinstance(msg, Message):
        raise TruncatedMessage("empty input")
    if decoder.buffered:
        raise TrailingData(f"{decoder.buffered} bytes after the end of the message")
    return msg
