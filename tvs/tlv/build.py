"""Building and signing CTL/ITL ``.tlv`` files and ``.sgn`` signed files.

Owns the writer's choices: header element order (1, 2, 28, 3, 7, 12, 14, 15, then padding 13
until the header length is a multiple of 4), record element order (by tag), CUCM-style names
(taken from :class:`~tvs.certs.Certificate`), and signing (RSA PKCS#1 v1.5, or ECDSA with the
Low-confidence algorithm code :data:`~tvs.tlv.model.SIGNATURE_ALGORITHM_EC`). The signature
covers the whole file without the signature element. Time comes in as an argument (``timestamp``);
only when it is omitted is the clock read.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from typing import Final

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..certs import Certificate, PrivateKey, sign_digest
from ..roles import Role
from .elements import PADDING_TAG, encode_element
from .errors import FormatError, LengthError, TlvError, UnknownAlgorithmError
from .model import (
    ENC_SGN_VERSION,
    MODULUS_SIZES,
    SGN_VERSION,
    SIGNATURE_ALGORITHM_EC,
    SIGNATURE_ALGORITHM_RSA,
    SIGNER_VERSION_EC,
    TLV_VERSION,
    EncryptionInfo,
    EncryptionTag,
    HashAlgorithm,
    HeaderTag,
    RecordTag,
)
from .parse import RECORD_LENGTH_INCLUDES_ITSELF

__all__ = [
    "RecordSpec",
    "build_trust_list",
    "encode_encryption_info",
    "encode_record",
    "host_name_from_cn",
    "sign_encrypted_file",
    "sign_file",
]

_EC_SIGN_ATTEMPTS: Final = 256
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def _ip_bytes(value: bytes | str | ipaddress.IPv4Address | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return ipaddress.IPv4Address(value).packed


@attrs.frozen
class RecordSpec:
    """One record to build: a role and a certificate, with optional DNS name and IPv4 address.

    ``dns_name=None`` takes the certificate's CN when it looks like a dotted host name.
    """

    role: int
    certificate: Certificate
    dns_name: str | None = None
    ip_address: bytes | None = attrs.field(default=None, converter=_ip_bytes)


def host_name_from_cn(cn: str) -> str | None:
    """The CN when it looks like a fully qualified host name (``ucm11pub.stormin.local``)."""
    return cn if _HOST.match(cn) else None


def _nul(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def _public_key_bytes(cert: Certificate) -> bytes:
    key = cert.public_key
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def encode_record(spec: RecordSpec) -> bytes:
    """One record, every tag filled from the certificate (tags 2..10; 11/12 are not written)."""
    cert = spec.certificate
    ip = spec.ip_address
    if ip is not None and len(ip) != 4:
        raise LengthError(f"IP address of the {cert.subject} record must be 4 bytes, not {len(ip)}")
    dns = spec.dns_name if spec.dns_name is not None else host_name_from_cn(cert.common_name)
    parts: list[bytes] = []
    if dns:
        parts.append(encode_element(RecordTag.DNS_NAME, _nul(dns)))
    if not 0 <= int(spec.role) <= 0xFFFF:
        raise LengthError(f"role {spec.role} does not fit in a u16")
    parts += [
        encode_element(RecordTag.SUBJECT_NAME, _nul(cert.subject)),
        encode_element(RecordTag.ROLE, int(spec.role).to_bytes(2, "big")),
        encode_element(RecordTag.ISSUER_NAME, _nul(cert.issuer)),
        encode_element(RecordTag.SERIAL_NUMBER, cert.serial),
        encode_element(RecordTag.PUBLIC_KEY, _public_key_bytes(cert)),
        encode_element(RecordTag.SIGNATURE, cert.x509.signature),
        encode_element(RecordTag.CERTIFICATE, cert.der),
    ]
    if ip is not None:
        parts.append(encode_element(RecordTag.IP_ADDRESS, ip))
    body = b"".join(parts)
    length = len(body) + (5 if RECORD_LENGTH_INCLUDES_ITSELF else 0)
    if length > 0xFFFF:
        raise LengthError(f"record for {cert.subject} is {length} bytes, over the u16 limit")
    return encode_element(RecordTag.RECORD_LENGTH, length.to_bytes(2, "big")) + body


def _spec(item: RecordSpec | tuple[int | Role, Certificate]) -> RecordSpec:
    if isinstance(item, RecordSpec):
        return item
    role, cert = item
    return RecordSpec(role=int(role), certificate=cert)


# --- header and signing ---------------------------------------------------------------------
def _ec_max_signature(key: ec.EllipticCurvePrivateKey) -> int:
    """Longest DER ECDSA-Sig-Value for the key's curve."""
    n = (key.curve.key_size + 7) // 8
    inner = 2 * (2 + n + 1)
    return inner + (2 if inner < 128 else 3)


def _algorithm(key: PrivateKey, signer: Certificate) -> tuple[int, int, int]:
    """(signature algorithm code, modulus index, expected signature length) for ``key``."""
    cert_key = signer.public_key
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert_key.public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise FormatError(f"the private key does not belong to the signer {signer.subject}")
    if isinstance(key, rsa.RSAPrivateKey):
        size = (key.key_size + 7) // 8
        if size not in MODULUS_SIZES:
            raise UnknownAlgorithmError(
                f"RSA-{key.key_size}: the header can only name moduli of {MODULUS_SIZES} bytes"
            )
        return SIGNATURE_ALGORITHM_RSA, MODULUS_SIZES.index(size), size
    longest = _ec_max_signature(key)
    index = next((i for i, s in enumerate(MODULUS_SIZES) if s >= longest), len(MODULUS_SIZES) - 1)
    return SIGNATURE_ALGORITHM_EC, index, longest - 1


def _digest(digest: str) -> HashAlgorithm:
    try:
        return HashAlgorithm.from_name(digest)
    except ValueError as exc:
        raise UnknownAlgorithmError(str(exc)) from None


def _signed_container(
    *,
    version: tuple[int, int],
    body: bytes,
    filename: str,
    signer: Certificate,
    key: PrivateKey,
    digest: str,
    timestamp: int | None,
    signer_version: tuple[int, int] | None,
    extra: bytes = b"",
) -> bytes:
    """Header + ``body``; ``extra`` (encoded elements) goes after the timestamp, before padding."""
    hash_algorithm = _digest(digest)
    algorithm, modulus_index, sig_len = _algorithm(key, signer)
    if signer_version is None and algorithm == SIGNATURE_ALGORITHM_EC:
        signer_version = SIGNER_VERSION_EC
    ts = int(time.time()) if timestamp is None else timestamp
    if not 0 <= ts <= 0xFFFFFFFF:
        raise LengthError(f"timestamp {ts} does not fit in a u32")
    signer_info = b"".join(
        [
            encode_element(HeaderTag.SIGNER_NAME, _nul(signer.subject)),
            encode_element(HeaderTag.SERIAL_NUMBER, signer.serial),
            encode_element(HeaderTag.ISSUER_NAME, _nul(signer.issuer)),
        ]
    )
    algo_info = encode_element(HeaderTag.SIGNATURE_ALGORITHM, bytes([algorithm])) + encode_element(
        HeaderTag.SIGNATURE_MODULUS, bytes([modulus_index])
    )
    sig_info = encode_element(HeaderTag.HASH_ALGORITHM, bytes([hash_algorithm])) + encode_element(
        HeaderTag.SIGNATURE_ALGORITHM_INFO, algo_info
    )
    middle = encode_element(HeaderTag.SIGNER_INFO, signer_info) + encode_element(
        HeaderTag.SIGNATURE_INFO, sig_info
    )
    tail = (
        encode_element(HeaderTag.FILENAME, _nul(filename))
        + encode_element(HeaderTag.TIMESTAMP, ts.to_bytes(4, "big"))
        + extra
    )
    version_el = encode_element(HeaderTag.VERSION, bytes(version))
    sv_el = (
        b""
        if signer_version is None
        else encode_element(HeaderTag.SIGNER_VERSION, bytes(signer_version))
    )
    for _ in range(_EC_SIGN_ATTEMPTS):
        # ECDSA signatures vary in length; the header length depends on it: retry until equal
        fixed = len(version_el) + 5 + len(sv_el) + len(middle) + 3 + sig_len + len(tail)
        padding = bytes([PADDING_TAG]) * (-fixed % 4)
        header_length = fixed + len(padding)
        if header_length > 0xFFFF:
            raise LengthError(f"header of {header_length} bytes is over the u16 limit")
        before = (
            version_el
            + encode_element(HeaderTag.HEADER_LENGTH, header_length.to_bytes(2, "big"))
            + sv_el
            + middle
        )
        after = tail + padding
        signature = sign_digest(key, before + after + body, hash_algorithm.hash_name)
        if len(signature) == sig_len:
            return before + encode_element(HeaderTag.SIGNATURE, signature) + after + body
        sig_len = len(signature)
    raise TlvError(f"could not produce a signature of stable length in {_EC_SIGN_ATTEMPTS} tries")


def build_trust_list(
    records: Sequence[RecordSpec | tuple[int | Role, Certificate]],
    *,
    signer: Certificate,
    key: PrivateKey,
    filename: str = "CTLFile.tlv",
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """A signed CTL/ITL (header version 1.2), one record per entry; no records is allowed."""
    body = b"".join(encode_record(_spec(item)) for item in records)
    return _signed_container(
        version=TLV_VERSION,
        body=body,
        filename=filename,
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
    )


def sign_file(
    payload: bytes,
    *,
    filename: str,
    signer: Certificate,
    key: PrivateKey,
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """A ``.sgn`` file: header (version 1.0, ``filename`` like ``SEP....cnf.xml.sgn``), payload."""
    return _signed_container(
        version=SGN_VERSION,
        body=bytes(payload),
        filename=filename,
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
    )


def encode_encryption_info(info: EncryptionInfo) -> bytes:
    """Tags 16 {17 {18, 19, 20}, 21 {22, 23, 24, 25}}, 26, 27 in ``enccnf``'s order."""

    def u8(v: int) -> bytes:
        return v.to_bytes(1, "big")

    def u16(v: int) -> bytes:
        return v.to_bytes(2, "big")

    if len(info.iv) != 16:
        raise LengthError(f"the IV must be 16 bytes, not {len(info.iv)}")
    iv_info = b"".join(
        [
            encode_element(EncryptionTag.IV_TYPE, u8(info.iv_type)),
            encode_element(EncryptionTag.IV, info.iv),
            encode_element(EncryptionTag.PAD_COUNT, u16(info.pad_count)),
        ]
    )
    key_info = b"".join(
        [
            encode_element(EncryptionTag.KEY_TYPE, u8(info.key_type)),
            encode_element(EncryptionTag.KEY_BITS, u16(info.key_bits)),
            encode_element(EncryptionTag.KEY_FORMAT, u8(info.key_format)),
            encode_element(EncryptionTag.WRAPPED_KEY, info.wrapped_key),
        ]
    )
    container = encode_element(EncryptionTag.IV_INFO, iv_info) + encode_element(
        EncryptionTag.KEY_INFO, key_info
    )
    return b"".join(
        [
            encode_element(EncryptionTag.ENCRYPTION_INFO, container),
            encode_element(EncryptionTag.HASH_ALGORITHM, u8(int(info.hash_algorithm))),
            encode_element(EncryptionTag.PLAINTEXT_HASH, info.plaintext_hash),
        ]
    )


def sign_encrypted_file(
    ciphertext: bytes,
    info: EncryptionInfo,
    *,
    filename: str,
    signer: Certificate,
    key: PrivateKey,
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """An ``.enc.sgn`` file: header version 2.0 with ``info``'s elements, then ``ciphertext``.

    The crypto (key, IV, padding, wrapping) is :mod:`tvs.tlv.encrypted`'s; this only lays out
    and signs. No signer-version element unless ``signer_version`` is given (or the signer is EC).
    """
    return _signed_container(
        version=ENC_SGN_VERSION,
        body=bytes(ciphertext),
        filename=filename,
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
        extra=encode_encryption_info(info),
    )
