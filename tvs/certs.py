"""Certificates and private keys as values: loading, the fields TVS and CTL/ITL files key on.

Owns :class:`Certificate` (a frozen wrapper around one DER certificate with the derived fields
every other layer needs: CUCM-style subject and issuer, raw serial bytes, digests) and key
loading. Does not own trust decisions or stores.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import warnings
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import Certificate as _X509Certificate

from .names import NameKey, cucm_name, name_key

__all__ = [
    "Certificate",
    "CertificateError",
    "PrivateKey",
    "load_certificates",
    "load_private_key",
    "serial_to_bytes",
    "sign_digest",
    "verify_signature",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class CertificateError(ValueError):
    """A certificate or key could not be read or used."""


def serial_to_bytes(serial: int) -> bytes:
    """Serial number as CUCM carries it: unsigned big-endian, minimal length (at least 1 byte)."""
    if serial < 0:
        raise CertificateError("negative serial number")
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")


@attrs.frozen
class Certificate:
    """One X.509 certificate; equality and hashing follow its DER bytes."""

    der: bytes
    x509: _X509Certificate = attrs.field(eq=False, repr=False)

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        try:
            with warnings.catch_warnings():
                # malformed-but-tolerated encodings warn; for us they are just bad input
                warnings.simplefilter("error", CryptographyDeprecationWarning)
                cert = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
            raise CertificateError(f"not a DER certificate: {exc}") from None
        return cls(der=bytes(der), x509=cert)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> Certificate:
        certs = load_certificates(pem.encode() if isinstance(pem, str) else pem)
        if len(certs) != 1:
            raise CertificateError(f"expected one certificate, found {len(certs)}")
        return certs[0]

    @classmethod
    def from_x509(cls, cert: _X509Certificate) -> Certificate:
        return cls(der=cert.public_bytes(serialization.Encoding.DER), x509=cert)

    @classmethod
    def load(cls, path: str | Path) -> Certificate:
        """Read one certificate from a PEM or DER file."""
        certs = load_certificates(Path(path).read_bytes(), source=str(path))
        if not certs:
            raise CertificateError(f"{path}: no certificate found")
        return certs[0]

    # --- derived fields -------------------------------------------------------------------
    @property
    def subject(self) -> str:
        """Subject, CUCM style (``CN=...;OU=...;C=..``)."""
        return cucm_name(self.x509.subject)

    @property
    def issuer(self) -> str:
        """Issuer, CUCM style."""
        return cucm_name(self.x509.issuer)

    @property
    def issuer_key(self) -> NameKey:
        return name_key(self.x509.issuer)

    @property
    def common_name(self) -> str:
        attrs_ = self.x509.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(attrs_[0].value) if attrs_ else ""

    @property
    def serial(self) -> bytes:
        """Serial number as raw unsigned big-endian bytes (what TVS and CTL files carry)."""
        return serial_to_bytes(self.x509.serial_number)

    @property
    def serial_hex(self) -> str:
        """Serial in upper-case hex, as in CUCM's cache key (``24000000179479B8...``)."""
        return self.serial.hex().upper()

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @property
    def sha1(self) -> bytes:
        return hashlib.sha1(self.der).digest()

    @property
    def public_key(self) -> PublicKey:
        try:
            key = self.x509.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(f"unreadable public key: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CertificateError(f"unsupported public key type {type(key).__name__}")
        return key

    @property
    def not_valid_after(self) -> _dt.datetime:
        return self.x509.not_valid_after_utc

    @property
    def not_valid_before(self) -> _dt.datetime:
        return self.x509.not_valid_before_utc

    def is_expired(self, now: _dt.datetime | None = None) -> bool:
        now = now or _dt.datetime.now(_dt.UTC)
        return now > self.not_valid_after

    def to_pem(self) -> bytes:
        return self.x509.public_bytes(serialization.Encoding.PEM)

    def is_issued_by(self, issuer: Certificate) -> bool:
        """True when ``issuer``'s key verifies this certificate's signature."""
        try:
            self.x509.verify_directly_issued_by(issuer.x509)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def load_certificates(data: bytes, *, source: str = "input") -> list[Certificate]:
    """All certificates in ``data``: PEM (any number) or a single DER certificate."""
    if b"-----BEGIN" in data:
        try:
            found = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateError(f"{source}: bad PEM certificate: {exc}") from None
        return [Certificate.from_x509(c) for c in found]
    try:
        return [Certificate.from_der(data)]
    except CertificateError:
        raise CertificateError(f"{source}: neither PEM nor DER certificate") from None


def load_private_key(path_or_data: str | Path | bytes, password: bytes | None = None) -> PrivateKey:
    """Read an RSA or EC private key (PEM or DER)."""
    data = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(f"unsupported private key type {type(key).__name__}")
    return key


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
}


def sign_digest(key: PrivateKey, data: bytes, hash_name: str) -> bytes:
    """Sign ``data``: RSA PKCS#1 v1.5 or ECDSA, with ``sha1``/``sha256``/``sha512``."""
    algo = _HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algo)
    return key.sign(data, ec.ECDSA(algo))


def verify_signature(key: PublicKey, signature: bytes, data: bytes, hash_name: str) -> bool:
    """True when ``signature`` over ``data`` verifies with ``key``; never raises for bad input."""
    algo = _HASHES[hash_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algo)
        else:
            key.verify(signature, data, ec.ECDSA(algo))
    except (InvalidSignature, ValueError):
        return False
    return True
