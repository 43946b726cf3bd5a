"""CAPF message values and their wire encoding (protocol notes section 8).

Owns the 8-byte header, the command/element/reason numbers, the element value formats (the
nested certificate element, SHA-2 signed data, SUDI data) and :class:`Message`. Decoding a
stream is in :mod:`tvs.capf.decoder`; signatures in :mod:`tvs.capf.signing`. Nothing here
does I/O.

Header (big-endian): ``u8 0x55 | u8 command | u32 session id | u16 body length``. Body:
elements ``u8 tag | u16 length | value`` in any order. A :class:`Message` keeps its elements
in wire order, unknown tags included, so decoding then encoding gives the same bytes.
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
    BadValue,
    CapfEncodeError,
    ElementOverrun,
    ElementSizeError,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BODY",
    "AuthType",
    "CertType",
    "CertificateBlob",
    "Command",
    "Curve",
    "Element",
    "HashId",
    "Header",
    "KeyType",
    "Message",
    "Reason",
    "Sha2Signature",
    "SudiData",
    "Tag",
    "command_name",
    "decode_value",
    "encode_value",
    "parse_elements",
    "tag_name",
]

MAGIC: Final = 0x55
HEADER_SIZE: Final = 8
MAX_BODY: Final = 0xFFFF
_HEADER = struct.Struct(">BBIH")
_ELEMENT = struct.Struct(">BH")


class Command(enum.IntEnum):
    AUTH_REQUEST = 1
    AUTH_RESPONSE = 2
    KEY_GENERATE_REQUEST = 3
    KEY_GENERATE_RESPONSE = 4
    ENCRYPT_RESPONSE = 5
    ENCRYPT_REQUEST = 6
    DECRYPT_REQUEST = 7
    DECRYPT_RESPONSE = 8
    STORE_CERTIFICATE_REQUEST = 9
    STORE_CERTIFICATE_RESPONSE = 10
    FETCH_CERTIFICATE_REQUEST = 11
    FETCH_CERTIFICATE_RESPONSE = 12
    DELETE_CERTIFICATE_REQUEST = 13
    DELETE_CERTIFICATE_RESPONSE = 14
    END_SESSION = 15
    RETRY_LATER = 16
    REQUEST_IN_PROGRESS = 17
    STATUS_REQUEST = 18
    STATUS_RESPONSE = 19
    ABORT_REQUEST = 20
    ABORT_RESPONSE = 21
    SIGN_CERTIFICATE_REQUEST = 22
    SIGN_CERTIFICATE_RESPONSE = 23


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


class Reason(enum.IntEnum):
    """REASON values: 0 no action, 1 success, 7 failure, 9 unknown device."""

    NO_ACTION = 0
    SUCCESS = 1
    FAILURE = 7
    UNKNOWN_DEVICE = 9


class AuthType(enum.IntEnum):
    NONE = 0
    AUTH_STRING = 1
    NULL_STRING = 2
    LSC = 3
    MIC = 4


class CertType(enum.IntEnum):
    LSC = 1
    MIC = 2


class KeyType(enum.IntEnum):
    RSA = 0
    EC = 1


class Curve(enum.IntEnum):
    P256 = 0
    P384 = 1
    P521 = 2


class HashId(enum.IntEnum):
    SHA1 = 1
    SHA256 = 2
    SHA512 = 3


def command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"COMMAND_{command}"


def tag_name(tag: int) -> str:
    try:
        return Tag(tag).name
    except ValueError:
        return f"TAG_{tag}"


@attrs.frozen
class Header:
    command: int
    session_id: int
    length: int

    def encode(self) -> bytes:
        return _HEADER.pack(MAGIC, self.command, self.session_id, self.length)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Unpack 8 bytes whose first byte the caller has checked."""
        _magic, command, session_id, length = _HEADER.unpack(data[:HEADER_SIZE])
        return cls(command, session_id, length)


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


def parse_elements(body: bytes, *, offset: int = HEADER_SIZE) -> tuple[Element, ...]:
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


@attrs.frozen
class Message:
    """One CAPF message: command, session id and its elements in wire order."""

    command: int
    session_id: int
    elements: tuple[Element, ...] = ()

    @classmethod
    def build(cls, command: int, session_id: int, **fields: Any) -> Message:
        """Build from typed fields, in the order given (``reason=1, version=3, ...``);
        ``None`` values are left out."""
        elements = []
        for name, value in fields.items():
            if value is None:
                continue
            tag = _TAG_BY_FIELD.get(name)
            if tag is None:
                raise CapfEncodeError(f"no CAPF element is called {name!r}")
            elements.append(Element(tag, encode_value(tag, value)))
        return cls(command, session_id, tuple(elements))

    @property
    def name(self) -> str:
        return command_name(self.command)

    @property
    def tags(self) -> tuple[int, ...]:
        return tuple(el.tag for el in self.elements)

    def body(self) -> bytes:
        return b"".join(el.encode() for el in self.elements)

    def encode(self) -> bytes:
        """Header and body as one buffer (peers need them in one write)."""
        if not 0 <= self.command <= 0xFF or not 0 <= self.session_id <= 0xFFFFFFFF:
            raise CapfEncodeError("command or session id out of range")
        body = self.body()
        if len(body) > MAX_BODY:
            raise CapfEncodeError(f"body of {len(body)} bytes exceeds {MAX_BODY}")
        return Header(self.command, self.session_id, len(body)).encode() + body

    def get(self, tag: int) -> Element | None:
        for el in self.elements:
            if el.tag == tag:
                return el
        return None

    def field(self, tag: int) -> Any:
        el = self.get(tag)
        return None if el is None else decode_value(tag, el.value)

    def validate(self) -> None:
        """Raise the codec's error for the first known element whose value is malformed."""
        for el in self.elements:
            decode_value(el.tag, el.value)

    # typed accessors (None when the element is absent)
    @property
    def reason(self) -> int | None:
        v: int | None = self.field(Tag.REASON)
        return v

    @property
    def reason_info(self) -> str | None:
        v: str | None = self.field(Tag.REASON_INFO)
        return v

    @property
    def version(self) -> int | None:
        v: int | None = self.field(Tag.VERSION)
        return v

    @property
    def auth_type(self) -> int | None:
        v: int | None = self.field(Tag.AUTH_TYPE)
        return v

    @property
    def device_name(self) -> str | None:
        v: str | None = self.field(Tag.DEVICE_NAME)
        return v

    @property
    def password(self) -> str | None:
        v: str | None = self.field(Tag.PASSWORD)
        return v

    @property
    def certificate_type(self) -> int | None:
        v: int | None = self.field(Tag.CERTIFICATE_TYPE)
        return v

    @property
    def certificate(self) -> CertificateBlob | None:
        v: CertificateBlob | None = self.field(Tag.CERTIFICATE)
        return v

    @property
    def signed_data(self) -> bytes | None:
        v: bytes | None = self.field(Tag.SIGNED_DATA)
        return v

    @property
    def sha2_signed_data(self) -> Sha2Signature | None:
        v: Sha2Signature | None = self.field(Tag.SHA2_SIGNED_DATA)
        return v

    @property
    def sudi_data(self) -> SudiData | None:
        v: SudiData | None = self.field(Tag.SUDI_DATA)
        return v

    @property
    def public_key(self) -> bytes | None:
        v: bytes | None = self.field(Tag.PUBLIC_KEY)
        return v

    @property
    def key_size(self) -> int | None:
        v: int | None = self.field(Tag.KEY_SIZE)
        return v

    @property
    def key_type(self) -> int | None:
        v: int | None = self.field(Tag.KEY_TYPE)
        return v

    @property
    def curve(self) -> int | None:
        v: int | None = self.field(Tag.CURVE)
        return v


def check_enum(kind: type[enum.IntEnum], value: int, what: str) -> None:
    """Raise :class:`BadValue` when ``value`` is not a member of ``kind``."""
    try:
        kind(value)
    except ValueError:
        raise BadValue(f"{what} {value} is not one of {[m.value for m in kind]}") from None
