"""The ONE table from CUCM stores to the roles TVS answers with, the bulk-import mapping, and
the one set of stores whose certificates issue phone certificates.

Owns the store names (trust stores an administrator imports into, and the cluster's own
certificate kinds), which roles a certificate in each store carries in a TVS answer, where
bulk certificate import puts each remote certificate kind, and :data:`PHONE_ISSUER_STORES`.
Nothing else in the code base may decide roles from a store name, or which stores verify a
phone's certificate.

The roles are Cisco's own map (protocol notes section 7, TAC 210541, **High**): Phone-SAST-trust
gives {SAST, TFTP} (the seed's answer comes wholly from it); CallManager-trust and CAPF-trust
give none (a certificate only there is answered invalid); tomcat-trust, Phone-trust and
Phone-CTL-trust give APP-SERVER; Phone-VPN-trust gives VPN (26); the cluster's own
CallManager {SAST, CCM+TFTP}, TVS {TVS}, CAPF {CAPF}, tomcat {APP-SERVER}. ITLRecovery is not
in CUCM's printed map: {SAST} is our pick (Low), as the CTL and ITL list it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..roles import Role

__all__ = [
    "ALL_STORES",
    "BULK_IMPORT_MAP",
    "DEFAULT_TTL",
    "OWN_STORES",
    "PHONE_ISSUER_STORES",
    "STORE_ROLES",
    "TRUST_STORES",
    "roles_for_stores",
]

DEFAULT_TTL = 86400
"""Seconds a phone may cache a TVS answer (86400 seen in the seed)."""

TRUST_STORES: tuple[str, ...] = (
    "CallManager-trust",
    "Phone-SAST-trust",
    "Phone-trust",
    "Phone-CTL-trust",
    "Phone-VPN-trust",
    "CAPF-trust",
    "tomcat-trust",
)
"""Stores an administrator imports other parties' certificates into."""

OWN_STORES: tuple[str, ...] = ("CallManager", "TVS", "ITLRecovery", "CAPF", "tomcat")
"""The cluster's own certificates (filled by ``tvs store init``; answered without import)."""

ALL_STORES: tuple[str, ...] = TRUST_STORES + OWN_STORES

STORE_ROLES: dict[str, tuple[Role, ...]] = {
    # trust stores (section 7, High)
    "Phone-SAST-trust": (Role.SAST, Role.TFTP),
    "CallManager-trust": (),
    "Phone-trust": (Role.APP_SERVER,),
    "Phone-CTL-trust": (Role.APP_SERVER,),
    "Phone-VPN-trust": (Role.VPN,),
    "CAPF-trust": (),
    "tomcat-trust": (Role.APP_SERVER,),
    # the cluster's own certificates (section 7, High; ITLRecovery Low: our pick)
    "CallManager": (Role.SAST, Role.CCM_TFTP),
    "TVS": (Role.TVS,),
    "ITLRecovery": (Role.SAST,),
    "CAPF": (Role.CAPF,),
    "tomcat": (Role.APP_SERVER,),
}
"""Roles a certificate in each store carries; one in several stores gets the union.
A store mapping to no roles is not answered by TVS (the certificate is unknown to it)."""

PHONE_ISSUER_STORES: tuple[str, ...] = ("CAPF", "CAPF-trust", "CallManager-trust")
"""The stores whose certificates issue phone certificates: the cluster's own CAPF, CAPF-trust,
and CallManager-trust, where bulk import puts other clusters' CAPFs and where CUCM keeps the
manufacturing (MIC) roots. Every server that checks a phone certificate verifies it against
exactly this set: the TVS (when ``client_auth`` asks), the secure SIP port and CAPF
(``TrustStore.phone_issuer_certificates``). Section 7, Med; which of CAPF-trust or
CallManager-trust CUCM really reads is Low, so both are in."""

BULK_IMPORT_MAP: dict[str, tuple[str, ...]] = {
    "CallManager": ("Phone-SAST-trust", "CallManager-trust"),
    "ITLRecovery": ("Phone-SAST-trust", "CallManager-trust"),
    "CAPF": ("CallManager-trust",),
    "tomcat": ("tomcat-trust",),
}
"""Bulk certificate import: remote certificate kind -> the local trust stores it lands in."""


def roles_for_stores(stores: Iterable[str]) -> tuple[int, ...]:
    """Union of the roles of ``stores``, ascending (the order TVS answers with)."""
    out: set[int] = set()
    for name in stores:
        out.update(int(r) for r in STORE_ROLES[name])
    return tuple(sorted(out))
