"""Who a phone is: model, MAC, device name, LSC and key, optional MIC, and its file names.

Ties a MAC and model to an LSC and key; the MAC forms, the device names and the TFTP file names
the boot sequence asks for (protocol notes section 3) come from :mod:`tvs.device`, shared with
the PKI recipe and the cluster's file provider. Does not own trust.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization

from tvs import device
from tvs.certs import Certificate, PrivateKey, load_private_key

__all__ = [
    "DEFAULT_MODEL",
    "IdentityError",
    "PhoneIdentity",
    "mac_from_certificate",
]

DEFAULT_MODEL = "8861"


class IdentityError(device.DeviceNameError):
    """A MAC, model or LSC that cannot describe a phone."""


def _mac(value: object) -> str:
    try:
        return device.normalise_mac(value)
    except device.DeviceNameError as exc:
        raise IdentityError(str(exc)) from None


def mac_from_certificate(cert: Certificate) -> str | None:
    """The MAC in an LSC/MIC subject (``CN=CP-8861-SEPB000B4BA0AEE``), or None."""
    return device.mac_in(cert.common_name) or device.mac_in(cert.subject)


def _same_key(cert: Certificate, key: PrivateKey) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key.public_bytes(der, spki) == key.public_key().public_bytes(der, spki))


def _check_model(_inst: object, _attr: object, value: str) -> None:
    if not value or not value.replace("-", "").isalnum():
        raise IdentityError(f"not a phone model: {value!r}")


@attrs.frozen
class PhoneIdentity:
    """One phone's identity; equality ignores the private key object.

    ``key`` belongs to the LSC, or to the MIC when the phone has no LSC (it then presents its
    MIC to TVS and SIP, as a phone does before CAPF has issued its LSC).
    """

    mac: str = attrs.field(converter=_mac)
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
            model=model or device.model_in(lsc.common_name) or DEFAULT_MODEL,
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
        return device.device_name(self.mac)

    @property
    def device_name(self) -> str:
        """``CP-<model>-SEP<MAC>``, the name a TVS request carries."""
        return device.phone_device_name(self.model, self.mac)

    @property
    def ctl_filename(self) -> str:
        return device.ctl_filename(self.mac)

    @property
    def itl_filenames(self) -> tuple[str, str]:
        """The per-phone ITL name, then the cluster-wide fallback."""
        return (device.itl_filename(self.mac), device.ITL_FILE)

    def config_filename(self, *, signed: bool) -> str:
        """``SEP<MAC>.cnf.xml.sgn`` when the phone holds a trust list, else ``.cnf.xml``."""
        return device.config_filename(self.mac, signed=signed)
