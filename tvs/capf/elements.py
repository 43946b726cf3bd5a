"""CAPF element tags, element framing and element values (protocol notes section 8).

Owns ``u8 tag | u16 length | value`` framing (:class:`Element`, :func:`parse_elements`), the
tag numbers, the structured values (the nested certificate element, SHA-2 signed data, SUDI
data) and one value codec per known tag (:func:`decode_value` / :func:`encode_value`).
Messages (header, commands, :class:`~tvs.capf.messages.Message`) are in
:mod:`tvs.capf.messages`. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any, Final

import attrs

from .errors import (
    BadCertificateElement,
    BadString,
    BadSubElement,
    CapfEncodeError,
    ElementOverrun,
    ElementSizeError,
)

__all__ = [
    "MAX_BODY",
    "CertificateBlob",
    "Element",
    "Sha2Signature",
    "SudiData",
    "Tag",
    "decode_value",
    "encode_value",
    "field_name",
    "parse_elements",
    "tag_for_field",
    "tag_name",
]

MAX_BODY: Final = 0xFFFF
_ELEMENT = struct.Struct(">BH")
_HEADER_SIZE: Final = 8  # where a body starts in its message (error offsets)


class Tag(enum.IntEnum):
    REASON = 1
    REASON_INFO = 2
    CERTIFICATE_TYPE = 3
    CERTIFICATE = 4
    SIGNED_DATA = 6
    VERSION = 7
    AUTH_TYPE = 8
    PUBLIC_KEY = 9
    KEY_SIZE = 10
    PASSWORD = 11
    DEVICE_NAME = 13
    SUDI_DATA = 16
    KEY_TYPE = 17
    CURVE = 18
    SHA2_SIGNED_DATA = 20


def tag_name(tag: int) -> str:
    try:
        return Tag(tag).name
    except ValueError:
        return f"TAG_{tag}"


@attrs.frozen
class Element:
    tag: int
    value: bytes

    def encode(self) -> bytes:
        if not 0 <= self.tag <= 0xFF:
            raise CapfEncodeError(f"element tag {self.tag} does not fit a byte")
        if len(self.value) > MAX_BODY:
            raise CapfEncodeError(f"{tag_name(self.tag)} of {len(self.value)} bytes is too long")
        return _ELEMENT.pack(self.tag, len(self.value)) + self.value


def parse_elements(body: bytes, *, offset: int = _HEADER_SIZE) -> tuple[Element, ...]:
    """Split ``u8 tag | u16 length | value`` records; ``offset`` places errors in the message."""
    out: list[Element] = []
    pos = 0
    while pos < len(body):
        if len(body) - pos < 3:
            raise ElementOverrun(
                f"element header at offset {offset + pos} needs 3 bytes, {len(body) - pos} left"
            )
        tag, length = _ELEMENT.unpack_from(body, pos)
        end = pos + 3 + length
        if end > len(body):
            raise ElementOverrun(
                f"{tag_name(tag)} at offset {offset + pos} declares {length} bytes, "
                f"only {len(body) - pos - 3} left"
            )
        out.append(Element(tag, body[pos + 3 : end]))
        pos = end
    return tuple(out)


# -- structured element values -------------------------------------------------------------


@attrs.frozen
class CertificateBlob:
    """The nested CERTIFICATE element: ``0x01, u16 (derlen+2), 0x00, u8 certtype, DER``."""

    cert_type: int
    der: bytes

    def encode(self) -> bytes:
        if len(self.der) + 5 > MAX_BODY:
            raise CapfEncodeError(f"certificate of {len(self.der)} bytes is too long")
        return struct.pack(">BHBB", 1, len(self.der) + 2, 0, self.cert_type) + self.der

    @classmethod
    def decode(cls, value: bytes) -> CertificateBlob:
        if len(value) < 5:
            raise BadCertificateElement(f"certificate element of {len(value)} bytes, need 5+")
        kind, length, zero, cert_type = struct.unpack_from(">BHBB", value)
        if kind != 1 or zero != 0:
            raise BadCertificateElement(
                f"certificate element starts {value[:4].hex()}, expected 01 .. .. 00"
            )
        if length != len(value) - 3:
            raise BadCertificateElement(
                f"certificate element inner length {length}, {len(value) - 3} bytes follow"
            )
        return cls(cert_type, value[5:])


@attrs.frozen
class Sha2Signature:
    """SHA2_SIGNED_DATA: ``u8 hash id, u16 length, signature``."""

    hash_id: int
    signature: bytes

    def encode(self) -> bytes:
        if len(self.signature) + 3 > MAX_BODY:
            raise CapfEncodeError("SHA-2 signature too long")
        return struct.pack(">BH", self.hash_id, len(self.signature)) + self.signature

    @classmethod
    def decode(cls, value: bytes) -> Sha2Signature:
        if len(value) < 3:
            raise BadSubElement(f"SHA2_SIGNED_DATA of {len(value)} bytes, need 3+")
        hash_id, length = struct.unpack_from(">BH", value)
        if length != len(value) - 3:
            raise BadSubElement(
                f"SHA2_SIGNED_DATA declares {length} signature bytes, {len(value) - 3} follow"
            )
        return cls(hash_id, value[3:])


_SUDI_CERT, _SUDI_SHA1, _SUDI_SHA512 = 0, 1, 3


@attrs.frozen
class SudiData:
    """SUDI_DATA: sub-elements ``0x00`` MIC DER, ``0x01`` SHA-1 and ``0x03`` SHA-512 signatures
    over ``session id (u32 little-endian) + MIC DER``. Unknown sub-elements are kept."""

    certificate: bytes
    sha1_signature: bytes
    sha512_signature: bytes | None = None
    extra: tuple[tuple[int, bytes], ...] = ()

    def encode(self) -> bytes:
        parts = [(_SUDI_CERT, self.certificate), (_SUDI_SHA1, self.sha1_signature)]
        if self.sha512_signature is not None:
            parts.append((_SUDI_SHA512, self.sha512_signature))
        parts.extend(self.extra)
        return b"".join(Element(tag, value).encode() for tag, value in parts)

    @classmethod
    def decode(cls, value: bytes) -> SudiData:
        try:
            subs = parse_elements(value, offset=0)
        except ElementOverrun as exc:
            raise BadSubElement(f"SUDI_DATA: {exc}") from None
        found: dict[int, bytes] = {}
        extra: list[tuple[int, bytes]] = []
        for sub in subs:
            if sub.tag in (_SUDI_CERT, _SUDI_SHA1, _SUDI_SHA512) and sub.tag not in found:
                found[sub.tag] = sub.value
            else:
                extra.append((sub.tag, sub.value))
        if _SUDI_CERT not in found or _SUDI_SHA1 not in found:
            raise BadSubElement("SUDI_DATA lacks the certificate (0) or SHA-1 signature (1)")
        blob = cls(found[_SUDI_CERT], found[_SUDI_SHA1], found.get(_SUDI_SHA512), tuple(extra))
        if blob.encode() != value:  # keep decode/encode a bijection: odd orders stay raw
            raise BadSubElement("SUDI_DATA sub-elements in an unexpected order")
        return blob


# -- element value codecs ------------------------------------------------------------------


def _dec_int(size: int) -> Callable[[int, bytes], int]:
    def dec(tag: int, value: bytes) -> int:
        if len(value) != size:
            raise ElementSizeError(f"{tag_name(tag)} must be {size} byte(s), got {len(value)}")
        return int.from_bytes(value, "big")

    return dec


def _enc_int(size: int) -> Callable[[int, Any], bytes]:
    def enc(tag: int, value: Any) -> bytes:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise CapfEncodeError(f"{tag_name(tag)} must be an integer of {size} byte(s)")
        return int(value).to_bytes(size, "big")

    return enc


def _dec_str(tag: int, value: bytes) -> str:
    raw = value[:-1] if value.endswith(b"\x00") else value
    if b"\x00" in raw:
        raise BadString(f"{tag_name(tag)} has a NUL inside: {value[:40]!r}")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadString(f"{tag_name(tag)} is not ASCII: {value[:40]!r}") from None


def _enc_str(tag: int, value: Any) -> bytes:
    if not isinstance(value, str) or "\x00" in value or not value.isascii():
        raise CapfEncodeError(f"{tag_name(tag)} must be an ASCII string without NUL")
    return value.encode("ascii") + b"\x00"


def _dec_bytes(tag: int, value: bytes) -> bytes:
    return value


def _enc_bytes(tag: int, value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise CapfEncodeError(f"{tag_name(tag)} must be bytes")
    return bytes(value)


def _enc_blob(kind: type[Any]) -> Callable[[int, Any], bytes]:
    def enc(tag: int, value: Any) -> bytes:
        if not isinstance(value, kind):
            raise CapfEncodeError(f"{tag_name(tag)} must be a {kind.__name__}")
        out: bytes = value.encode()
        return out

    return enc


_CODECS: dict[int, tuple[str, Callable[[int, bytes], Any], Callable[[int, Any], bytes]]] = {
    Tag.REASON: ("reason", _dec_int(1), _enc_int(1)),
    Tag.REASON_INFO: ("reason_info", _dec_str, _enc_str),
    Tag.CERTIFICATE_TYPE: ("certificate_type", _dec_int(1), _enc_int(1)),
    Tag.CERTIFICATE: (
        "certificate",
        lambda t, v: CertificateBlob.decode(v),
        _enc_blob(CertificateBlob),
    ),
    Tag.SIGNED_DATA: ("signed_data", _dec_bytes, _enc_bytes),
    Tag.VERSION: ("version", _dec_int(1), _enc_int(1)),
    Tag.AUTH_TYPE: ("auth_type", _dec_int(1), _enc_int(1)),
    Tag.PUBLIC_KEY: ("public_key", _dec_bytes, _enc_bytes),
    Tag.KEY_SIZE: ("key_size", _dec_int(2), _enc_int(2)),
    Tag.PASSWORD: ("password", _dec_str, _enc_str),
    Tag.DEVICE_NAME: ("device_name", _dec_str, _enc_str),
    Tag.SUDI_DATA: ("sudi_data", lambda t, v: SudiData.decode(v), _enc_blob(SudiData)),
    Tag.KEY_TYPE: ("key_type", _dec_int(1), _enc_int(1)),
    Tag.CURVE: ("curve", _dec_int(1), _enc_int(1)),
    Tag.SHA2_SIGNED_DATA: (
        "sha2_signed_data",
        lambda t, v: Sha2Signature.decode(v),
        _enc_blob(Sha2Signature),
    ),
}
_TAG_BY_FIELD: Final = {name: tag for tag, (name, _d, _e) in _CODECS.items()}


def decode_value(tag: int, value: bytes) -> Any:
    """The typed value of a known element (int, str, bytes or a blob); raw bytes if unknown."""
    codec = _CODECS.get(tag)
    return value if codec is None else codec[1](tag, value)


def encode_value(tag: int, value: Any) -> bytes:
    codec = _CODECS.get(tag)
    return _enc_bytes(tag, value) if codec is None else codec[2](tag, value)


def field_name(tag: int) -> str:
    codec = _CODECS.get(tag)
    return codec[0] if codec else f"tag_{tag}"


def tag_for_field(name: str) -> int | None:
    """The tag of a field name (``device_name`` -> 13), None if no element has that name."""
    return _TAG_BY_FIELD.get(name)
