"""Bulk certificate management between clusters (protocol notes section 5, Method 1).

Both clusters export their certificates to one shared directory (one PKCS#12 per node,
``<cluster>_<node>.p12``); one cluster consolidates them into ``consolidated.p12``; each
cluster imports the certificates of the *other* clusters with ``BULK_IMPORT_MAP`` (remote
CallManager or ITLRecovery -> Phone-SAST-trust + CallManager-trust, CAPF -> CallManager-trust,
tomcat -> tomcat-trust). Bundles may be ``.p12`` or ``.pfx`` (a CUCM export, or ``openssl
pkcs12 -export``): a certificate without our ``KIND|CLUSTER|NODE`` label is recognised from its
content and names (``kinds``), or takes the ``kind`` the caller gives. Every bundle is read and
checked before anything is written, everything is written in one all-or-nothing step, and an
import that would import nothing is an error, never a success.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .atomic import atomic_write
from .errors import StoreError, StoreInputError
from .kinds import KINDS
from .pkcs12 import LabelledCertificate, dump_pkcs12, load_pkcs12
from .table import BULK_IMPORT_MAP
from .trust_store import StoreEntry, TrustStore

__all__ = [
    "CONSOLIDATED_NAME",
    "DEFAULT_PASSWORD",
    "BulkImportResult",
    "bulk_export",
    "bulk_import",
    "consolidate",
]

CONSOLIDATED_NAME = "consolidated.p12"
DEFAULT_PASSWORD = "tvs-lab"
"""Password of bulk bundles when none is given (CUCM asks for one; labs share this default)."""


_BUNDLE_SUFFIXES = (".p12", ".pfx")


@attrs.frozen
class BulkImportResult:
    imported: tuple[StoreEntry, ...]
    skipped: tuple[LabelledCertificate, ...]  # our own cluster's, or kinds with no mapping
    unknown: tuple[LabelledCertificate, ...] = ()  # kind not told (and no ``kind`` given)


def _bundles(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(
        p
        for p in d.iterdir()
        if p.suffix.lower() in _BUNDLE_SUFFIXES and p.name != CONSOLIDATED_NAME and p.is_file()
    )


def bulk_export(
    store: TrustStore, shared_dir: str | Path, password: str = DEFAULT_PASSWORD
) -> list[Path]:
    """Write one PKCS#12 per node of ``store``'s cluster: the node's CallManager (and tomcat,
    when the store holds one) certificate, and on the first node the cluster-wide ITLRecovery
    and CAPF certificates."""
    if not store.cluster:
        raise StoreError(f"{store.root}: store has no cluster identity (run `tvs store init`)")
    out_dir = Path(shared_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own = store.list(["CallManager", "tomcat", "ITLRecovery", "CAPF"])
    nodes = list(store.nodes) or sorted({e.path.stem for e in own if e.store == "CallManager"})
    written = []
    for i, node in enumerate(nodes):
        items = [
            LabelledCertificate(e.certificate, e.store, store.cluster, node)
            for e in own
            if (e.store in ("CallManager", "tomcat") and e.path.stem == node)
            or (i == 0 and e.store in ("ITLRecovery", "CAPF"))
        ]
        if not items:
            continue
        path = out_dir / f"{store.cluster}_{node}.p12"
        atomic_write(path, dump_pkcs12(items, password))
        written.append(path)
    if not written:
        raise StoreError(f"{store.root}: no own certificates to export")
    return written


def _read_bundles(paths: list[Path], password: str) -> list[LabelledCertificate]:
    items: dict[bytes, LabelledCertificate] = {}
    for p in paths:
        for item in load_pkcs12(p.read_bytes(), password, source=str(p)):
            items.setdefault(item.certificate.der, item)
    return list(items.values())


def consolidate(shared_dir: str | Path, password: str = DEFAULT_PASSWORD) -> Path:
    """Merge every per-node bundle of the shared directory into ``consolidated.p12``."""
    d = Path(shared_dir)
    paths = _bundles(d)
    if not paths:
        raise StoreInputError(f"{d}: no exported bundles (*.p12, *.pfx) to consolidate")
    items = _read_bundles(paths, password)
    out = d / CONSOLIDATED_NAME
    atomic_write(out, dump_pkcs12(items, password))
    return out


def bulk_import(
    store: TrustStore,
    shared_dir: str | Path,
    password: str = DEFAULT_PASSWORD,
    *,
    kind: str | None = None,
) -> BulkImportResult:
    """Import the other clusters' certificates from ``consolidated.p12`` (or, without one,
    from every ``.p12``/``.pfx`` bundle in the directory) into the trust stores
    ``BULK_IMPORT_MAP`` names, all or nothing. ``kind`` is the kind of certificates whose kind
    cannot be told. Raises StoreInputError when nothing would be imported."""
    if kind is not None and kind not in KINDS:
        raise StoreInputError(f"unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    d = Path(shared_dir)
    consolidated = d / CONSOLIDATED_NAME
    paths = [consolidated] if consolidated.exists() else _bundles(d)
    if not paths:
        raise StoreInputError(f"{d}: nothing to import (no consolidated.p12, *.p12 or *.pfx)")
    items = _read_bundles(paths, password)
    own_ders = {
        e.certificate.der for e in store.list(["CallManager", "TVS", "ITLRecovery", "CAPF"])
    }
    plan: list[tuple[str, LabelledCertificate]] = []
    skipped = []
    unknown = []
    for item in items:
        if not item.kind and kind is not None:
            item = attrs.evolve(item, kind=kind, why="--kind")
        if item.certificate.der in own_ders or (store.cluster and item.cluster == store.cluster):
            skipped.append(item)
            continue
        if not item.kind:
            unknown.append(item)
            continue
        targets = BULK_IMPORT_MAP.get(item.kind, ())
        if not targets:
            skipped.append(item)
            continue
        plan.extend((t, item) for t in targets)
    if not plan:
        raise StoreInputError(_nothing(d, skipped, unknown))
    imported = store.import_many((t, item.certificate) for t, item in plan)
    return BulkImportResult(tuple(imported), tuple(skipped), tuple(unknown))


def _nothing(
    d: Path, skipped: list[LabelledCertificate], unknown: list[LabelledCertificate]
) -> str:
    parts = []
    if unknown:
        names = "; ".join(i.certificate.subject for i in unknown[:3])
        parts.append(
            f"{len(unknown)} of unknown kind ({names}): give --kind "
            f"{'|'.join(k for k in KINDS if k in BULK_IMPORT_MAP)}"
        )
    if skipped:
        parts.append(f"{len(skipped)} of this cluster or of a kind not imported")
    return f"{d}: nothing imported: " + (", ".join(parts) or "no certificate")
