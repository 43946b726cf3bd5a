"""Phone security profiles: which ``deviceSecurityMode`` (and, later, encrypted configuration)
each phone of an emulated cluster gets (pure).

Owns :class:`SecurityProfile` (name, ``device_security_mode`` 1 non-secure / 2 authenticated /
3 encrypted, ``tftp_encrypted_config``, and the phones it is assigned to: MAC ranges and
models), :class:`DeviceModels` (what the cluster knows of a phone's model, from ``[[devices]]``),
the built-in profiles, and :func:`select_profile`: the first configured profile whose MAC
ranges or models match the phone, else the cluster's default (``authenticated`` in mixed mode,
``non-secure`` otherwise). 12.5 security guides (protocol notes section 7, Med): a phone uses
TLS 5061 and presents its certificate only in modes 2 and 3; mode 1 registers over TCP 5060.

``tftp_encrypted_config`` is parsed and carried here; what it does to the served files is the
encrypted-configuration code's (``SecurityProfile.tftp_encrypted_config`` is its one input).

TOML shape (keys of the cluster file)::

    default_security_profile = "authenticated"   # optional; a built-in or configured name
    [[security_profiles]]
    name = "lab-encrypted"
    device_security_mode = 3                     # 1 non-secure, 2 authenticated, 3 encrypted
    tftp_encrypted_config = false
    phones = ["B000B4BA0AEE-B000B4BA0AF1"]       # MACs or MAC ranges (inclusive)
    models = ["7841"]                            # models known from [[devices]]
    [[devices]]
    phones = ["B000B4BA0B00-B000B4BA0BFF"]
    model = "7841"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from .. import device, tomlfile
from .errors import ClusterConfigError

__all__ = [
    "BUILTIN_PROFILES",
    "DEVICE_SECURITY_MODES",
    "MODE_AUTHENTICATED",
    "MODE_ENCRYPTED",
    "MODE_NON_SECURE",
    "DeviceModels",
    "MacRange",
    "SecurityProfile",
    "default_profile_name",
    "find_profile",
    "parse_devices",
    "parse_profiles",
    "select_profile",
]

MODE_NON_SECURE: Final = 1
MODE_AUTHENTICATED: Final = 2
MODE_ENCRYPTED: Final = 3
DEVICE_SECURITY_MODES: Final = (MODE_NON_SECURE, MODE_AUTHENTICATED, MODE_ENCRYPTED)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}$")


def _mac(text: str, where: str) -> int:
    try:
        return int(device.normalise_mac(text), 16)
    except device.DeviceNameError as exc:
        raise ClusterConfigError(f"{where}: {exc}") from None


@attrs.frozen
class MacRange:
    """MACs ``first``..``last`` inclusive (as integers)."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: object, where: str) -> MacRange:
        """``B000B4BA0AEE`` or ``B000B4BA0AEE-B000B4BA0AF1`` (``SEP`` prefix and ``:`` allowed)."""
        if not isinstance(text, str):
            raise ClusterConfigError(f"{where}: expected a MAC or FIRST-LAST, got {text!r}")
        first, sep, last = text.partition("-")
        lo = _mac(first, where)
        hi = _mac(last, where) if sep else lo
        if hi < lo:
            raise ClusterConfigError(f"{where}: range {text!r} ends before it starts")
        return cls(lo, hi)

    def __contains__(self, mac: object) -> bool:
        return isinstance(mac, int) and self.first <= mac <= self.last

    def __str__(self) -> str:
        a, b = f"{self.first:012X}", f"{self.last:012X}"
        return a if a == b else f"{a}-{b}"


def _ranges(value: object, where: str) -> tuple[MacRange, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ClusterConfigError(f"{where}: expected a list of MACs or MAC ranges")
    return tuple(MacRange.parse(v, f"{where}[{i}]") for i, v in enumerate(value))


def _models(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() for m in value):
        raise ClusterConfigError(f'{where}: expected a list of phone models like "8861"')
    return tuple(_model(m) for m in value)


def _model(text: str) -> str:
    """``CP-8861`` and ``8861`` are the same model."""
    t = text.strip().upper()
    return t[3:] if t.startswith("CP-") else t


@attrs.frozen
class SecurityProfile:
    """One phone security profile and the phones it is assigned to."""

    name: str
    device_security_mode: int = MODE_AUTHENTICATED
    tftp_encrypted_config: bool = False
    phones: tuple[MacRange, ...] = ()
    models: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.device_security_mode not in DEVICE_SECURITY_MODES:
            raise ClusterConfigError(
                f"security profile {self.name!r}: device_security_mode "
                f"{self.device_security_mode!r} is not 1, 2 or 3"
            )

    @property
    def secure(self) -> bool:
        """Modes 2 and 3: TLS 5061, and the SIP port requires the phone certificate."""
        return self.device_security_mode in (MODE_AUTHENTICATED, MODE_ENCRYPTED)

    @property
    def mode_name(self) -> str:
        return {1: "non-secure", 2: "authenticated", 3: "encrypted"}[self.device_security_mode]

    def assigned_to(self, mac: int, model: str | None) -> bool:
        if any(mac in r for r in self.phones):
            return True
        return model is not None and _model(model) in self.models

    @classmethod
    def from_dict(cls, d: object, where: str) -> SecurityProfile:
        d = tomlfile.expect_table(d, where, error=ClusterConfigError)
        allowed = {"name", "device_security_mode", "tftp_encrypted_config", "phones", "models"}
        tomlfile.check_keys(d, allowed, where, error=ClusterConfigError)
        name = d.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name.strip()):
            raise ClusterConfigError(f"{where}.name: expected a profile name, got {name!r}")
        mode = d.get("device_security_mode", MODE_AUTHENTICATED)
        if isinstance(mode, bool) or mode not in DEVICE_SECURITY_MODES:
            raise ClusterConfigError(
                f"{where}.device_security_mode: expected 1 (non-secure), 2 (authenticated) or "
                f"3 (encrypted), got {mode!r}"
            )
        enc = d.get("tftp_encrypted_config", False)
        if not isinstance(enc, bool):
            raise ClusterConfigError(f"{where}.tftp_encrypted_config: expected true or false")
        return cls(
            name=name.strip(),
            device_security_mode=mode,
            tftp_encrypted_config=enc,
            phones=_ranges(d.get("phones"), f"{where}.phones"),
            models=_models(d.get("models"), f"{where}.models"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device_security_mode": self.device_security_mode,
            "tftp_encrypted_config": self.tftp_encrypted_config,
            "phones": [str(r) for r in self.phones],
            "models": list(self.models),
        }


BUILTIN_PROFILES: Final = (
    SecurityProfile("non-secure", MODE_NON_SECURE),
    SecurityProfile("authenticated", MODE_AUTHENTICATED),
    SecurityProfile("encrypted", MODE_ENCRYPTED),
)
"""Always available by name (for ``default_security_profile``); assigned to no phone."""


@attrs.frozen
class DeviceModels:
    """What the cluster knows of its phones' models (CUCM's device records): MAC ranges."""

    entries: tuple[tuple[MacRange, str], ...] = ()

    def model_of(self, mac: int) -> str | None:
        for r, model in self.entries:
            if mac in r:
                return model
        return None


def parse_profiles(value: object, where: str) -> tuple[SecurityProfile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ClusterConfigError(f"{where}: expected [[security_profiles]] tables")
    out = tuple(SecurityProfile.from_dict(p, f"{where}[{i}]") for i, p in enumerate(value))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ClusterConfigError(f"{where}: profile names repeat: {', '.join(names)}")
    return out


def parse_devices(value: object, where: str) -> DeviceModels:
    if value is None:
        return DeviceModels()
    if not isinstance(value, list):
        raise ClusterConfigError(f"{where}: expected [[devices]] tables")
    entries: list[tuple[MacRange, str]] = []
    for i, d in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(d, Mapping) or set(d) - {"phones", "model"} or "model" not in d:
            raise ClusterConfigError(f"{w}: expected a table with 'phones' and 'model'")
        (model,) = _models(d["model"], f"{w}.model")
        entries += [(r, model) for r in _ranges(d.get("phones"), f"{w}.phones")]
    return DeviceModels(tuple(entries))


def default_profile_name(mixed_mode: bool) -> str:
    """CUCM's usual default: authenticated in mixed mode, non-secure otherwise."""
    return "authenticated" if mixed_mode else "non-secure"


def find_profile(name: str, profiles: Sequence[SecurityProfile]) -> SecurityProfile | None:
    for p in (*profiles, *BUILTIN_PROFILES):
        if p.name == name:
            return p
    return None


def select_profile(
    mac: str,
    profiles: Iterable[SecurityProfile],
    default: SecurityProfile,
    devices: DeviceModels | None = None,
) -> SecurityProfile:
    """The profile of the phone with ``mac``: the first configured one assigned to it (by MAC
    range, or by the model ``devices`` gives it), else ``default``."""
    try:
        m = _mac(mac, "mac")
    except ClusterConfigError:
        return default
    model = devices.model_of(m) if devices is not None else None
    for p in profiles:
        if p.assigned_to(m, model):
            return p
    return default
