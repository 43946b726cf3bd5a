"""Certificate role codes as carried in CTL/ITL records and TVS answers.

Owns the numeric codes (protocol notes sections 2 and 7, High confidence: CUCM's database also
has 5 SRST, 6 firewall (ASA), 20 CA and 22-27, of which 26 is VPN) and their display names.
The mapping from CUCM trust stores to roles lives with the store, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Role", "parse_role", "role_label", "role_names"]


class Role(enum.IntEnum):
    SAST = 0
    CCM = 1
    CCM_TFTP = 2
    TFTP = 3
    CAPF = 4
    SRST = 5
    FIREWALL = 6
    APP_SERVER = 7
    CA = 20
    TVS = 21
    VPN = 26

    @property
    def label(self) -> str:
        """The name CUCM's show commands use (``CCM+TFTP``, ``APP-SERVER``)."""
        return _LABELS[self]


_LABELS = {
    Role.SAST: "SAST",
    Role.CCM: "CCM",
    Role.CCM_TFTP: "CCM+TFTP",
    Role.TFTP: "TFTP",
    Role.CAPF: "CAPF",
    Role.SRST: "SRST",
    Role.FIREWALL: "FIREWALL",
    Role.APP_SERVER: "APP-SERVER",
    Role.CA: "CA",
    Role.TVS: "TVS",
    Role.VPN: "VPN",
}


def role_label(code: int) -> str:
    """Display name of a role code; unknown codes print as ``role-N``."""
    try:
        return Role(code).label
    except ValueError:
        return f"role-{code}"


def role_names(codes: Iterable[int]) -> list[str]:
    """Display names for an iterable of role codes."""
    return [role_label(int(c)) for c in codes]


def parse_role(text: str) -> Role:
    """Parse ``SAST``, ``ccm+tftp``, ``CCM_TFTP``, ``app-server`` or a number such as ``21``."""
    t = text.strip()
    if t.isdigit():
        try:
            return Role(int(t))
        except ValueError:
            raise ValueError(f"unknown role code {t}") from None
    norm = t.upper().replace("-", "_").replace("+", "_")
    try:
        return Role[norm]
    except KeyError:
        known = ", ".join(r.label for r in Role)
        raise ValueError(f"unknown role {text!r} (known: {known})") from None
