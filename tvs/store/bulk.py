"""Bulk certificate management between clusters (protocol notes section 5, Method 1).

Both clusters export their certificates to one shared directory (one PKCS#12 per node,
``<cluster>_<node>.p12``); one cluster consolidates them into ``consolidated.p12``; each
cluster imports the certificates of the *other* clusters with ``BULK_IMPORT_MAP`` (remote
CallManager or ITLRecovery -> Phone-SAST-trust + CallManager-trust, CAPF -> CallManager-trust,
tomcat -> tomcat-trust). Every bundle is read and checked before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .atomic import atomic_write
from .errors import StoreError, StoreInputError
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


@attrs.frozen
class BulkImportResult:
    imported: tuple[StoreEntry, ...]
    skipped: tuple[LabelledCertificate, ...]  # our own cluster's, or kinds with no mapping


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
    paths = sorted(p for p in d.glob("*.p12") if p.name != CONSOLIDATED_NAME)
    if not paths:
        raise StoreInputError(f"{d}: no exported bundles (*.p12) to consolidate")
    items = _read_bundles(paths, password)
    out = d / CONSOLIDATED_NAME
    atomic_write(out, dump_pkcs12(items, password))
    return out


def bulk_import(
    store: TrustStore, shared_dir: str | Path, password: str = DEFAULT_PASSWORD
) -> BulkImportResult:
    """Import the other clusters' certificates from ``consolidated.p12`` (or, without one,
    from every bundle in the directory) into the trust stores ``BULK_IMPORT_MAP`` names."""
    d = Path(shared_dir)
    consolidated = d / CONSOLIDATED_NAME
    paths = [consolidated] if consolidated.exists() else sorted(d.glob("*.p12"))
    if not paths:
        raise StoreInputError(f"{d}: nothing to import (no consolidated.p12 or *.p12)")
    items = _read_bundles(paths, password)
    own_ders = {
        e.certificate.der for e in store.list(["CallManager", "TVS", "ITLRecovery", "CAPF"])
    }
    plan: list[tuple[str, LabelledCertificate]] = []
    skipped = []
    for item in items:
        targets = BULK_IMPORT_MAP.get(item.kind, ())
        if (
            item.certificate.der in own_ders
            or (store.cluster and item.cluster == store.cluster)
            or not targets
        ):
            skipped.append(item)
            continue
        plan.extend((t, item) for t in targets)
    imported: list[StoreEntry] = []
    for target, item in plan:
        imported.extend(store.import_certificates(target, [item.certificate]))
    return BulkImportResult(tuple(imported), tuple(skipped))
