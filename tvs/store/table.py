"""The ONE table from CUCM stores to the roles TVS answers with, and the bulk-import mapping.

Owns the store names (trust stores an administrator imports into, and the cluster's own
certificate kinds), which roles a certificate in each store carries in a TVS answer (protocol
notes section 5), and where bulk certificate import puts each remote certificate kind. Nothing
else in the code base may decide roles from a store name.

Confidence (notes section 5): Phone-SAST-trust, CallManager-trust, own CallManager and
Phone-trust are Low-Med (inferred from traces; the seed's destination CallManager imported
into Phone-SAST-trust + CallManager-trust answers {SAST, TFTP}). The rows for CAPF-trust,
tomcat-trust and Phone-VPN-trust are **Low**: our pick, named here so a lab can change them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..roles import Role

__all__ = [
    "ALL_STORES",
    "BULK_IMPORT_MAP",
    "CLIENT_AUTH_STORES",
    "DEFAULT_TTL",
    "OWN_STORES",
    "SIP_CLIENT_AUTH_STORES",
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
    "Phone-VPN-trust",
    "CAPF-trust",
    "tomcat-trust",
)
"""Stores an administrator imports other parties' certificates into."""

OWN_STORES: tuple[str, ...] = ("CallManager", "TVS", "ITLRecovery", "CAPF")
"""The cluster's own certificates (filled by ``tvs store init``; answered without import)."""

ALL_STORES: tuple[str, ...] = TRUST_STORES + OWN_STORES

STORE_ROLES: dict[str, tuple[Role, ...]] = {
    # trust stores
    "Phone-SAST-trust": (Role.SAST,),  # Low-Med (seed)
    "CallManager-trust": (Role.TFTP,),  # Low-Med (seed)
    "Phone-trust": (Role.APP_SERVER,),  # Low-Med
    "Phone-VPN-trust": (Role.APP_SERVER,),  # Low: our pick (VPN gateway certs as app servers)
    "CAPF-trust": (),  # Low: our pick; not answered, only trust anchors for phone LSCs
    "tomcat-trust": (),  # Low: our pick; not answered by TVS
    # the cluster's own certificates
    "CallManager": (Role.SAST, Role.CCM_TFTP),  # Low-Med
    "TVS": (Role.TVS,),
    "ITLRecovery": (Role.SAST,),
    "CAPF": (Role.CAPF,),
}
"""Roles a certificate in each store carries; one in several stores gets the union.
A store mapping to no roles is not answered by TVS (the certificate is unknown to it)."""

CLIENT_AUTH_STORES: tuple[str, ...] = ("CAPF-trust", "CAPF")
"""Stores whose certificates verify phone LSCs presented to the TVS as TLS client certificates."""

SIP_CLIENT_AUTH_STORES: tuple[str, ...] = ("CallManager-trust", "CAPF-trust", "CAPF")
"""Stores whose certificates verify phone LSCs at the secure SIP port: CUCM also trusts
CallManager-trust there, where bulk import puts a remote cluster's CAPF (Medium: Cisco's
migration guides rely on it; the TVS does not use CallManager-trust for client certificates)."""

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
