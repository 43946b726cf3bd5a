"""The phone's trust state: CTL table, ITL table, TVS answer cache, and the signing-role policy.

Applies which roles may sign which file (:data:`SIGNING_ROLES`, the one table in
:mod:`tvs.tlv.policy`, re-exported here), which held records
vouch for a file's signer, the TVS answer cache with expiry, and the pins the phone uses for
its TLS peers (TVS: ITL records with role TVS; SIP: CTL records with CCM or CCM+TFTP).
Parsed trust lists are values shared between phones holding the same bytes
(:class:`TrustListCache`, keyed by SHA-256). Pure: no I/O, time is passed in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Final

import attrs

from tvs.certs import Certificate
from tvs.names import NameKey, match_key, same_name
from tvs.roles import Role, role_names
from tvs.tlv import SignatureError, SignerInfo, TlvError, TrustFile, parse_trust_list
from tvs.tlv import verify_with_certificate as _verify
from tvs.tlv.policy import SIGNING_ROLES, FileKind  # the one signing-role table

__all__ = [
    "DEFAULT_TVS_TTL",
    "SIGNING_ROLES",
    "SIP_ROLES",
    "TVS_ROLES",
    "FileKind",
    "TrustList",
    "TrustListCache",
    "TrustState",
    "TvsCacheEntry",
    "signer_matches",
]


TVS_ROLES: Final = frozenset({Role.TVS})
"""The TVS server certificate must match an ITL record with one of these roles."""
SIP_ROLES: Final = frozenset({Role.CCM, Role.CCM_TFTP})
"""The CallManager's SIP TLS certificate must match a CTL record with one of these roles."""

DEFAULT_TVS_TTL: Final = 86400
"""Cache lifetime when a TVS answer carries no TTL (the seed: "expires in 24 hours")."""


def signer_matches(signer: SignerInfo, serial: bytes, issuer: str) -> bool:
    """Same serial and, compared by parsed attributes, the same issuer."""
    if serial != signer.serial:
        return False
    return same_name(issuer, signer.issuer)


_Holder = tuple[int, Certificate, "NameKey | str"]


@attrs.frozen(eq=False)
class TrustList:
    """A parsed CTL or ITL with its certificates decoded once; shared, never mutated."""

    raw: bytes = attrs.field(repr=False)
    sha256: bytes
    file: TrustFile = attrs.field(repr=False)
    certs: tuple[Certificate | None, ...] = attrs.field(repr=False)
    by_serial: Mapping[bytes, tuple[_Holder, ...]] = attrs.field(repr=False)
    """(role, certificate, issuer key) of each record, by certificate serial."""
    _verified: dict[bytes, bool] = attrs.field(factory=dict, repr=False)

    @classmethod
    def parse(cls, data: bytes) -> TrustList:
        """Parse CTL/ITL bytes (raises TlvError)."""
        f = parse_trust_list(bytes(data))
        certs = tuple(r.cert for r in f.records)
        index: dict[bytes, list[_Holder]] = {}
        for rec, cert in zip(f.records, certs, strict=True):
            if cert is not None:
                index.setdefault(cert.serial, []).append((rec.role, cert, match_key(cert.issuer)))
        return cls(
            raw=bytes(data),
            sha256=hashlib.sha256(data).digest(),
            file=f,
            certs=certs,
            by_serial={k: tuple(v) for k, v in index.items()},
        )

    @property
    def signer(self) -> SignerInfo:
        return self.file.header.signer

    def entries(self) -> Iterator[tuple[int, Certificate | None]]:
        for rec, cert in zip(self.file.records, self.certs, strict=True):
            yield rec.role, cert

    def certificates_with_role(self, roles: frozenset[int]) -> tuple[Certificate, ...]:
        return tuple(c for role, c in self.entries() if role in roles and c is not None)

    def holders(self, signer: SignerInfo, roles: frozenset[int]) -> tuple[Certificate, ...]:
        """Certificates of records matching ``signer`` whose role is in ``roles``."""
        candidates = self.by_serial.get(signer.serial, ())
        if not candidates:
            return ()
        key = match_key(signer.issuer)
        out: list[Certificate] = []
        for role, cert, issuer in candidates:
            if role in roles and issuer == key and cert not in out:
                out.append(cert)
        return tuple(out)

    def verifies_with(self, cert: Certificate) -> bool:
        """Signature check of this list with ``cert``, memoised (shared lists verify once)."""
        return _memo_verify(self._verified, self.file, cert)

    def to_dict(self) -> dict[str, object]:
        h = self.file.header
        return {
            "filename": h.filename,
            "sha256": self.sha256.hex(),
            "timestamp": h.timestamp,
            "signer": {
                "name": h.signer.name,
                "issuer": h.signer.issuer,
                "serial": h.signer.serial.hex().upper(),
            },
            "hash_algorithm": h.hash_algorithm.hash_name,
            "records": [
                {
                    "role": r.role,
                    "role_name": role_names([r.role])[0],
                    "subject": r.subject,
                    "issuer": r.issuer,
                    "serial": r.serial.hex().upper(),
                    "sha256": c.sha256.hex() if c is not None else None,
                }
                for r, c in zip(self.file.records, self.certs, strict=True)
            ],
        }


def _memo_verify(memo: dict[bytes, bool], f: TrustFile, cert: Certificate) -> bool:
    key = cert.sha256
    hit = memo.get(key)
    if hit is None:
        try:
            _verify(f, cert)
            hit = True
        except (SignatureError, TlvError):
            hit = False
        if len(memo) < 64:
            memo[key] = hit
    return hit


def verify_signed(f: TrustFile, cert: Certificate) -> bool:
    """Signature check of a parsed ``.sgn`` (not memoised: configs differ per phone)."""
    try:
        _verify(f, cert)
    except (SignatureError, TlvError):
        return False
    return True


class TrustListCache:
    """Parsed trust lists keyed by the SHA-256 of their bytes, least recently used dropped.

    A fleet of phones fetching the same CTL shares one :class:`TrustList` (and its memoised
    signature checks). Parse failures are not cached.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._max = max_entries
        self._lists: OrderedDict[bytes, TrustList] = OrderedDict()
        self._certs: OrderedDict[bytes, Certificate] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def certificate(self, der: bytes) -> Certificate:
        """One shared :class:`Certificate` per DER (TVS answers many phones cache alike);
        raises CertificateError."""
        found = self._certs.get(der)
        if found is None:
            found = Certificate.from_der(der)
            self._certs[found.der] = found
            while len(self._certs) > self._max:
                self._certs.popitem(last=False)
        return found

    def get(self, data: bytes) -> TrustList:
        """The parsed list for ``data`` (raises TlvError)."""
        key = hashlib.sha256(data).digest()
        found = self._lists.get(key)
        if found is not None:
            self._lists.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        parsed = TrustList.parse(data)
        self._lists[key] = parsed
        while len(self._lists) > self._max:
            self._lists.popitem(last=False)
        return parsed

    def __len__(self) -> int:
        return len(self._lists)


@attrs.frozen
class TvsCacheEntry:
    """One positive TVS answer: the certificate it returned, its roles, when it expires."""

    certificate: Certificate
    roles: tuple[int, ...]
    expires_at: float

    def matches(self, signer: SignerInfo) -> bool:
        return signer_matches(signer, self.certificate.serial, self.certificate.issuer)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def to_dict(self, now: float | None = None) -> dict[str, object]:
        d: dict[str, object] = {
            "subject": self.certificate.subject,
            "issuer": self.certificate.issuer,
            "serial": self.certificate.serial_hex,
            "sha256": self.certificate.sha256.hex(),
            "roles": list(self.roles),
            "role_names": role_names(self.roles),
            "expires_at": self.expires_at,
        }
        if now is not None:
            d["expires_in"] = max(0.0, round(self.expires_at - now, 3))
        return d


@attrs.frozen
class TrustState:
    """What a phone trusts: its CTL, its ITL, its TVS answers. Updated by replacement."""

    ctl: TrustList | None = None
    itl: TrustList | None = None
    tvs_cache: tuple[TvsCacheEntry, ...] = ()

    @property
    def has_trust_list(self) -> bool:
        """A CTL, or an ITL with records. Without a CTL a blank ITL (signed, no records:
        "Prepare Cluster for Rollback to pre 8.0" on a non-secure cluster) leaves nothing to
        check against: no usable trust list, so the next CTL/ITL is trusted on first use and
        the configuration is fetched unsigned. That is why the rollback parameter lets phones
        leave a non-secure cluster."""
        return self.ctl is not None or (self.itl is not None and bool(self.itl.file.records))

    def held(self, kind: FileKind) -> TrustList | None:
        return self.ctl if kind is FileKind.CTL else self.itl if kind is FileKind.ITL else None

    def erased(self, *, ctl: bool = True, itl: bool = True, tvs_cache: bool = False) -> TrustState:
        """What a user's "erase" leaves (Settings > Security > Trust List > erase on a real
        phone): without the chosen trust lists the next CTL/ITL is trusted on first use."""
        return attrs.evolve(
            self,
            ctl=None if ctl else self.ctl,
            itl=None if itl else self.itl,
            tvs_cache=() if tvs_cache else self.tvs_cache,
        )

    def first_use(self, kind: FileKind) -> bool:
        """Trust on first use: a CTL or ITL arriving while the phone holds no usable trust
        list (see :attr:`has_trust_list`)."""
        return kind is not FileKind.CONFIG and not self.has_trust_list

    def _authorities(self, kind: FileKind) -> tuple[tuple[str, TrustList], ...]:
        """Which held lists may vouch for a signer of ``kind``; the CTL authenticates the ITL."""
        lists = [("ctl", self.ctl), ("itl", self.itl)]
        if kind is FileKind.ITL and self.ctl is not None:
            lists = [("ctl", self.ctl)]
        return tuple((name, tl) for name, tl in lists if tl is not None)

    def known_signers(
        self, kind: FileKind, signer: SignerInfo
    ) -> tuple[tuple[str, Certificate], ...]:
        """(source, certificate) for each held record that may sign ``kind`` as ``signer``."""
        roles = SIGNING_ROLES[kind]
        out: list[tuple[str, Certificate]] = []
        for name, tl in self._authorities(kind):
            out.extend((name, c) for c in tl.holders(signer, roles))
        return tuple(out)

    def cached_answer(self, signer: SignerInfo, now: float) -> TvsCacheEntry | None:
        for entry in self.tvs_cache:
            if not entry.expired(now) and entry.matches(signer):
                return entry
        return None

    def tvs_pins(self) -> tuple[Certificate, ...]:
        """Certificates a TVS server may present: ITL records with role TVS."""
        return self.itl.certificates_with_role(TVS_ROLES) if self.itl is not None else ()

    def sip_pins(self) -> tuple[Certificate, ...]:
        """Certificates a CallManager may present for SIP TLS: CTL records CCM / CCM+TFTP."""
        return self.ctl.certificates_with_role(SIP_ROLES) if self.ctl is not None else ()

    # --- replacement ----------------------------------------------------------------------
    def with_list(self, kind: FileKind, tl: TrustList | None) -> TrustState:
        if kind is FileKind.CTL:
            return attrs.evolve(self, ctl=tl)
        if kind is FileKind.ITL:
            return attrs.evolve(self, itl=tl)
        raise ValueError(f"{kind} is not a trust list")

    def with_answer(self, entry: TvsCacheEntry, now: float) -> TrustState:
        """Add ``entry``, replacing an answer about the same certificate; drop expired ones."""
        kept = tuple(
            e for e in self.tvs_cache if not e.expired(now) and e.certificate != entry.certificate
        )
        return attrs.evolve(self, tvs_cache=(*kept, entry))

    def purged(self, now: float) -> TrustState:
        kept = tuple(e for e in self.tvs_cache if not e.expired(now))
        return self if len(kept) == len(self.tvs_cache) else attrs.evolve(self, tvs_cache=kept)
