"""The phone's CAPF decisions (protocol notes section 8), pure: when to enroll, whom to trust,
what each ending means.

Owns: whether a configuration's ``capfAuthMode`` makes the phone run CAPF by itself (2 null
string, 3 existing certificate LSC then MIC, 4 MIC: automatically; 1 auth string: only when the
phone was given the string, as a user types it), which certificates the CAPF server may present
(the CAPF records of the held CTL and ITL), and the reason codes of a CAPF step. The sequence
(attempts, interval, failover over ``capfList``) is the boot machine's; the session itself is
the driver's (``phone_emu.capf_client`` over :mod:`tvs.capf`).
"""

from __future__ import annotations

from typing import Final

from tvs.certs import Certificate
from tvs.roles import Role

from .trust import TrustState
from .values import TransportFailure

__all__ = [
    "AUTH_EXISTING_CERT",
    "AUTH_MIC",
    "AUTH_NONE",
    "AUTH_NULL_STRING",
    "AUTH_STRING",
    "CAPF_ROLES",
    "capf_pins",
    "ended_reason",
    "failure_reason",
    "skip_reason",
]

AUTH_NONE: Final = 0
AUTH_STRING: Final = 1
AUTH_NULL_STRING: Final = 2
AUTH_EXISTING_CERT: Final = 3
AUTH_MIC: Final = 4
CAPF_ROLES: Final = frozenset({Role.CAPF})
"""The CAPF server's certificate must match a CTL/ITL record with this role (High)."""

_END_REASONS: Final = {
    0: "capf.nothing-pending",
    1: "capf.done",
    7: "capf.auth-failed",
    9: "capf.unknown-device",
}


def capf_pins(trust: TrustState) -> tuple[Certificate, ...]:
    """Certificates a CAPF server may present: CTL and ITL records with role CAPF."""
    out: list[Certificate] = []
    for tl in (trust.ctl, trust.itl):
        if tl is None:
            continue
        for cert in tl.certificates_with_role(CAPF_ROLES):
            if cert not in out:
                out.append(cert)
    return tuple(out)


def skip_reason(auth_mode: int, auth_string: str | None) -> str | None:
    """Why the phone does not start CAPF by itself for ``auth_mode`` (None: it does)."""
    if auth_mode == AUTH_NONE:
        return "capf.not-requested"
    if auth_mode == AUTH_STRING and not auth_string:
        return "capf.auth-string-needed"
    if auth_mode not in (AUTH_STRING, AUTH_NULL_STRING, AUTH_EXISTING_CERT, AUTH_MIC):
        return "capf.unknown-auth-mode"
    return None


def ended_reason(result: str, reason: int) -> str:
    """The reason code of a session that ended without a new LSC."""
    if result == "fetched":
        return "capf.fetched"
    if result == "deleted":
        return "capf.deleted"
    return _END_REASONS.get(reason, f"capf.refused-{reason}")


def failure_reason(failure: TransportFailure) -> str:
    """The reason code of a session that never ran."""
    return {
        TransportFailure.CONNECT: "capf.connect-failed",
        TransportFailure.TIMEOUT: "capf.timeout",
        TransportFailure.HANDSHAKE: "capf.server-untrusted",
        TransportFailure.PROTOCOL: "capf.protocol-error",
    }[failure]
