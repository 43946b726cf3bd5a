"""Encrypted configuration as a cluster serves it (protocol notes section 9), pure.

For a phone whose security profile has ``tftp_encrypted_config``, CUCM serves two files: the
stub ``SEP<MAC>.cnf.xml.sgn`` (signed like any ``.sgn``; its XML says ``fullConfig`` false,
``encrConfig`` true, carries the CAPF settings and ``certHash``, the MD5 of the phone
certificate CUCM knows, lower-case hex, empty when it knows none) and
``SEP<MAC>.cnf.xml.enc.sgn`` (the full configuration encrypted to that certificate, signed by
the same TFTP-role key). Owns the stub's XML and building both files from values; which
certificate the cluster knows for a phone is the caller's choice (:mod:`.files`). No I/O.
Key wrapping is RSA only (:mod:`tvs.tlv.encrypted`): for an EC certificate no ``.enc.sgn`` is
built and :func:`build_encrypted_config` raises :class:`~tvs.tlv.UnknownAlgorithmError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from .. import device
from ..certs import Certificate, PrivateKey
from ..tlv import cert_hash, encrypt_config, sign_file

__all__ = [
    "build_encrypted_config",
    "build_stub",
    "build_stub_xml",
]


def build_stub_xml(
    *,
    known: Certificate | None,
    capf_auth_mode: int = 0,
    capf_servers: Sequence[tuple[str, int]] = (),
    load_information: str = "",
) -> bytes:
    """The stub's XML, in the element order ``enccnf`` writes (section 9)."""
    capf = "".join(
        f"<capf><phonePort>{port}</phonePort><processNodeName>{escape(host)}</processNodeName>"
        "</capf>"
        for host, port in capf_servers
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<device>\n"
        "<fullConfig>false</fullConfig>\n"
        "<ipAddressMode>0</ipAddressMode>\n"
        f"<loadInformation>{escape(load_information)}</loadInformation>\n"
        f"<capfAuthMode>{int(capf_auth_mode)}</capfAuthMode>\n"
        f"<capfList>{capf}</capfList>\n"
        f"<certHash>{cert_hash(known)}</certHash>\n"
        "<encrConfig>true</encrConfig>\n"
        "</device>\n"
    )
    return text.encode("utf-8")


def build_stub(
    mac: str,
    *,
    known: Certificate | None,
    signer: Certificate,
    key: PrivateKey,
    capf_auth_mode: int = 0,
    capf_servers: Sequence[tuple[str, int]] = (),
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """The signed stub ``SEP<MAC>.cnf.xml.sgn``."""
    xml = build_stub_xml(known=known, capf_auth_mode=capf_auth_mode, capf_servers=capf_servers)
    return sign_file(
        xml,
        filename=device.config_filename(mac, signed=True),
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
    )


def build_encrypted_config(
    mac: str,
    xml: bytes,
    *,
    known: Certificate,
    signer: Certificate,
    key: PrivateKey,
    digest: str = "sha1",
    timestamp: int | None = None,
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """``SEP<MAC>.cnf.xml.enc.sgn``: the full configuration ``xml`` encrypted to ``known``."""
    return encrypt_config(
        xml,
        phone_cert=known,
        filename=device.encrypted_config_filename(mac),
        signer=signer,
        key=key,
        digest=digest,
        timestamp=timestamp,
        signer_version=signer_version,
    )
