"""Encrypted configuration files (``SEP<MAC>.cnf.xml.enc.sgn``): the crypto around the codec.

Owns the cipher choices of protocol notes section 9: a fresh AES-128 key and IV, CBC, the
plaintext padded with ``0x0D`` bytes to a multiple of 16 (1..16 bytes, the count in the
header), the key wrapped with RSA PKCS#1 v1.5 under the phone certificate's public key, and a
hash of the unpadded plaintext (same algorithm as the signature). Laying out and signing the
file is :func:`tvs.tlv.build.sign_encrypted_file`; parsing is :func:`tvs.tlv.parse.parse_file`
(the header's ``encryption`` field); checking the signature is :mod:`tvs.tlv.verify`. Key
wrapping is RSA only, as in the one public implementation; an EC phone certificate is refused
with :class:`~tvs.tlv.errors.UnknownAlgorithmError` (real EC phones use HTTPS 6971/6972).

    data = encrypt_config(xml, phone_cert=lsc, filename="SEP....cnf.xml.enc.sgn",
                          signer=tftp_cert, key=tftp_key)
    xml = decrypt_config(parse_file(data), phone_key)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..certs import Certificate, PrivateKey
from .build import _digest, sign_encrypted_file
from .errors import DecryptionError, FormatError, UnknownAlgorithmError
from .model import EncryptionInfo, TrustFile

__all__ = [
    "AES_KEY_SIZE",
    "PAD_BYTE",
    "cert_hash",
    "decrypt_config",
    "encrypt_config",
    "pad_plaintext",
    "plaintext_hash",
]

AES_KEY_SIZE: Final = 16
"""AES-128 (High)."""
PAD_BYTE: Final = 0x0D
"""The plaintext is padded with this byte, 1..16 of them (High)."""
_BLOCK: Final = 16


def cert_hash(cert: Certificate | None) -> str:
    """The stub's ``certHash`` for ``cert``: MD5 of its DER, lower-case hex ('' for None)."""
    return "" if cert is None else hashlib.md5(cert.der, usedforsecurity=False).hexdigest()


def pad_plaintext(plaintext: bytes) -> tuple[bytes, int]:
    """``plaintext`` + 1..16 bytes of 0x0D up to a multiple of 16; returns (padded, count)."""
    count = _BLOCK - len(plaintext) % _BLOCK
    return plaintext + bytes([PAD_BYTE]) * count, count


def plaintext_hash(plaintext: bytes, digest: str) -> bytes:
    """The header's hash of the unpadded plaintext (tag 27)."""
    return hashlib.new(_digest(digest).hash_name, plaintext).digest()


def _rsa_public(cert: Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnknownAlgorithmError(
            f"phone certificate {cert.subject} holds a {type(key).__name__}: encrypted "
            "configuration wraps its key with RSA only (lab limitation; real EC-keyed phones "
            "get their configuration over HTTPS 6971/6972)"
        )
    return key


def encrypt_config(
    plaintext: bytes,
    *,
    phone_cert: Certificate,
    filename: str,
    signer: Certificate,
    key: PrivateKey,
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
    aes_key: bytes | None = None,
    iv: bytes | None = None,
) -> bytes:
    """A signed ``.enc.sgn`` file whose ciphertext only ``phone_cert``'s private key opens.

    ``aes_key`` and ``iv`` are fresh random values unless given (tests pin them).
    """
    phone_key = _rsa_public(phone_cert)
    aes_key = os.urandom(AES_KEY_SIZE) if aes_key is None else aes_key
    iv = os.urandom(_BLOCK) if iv is None else iv
    if len(aes_key) != AES_KEY_SIZE or len(iv) != _BLOCK:
        raise FormatError(f"AES-128 needs a {AES_KEY_SIZE}-byte key and a {_BLOCK}-byte IV")
    padded, count = pad_plaintext(bytes(plaintext))
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    wrapped = phone_key.encrypt(aes_key, padding.PKCS1v15())
    info = EncryptionInfo(
        iv=iv,
        pad_count=count,
        wrapped_key=wrapped,
        hash_algorithm=_digest(digest),
        plaintext_hash=plaintext_hash(plaintext, digest),
        key_bits=len(wrapped) * 8,
    )
    return sign_encrypted_file(
        ciphertext,
        info,
        filename=filename,
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
    )


def decrypt_config(f: TrustFile, key: PrivateKey) -> bytes:
    """The plaintext of a parsed ``.enc.sgn`` file, opened with the phone's private key.

    Does not check the signature (call :func:`tvs.tlv.verify.verify_file` first). Raises
    :class:`DecryptionError` when the key does not unwrap, the padding or the plaintext hash is
    wrong (all that a wrong key can look like), :class:`FormatError` for a file that is not
    encrypted, :class:`UnknownAlgorithmError` for a non-RSA key.
    """
    info = f.header.encryption
    name = f.header.filename
    if info is None:
        raise FormatError(f"{name!r} is not an encrypted file (no encryption info, tag 16)")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnknownAlgorithmError(
            f"{name!r}: the key is a {type(key).__name__}; encrypted configuration needs the "
            "phone's RSA key (lab limitation, as in the one public implementation)"
        )
    if len(f.payload) % _BLOCK or not f.payload:
        raise FormatError(
            f"{name!r}: ciphertext of {len(f.payload)} bytes is not a positive multiple of 16"
        )
    aes_key = _unwrap(info, key, name)
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(info.iv)).decryptor()
    padded = decryptor.update(f.payload) + decryptor.finalize()
    count = info.pad_count
    if padded[-count:] != bytes([PAD_BYTE]) * count:
        raise DecryptionError(
            f"{name!r}: the last {count} bytes are not 0x0D padding: wrong key, or the file "
            "was altered"
        )
    plaintext = padded[:-count]
    wanted = hashlib.new(info.hash_algorithm.hash_name, plaintext).digest()
    if not hmac.compare_digest(wanted, info.plaintext_hash):
        raise DecryptionError(
            f"{name!r}: the {info.hash_algorithm.hash_name} hash of the plaintext differs from "
            "the header's: wrong key, or the file was altered"
        )
    return plaintext


def _unwrap(info: EncryptionInfo, key: rsa.RSAPrivateKey, name: str) -> bytes:
    size = (key.key_size + 7) // 8
    if len(info.wrapped_key) != size:
        raise DecryptionError(
            f"{name!r}: the key was wrapped for a {len(info.wrapped_key) * 8}-bit RSA key, "
            f"this one is RSA-{key.key_size}: not the phone's key"
        )
    try:
        aes_key = key.decrypt(info.wrapped_key, padding.PKCS1v15())
    except ValueError:
        aes_key = b""
    # OpenSSL's implicit rejection turns a wrong key into random bytes rather than an error
    if len(aes_key) != AES_KEY_SIZE:
        raise DecryptionError(
            f"{name!r}: the wrapped AES key does not unwrap with this RSA-{key.key_size} key: "
            "not the key of the certificate the file was encrypted to"
        )
    return aes_key
