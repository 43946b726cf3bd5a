"""The TVS certificate cache: an immutable in-memory snapshot of the stores.

Like CUCM's ``CertificateDBCache``: built when TVS starts or reloads, never updated by an
import in between. Indexed by serial + issuer (issuer compared by parsed attributes, so CUCM
``;`` style and RFC 4514 ``,`` style both match) for QUERY_CERT_REQ, and by the certificate's
SHA-256 for VERIFY_REQUEST. A certificate in several stores is one entry with the union of
their roles (``table``). :meth:`CertificateCache.from_trust_list` indexes a CTL's records with
their CTL roles, and :meth:`CertificateCache.with_fallback` chains it behind the store cache:
CUCM's TVS looks in its certificate cache first and, on a miss, in the cluster's current CTL
(protocol notes section 7, TAC 212051, High); each entry says which ``source`` answered.
Pure: no files, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ..certs import Certificate, serial_to_bytes
from ..names import NameKey, match_key
from .table import DEFAULT_TTL, roles_for_stores

if TYPE_CHECKING:
    from .trust_store import StoreEntry

__all__ = ["CacheEntry", "CertificateCache", "normalize_serial"]


def normalize_serial(serial: bytes) -> bytes:
    """Serial bytes without DER sign padding (``00 80..`` and ``80..`` are the same serial)."""
    return serial_to_bytes(int.from_bytes(serial, "big")) if serial else b""


@attrs.frozen
class CacheEntry:
    """What TVS knows about one certificate."""

    certificate: Certificate
    stores: tuple[str, ...]
    roles: tuple[int, ...]
    ttl: int
    source: str = "cache"
    """Which lookup answered: ``cache`` (the trust stores) or ``ctl`` (the current CTL)."""


@attrs.frozen
class CertificateCache:
    """Answers lookups; build with :meth:`build` (or :meth:`empty`)."""

    entries: tuple[CacheEntry, ...]
    _by_serial: dict[tuple[bytes, NameKey], CacheEntry] = attrs.field(eq=False, repr=False)
    _by_sha256: dict[bytes, CacheEntry] = attrs.field(eq=False, repr=False)
    fallback: CertificateCache | None = attrs.field(default=None, eq=False, repr=False)
    """Asked on a miss (the CTL's records)."""

    @classmethod
    def empty(cls) -> CertificateCache:
        return cls((), {}, {})

    @classmethod
    def from_trust_list(
        cls, records: Iterable[tuple[int, Certificate]], *, ttl: int = DEFAULT_TTL
    ) -> CertificateCache:
        """Entries for a CTL's ``(role, certificate)`` records; a certificate listed with
        several roles is one entry with all of them (ascending), ``source`` ``ctl``."""
        roles: dict[bytes, set[int]] = {}
        certs: dict[bytes, Certificate] = {}
        for role, cert in records:
            certs.setdefault(cert.der, cert)
            roles.setdefault(cert.der, set()).add(int(role))
        entries: list[CacheEntry] = []
        by_serial: dict[tuple[bytes, NameKey], CacheEntry] = {}
        by_sha: dict[bytes, CacheEntry] = {}
        for der, cert in certs.items():
            entry = CacheEntry(cert, ("CTLFile.tlv",), tuple(sorted(roles[der])), ttl, "ctl")
            entries.append(entry)
            by_serial[(normalize_serial(cert.serial), cert.issuer_key)] = entry
            by_sha[cert.sha256] = entry
        return cls(tuple(entries), by_serial, by_sha)

    def with_fallback(self, fallback: CertificateCache | None) -> CertificateCache:
        """This cache answering first, ``fallback`` on a miss."""
        return attrs.evolve(self, fallback=fallback)

    @classmethod
    def build(cls, store_entries: Iterable[StoreEntry]) -> CertificateCache:
        """One entry per distinct certificate present in at least one store with roles."""
        stores: dict[bytes, list[str]] = {}
        ttls: dict[bytes, int] = {}
        certs: dict[bytes, Certificate] = {}
        for e in store_entries:
            der = e.certificate.der
            certs.setdefault(der, e.certificate)
            stores.setdefault(der, [])
            if e.store not in stores[der]:
                stores[der].append(e.store)
            ttls[der] = min(ttls.get(der, e.ttl), e.ttl)
        entries: list[CacheEntry] = []
        by_serial: dict[tuple[bytes, NameKey], CacheEntry] = {}
        by_sha: dict[bytes, CacheEntry] = {}
        for der, cert in certs.items():
            roles = roles_for_stores(stores[der])
            if not roles:
                continue  # only in stores TVS does not answer for (CAPF-trust, tomcat-trust)
            entry = CacheEntry(cert, tuple(stores[der]), roles, ttls.get(der, DEFAULT_TTL))
            entries.append(entry)
            by_serial[(normalize_serial(cert.serial), cert.issuer_key)] = entry
            by_sha[cert.sha256] = entry
        return cls(tuple(entries), by_serial, by_sha)

    def __len__(self) -> int:
        return len(self.entries)

    def find_by_serial_issuer(self, serial: bytes, issuer: str) -> CacheEntry | None:
        """QUERY_CERT_REQ lookup; an unparsable issuer finds nothing."""
        key = match_key(issuer)
        if isinstance(key, str):  # did not parse: matches no certificate's issuer
            return None
        found = self._by_serial.get((normalize_serial(serial), key))
        if found is None and self.fallback is not None:
            return self.fallback.find_by_serial_issuer(serial, issuer)
        return found

    def find_by_sha256(self, digest: bytes) -> CacheEntry | None:
        """VERIFY_REQUEST lookup by the presented certificate's SHA-256."""
        found = self._by_sha256.get(bytes(digest))
        if found is None and self.fallback is not None:
            return self.fallback.find_by_sha256(digest)
        return found
