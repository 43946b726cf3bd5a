"""Signed-data proofs of CAPF certificate authentication (protocol notes section 8).

Owns the two signed messages and their signatures:

- SIGNED_DATA / SHA2_SIGNED_DATA sign ``device name + 0x00 + certificate DER`` with the key
  of the existing certificate (LSC or MIC);
- SUDI_DATA signs ``session id (u32 little-endian) + MIC DER`` with the MIC key.

RSA signatures are raw PKCS#1 type-1 padding of the bare digest (no DigestInfo), so a
standard PKCS#1 v1.5 verify fails: we recover the padded digest and compare. EC signatures
are DER ECDSA with the same hash. SHA-1 is hash id 1, SHA-512 hash id 3. Pure: no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import CapfSignatureError
from .messages import HashId, Sha2Signature, SudiData

__all__ = [
    "auth_message",
    "make_sudi",
    "raw_pkcs1_sign",
    "sign",
    "sign_auth",
    "sudi_message",
    "verify",
    "verify_auth",
    "verify_sudi",
]

_HASHES: Final[dict[int, type[hashes.HashAlgorithm]]] = {
    HashId.SHA1: hashes.SHA1,
    HashId.SHA256: hashes.SHA256,
    HashId.SHA512: hashes.SHA512,
}


def auth_message(device_name: str, certificate_der: bytes) -> bytes:
    """What SIGNED_DATA and SHA2_SIGNED_DATA sign."""
    return device_name.encode("ascii") + b"\x00" + certificate_der


def sudi_message(session_id: int, mic_der: bytes) -> bytes:
    """What SUDI_DATA's signatures sign: the session id little-endian, then the MIC."""
    return struct.pack("<I", session_id) + mic_der


def _algorithm(hash_id: int) -> hashes.HashAlgorithm:
    try:
        return _HASHES[hash_id]()
    except KeyError:
        raise CapfSignatureError(f"unknown hash id {hash_id}") from None


def _digest(hash_id: int, message: bytes) -> bytes:
    h = hashes.Hash(_algorithm(hash_id))
    h.update(message)
    return h.finalize()


def raw_pkcs1_sign(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """RSA private operation over ``00 01 FF.. 00 digest`` (type-1 padding, no DigestInfo)."""
    size = (key.key_size + 7) // 8
    if len(digest) > size - 11:
        raise CapfSignatureError(
            f"a {len(digest)}-byte digest does not fit a {key.key_size}-bit key"
        )
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    m = int.from_bytes(block, "big")
    priv = key.private_numbers()
    # CRT: two half-size exponentiations
    s1 = pow(m, priv.dmp1, priv.p)
    s2 = pow(m, priv.dmq1, priv.q)
    h = (priv.iqmp * (s1 - s2)) % priv.p
    s = s2 + h * priv.q
    return s.to_bytes(size, "big")


def sign(key: object, message: bytes, hash_id: int) -> bytes:
    """Sign as a CAPF client does: raw PKCS#1 for RSA, DER ECDSA for EC."""
    if isinstance(key, rsa.RSAPrivateKey):
        return raw_pkcs1_sign(key, _digest(hash_id, message))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_algorithm(hash_id)))
    raise CapfSignatureError(f"cannot sign with a {type(key).__name__}")


def verify(public_key: object, signature: bytes, message: bytes, hash_id: int) -> None:
    """Raise :class:`CapfSignatureError` unless ``signature`` is a proof over ``message``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        try:
            recovered = public_key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            raise CapfSignatureError("RSA signature does not verify") from None
        if recovered != _digest(hash_id, message):
            raise CapfSignatureError("RSA signature is over another digest")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        try:
            public_key.verify(signature, message, ec.ECDSA(_algorithm(hash_id)))
        except (InvalidSignature, ValueError):
            raise CapfSignatureError("ECDSA signature does not verify") from None
        return
    raise CapfSignatureError(f"cannot verify with a {type(public_key).__name__}")


def sign_auth(key: object, device_name: str, certificate_der: bytes) -> tuple[bytes, Sha2Signature]:
    """SIGNED_DATA (SHA-1) and SHA2_SIGNED_DATA (SHA-512) values for an AUTH_RESPONSE."""
    message = auth_message(device_name, certificate_der)
    return (
        sign(key, message, HashId.SHA1),
        Sha2Signature(HashId.SHA512, sign(key, message, HashId.SHA512)),
    )


def verify_auth(
    public_key: object,
    device_name: str,
    certificate_der: bytes,
    signed_data: bytes | None,
    sha2: Sha2Signature | None,
) -> None:
    """Check every proof present; at least one must be."""
    if signed_data is None and sha2 is None:
        raise CapfSignatureError("certificate authentication without signed data")
    message = auth_message(device_name, certificate_der)
    if signed_data is not None:
        verify(public_key, signed_data, message, HashId.SHA1)
    if sha2 is not None:
        verify(public_key, sha2.signature, message, sha2.hash_id)


def make_sudi(key: object, session_id: int, mic_der: bytes) -> SudiData:
    message = sudi_message(session_id, mic_der)
    return SudiData(mic_der, sign(key, message, HashId.SHA1), sign(key, message, HashId.SHA512))


def verify_sudi(public_key: object, session_id: int, sudi: SudiData) -> None:
    message = sudi_message(session_id, sudi.certificate)
    verify(public_key, sudi.sha1_signature, message, HashId.SHA1)
    if sudi.sha512_signature is not None:
        verify(public_key, sudi.sha512_signature, message, HashId.SHA512)
