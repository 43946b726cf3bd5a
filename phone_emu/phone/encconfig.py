"""What the phone does with an encrypted configuration (protocol notes section 9), pure.

Owns reading the stub ``SEP<MAC>.cnf.xml.sgn`` payload (``<encrConfig>true</encrConfig>``,
``<certHash>``, the CAPF settings), comparing its certHash with the phone's own certificate
(MD5 of the DER, lower-case hex), and opening ``SEP<MAC>.cnf.xml.enc.sgn`` with the phone's key
(:func:`tvs.tlv.decrypt_config`: unwrap, decrypt, drop the ``0x0D`` pad, check the hash). The
boot machine (``boot.py``) decides what to fetch, verifies signatures and runs CAPF; this module
only answers questions about bytes. Key wrapping is RSA only: an EC-keyed phone cannot open the
file here (real EC phones use HTTPS 6971/6972, notes section 10), a lab limitation said so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from tvs.certs import PrivateKey
from tvs.tlv import DecryptionError, TlvError, TrustFile, cert_hash, decrypt_config

from .config import ConfigError, PhoneConfig, _find, _parse_xml, parse_config
from .identity import PhoneIdentity

__all__ = [
    "EC_LIMITATION",
    "EncryptedStub",
    "OpenFailure",
    "cert_hash",
    "open_encrypted",
    "parse_stub",
]

EC_LIMITATION: Final = (
    "lab limitation: encrypted configuration wraps its key with RSA only; real EC-keyed phones "
    "get their configuration over HTTPS 6971/6972, which the lab does not emulate"
)


@attrs.frozen
class EncryptedStub:
    """The stub's promise: an encrypted configuration exists for the certificate ``cert_hash``
    (empty: CUCM knows no certificate of this phone). ``config`` carries the stub's CAPF
    settings (``capfAuthMode``, ``capfList``)."""

    cert_hash: str
    config: PhoneConfig


@attrs.frozen
class OpenFailure:
    """Why the phone could not open the encrypted file: a reason code and a detail line."""

    reason: str
    detail: str


def _element_text(payload: bytes, name: str) -> str | None:
    """The text of the first ``<name>`` element (the stub is small and flat)."""
    try:
        root = _parse_xml(payload)
    except ConfigError:
        return None
    el: ET.Element | None = _find(root, name)
    if el is None:
        return None
    return (el.text or "").strip()


def parse_stub(payload: bytes) -> EncryptedStub | None:
    """The stub of an encrypted configuration, or None for an ordinary configuration.

    Raises ConfigError when ``encrConfig`` is true but the CAPF settings are malformed.
    """
    if b"encrConfig" not in payload:
        return None
    flag = _element_text(payload, "encrConfig")
    if flag is None or flag.lower() not in ("true", "1"):
        return None
    return EncryptedStub(
        cert_hash=(_element_text(payload, "certHash") or "").lower(),
        config=parse_config(payload),
    )


def open_encrypted(f: TrustFile, identity: PhoneIdentity) -> bytes | OpenFailure:
    """Decrypt a parsed (and already verified) ``.enc.sgn`` with the phone's key."""
    key: PrivateKey | None = identity.key
    cert = identity.lsc or identity.mic
    if key is None or cert is None:
        return OpenFailure("config.decrypt-failed", "the phone has no certificate and key")
    if not isinstance(key, rsa.RSAPrivateKey):
        return OpenFailure("config.ec-unsupported", EC_LIMITATION)
    if not f.encrypted:
        return OpenFailure("config.malformed", f"{f.header.filename!r} is not encrypted")
    try:
        return decrypt_config(f, key)
    except DecryptionError as exc:
        return OpenFailure("config.decrypt-failed", str(exc))
    except TlvError as exc:
        return OpenFailure("config.malformed", str(exc))
