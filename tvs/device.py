"""Device identity: a phone's MAC and every name CUCM derives from it.

Owns MAC normalising (``b0:00:b4:ba:0a:ee``, ``SEPB000B4BA0AEE``, ``b000.b4ba.0aee`` ->
``B000B4BA0AEE``), the device names ``SEP<MAC>`` (CUCM's device and the phone's state
directory) and ``CP-<model>-SEP<MAC>`` (the LSC's CN and the TVS device-name element), and the
per-phone TFTP file names (``CTLSEP<MAC>.tlv``, ``ITLSEP<MAC>.tlv``, ``SEP<MAC>.cnf.xml``,
``.cnf.xml.sgn`` and the encrypted ``.cnf.xml.enc.sgn``) with their parser. The PKI recipe,
the phone's identity and the cluster's file provider all use this module; a new per-device
name belongs here. Pure: no I/O, no keys, no certificates (``phone_emu.phone.identity`` ties a
MAC to an LSC).
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "CTL_FILE",
    "ITL_FILE",
    "DeviceNameError",
    "FileKind",
    "config_filename",
    "ctl_filename",
    "device_name",
    "encrypted_config_filename",
    "itl_filename",
    "mac_in",
    "model_in",
    "normalise_mac",
    "parse_file_name",
    "phone_device_name",
]

CTL_FILE: Final = "CTLFile.tlv"
"""The cluster-wide CTL (what a pre-per-device phone asks for)."""
ITL_FILE: Final = "ITLFile.tlv"
"""The cluster-wide ITL, the fallback after ``ITLSEP<MAC>.tlv``."""

FileKind = Literal["ctl", "itl", "xml", "sgn", "enc"]

_MAC_RE = re.compile(r"^[0-9A-F]{12}$")
_SEP_RE = re.compile(r"SEP([0-9A-Fa-f]{12})")
_MODEL_RE = re.compile(r"^CP-([0-9A-Za-z]+)-SEP")
_FILE_RE = re.compile(
    r"^(?:(?P<ctl>CTLSEP(?P<ctlmac>[0-9A-F]{12})\.tlv|CTLFile\.tlv)"
    r"|(?P<itl>ITLSEP(?P<itlmac>[0-9A-F]{12})\.tlv|ITLFile\.tlv)"
    r"|SEP(?P<mac>[0-9A-F]{12})\.cnf\.xml(?:(?P<enc>\.enc\.sgn)|(?P<sgn>\.sgn))?)$",
    re.IGNORECASE,
)


class DeviceNameError(ValueError):
    """A MAC address or device name that cannot name a phone."""


def normalise_mac(value: object) -> str:
    """Upper-case 12-hex-digit MAC from ``b000b4ba0aee``, ``B0:00:B4:...``, ``SEPB000...``,
    ``b000.b4ba.0aee`` (raises :class:`DeviceNameError`)."""
    if not isinstance(value, str):
        raise DeviceNameError(f"MAC must be a string, not {value!r}")
    mac = value.strip().upper().removeprefix("SEP")
    mac = mac.replace(":", "").replace("-", "").replace(".", "")
    if not _MAC_RE.match(mac):
        raise DeviceNameError(f"not a MAC address: {value!r} (want 12 hex digits)")
    return mac


def device_name(mac: str) -> str:
    """``SEP<MAC>``: CUCM's device name, the configuration file's stem, a state directory."""
    return f"SEP{normalise_mac(mac)}"


def phone_device_name(model: str, mac: str) -> str:
    """``CP-<model>-SEP<MAC>``: the LSC's CN and the name a TVS request carries."""
    return f"CP-{model}-SEP{normalise_mac(mac)}"


def ctl_filename(mac: str) -> str:
    """``CTLSEP<MAC>.tlv``, the per-phone CTL name."""
    return f"CTLSEP{normalise_mac(mac)}.tlv"


def itl_filename(mac: str) -> str:
    """``ITLSEP<MAC>.tlv``, the per-phone ITL name (fallback :data:`ITL_FILE`)."""
    return f"ITLSEP{normalise_mac(mac)}.tlv"


def config_filename(mac: str, *, signed: bool) -> str:
    """``SEP<MAC>.cnf.xml``, or ``SEP<MAC>.cnf.xml.sgn`` when ``signed``."""
    return f"SEP{normalise_mac(mac)}.cnf.xml" + (".sgn" if signed else "")


def encrypted_config_filename(mac: str) -> str:
    """``SEP<MAC>.cnf.xml.enc.sgn``, the encrypted configuration (protocol notes section 9)."""
    return f"SEP{normalise_mac(mac)}.cnf.xml.enc.sgn"


def parse_file_name(name: str) -> tuple[FileKind, str | None] | None:
    """What a TFTP name asks for: ``("ctl", mac|None)``, ``("itl", mac|None)``, ``("xml", mac)``,
    ``("sgn", mac)``, ``("enc", mac)``; None for any other name. Case-insensitive; MACs come
    back upper-case."""
    m = _FILE_RE.match(name.lstrip("/"))
    if m is None:
        return None
    if m["ctl"]:
        return "ctl", (m["ctlmac"] or "").upper() or None
    if m["itl"]:
        return "itl", (m["itlmac"] or "").upper() or None
    if m["enc"]:
        return "enc", m["mac"].upper()
    return ("sgn" if m["sgn"] else "xml"), m["mac"].upper()


def mac_in(text: str) -> str | None:
    """The MAC of the first ``SEP<MAC>`` in ``text`` (a CN, a subject), upper-case, or None."""
    m = _SEP_RE.search(text)
    return m.group(1).upper() if m else None


def model_in(name: str) -> str | None:
    """The model of a ``CP-<model>-SEP<MAC>`` name (``8861``), or None."""
    m = _MODEL_RE.match(name)
    return m.group(1) if m else None
