"""TVS message values and their wire encoding (protocol notes section 1).

Owns the 10-byte header, the element tags, the five message values and
:func:`encode_message`. Decoding is in :mod:`tvs.wire.decoder`. Nothing here does I/O.

Header (big-endian): discriminator 0x57, version 1, type, reserved (0x00 from phones, 0xF7
seen from CUCM), request id u32, body length u16. Body: elements ``tag:u8 length:u16 value``.
"""

from __future__ import annotations

import enum
import struct
from typing import ClassVar, Final, Protocol

import attrs

from .errors import EncodeError

__all__ = [
    "DISCRIMINATOR",
    "HEADER_SIZE",
    "RESERVED_CUCM",
    "RESERVED_PHONE",
    "VERSION",
    "Element",
    "Header",
    "Message",
    "MessageType",
    "QueryCertRequest",
    "QueryCertResponse",
    "QueryTags",
    "SignerName",
    "Status",
    "Tag",
    "UnknownMessage",
    "VerifyRequest",
    "VerifyResponse",
    "encode_message",
]

DISCRIMINATOR: Final = 0x57
VERSION: Final = 1
HEADER_SIZE: Final = 10
_HEADER = struct.Struct(">BBBBIH")
RESERVED_PHONE: Final = 0x00
RESERVED_CUCM: Final = 0xF7
DEVICE_NAME_PREFIX: Final = b"\x01"
MAX_ELEMENT: Final = 0xFFFF


class MessageType(enum.IntEnum):
    VERIFY_REQUEST = 1
    VERIFY_RESPONSE = 2
    QUERY_CERT_REQ = 3
    QUERY_CERT_RES = 4

    @property
    def cucm_name(self) -> str:
        """The name CUCM's TVS trace prints (``TVS_MSG_QUERY_CERT_REQ``)."""
        return f"TVS_MSG_{self.name}"


class Status(enum.IntEnum):
    VALID = 0
    INVALID = 1


class Tag(enum.IntEnum):
    """Element tags. ISSUER/SERIAL are Low confidence: 4/5 by default, 5/6 also seen as likely."""

    DEVICE_NAME = 1
    CERTIFICATE = 2
    SUBJECT = 3
    ISSUER = 4
    SERIAL = 5
    ALT_SERIAL = 6
    STATUS = 7
    ROLES = 8
    TTL = 9


class QueryTags(enum.Enum):
    """Which element tags carry the issuer and serial of a QUERY_CERT_REQ when encoding."""

    TAGS_4_5 = (4, 5)
    TAGS_5_6 = (5, 6)

    @classmethod
    def parse(cls, text: str) -> QueryTags:
        norm = text.replace(" ", "").replace("/", ",")
        for member in cls:
            if norm == f"{member.value[0]},{member.value[1]}":
                return member
        raise ValueError(f"query tags must be 4,5 or 5,6, not {text!r}")

    @property
    def issuer_tag(self) -> int:
        return self.value[0]

    @property
    def serial_tag(self) -> int:
        return self.value[1]


@attrs.frozen
class Header:
    discriminator: int
    version: int
    type: int
    reserved: int
    request_id: int
    length: int

    def encode(self) -> bytes:
        return _HEADER.pack(
            self.discriminator, self.version, self.type, self.reserved, self.request_id, self.length
        )

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Unpack exactly :data:`HEADER_SIZE` bytes; validation is the decoder's job."""
        return cls(*_HEADER.unpack(data))

    @property
    def type_name(self) -> str:
        try:
            return MessageType(self.type).name
        except ValueError:
            return f"unknown type {self.type}"


@attrs.frozen
class Element:
    """One ``tag, length, value`` element; unknown elements are kept as they came."""

    tag: int
    value: bytes

    def encode(self) -> bytes:
        if not 0 <= self.tag <= 0xFF:
            raise EncodeError(f"element tag {self.tag} does not fit a byte")
        if len(self.value) > MAX_ELEMENT:
            raise EncodeError(f"element {self.tag} is {len(self.value)} bytes, over 65535")
        return struct.pack(">BH", self.tag, len(self.value)) + self.value


def _roles(value: object) -> tuple[int, ...]:
    return tuple(int(r) for r in value)  # type: ignore[attr-defined]


class SignerName(Protocol):
    """What a signed file's header says about its signer (``tvs.tlv.SignerInfo`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def serial(self) -> bytes: ...


@attrs.frozen
class QueryCertRequest:
    """QUERY_CERT_REQ: "who signed this file?" by the signer's subject, issuer and serial.

    Build the question about a file with :meth:`for_signer` (the phone's boot machine and
    ``phone-emu query --signer-of`` both do)."""

    type: ClassVar[MessageType] = MessageType.QUERY_CERT_REQ
    device: str
    subject: str
    issuer: str
    serial: bytes
    request_id: int = 0
    reserved: int = RESERVED_PHONE
    extra: tuple[Element, ...] = ()

    @classmethod
    def for_signer(
        cls, device: str, signer: SignerName, *, request_id: int = 0
    ) -> QueryCertRequest:
        """The question a phone ``device`` (``CP-<model>-SEP<MAC>``) asks about the signer of a
        CTL, ITL or ``.sgn`` file: the signer's name as subject, its issuer and serial."""
        return cls(
            device=device,
            subject=signer.name,
            issuer=signer.issuer,
            serial=signer.serial,
            request_id=request_id,
        )

    @property
    def serial_hex(self) -> str:
        return self.serial.hex().upper()

    @property
    def cache_key(self) -> str:
        """CUCM's ``Unique MAP ID``: upper-case serial hex followed by the issuer string."""
        return self.serial_hex + self.issuer


@attrs.frozen
class QueryCertResponse:
    """QUERY_CERT_RES: status, and when valid the certificate, its roles and a TTL."""

    type: ClassVar[MessageType] = MessageType.QUERY_CERT_RES
    status: Status
    certificate: bytes | None = None
    roles: tuple[int, ...] = attrs.field(default=(), converter=_roles)
    ttl: int | None = None
    request_id: int = 0
    reserved: int = RESERVED_CUCM
    extra: tuple[Element, ...] = ()


@attrs.frozen
class VerifyRequest:
    """VERIFY_REQUEST: "is this TLS peer certificate trusted, and for what?"."""

    type: ClassVar[MessageType] = MessageType.VERIFY_REQUEST
    device: str
    certificate: bytes
    request_id: int = 0
    reserved: int = RESERVED_PHONE
    extra: tuple[Element, ...] = ()


@attrs.frozen
class VerifyResponse:
    type: ClassVar[MessageType] = MessageType.VERIFY_RESPONSE
    status: Status
    roles: tuple[int, ...] = attrs.field(default=(), converter=_roles)
    ttl: int | None = None
    request_id: int = 0
    reserved: int = RESERVED_CUCM
    extra: tuple[Element, ...] = ()


@attrs.frozen
class UnknownMessage:
    """A message of a type this codec does not know, with its elements as they came."""

    type: int
    elements: tuple[Element, ...] = ()
    request_id: int = 0
    reserved: int = 0


Message = QueryCertRequest | QueryCertResponse | VerifyRequest | VerifyResponse | UnknownMessage


# --- encoding ------------------------------------------------------------------------------


def _device(name: str) -> Element:
    return Element(Tag.DEVICE_NAME, DEVICE_NAME_PREFIX + name.encode("utf-8"))


def _cstring(tag: int, text: str) -> Element:
    return Element(tag, text.encode("utf-8") + b"\x00")


def _status(status: Status) -> Element:
    return Element(Tag.STATUS, bytes([int(status)]))


def _response_tail(roles: tuple[int, ...], ttl: int | None) -> list[Element]:
    out: list[Element] = []
    if roles:
        if any(not 0 <= r <= 0xFF for r in roles):
            raise EncodeError(f"role codes must fit a byte: {roles}")
        out.append(Element(Tag.ROLES, bytes(roles)))
    if ttl is not None:
        if not 0 <= ttl <= 0xFFFFFFFF:
            raise EncodeError(f"TTL {ttl} does not fit 32 bits")
        out.append(Element(Tag.TTL, struct.pack(">I", ttl)))
    return out


def _elements(msg: Message, query_tags: QueryTags) -> list[Element]:
    if isinstance(msg, QueryCertRequest):
        return [
            _device(msg.device),
            _cstring(Tag.SUBJECT, msg.subject),
            _cstring(query_tags.issuer_tag, msg.issuer),
            Element(query_tags.serial_tag, msg.serial),
            *msg.extra,
        ]
    if isinstance(msg, QueryCertResponse):
        els = [_status(msg.status)]
        if msg.certificate is not None:
            els.append(Element(Tag.CERTIFICATE, msg.certificate))
        return [*els, *_response_tail(msg.roles, msg.ttl), *msg.extra]
    if isinstance(msg, VerifyRequest):
        return [_device(msg.device), Element(Tag.CERTIFICATE, msg.certificate), *msg.extra]
    if isinstance(msg, VerifyResponse):
        return [_status(msg.status), *_response_tail(msg.roles, msg.ttl), *msg.extra]
    return list(msg.elements)


def encode_message(msg: Message, *, query_tags: QueryTags = QueryTags.TAGS_4_5) -> bytes:
    """The whole message, header and body, as it goes on the wire."""
    body = b"".join(e.encode() for e in _elements(msg, query_tags))
    if len(body) > 0xFFFF:
        raise EncodeError(f"message body is {len(body)} bytes, over the 65535 a header can carry")
    if not 0 <= msg.request_id <= 0xFFFFFFFF:
        raise EncodeError(f"request id {msg.request_id} does not fit 32 bits")
    if not 0 <= msg.reserved <= 0xFF:
        raise EncodeError(f"reserved byte {msg.reserved} does not fit a byte")
    header = Header(DISCRIMINATOR, VERSION, int(msg.type), msg.reserved, msg.request_id, len(body))
    return header.encode() + body
