"""Making keys and certificates the way CUCM and a Windows enterprise CA make them (in memory).

Owns :class:`Identity` (a certificate with its private key), key generation, and one builder
per certificate kind: enterprise CA, CallManager, TVS, ITLRecovery, CAPF and phone LSCs
(:func:`issue_lsc`, fast enough for fleets of thousands of phones). Subjects follow the seed
(protocol notes sections 1 and 4). Time comes in as ``now``; nothing here touches files.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import ipaddress
import secrets
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import device
from ..certs import Certificate, PrivateKey, PublicKey
from .errors import PkiError, RecipeError
from .recipe import KEY_TYPES, ClusterSpec, EnterpriseCaSpec, NodeSpec, SubjectSpec

__all__ = [
    "LSC_VALIDITY_DAYS",
    "MANUFACTURING_CA_NAME",
    "Identity",
    "default_phone_serial",
    "generate_key",
    "issue_lsc",
    "issue_lsc_certificate",
    "issue_mic",
    "key_type_of",
    "make_callmanager",
    "make_capf",
    "make_enterprise_ca",
    "make_itlrecovery",
    "make_manufacturing_ca",
    "make_tvs",
    "windows_ca_serial",
]

LSC_VALIDITY_DAYS = 1826
"""LSC lifetime; CAPF's "certificate validity" default is five years (Med)."""

_BACKDATE = _dt.timedelta(minutes=5)  # tolerate clocks a little behind ours


@attrs.frozen
class Identity:
    """A certificate and its private key, with the files they live in (None when in memory)."""

    cert: Certificate
    key: PrivateKey = attrs.field(repr=False, eq=False)  # key objects compare by identity
    cert_path: Path | None = None
    key_path: Path | None = None

    @property
    def subject(self) -> str:
        return self.cert.subject

    @property
    def key_type(self) -> str:
        return key_type_of(self.key)


def generate_key(key_type: str) -> PrivateKey:
    """A new private key: ``rsa2048`` (RSA-2048, e = 65537) or ``ec-p256`` (ECDSA P-256)."""
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise PkiError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def key_type_of(key: PrivateKey) -> str:
    """The recipe's name for ``key``'s type (``rsa2048``, ``ec-p256``, or e.g. ``rsa4096``)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa{key.key_size}"
    if isinstance(key.curve, ec.SECP256R1):
        return "ec-p256"
    return f"ec-{key.curve.name}"


def windows_ca_serial() -> int:
    """A random 19-byte serial shaped like a Windows CA's (``24000000179479B8F1...0017``).

    Layout: one non-zero byte below 0x80 (so the integer stays positive and 19 bytes long),
    three zero bytes, a request-id byte, eight random bytes, five zero bytes, the request-id byte.
    """
    head = secrets.randbelow(0x7F) + 1
    request = secrets.randbelow(0xFF) + 1
    raw = bytes([head, 0, 0, 0, request]) + secrets.token_bytes(8) + bytes(5) + bytes([request])
    return int.from_bytes(raw, "big")


def _cucm_serial() -> int:
    """A random 16-byte positive serial, like CUCM's self-signed and CAPF-issued certificates."""
    return secrets.randbits(127) | (1 << 126)


def default_phone_serial(mac: str) -> str:
    """A manufacturing serial shaped like ``FCH18198CNQ``, derived from the MAC (stable)."""
    digest = hashlib.sha256(device.normalise_mac(mac).encode()).digest()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    week = int.from_bytes(digest[:2], "big") % 10000
    tail = "".join(alphabet[b % len(alphabet)] for b in digest[2:6])
    return f"FCH{week:04d}{tail}"


# --- names -------------------------------------------------------------------------------------


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)])


def _cucm_subject(cn: str, s: SubjectSpec) -> x509.Name:
    """CUCM's own certificates: C, ST, L, O, OU, CN (CUCM prints CN;OU;O;L;ST;C)."""
    return x509.Name(
        [
            _attr(NameOID.COUNTRY_NAME, s.country),
            _attr(NameOID.STATE_OR_PROVINCE_NAME, s.state),
            _attr(NameOID.LOCALITY_NAME, s.locality),
            _attr(NameOID.ORGANIZATION_NAME, s.organization),
            _attr(NameOID.ORGANIZATIONAL_UNIT_NAME, s.unit),
            _attr(NameOID.COMMON_NAME, cn),
        ]
    )


def _capf_subject(cn: str, s: SubjectSpec) -> x509.Name:
    """CAPF, in the seed's order: ``/C=AU/O=stormin/OU=IST/CN=CAPF-a7fb32bf/ST=NSQ/L=Sydney``."""
    return x509.Name(
        [
            _attr(NameOID.COUNTRY_NAME, s.country),
            _attr(NameOID.ORGANIZATION_NAME, s.organization),
            _attr(NameOID.ORGANIZATIONAL_UNIT_NAME, s.unit),
            _attr(NameOID.COMMON_NAME, cn),
            _attr(NameOID.STATE_OR_PROVINCE_NAME, s.state),
            _attr(NameOID.LOCALITY_NAME, s.locality),
        ]
    )


@functools.lru_cache(maxsize=64)
def _lsc_organisation(capf: Certificate) -> tuple[x509.RelativeDistinguishedName, ...]:
    """C, O, OU for an LSC, copied from its CAPF's subject (cached: fleets issue thousands)."""
    name = capf.x509.subject
    oids = (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME)
    return tuple(
        _attr(oid, str(found[0].value))
        for oid in oids
        if (found := name.get_attributes_for_oid(oid))
    )


@functools.lru_cache(maxsize=64)
def _aki(issuer: Certificate) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key)


@functools.lru_cache(maxsize=256)
def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    """Subject key identifier (cached: a fleet may reuse one key for every phone)."""
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


# --- extensions --------------------------------------------------------------------------------


def _key_usage(key: PrivateKey | PublicKey, *, ca: bool) -> x509.KeyUsage:
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=is_rsa,
        data_encipherment=False,
        key_agreement=not is_rsa,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


_TLS_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])


def _san(node: NodeSpec) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(node.fqdn)]
    if node.name != node.fqdn:
        names.append(x509.DNSName(node.name))
    names.append(x509.IPAddress(ipaddress.ip_address(node.address)))
    return x509.SubjectAlternativeName(names)


def _build(
    subject: x509.Name,
    key: PrivateKey | PublicKey,
    *,
    issuer: Identity | None,
    serial: int,
    now: _dt.datetime,
    days: int,
    ca: bool,
    extensions: list[x509.ExtensionType],
) -> Certificate:
    """Sign a certificate for ``key`` (a public key only when ``issuer`` is given): self-signed
    when ``issuer`` is None."""
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        if issuer is None:
            raise PkiError("a self-signed certificate needs the private key")
        public: PublicKey = key
        ski = x509.SubjectKeyIdentifier.from_public_key(key)
        signer_key = issuer.key
    else:
        public = key.public_key()
        signer_key = issuer.key if issuer else key
        ski = _ski(key)
    if issuer is None:
        issuer_name = subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        issuer_name = issuer.cert.x509.subject
        aki = _aki(issuer.cert)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(key, ca=ca), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return Certificate.from_x509(builder.sign(signer_key, hashes.SHA256()))


def _now(now: _dt.datetime | None) -> _dt.datetime:
    return now if now is not None else _dt.datetime.now(_dt.UTC)


# --- one builder per kind ----------------------------------------------------------------------


def make_enterprise_ca(
    spec: EnterpriseCaSpec, key: PrivateKey, *, now: _dt.datetime | None = None
) -> Certificate:
    """The enterprise root CA (subject ``CN=stormin-WIN2012-CA`` only, as the seed's issuer)."""
    subject = x509.Name([_attr(NameOID.COMMON_NAME, spec.common_name)])
    return _build(
        subject,
        key,
        issuer=None,
        serial=windows_ca_serial(),
        now=_now(now),
        days=spec.validity_days,
        ca=True,
        extensions=[],
    )


def make_callmanager(
    cluster: ClusterSpec,
    node: NodeSpec,
    key: PrivateKey,
    *,
    enterprise_ca: Identity | None = None,
    now: _dt.datetime | None = None,
) -> Certificate:
    """A node's CallManager certificate: self-signed (a CA, as CUCM makes it) or CA-signed.

    CA-signed certificates get a Windows-style 19-byte serial and are end-entity certificates.
    """
    subject = _cucm_subject(node.fqdn, cluster.subject)
    signed = cluster.callmanager_issuer == "enterprise-ca"
    if signed and enterprise_ca is None:
        raise PkiError(f"cluster {cluster.name!r}: CallManager needs the enterprise CA")
    return _build(
        subject,
        key,
        issuer=enterprise_ca if signed else None,
        serial=windows_ca_serial() if signed else _cucm_serial(),
        now=_now(now),
        days=cluster.validity_days,
        ca=not signed,
        extensions=[_TLS_EKU, _san(node)],
    )


def make_tvs(
    cluster: ClusterSpec, node: NodeSpec, key: PrivateKey, *, now: _dt.datetime | None = None
) -> Certificate:
    """A node's TVS certificate: self-signed, CN = the node's FQDN (ITL role TVS)."""
    return _build(
        _cucm_subject(node.fqdn, cluster.subject),
        key,
        issuer=None,
        serial=_cucm_serial(),
        now=_now(now),
        days=cluster.validity_days,
        ca=True,
        extensions=[_TLS_EKU, _san(node)],
    )


def make_itlrecovery(
    cluster: ClusterSpec, key: PrivateKey, *, now: _dt.datetime | None = None
) -> Certificate:
    """The cluster's ITLRecovery certificate: self-signed, ``CN=ITLRECOVERY_<publisher>``."""
    cn = f"ITLRECOVERY_{cluster.publisher.name}"
    return _build(
        _cucm_subject(cn, cluster.subject),
        key,
        issuer=None,
        serial=_cucm_serial(),
        now=_now(now),
        days=cluster.validity_days,
        ca=True,
        extensions=[_TLS_EKU],
    )


def make_capf(
    cluster: ClusterSpec, key: PrivateKey, *, now: _dt.datetime | None = None
) -> Certificate:
    """The cluster's CAPF certificate: a self-signed CA, ``CN=CAPF-<8 hex>``; it issues LSCs."""
    return _build(
        _capf_subject(cluster.capf_name, cluster.capf_subject),
        key,
        issuer=None,
        serial=_cucm_serial(),
        now=_now(now),
        days=cluster.validity_days,
        ca=True,
        extensions=[_TLS_EKU],
    )


def issue_lsc(
    capf: Identity,
    *,
    mac: str,
    model: str = "8861",
    key_type: str = "ec-p256",
    key: PrivateKey | None = None,
    serial: str | None = None,
    now: _dt.datetime | None = None,
    validity_days: int = LSC_VALIDITY_DAYS,
) -> Identity:
    """A phone LSC issued by ``capf``, in memory.

    Subject as in the seed: ``serialNumber=PID:CP-<model> SN:<serial>, C, O, OU`` (copied from
    the CAPF's subject), ``CN=CP-<model>-SEP<MAC>``. Pass ``key`` to reuse one key for many
    phones (fleets); otherwise a new ``key_type`` key is made (``ec-p256`` is the cheap one).
    """
    key = key if key is not None else generate_key(key_type)
    cert = issue_lsc_certificate(
        capf,
        key,
        mac=mac,
        model=model,
        serial=serial,
        now=now,
        validity_days=validity_days,
    )
    return Identity(cert=cert, key=key)


def _mac(mac: str) -> str:
    try:
        return device.normalise_mac(mac)
    except device.DeviceNameError as exc:
        raise RecipeError(f"mac: {exc}") from None


def issue_lsc_certificate(
    capf: Identity,
    key: PrivateKey | PublicKey,
    *,
    mac: str,
    model: str = "8861",
    serial: str | None = None,
    now: _dt.datetime | None = None,
    validity_days: int = LSC_VALIDITY_DAYS,
) -> Certificate:
    """The LSC certificate alone, for a key the phone made (CAPF gets only the public key)."""
    mac = _mac(mac)
    pid = f"PID:CP-{model} SN:{serial or default_phone_serial(mac)}"
    subject = x509.Name(
        [
            _attr(NameOID.SERIAL_NUMBER, pid),
            *_lsc_organisation(capf.cert),
            _attr(NameOID.COMMON_NAME, device.phone_device_name(model, mac)),
        ]
    )
    return _build(
        subject,
        key,
        issuer=capf,
        serial=_cucm_serial(),
        now=_now(now),
        days=validity_days,
        ca=False,
        extensions=[_TLS_EKU],
    )


# --- the emulated manufacturing CA (Cisco's MIC roots, lab edition) ------------------------

MANUFACTURING_CA_NAME = "Cisco Manufacturing CA SHA2 (lab)"
"""CN of the lab's manufacturing CA. Real MICs chain to ``CN=Cisco Manufacturing CA SHA2,
O=Cisco`` (Med); ours says ``(lab)`` so nobody mistakes it for Cisco's."""

MIC_VALIDITY_DAYS = 3652 * 2


def make_manufacturing_ca(
    key: PrivateKey,
    *,
    common_name: str = MANUFACTURING_CA_NAME,
    now: _dt.datetime | None = None,
    days: int = 3652 * 3,
) -> Certificate:
    """A self-signed manufacturing CA (``CN=..., O=Cisco``): it issues the lab's MICs."""
    subject = x509.Name(
        [_attr(NameOID.ORGANIZATION_NAME, "Cisco"), _attr(NameOID.COMMON_NAME, common_name)]
    )
    return _build(
        subject,
        key,
        issuer=None,
        serial=_cucm_serial(),
        now=_now(now),
        days=days,
        ca=True,
        extensions=[],
    )


def issue_mic(
    manufacturing_ca: Identity,
    key: PrivateKey | PublicKey,
    *,
    mac: str,
    model: str = "8861",
    serial: str | None = None,
    now: _dt.datetime | None = None,
    validity_days: int = MIC_VALIDITY_DAYS,
) -> Certificate:
    """A phone's MIC: ``serialNumber=PID:CP-<model> SN:<serial>, O=Cisco Systems Inc.,
    OU=EVVBU, CN=CP-<model>-SEP<MAC>`` (shape Med), issued by the manufacturing CA."""
    mac = _mac(mac)
    pid = f"PID:CP-{model} SN:{serial or default_phone_serial(mac)}"
    subject = x509.Name(
        [
            _attr(NameOID.SERIAL_NUMBER, pid),
            _attr(NameOID.ORGANIZATION_NAME, "Cisco Systems Inc."),
            _attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "EVVBU"),
            _attr(NameOID.COMMON_NAME, device.phone_device_name(model, mac)),
        ]
    )
    return _build(
        subject,
        key,
        issuer=manufacturing_ca,
        serial=_cucm_serial(),
        now=_now(now),
        days=validity_days,
        ca=False,
        extensions=[_TLS_EKU],
    )
