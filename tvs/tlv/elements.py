"""The generic element layer of CTL/ITL/.sgn files: ``tag:u8, length:u16, value``.

Owns reading and writing single elements, including the one exception to the layout: the
padding tag 13 is a lone byte with neither length nor value. Knows nothing of what the tags
mean (that is :mod:`tvs.tlv.parse` and :mod:`tvs.tlv.build`).
"""

from __future__ import annotations

import attrs

from .errors import LengthError, TruncatedError

__all__ = ["PADDING_TAG", "Element", "encode_element", "read_element", "read_elements"]

PADDING_TAG = 13
"""Header padding: a single byte, repeated until the header length is a multiple of 4."""

_MAX_VALUE = 0xFFFF


@attrs.frozen
class Element:
    """One element as read from a file; ``offset`` is where its tag byte sits in the file."""

    tag: int
    value: bytes
    offset: int = 0

    @property
    def is_padding(self) -> bool:
        return self.tag == PADDING_TAG

    @property
    def size(self) -> int:
        """Bytes the element occupies on the wire (1 for padding, else 3 + value)."""
        return 1 if self.is_padding else 3 + len(self.value)

    @property
    def end(self) -> int:
        return self.offset + self.size


def encode_element(tag: int, value: bytes) -> bytes:
    """Encode one element; the padding tag encodes as its lone byte (``value`` must be empty)."""
    if not 0 <= tag <= 0xFF:
        raise LengthError(f"tag {tag} does not fit in one byte")
    if tag == PADDING_TAG:
        if value:
            raise LengthError("the padding tag 13 carries no value")
        return bytes([PADDING_TAG])
    if len(value) > _MAX_VALUE:
        raise LengthError(f"tag {tag}: value of {len(value)} bytes exceeds the 65535-byte limit")
    return bytes([tag]) + len(value).to_bytes(2, "big") + value


def read_element(data: bytes, pos: int, limit: int, *, where: str = "file") -> Element:
    """Read the element starting at ``data[pos]``, which must end by ``limit``.

    ``limit == len(data)`` means the element may run to the end of the file: running past it is
    a :class:`TruncatedError`. A smaller limit is a container's end (``where`` names it):
    running past it is a :class:`LengthError`.
    """
    if pos >= limit:
        raise TruncatedError(f"offset {pos}: expected an element, {where} ends at {limit}")
    tag = data[pos]
    if tag == PADDING_TAG:
        return Element(tag=tag, value=b"", offset=pos)
    if pos + 3 > limit:
        _overrun(data, limit, where, f"offset {pos}: tag {tag} length field")
    length = int.from_bytes(data[pos + 1 : pos + 3], "big")
    end = pos + 3 + length
    if end > limit:
        _overrun(
            data, limit, where, f"offset {pos}: tag {tag} value of {length} bytes (ends at {end})"
        )
    return Element(tag=tag, value=bytes(data[pos + 3 : end]), offset=pos)


def _overrun(data: bytes, limit: int, where: str, what: str) -> None:
    if limit >= len(data):
        raise TruncatedError(f"{what} runs past the end of the data at {len(data)}")
    raise LengthError(f"{what} runs past the end of the {where} at {limit}")


def read_elements(data: bytes, start: int, end: int, *, where: str = "file") -> list[Element]:
    """All elements in ``data[start:end]`` (offsets stay absolute)."""
    out: list[Element] = []
    pos = start
    while pos < end:
        el = read_element(data, pos, end, where=where)
        out.append(el)
        pos = el.end
    return out
