"""CUCM trust stores on disk: one folder per store, one PEM file per certificate.

Layout of a store directory::

    DIR/cluster.json                 {"cluster": "source", "nodes": ["ucm105pub"]}
    DIR/<trust store>/<name>.pem     CallManager-trust, Phone-SAST-trust, ... (see ``table``)
    DIR/CallManager/<node>.pem       the cluster's own certificates
    DIR/TVS/<node>.pem
    DIR/ITLRecovery/<cluster>.pem
    DIR/CAPF/<cluster>.pem
    DIR/tomcat/<node>.pem

Each PEM file starts with ``# key: value`` comment lines (subject, issuer, serial, ``ttl``);
the ``ttl`` line is the certificate's TVS TTL. An import (and a bulk import) is all or nothing:
inputs are validated first, then every file goes through one journal (``journal``): a crash
leaves the store untouched or, after the next :meth:`TrustStore.open`, complete; that open
also removes temporary files a killed writer left. A certificate appearing twice in one input
is written once. A trust folder that is a symbolic link is refused (a store must not reach
outside its directory); a certificate file that is a link is listed as one
(:attr:`StoreEntry.link`). Owns no roles: those come from ``table``; the in-memory view the
server answers from is ``cache``.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from ..certs import Certificate, CertificateError, load_certificates
from ..roles import role_names
from .atomic import atomic_remove, atomic_write, is_temporary
from .cache import CertificateCache
from .errors import StoreError, StoreInputError, StoreNotFoundError, UnknownStoreError
from .journal import commit_files, recover, store_lock
from .table import (
    ALL_STORES,
    DEFAULT_TTL,
    OWN_STORES,
    PHONE_ISSUER_STORES,
    STORE_ROLES,
    TRUST_STORES,
)

__all__ = ["StoreEntry", "TrustStore"]

_META = "cluster.json"
_TTL_RE = re.compile(rb"^#\s*ttl:\s*(\d+)\s*$", re.MULTILINE)


@attrs.frozen
class StoreEntry:
    """One certificate file in one store."""

    store: str
    certificate: Certificate
    ttl: int
    path: Path
    link: str | None = None
    """Where the file points when it is a symbolic link (listed as such), else None."""

    @property
    def roles(self) -> tuple[int, ...]:
        return tuple(int(r) for r in STORE_ROLES[self.store])

    def is_expired(self, now: _dt.datetime | None = None) -> bool:
        return self.certificate.is_expired(now)

    def to_dict(self, now: _dt.datetime | None = None) -> dict[str, object]:
        """The entry as JSON (``tvs store ... --json``): ``roles`` are codes, ``role_names``
        their names, ``not_after`` the expiry, ``sha256`` the certificate's digest."""
        c = self.certificate
        return {
            "store": self.store,
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial_hex,
            "sha256": c.sha256.hex(),
            "roles": list(self.roles),
            "role_names": role_names(self.roles),
            "ttl": self.ttl,
            "not_after": c.not_valid_after.isoformat(),
            "expired": self.is_expired(now),
            "path": str(self.path),
            "link": self.link,
        }


def _safe(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:60] or "cert"


def _render(cert: Certificate, ttl: int) -> bytes:
    head = (
        f"# subject: {cert.subject}\n"
        f"# issuer: {cert.issuer}\n"
        f"# serial: {cert.serial_hex}\n"
        f"# sha256: {cert.sha256.hex()}\n"
        f"# ttl: {ttl}\n"
    )
    return head.encode() + cert.to_pem()


def _check_store(name: str, *, own_allowed: bool) -> str:
    if name in TRUST_STORES or (own_allowed and name in OWN_STORES):
        return name
    by_fold = {s.casefold(): s for s in (ALL_STORES if own_allowed else TRUST_STORES)}
    if name.casefold() in by_fold:
        return by_fold[name.casefold()]
    allowed = ", ".join(ALL_STORES if own_allowed else TRUST_STORES)
    raise UnknownStoreError(f"unknown store {name!r} (one of: {allowed})")


@attrs.define
class TrustStore:
    """A store directory. Open with :meth:`open` or create with :meth:`init_from_pki`."""

    root: Path
    cluster: str = ""
    nodes: tuple[str, ...] = ()
    problems: list[str] = attrs.field(factory=list)
    """Files skipped by the last :meth:`list` (unreadable PEM), one message each."""
    recovered: list[str] = attrs.field(factory=list)
    """What :meth:`open` finished or cleaned after a writer was killed, one line each."""

    # --- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, create: bool = False) -> TrustStore:
        """Open a store directory; ``create`` makes an empty one when it does not exist."""
        path = Path(root)
        if not path.is_dir():
            if not create:
                raise StoreNotFoundError(f"{path}: no such store directory")
            path.mkdir(parents=True, exist_ok=True)
        for name in ALL_STORES:
            folder = path / name
            if folder.is_symlink():
                raise StoreError(
                    f"{folder}: a trust folder that is a symbolic link is refused "
                    f"(it points to {os.readlink(folder)})"
                )
        store = cls(root=path)
        meta = path / _META
        if meta.exists():
            try:
                info = json.loads(meta.read_text())
                store.cluster = str(info.get("cluster", ""))
                store.nodes = tuple(str(n) for n in info.get("nodes", ()))
            except (ValueError, OSError) as exc:
                raise StoreError(f"{meta}: unreadable: {exc}") from None
        for name in ALL_STORES:
            (path / name).mkdir(exist_ok=True)
        store.recovered = recover(path, [path / name for name in ALL_STORES])
        return store

    @classmethod
    def init_from_pki(cls, root: str | Path, cluster_dir: str | Path) -> TrustStore:
        """Create (or refill) a store with a cluster's own certificates from the lab PKI layout
        ``PKI_DIR/<cluster>/{itlrecovery,capf}.pem``, ``.../nodes/<node>/{callmanager,tvs}.pem``.
        """
        cdir = Path(cluster_dir)
        nodes_dir = cdir / "nodes"
        if not nodes_dir.is_dir():
            raise StoreInputError(f"{cdir}: not a lab PKI cluster directory (no nodes/)")
        own: list[tuple[str, str, Certificate]] = []
        nodes = sorted(p.name for p in nodes_dir.iterdir() if p.is_dir())
        for node in nodes:
            for kind, fname in (
                ("CallManager", "callmanager.pem"),
                ("TVS", "tvs.pem"),
                ("tomcat", "tomcat.pem"),
            ):
                f = nodes_dir / node / fname
                if f.exists():
                    own.append((kind, node, _load_one(f)))
        for kind, fname in (("ITLRecovery", "itlrecovery.pem"), ("CAPF", "capf.pem")):
            f = cdir / fname
            if f.exists():
                own.append((kind, cdir.name, _load_one(f)))
        if not own:
            raise StoreInputError(f"{cdir}: no certificates found")
        store = cls.open(root, create=True)
        store.set_cluster(cdir.name, nodes)
        for kind, name, cert in own:
            store.put_own(kind, name, cert)
        return store

    def set_cluster(self, cluster: str, nodes: Sequence[str]) -> None:
        self.cluster, self.nodes = cluster, tuple(nodes)
        data = json.dumps({"cluster": cluster, "nodes": list(nodes)}, indent=2) + "\n"
        with store_lock(self.root):
            atomic_write(self.root / _META, data.encode())

    # --- writing --------------------------------------------------------------------------
    def put_own(
        self, kind: str, name: str, cert: Certificate, *, ttl: int = DEFAULT_TTL
    ) -> StoreEntry:
        """Write one of the cluster's own certificates (``kind`` in OWN_STORES)."""
        if kind not in OWN_STORES:
            raise UnknownStoreError(f"{kind!r} is not an own-certificate kind {OWN_STORES}")
        path = self.root / kind / f"{_safe(name)}.pem"
        with store_lock(self.root):
            atomic_write(path, _render(cert, ttl))
        return StoreEntry(kind, cert, ttl, path)

    def import_certificates(
        self, store_name: str, certs: Iterable[Certificate], *, ttl: int = DEFAULT_TTL
    ) -> list[StoreEntry]:
        """Add certificates to a trust store, all or nothing (idempotent: the same certificate
        twice is one file). The store name is checked before anything is written."""
        return self.import_many([(store_name, cert) for cert in certs], ttl=ttl)

    def import_many(
        self, items: Iterable[tuple[str, Certificate]], *, ttl: int = DEFAULT_TTL
    ) -> list[StoreEntry]:
        """Add (trust store, certificate) pairs in one all-or-nothing write; each pair is
        written once however often it appears. Everything is checked before anything is
        written."""
        if ttl < 0 or ttl > 0xFFFFFFFF:
            raise StoreInputError(f"TTL out of range: {ttl}")
        planned: dict[tuple[str, bytes], StoreEntry] = {}
        for store_name, cert in items:
            name = _check_store(store_name, own_allowed=False)
            path = self.root / name / f"{_safe(cert.common_name)}_{cert.sha256.hex()[:12]}.pem"
            planned.setdefault((name, cert.sha256), StoreEntry(name, cert, ttl, path))
        if not planned:
            raise StoreInputError("no certificates to import")
        out = list(planned.values())
        with store_lock(self.root):
            commit_files(self.root, [(e.path, _render(e.certificate, ttl)) for e in out])
        return out

    def remove(self, store_name: str, match: str) -> list[StoreEntry]:
        """Remove certificates whose SHA-256 hex starts with ``match`` (at least 8 digits), or
        whose serial (hex) or file name equals it. Returns what was removed."""
        name = _check_store(store_name, own_allowed=True)
        m = match.strip().lower().replace(":", "")
        gone = []
        for entry in self.list():
            if entry.store != name:
                continue
            c = entry.certificate
            if (
                (len(m) >= 8 and c.sha256.hex().startswith(m))
                or c.serial_hex.lower() == m
                or entry.path.name.lower() in (m, f"{m}.pem")
            ):
                gone.append(entry)
        if not gone:
            raise StoreNotFoundError(f"no certificate matching {match!r} in {name}")
        with store_lock(self.root):
            for entry in gone:
                atomic_remove(entry.path)
        return gone

    # --- reading --------------------------------------------------------------------------
    def list(self, stores: Iterable[str] | None = None) -> list[StoreEntry]:
        """Every certificate file, in table order then file name. Unreadable files are skipped
        and described in :attr:`problems`."""
        wanted = (
            ALL_STORES if stores is None else [_check_store(s, own_allowed=True) for s in stores]
        )
        self.problems = []
        out: list[StoreEntry] = []
        for name in wanted:
            folder = self.root / name
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if is_temporary(path) or not path.is_file():
                    continue
                link = os.readlink(path) if path.is_symlink() else None
                try:
                    data = path.read_bytes()
                    certs = load_certificates(data, source=str(path))
                except (OSError, CertificateError) as exc:
                    self.problems.append(f"{path}: {exc}")
                    continue
                m = _TTL_RE.search(data)
                ttl = int(m.group(1)) if m else DEFAULT_TTL
                out.extend(StoreEntry(name, c, ttl, path, link) for c in certs)
        return out

    def load_cache(self) -> CertificateCache:
        """The in-memory view TVS answers from (read now; later imports do not change it)."""
        return CertificateCache.build(self.list())

    def phone_issuer_certificates(self) -> builtins.list[Certificate]:
        """The certificates that issue phone certificates (``table.PHONE_ISSUER_STORES``: own
        CAPF, CAPF-trust, CallManager-trust with other clusters' CAPFs and MIC roots): what
        every server checking a phone certificate (TVS, secure SIP, CAPF) verifies against."""
        return self._unique(PHONE_ISSUER_STORES)

    # the names callers used before the one set existed; both are the phone issuing set
    client_ca_certificates = phone_issuer_certificates
    sip_client_ca_certificates = phone_issuer_certificates

    def _unique(self, stores: Iterable[str]) -> builtins.list[Certificate]:
        seen: dict[bytes, Certificate] = {}
        for e in self.list(stores):
            seen.setdefault(e.certificate.der, e.certificate)
        return list(seen.values())

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """A cheap change detector for ``--watch``: (path, size, mtime_ns) of every file."""
        sig = []
        for name in ALL_STORES:
            folder = self.root / name
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if is_temporary(path):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(sorted(sig))


def _load_one(path: Path) -> Certificate:
    try:
        return Certificate.load(path)
    except (OSError, CertificateError) as exc:
        raise StoreInputError(f"{path}: {exc}") from None
