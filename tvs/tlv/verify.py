"""Verifying the signature of a parsed CTL/ITL/.sgn file.

Owns finding the signer (a trusted certificate whose serial and issuer match the header, else
the signer record inside the file) and checking the signature over the file minus its
signature element. Does not decide whether a signer's role may sign a file: that is trust
policy, kept by the phone and the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..certs import Certificate, verify_signature
from ..names import same_name
from .errors import SignatureError, SignerNotFoundError, UnknownAlgorithmError
from .model import (
    CERT_FAULTS,
    SIGNATURE_ALGORITHM_EC,
    SIGNATURE_ALGORITHM_RSA,
    TrustFile,
)

__all__ = ["matches_signer", "verify_file", "verify_with_certificate"]


def matches_signer(f: TrustFile, cert: Certificate) -> bool:
    """True when ``cert`` has the header's signer serial and (by parsed attributes) issuer."""
    signer = f.header.signer
    return cert.serial == signer.serial and same_name(cert.issuer, signer.issuer)


def verify_with_certificate(f: TrustFile, cert: Certificate) -> None:
    """Check ``f``'s signature with ``cert``'s key; raises SignatureError, UnknownAlgorithmError."""
    header = f.header
    try:
        key = cert.public_key
    except CERT_FAULTS as exc:
        raise SignatureError(f"signer certificate serial {cert.serial_hex}: {exc}") from None
    if header.signature_algorithm == SIGNATURE_ALGORITHM_RSA:
        wanted: type = rsa.RSAPublicKey
    elif header.signature_algorithm == SIGNATURE_ALGORITHM_EC:
        wanted = ec.EllipticCurvePublicKey
    else:
        raise UnknownAlgorithmError(
            f"header of {header.filename!r}: unknown signature algorithm code "
            f"{header.signature_algorithm} (known: {SIGNATURE_ALGORITHM_RSA} RSA, "
            f"{SIGNATURE_ALGORITHM_EC} EC)"
        )
    if not isinstance(key, wanted):
        raise SignatureError(
            f"header of {header.filename!r} names signature algorithm "
            f"{header.signature_algorithm} but {cert.subject} holds a {type(key).__name__}"
        )
    if not verify_signature(key, header.signature, f.signed_data, header.hash_algorithm.hash_name):
        raise SignatureError(
            f"signature of {header.filename!r} ({len(header.signature)} bytes, "
            f"{header.hash_algorithm.hash_name}) does not verify with the key of "
            f"{cert.subject} (serial {cert.serial_hex})"
        )


def verify_file(f: TrustFile, *, trusted: Sequence[Certificate] = ()) -> Certificate:
    """Find the signer and check the signature; returns the certificate that verified.

    Trusted certificates matching the header's serial and issuer are tried first; without one,
    the file's own signer record is used. Raises SignerNotFoundError or SignatureError.
    """
    candidates = [c for c in trusted if matches_signer(f, c)]
    if not candidates:
        rec = f.signer_record()
        signer = f.header.signer
        if rec is None:
            raise SignerNotFoundError(
                f"signer {signer.name!r} (serial {signer.serial.hex().upper()}, issuer "
                f"{signer.issuer!r}) is neither trusted nor among the file's "
                f"{len(f.records)} records"
            )
        cert = rec.cert
        if cert is None:
            raise SignerNotFoundError(
                f"the signer record of {signer.name!r} carries no readable certificate"
            )
        candidates = [cert]
    error: SignatureError | None = None
    for cert in candidates:
        try:
            verify_with_certificate(f, cert)
        except SignatureError as exc:
            error = exc
            continue
        return cert
    assert error is not None
    raise error
