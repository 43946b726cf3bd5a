"""CAPF message values and their wire encoding (protocol notes section 8).

Owns the 8-byte header, the command and value numbers (reasons, auth types, key types...)
and :class:`Message` with its typed accessors. Element framing and values are in
:mod:`tvs.capf.elements` (re-exported here); decoding a stream is in :mod:`tvs.capf.decoder`;
signatures in :mod:`tvs.capf.signing`. Nothing here does I/O.

Header (big-endian): ``u8 0x55 | u8 command | u32 session id | u16 body length``. Body:
elements ``u8 tag | u16 length | value`` in any order. A :class:`Message` keeps its elements
in wire order, unknown tags included, so decoding then encoding gives the same bytes.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Final

import attrs

from .elements import (
    MAX_BODY,
    CertificateBlob,
    Element,
    Sha2Signature,
    SudiData,
    Tag,
    decode_value,
    encode_value,
    field_name,
    parse_elements,
    tag_for_field,
    tag_name,
)
from .errors import BadValue, CapfEncodeError

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
    "field_name",
    "parse_elements",
    "tag_name",
]

MAGIC: Final = 0x55
HEADER_SIZE: Final = 8
_HEADER = struct.Struct(">BBIH")


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
            tag = tag_for_field(name)
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
