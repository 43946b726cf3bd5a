"""Who a phone is: model, MAC, device name, LSC and key, optional MIC, and its file names.

Owns MAC normalisation, the device name ``CP-<model>-SEP<MAC>`` TVS requests carry, and the
TFTP file names the boot sequence asks for (protocol notes section 3). Does not own trust.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization

from tvs.certs import Certificate, PrivateKey, load_private_key

__all__ = [
    "DEFAULT_MODEL",
    "IdentityError",
    "PhoneIdentity",
    "mac_from_certificate",
    "normalize_mac",
]

DEFAULT_MODEL = "8861"

_MAC_RE = re.compile(r"^[0-9A-F]{12}$")
_SEP_RE = re.compile(r"SEP([0-9A-Fa-f]{12})")


class IdentityError(ValueError):
    """A MAC, model or LSC that cannot describe a phone."""


def normalize_mac(text: str) -> str:
    """``b0:00:b4:ba:0a:ee``, ``SEPB000B4BA0AEE`` or ``b000.b4ba.0aee`` -> ``B000B4BA0AEE``."""
    s = text.strip().upper()
    if s.startswith("SEP"):
        s = s[3:]
    s = s.replace(":", "").replace("-", "").replace(".", "")
    if not _MAC_RE.match(s):
        raise IdentityError(f"not a MAC address: {text!r} (want 12 hex digits)")
    return s


def mac_from_certificate(cert: Certificate) -> str | None:
    """The MAC in an LSC/MIC subject (``CN=CP-8861-SEPB000B4BA0AEE``), or None."""
    m = _SEP_RE.search(cert.common_name) or _SEP_RE.search(cert.subject)
    return m.group(1).upper() if m else None


def _same_key(cert: Certificate, key: PrivateKey) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key.public_bytes(der, spki) == key.public_key().public_bytes(der, spki))


def _model_from_certificate(cert: Certificate) -> str | None:
    m = re.match(r"^CP-([0-9A-Za-z]+)-SEP", cert.common_name)
    return m.group(1) if m else None


def _check_model(_inst: object, _attr: object, value: str) -> None:
    if not value or not value.replace("-", "").isalnum():
        raise IdentityError(f"not a phone model: {value!r}")


@attrs.frozen
class PhoneIdentity:
    """One phone's identity; equality ignores the private key object.

    ``key`` belongs to the LSC, or to the MIC when the phone has no LSC (it then presents its
    MIC to TVS and SIP, as a phone does before CAPF has issued its LSC).
    """

    mac: str = attrs.field(converter=normalize_mac)
    model: str = attrs.field(default=DEFAULT_MODEL, validator=_check_model)
    lsc: Certificate | None = None
    key: PrivateKey | None = attrs.field(default=None, eq=False, repr=False)
    mic: Certificate | None = None

    @classmethod
    def from_lsc(
        cls,
        lsc: Certificate,
        key: PrivateKey | None,
        *,
        mac: str | None = None,
        model: str | None = None,
        mic: Certificate | None = None,
    ) -> PhoneIdentity:
        """Identity from an LSC; the MAC (and model) default to the ones in its subject."""
        if key is not None and not _same_key(lsc, key):
            raise IdentityError(f"the private key does not belong to the LSC {lsc.subject!r}")
        found = mac or mac_from_certificate(lsc)
        if found is None:
            raise IdentityError(f"no SEP<MAC> in the LSC subject {lsc.subject!r}; give --mac")
        return cls(
            mac=found,
            model=model or _model_from_certificate(lsc) or DEFAULT_MODEL,
            lsc=lsc,
            key=key,
            mic=mic,
        )

    @classmethod
    def load(
        cls,
        lsc_path: str | Path,
        key_path: str | Path,
        *,
        mac: str | None = None,
        model: str | None = None,
    ) -> PhoneIdentity:
        """Read the LSC and key from PEM/DER files (raises CertificateError, IdentityError)."""
        return cls.from_lsc(
            Certificate.load(lsc_path), load_private_key(key_path), mac=mac, model=model
        )

    # --- names ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``SEP<MAC>``, the device name CUCM and the config file use."""
        return f"SEP{self.mac}"

    @property
    def device_name(self) -> str:
        """``CP-<model>-SEP<MAC>``, the name a TVS request carries."""
        return f"CP-{self.model}-SEP{self.mac}"

    @property
    def ctl_filename(self) -> str:
        return f"CTLSEP{self.mac}.tlv"

    @property
    def itl_filenames(self) -> tuple[str, str]:
        """The per-phone ITL name, then the cluster-wide fallback."""
        return (f"ITLSEP{self.mac}.tlv", "ITLFile.tlv")

    def config_filename(self, *, signed: bool) -> str:
        """``SEP<MAC>.cnf.xml.sgn`` when the phone holds a trust list, else ``.cnf.xml``."""
        return f"SEP{self.mac}.cnf.xml" + (".sgn" if signed else "")
