"""Values of the CTL/ITL/.sgn codec: tags, algorithm codes, header, records and whole files.

Owns the frozen values and the numbers on the wire (protocol notes section 2). Parsing and
building live in :mod:`tvs.tlv.parse` and :mod:`tvs.tlv.build`; these classes know nothing of
byte layout beyond the tag numbers.
"""

from __future__ import annotations

import enum
import warnings
from typing import Final

import attrs
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import InvalidVersion

from ..certs import Certificate, CertificateError
from ..names import same_name
from .elements import Element

__all__ = [
    "ENC_SGN_VERSION",
    "MODULUS_SIZES",
    "SGN_VERSION",
    "SIGNATURE_ALGORITHM_EC",
    "SIGNATURE_ALGORITHM_RSA",
    "SIGNER_VERSION_EC",
    "SIGNER_VERSION_RSA",
    "TLV_VERSION",
    "EncryptionInfo",
    "EncryptionTag",
    "FileHeader",
    "HashAlgorithm",
    "HeaderTag",
    "Record",
    "RecordTag",
    "SignerInfo",
    "TrustFile",
]


CERT_FAULTS: Final = (CertificateError, ValueError, InvalidVersion, UnsupportedAlgorithm)
"""What reading a malformed certificate can raise (not all of it is a ValueError)."""


class HeaderTag(enum.IntEnum):
    VERSION = 1
    HEADER_LENGTH = 2
    SIGNER_INFO = 3  # container of SIGNER_NAME, SERIAL_NUMBER, ISSUER_NAME
    SIGNER_NAME = 4
    SERIAL_NUMBER = 5
    ISSUER_NAME = 6
    SIGNATURE_INFO = 7  # container of HASH_ALGORITHM, SIGNATURE_ALGORITHM_INFO
    HASH_ALGORITHM = 8
    SIGNATURE_ALGORITHM_INFO = 9  # container of SIGNATURE_ALGORITHM, SIGNATURE_MODULUS
    SIGNATURE_ALGORITHM = 10
    SIGNATURE_MODULUS = 11
    SIGNATURE = 12
    PADDING = 13
    FILENAME = 14
    TIMESTAMP = 15
    SIGNER_VERSION = 28


class EncryptionTag(enum.IntEnum):
    """Header tags of an encrypted ``.enc.sgn`` file (protocol notes section 9; High for the
    layout the open-source ``enccnf`` writes, Med that CUCM's bytes match). 16, 26 and 27 sit at
    the top level of the header; 17..20 inside 16; 22..25 inside 21 (itself inside 16)."""

    ENCRYPTION_INFO = 16  # container of IV_INFO, KEY_INFO
    IV_INFO = 17  # container of IV_TYPE, IV, PAD_COUNT
    IV_TYPE = 18  # u8, 0
    IV = 19  # 16 bytes
    PAD_COUNT = 20  # u16: 0x0D bytes appended to the plaintext (1..16)
    KEY_INFO = 21  # container of KEY_TYPE, KEY_BITS, KEY_FORMAT, WRAPPED_KEY
    KEY_TYPE = 22  # u8, 0 (AES-128)
    KEY_BITS = 23  # u16: size of the wrapped key blob in bits (the phone's RSA modulus)
    KEY_FORMAT = 24  # u8, 1 (RSA PKCS#1 v1.5 wrap)
    WRAPPED_KEY = 25  # the AES key encrypted with the phone certificate's RSA key
    HASH_ALGORITHM = 26  # u8 hash id of the plaintext hash (1 SHA-1, 2 SHA-256, 3 SHA-512)
    PLAINTEXT_HASH = 27  # hash of the plaintext without its padding


class RecordTag(enum.IntEnum):
    RECORD_LENGTH = 1
    DNS_NAME = 2
    SUBJECT_NAME = 3
    ROLE = 4
    ISSUER_NAME = 5
    SERIAL_NUMBER = 6
    PUBLIC_KEY = 7
    SIGNATURE = 8
    CERTIFICATE = 9
    IP_ADDRESS = 10
    CERT_HASH = 11
    HASH_ALGORITHM = 12


TLV_VERSION: Final = (1, 2)
"""Header version of CTL/ITL ``.tlv`` files (High)."""
SGN_VERSION: Final = (1, 0)
"""Header version of ``.sgn`` signed files (High); ``.enc.sgn`` files carry 2.0."""
ENC_SGN_VERSION: Final = (2, 0)
"""Header version of encrypted ``.enc.sgn`` files (High)."""
SIGNER_VERSION_RSA: Final = (1, 0)
SIGNER_VERSION_EC: Final = (1, 1)
"""Signer version 1.1 marks an EC-capable signer (High); absent in CUCM 10.5 files."""

SIGNATURE_ALGORITHM_RSA: Final = 0
"""Signature algorithm code for RSA PKCS#1 v1.5 (High)."""
SIGNATURE_ALGORITHM_EC: Final = 1
"""Signature algorithm code for ECDSA. **Low confidence**: CUCM's EC code is not public; this
is the next free number. The signature value is the DER ECDSA-Sig-Value OpenSSL produces."""

MODULUS_SIZES: Final = (64, 128, 256, 512)
"""Signature modulus index -> RSA modulus size in bytes (High: index 2 is RSA-2048)."""


class HashAlgorithm(enum.IntEnum):
    """Hash algorithm codes of header tag 8 (High)."""

    SHA1 = 1
    SHA256 = 2
    SHA512 = 3

    @property
    def hash_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> HashAlgorithm:
        """``sha1``/``SHA-256``/``sha512`` -> the enum member; ValueError for anything else."""
        key = name.strip().upper().replace("-", "").replace("_", "")
        try:
            return cls[key]
        except KeyError:
            raise ValueError(f"unknown digest {name!r} (use sha1, sha256 or sha512)") from None


@attrs.frozen
class SignerInfo:
    """Who signed the file: subject and issuer CUCM style, serial as raw bytes."""

    name: str
    serial: bytes
    issuer: str


@attrs.frozen
class EncryptionInfo:
    """What an ``.enc.sgn`` header says about its ciphertext (tags 16..27, section 9).

    The values as written: ``iv_type``/``key_type``/``key_format`` are the constants 0/0/1 every
    known writer uses; ``key_bits`` is the wrapped key's size in bits.
    """

    iv: bytes
    pad_count: int
    wrapped_key: bytes
    hash_algorithm: HashAlgorithm
    plaintext_hash: bytes
    key_bits: int
    iv_type: int = 0
    key_type: int = 0
    key_format: int = 1
    unknown: tuple[Element, ...] = ()


@attrs.frozen
class FileHeader:
    version: tuple[int, int]
    header_length: int
    signer_version: tuple[int, int] | None
    signer: SignerInfo
    hash_algorithm: HashAlgorithm
    signature_algorithm: int
    modulus_index: int
    signature: bytes
    filename: str
    timestamp: int
    unknown: tuple[Element, ...] = ()
    encryption: EncryptionInfo | None = None
    """Present for an encrypted ``.enc.sgn`` file (then the payload is the ciphertext)."""


@attrs.frozen
class Record:
    """One certificate record of a CTL or ITL."""

    role: int
    subject: str
    issuer: str
    serial: bytes
    public_key: bytes
    cert_signature: bytes
    certificate: bytes | None = None
    dns_name: str | None = None
    ip_address: bytes | None = None
    cert_hash: bytes | None = None
    hash_algorithm: int | None = None
    unknown: tuple[Element, ...] = ()

    @property
    def cert(self) -> Certificate | None:
        """The record's certificate, or None when absent or not a readable DER certificate."""
        if self.certificate is None:
            return None
        try:
            with warnings.catch_warnings():  # e.g. a negative serial: unusable here anyway
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert = Certificate.from_der(self.certificate)
                # fields the codec reads later: fail here, not half-way through a verification
                _ = (cert.public_key, cert.subject, cert.issuer, cert.serial, cert.not_valid_after)
        except CERT_FAULTS:
            return None
        return cert


@attrs.frozen
class TrustFile:
    """A parsed ``.tlv`` (records) or ``.sgn`` (payload) file and the bytes its signature covers."""

    header: FileHeader
    records: tuple[Record, ...]
    payload: bytes
    raw: bytes = attrs.field(repr=False)
    signed_data: bytes = attrs.field(repr=False)

    @property
    def encrypted(self) -> bool:
        """True for an ``.enc.sgn`` file: the payload is ciphertext (see :mod:`.encrypted`)."""
        return self.header.encryption is not None

    @property
    def kind(self) -> str:
        """``"tlv"`` for a CTL/ITL, ``"sgn"`` for a signed file (by content, then version)."""
        if self.records:
            return "tlv"
        if self.payload:
            return "sgn"
        if self.header.version == TLV_VERSION or self.header.filename.lower().endswith(".tlv"):
            return "tlv"
        return "sgn"

    def signer_record(self) -> Record | None:
        """The record whose serial equals the header's and whose issuer matches it."""
        signer = self.header.signer
        for rec in self.records:
            if rec.serial == signer.serial and same_name(rec.issuer, signer.issuer):
                return rec
        return None

    def records_with_role(self, *roles: int) -> tuple[Record, ...]:
        wanted = {int(r) for r in roles}
        return tuple(r for r in self.records if r.role in wanted)
