"""Reading certificate files (PEM, DER, PKCS#12) and writing labelled PKCS#12 bundles.

Owns the file formats an administrator hands to ``tvs store import`` and the bundles bulk
certificate management exchanges (``.p12`` and ``.pfx``). Our bundle entries carry a friendly
name ``KIND|CLUSTER|NODE`` (``CallManager|destination|ucm11pub``); for any other bundle (a CUCM
export, ``openssl pkcs12 -export``) the kind is recognised from the certificate and its names
(``kinds``), or left empty when it cannot be told. Does not decide which store a certificate
goes to (see ``table``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    NoEncryption,
    pkcs12,
)

from ..certs import Certificate, CertificateError, load_certificates
from .errors import StoreInputError
from .kinds import recognise

__all__ = [
    "LabelledCertificate",
    "dump_pkcs12",
    "load_pkcs12",
    "read_certificate_file",
]


@attrs.frozen
class LabelledCertificate:
    """A certificate with what bulk management knows about it."""

    certificate: Certificate
    kind: str  # CallManager, ITLRecovery, CAPF, TVS, tomcat, or "" when unknown
    cluster: str = ""
    node: str = ""
    why: str = ""  # how the kind was told ("" for our own labels)

    @property
    def friendly_name(self) -> str:
        return f"{self.kind}|{self.cluster}|{self.node}"

    @classmethod
    def from_friendly_name(cls, cert: Certificate, name: bytes | None) -> LabelledCertificate:
        text = (name or b"").decode("utf-8", "replace")
        parts = [*text.split("|"), "", ""]
        if text.count("|") != 2:
            return cls(cert, kind="", cluster="", node="")
        return cls(cert, kind=parts[0], cluster=parts[1], node=parts[2])


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None:
        return None
    return password.encode() if isinstance(password, str) else password


def load_pkcs12(
    data: bytes, password: str | bytes | None, *, source: str = "input"
) -> list[LabelledCertificate]:
    """Every certificate in a PKCS#12 bundle (the key, if any, is ignored)."""
    pw = _password_bytes(password)
    candidates = [pw] if pw is not None else [None, b""]
    last: Exception | None = None
    for cand in candidates:
        try:
            bundle = pkcs12.load_pkcs12(data, cand)
        except ValueError as exc:
            last = exc
            continue
        entries = ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)
        if not entries:
            raise StoreInputError(f"{source}: PKCS#12 bundle holds no certificate")
        file_name = Path(source).name if len(entries) == 1 else ""
        out: list[LabelledCertificate] = []
        for item in entries:
            cert = Certificate.from_x509(item.certificate)
            labelled = LabelledCertificate.from_friendly_name(cert, item.friendly_name)
            if not labelled.kind:
                friendly = (item.friendly_name or b"").decode("utf-8", "replace")
                found = recognise(cert, friendly, file_name)
                if found is not None:
                    labelled = attrs.evolve(labelled, kind=found.kind, why=found.why)
            out.append(labelled)
        return out
    hint = "wrong password or not a PKCS#12 file" if pw is not None else "needs a password"
    raise StoreInputError(f"{source}: cannot read PKCS#12 ({hint}: {last})")


def dump_pkcs12(items: Iterable[LabelledCertificate], password: str | bytes | None) -> bytes:
    """A certificate-only PKCS#12 bundle, each entry carrying its friendly name."""
    cas = [pkcs12.PKCS12Certificate(i.certificate.x509, i.friendly_name.encode()) for i in items]
    if not cas:
        raise StoreInputError("nothing to export")
    pw = _password_bytes(password)
    enc = BestAvailableEncryption(pw) if pw else NoEncryption()
    return pkcs12.serialize_key_and_certificates(None, None, None, cas, enc)


def _looks_like_pkcs12(path: Path, data: bytes) -> bool:
    return path.suffix.lower() in (".p12", ".pfx") or (
        data[:1] == b"\x30" and b"\x06\x09" in data[:40]
    )


def read_certificate_file(
    path: str | Path, password: str | bytes | None = None
) -> list[Certificate]:
    """All certificates in a PEM, DER or PKCS#12 file; :class:`StoreInputError` otherwise."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise StoreInputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise StoreInputError(f"{p}: empty file")
    if b"-----BEGIN" in data and b"-----BEGIN CERTIFICATE" not in data:
        raise StoreInputError(f"{p}: no certificate in PEM file (a private key or request?)")
    if b"-----BEGIN" in data:
        try:
            certs = load_certificates(data, source=str(p))
        except CertificateError as exc:
            raise StoreInputError(str(exc)) from None
        if not certs:
            raise StoreInputError(f"{p}: no certificate in PEM file")
        return certs
    if p.suffix.lower() not in (".p12", ".pfx"):
        try:
            return [Certificate.from_der(data)]
        except CertificateError:
            pass
    if _looks_like_pkcs12(p, data):
        return [i.certificate for i in load_pkcs12(data, password, source=str(p))]
    raise StoreInputError(f"{p}: not a PEM, DER or PKCS#12 certificate file")
