"""The phone's configuration: CUCM's ``SEP<MAC>.cnf.xml``, reduced to what the lab needs.

Owns parsing the TVS member list (``<TVS><members><member priority="N"><port>P</port>
<address>HOST</address>``), the CAPF settings (``<capfAuthMode>``, ``<capfList><capf>
<phonePort>P</phonePort><processNodeName>HOST</processNodeName>``, notes section 8) and the
CallManager group (``<devicePool><callManagerGroup><members>
<member priority="N"><callManager><ports><securedSipPort>..</securedSipPort></ports>
<processNodeName>HOST</processNodeName>``), with CUCM's default ports where an element is
missing, and ``deviceSecurityMode`` (1 non-secure: SIP over TCP; 2 authenticated and 3
encrypted: TLS to the secured SIP port; absent: None, the phone then registers securely when
it holds a CTL, as before profiles were emulated). Does not own signature checks (``boot``)
or storage (``persist``).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from typing import Any, Final
from xml.parsers import expat

import attrs

__all__ = [
    "CAPF_AUTH_MODES",
    "DEFAULT_CAPF_PORT",
    "DEFAULT_SECURE_SIP_PORT",
    "DEFAULT_SIP_PORT",
    "DEFAULT_TVS_PORT",
    "MAX_CONFIG_SIZE",
    "MAX_TVS_MEMBERS",
    "CallManager",
    "CapfServer",
    "ConfigError",
    "PhoneConfig",
    "TvsMember",
    "parse_config",
]

DEFAULT_TVS_PORT: Final = 2445
DEFAULT_SIP_PORT: Final = 5060
DEFAULT_SECURE_SIP_PORT: Final = 5061
DEFAULT_CAPF_PORT: Final = 3804
MAX_CAPF_SERVERS: Final = 5
"""``capfList`` holds up to five CAPF servers (section 8, Med)."""
CAPF_AUTH_MODES: Final = {
    0: "none",
    1: "auth-string",
    2: "null-string",
    3: "lsc-then-mic",
    4: "mic",
}
"""``capfAuthMode``: 0 nothing pending, 1 auth string, 2 null string, 3 existing certificate
(LSC, then MIC), 4 MIC (section 8, High)."""
MAX_TVS_MEMBERS: Final = 5
"""Phones use up to five TVS members (protocol notes section 3, rule 4)."""
MAX_CONFIG_SIZE: Final = 1 << 20
"""A configuration over 1 MiB is refused before parsing (bounded input)."""


class ConfigError(ValueError):
    """The configuration file is not XML CUCM would write, or misses a required value."""


@attrs.frozen(order=True)
class TvsMember:
    priority: int
    address: str
    port: int = DEFAULT_TVS_PORT

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


@attrs.frozen(order=True)
class CallManager:
    priority: int
    host: str
    sip_port: int = DEFAULT_SIP_PORT
    secure_sip_port: int = DEFAULT_SECURE_SIP_PORT


@attrs.frozen(order=True)
class CapfServer:
    priority: int
    host: str
    port: int = DEFAULT_CAPF_PORT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@attrs.frozen
class PhoneConfig:
    """The applied configuration; ``sha256`` names the file bytes it came from."""

    tvs_members: tuple[TvsMember, ...] = ()
    callmanagers: tuple[CallManager, ...] = ()
    sha256: bytes = b""
    tvs_from_callmanager_group: bool = False
    capf_auth_mode: int = 0
    capf_servers: tuple[CapfServer, ...] = ()
    device_security_mode: int | None = None

    @property
    def secure_sip(self) -> bool | None:
        """True for modes 2 and 3, False for mode 1, None when the configuration says nothing."""
        if self.device_security_mode is None:
            return None
        return self.device_security_mode >= 2

    def to_dict(self) -> dict[str, object]:
        return {
            "capf_auth_mode": self.capf_auth_mode,
            "capf_servers": [
                {"priority": c.priority, "host": c.host, "port": c.port} for c in self.capf_servers
            ],
            "tvs_members": [
                {"priority": m.priority, "address": m.address, "port": m.port}
                for m in self.tvs_members
            ],
            "tvs_from_callmanager_group": self.tvs_from_callmanager_group,
            "callmanagers": [
                {
                    "priority": c.priority,
                    "host": c.host,
                    "sip_port": c.sip_port,
                    "secure_sip_port": c.secure_sip_port,
                }
                for c in self.callmanagers
            ],
            "sha256": self.sha256.hex(),
            "device_security_mode": self.device_security_mode,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhoneConfig:
        """Inverse of :meth:`to_dict` (raises KeyError, TypeError, ValueError on bad input)."""
        return cls(
            tvs_members=tuple(
                TvsMember(int(m["priority"]), str(m["address"]), int(m["port"]))
                for m in d["tvs_members"]
            ),
            callmanagers=tuple(
                CallManager(
                    int(c["priority"]),
                    str(c["host"]),
                    int(c["sip_port"]),
                    int(c["secure_sip_port"]),
                )
                for c in d["callmanagers"]
            ),
            sha256=bytes.fromhex(d["sha256"]),
            tvs_from_callmanager_group=bool(d.get("tvs_from_callmanager_group", False)),
            capf_auth_mode=int(d.get("capf_auth_mode", 0)),
            capf_servers=tuple(
                CapfServer(int(c["priority"]), str(c["host"]), int(c["port"]))
                for c in d.get("capf_servers", ())
            ),
            device_security_mode=(
                int(d["device_security_mode"]) if d.get("device_security_mode") else None
            ),
        )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == name]


def _path(el: ET.Element | None, *names: str) -> ET.Element | None:
    for name in names:
        if el is None:
            return None
        el = _child(el, name)
    return el


def _find(root: ET.Element, name: str) -> ET.Element | None:
    """The first element called ``name`` anywhere below ``root`` (root included)."""
    for el in root.iter():
        if _local(el.tag) == name:
            return el
    return None


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


def _int(text: str | None, default: int, what: str, *, low: int = 0, high: int = 65535) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{what}: {value} is outside {low}..{high}")
    return value


def _priority(member: ET.Element, index: int, what: str) -> int:
    return _int(member.get("priority"), index, f"{what} priority", high=1 << 31)


def _tvs_members(root: ET.Element) -> tuple[TvsMember, ...]:
    tvs = _find(root, "TVS")
    out = []
    for i, m in enumerate(_children(_child(tvs, "members") if tvs is not None else None, "member")):
        address = _text(_child(m, "address"))
        if address is None:
            raise ConfigError(f"TVS member {i}: no <address>")
        port = _int(_text(_child(m, "port")), DEFAULT_TVS_PORT, f"TVS member {address} port", low=1)
        out.append(TvsMember(_priority(m, i, f"TVS member {address}"), address, port))
    return tuple(sorted(out)[:MAX_TVS_MEMBERS])


def _callmanagers(root: ET.Element) -> tuple[CallManager, ...]:
    pool = _find(root, "devicePool")
    members = _path(pool, "callManagerGroup", "members")
    out = []
    for i, m in enumerate(_children(members, "member")):
        cm = _child(m, "callManager")
        if cm is None:
            raise ConfigError(f"CallManager group member {i}: no <callManager>")
        host = _text(_child(cm, "processNodeName"))
        if host is None:
            raise ConfigError(f"CallManager group member {i}: no <processNodeName>")
        ports = _child(cm, "ports")
        sip = _int(_text(_path(ports, "sipPort")), DEFAULT_SIP_PORT, f"{host} sipPort", low=1)
        secure = _int(
            _text(_path(ports, "securedSipPort")),
            DEFAULT_SECURE_SIP_PORT,
            f"{host} securedSipPort",
            low=1,
        )
        out.append(CallManager(_priority(m, i, f"CallManager {host}"), host, sip, secure))
    return tuple(sorted(out))


def _capf_servers(root: ET.Element) -> tuple[CapfServer, ...]:
    out = []
    for i, c in enumerate(_children(_find(root, "capfList"), "capf")):
        host = _text(_child(c, "processNodeName"))
        if host is None:
            raise ConfigError(f"capfList entry {i}: no <processNodeName>")
        port = _int(_text(_child(c, "phonePort")), DEFAULT_CAPF_PORT, f"CAPF {host} port", low=1)
        out.append(CapfServer(i, host, port))
    return tuple(out[:MAX_CAPF_SERVERS])


def _capf_auth_mode(root: ET.Element) -> int:
    return _int(_text(_find(root, "capfAuthMode")), 0, "capfAuthMode", high=max(CAPF_AUTH_MODES))


def _parse_xml(data: bytes) -> ET.Element:
    """Parse without namespace processing: CUCM writes ``xsi:type`` with no declaration."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except (expat.ExpatError, AssertionError, IndexError) as exc:
        raise ConfigError(f"not well-formed XML: {exc}") from None
    return root


def parse_config(data: bytes) -> PhoneConfig:
    """Parse a ``.cnf.xml`` payload; raises ConfigError for anything that is not usable XML.

    Without a ``<TVS>`` section the phone asks the members of its CallManager group, on the
    TVS port (the seed: "the TVS in the phone configuration are the same as its CallManager
    group"; Med confidence), and ``tvs_from_callmanager_group`` says so.
    """
    if len(data) > MAX_CONFIG_SIZE:
        raise ConfigError(f"configuration of {len(data)} bytes is over {MAX_CONFIG_SIZE}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ConfigError("configuration carries a DTD or entity declaration")
    root = _parse_xml(data)
    tvs = _tvs_members(root)
    cms = _callmanagers(root)
    from_group = False
    if not tvs and _find(root, "TVS") is None and cms:
        tvs = tuple(
            TvsMember(i, cm.host, DEFAULT_TVS_PORT) for i, cm in enumerate(cms[:MAX_TVS_MEMBERS])
        )
        from_group = True
    mode_text = _text(_find(root, "deviceSecurityMode"))
    mode = None if mode_text is None else _int(mode_text, 1, "deviceSecurityMode", low=1, high=3)
    return PhoneConfig(
        tvs_members=tvs,
        callmanagers=cms,
        sha256=hashlib.sha256(data).digest(),
        tvs_from_callmanager_group=from_group,
        capf_auth_mode=_capf_auth_mode(root),
        capf_servers=_capf_servers(root),
        device_security_mode=mode,
    )
