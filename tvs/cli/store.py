"""``tvs store``: create, fill, list, export and prune CUCM trust stores; bulk management.

A thin shell over :mod:`tvs.store`. Every action takes ``--json`` (entries as
:meth:`tvs.store.StoreEntry.to_dict`). Exit codes (:class:`tvs.exitcodes.ExitCode`): 0 done,
2 the operation failed (usage, unknown store name, missing or unreadable file or store, wrong
password, nothing matched; the store is unchanged), said in one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from ..exitcodes import ExitCode
from ..roles import role_names
from ..store import (
    ALL_STORES,
    DEFAULT_TTL,
    TRUST_STORES,
    LabelledCertificate,
    StoreEntry,
    StoreError,
    TrustStore,
    bulk_export,
    bulk_import,
    consolidate,
    dump_pkcs12,
    read_certificate_file,
)
from ..store.atomic import atomic_write
from ..store.bulk import DEFAULT_PASSWORD
from ..store.kinds import KINDS
from .common import CommandError, add_json_option, emit_json

__all__ = ["register"]


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="CUCM trust stores: init, import, list, export, bulk")
    s = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)

    p = s.add_parser("init", help="create a store with a cluster's own certificates (lab PKI)")
    _store_arg(p)
    p.add_argument(
        "--cluster",
        required=True,
        type=Path,
        metavar="PKI_DIR/CLUSTER",
        help="a cluster directory of the lab PKI (holds nodes/<node>/callmanager.pem, ...)",
    )
    p.set_defaults(func=_cmd_init)

    p = s.add_parser("import", help="import certificates (PEM, DER, PKCS#12) into a trust store")
    _store_arg(p)
    p.add_argument(
        "--trust", required=True, metavar="STORE", help=f"one of: {', '.join(TRUST_STORES)}"
    )
    p.add_argument("--password", help="PKCS#12 password")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="TVS TTL in seconds (86400)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=_cmd_import)

    p = s.add_parser("list", help="list the certificates and the roles TVS answers with")
    _store_arg(p)
    p.add_argument("--trust", action="append", metavar="STORE", help="only this store (repeat)")
    p.set_defaults(func=_cmd_list)

    p = s.add_parser("export", help="write certificates of the store to a file")
    _store_arg(p)
    p.add_argument("--trust", action="append", metavar="STORE", help="only this store (repeat)")
    p.add_argument("--match", help="only certificates whose SHA-256 hex starts with this")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--format", choices=("pem", "der", "p12"), default="pem")
    p.add_argument("--password", help="PKCS#12 password (p12 format)")
    p.set_defaults(func=_cmd_export)

    p = s.add_parser("remove", help="remove a certificate from a store")
    _store_arg(p)
    p.add_argument(
        "--trust", required=True, metavar="STORE", help=f"one of: {', '.join(ALL_STORES)}"
    )
    p.add_argument("match", help="SHA-256 hex prefix (8+ digits), serial hex, or file name")
    p.set_defaults(func=_cmd_remove)

    p = s.add_parser("bulk-export", help="export this cluster's certificates, one PKCS#12 per node")
    _store_arg(p)
    _bulk_args(p)
    p.set_defaults(func=_cmd_bulk_export)

    p = s.add_parser("consolidate", help="merge the exported bundles into consolidated.p12")
    _bulk_args(p)
    add_json_option(p)
    p.set_defaults(func=_cmd_consolidate)

    p = s.add_parser("bulk-import", help="import the other clusters' certificates (notes sec. 5)")
    _store_arg(p)
    _bulk_args(p)
    p.add_argument(
        "--kind",
        choices=KINDS,
        help="what the certificates are when their names and content cannot tell "
        "(a bundle from openssl pkcs12 -export without a CUCM friendly name)",
    )
    p.set_defaults(func=_cmd_bulk_import)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, type=Path, metavar="DIR", help="store directory")
    add_json_option(p)


def _bulk_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", required=True, type=Path, metavar="SHARED", help="shared directory")
    p.add_argument(
        "--password", default=DEFAULT_PASSWORD, help=f"bundle password ({DEFAULT_PASSWORD})"
    )


def _fail(exc: object) -> NoReturn:
    raise CommandError(str(exc))


def _entries(entries: Iterable[StoreEntry]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in entries]


def _cmd_init(args: argparse.Namespace) -> int:
    try:
        store = TrustStore.init_from_pki(args.store, args.cluster)
    except (StoreError, OSError) as exc:
        return _fail(exc)
    own = store.list(["CallManager", "TVS", "ITLRecovery", "CAPF"])
    if args.json:
        emit_json(
            {"store": str(store.root), "cluster": store.cluster, "nodes": list(store.nodes),
             "entries": _entries(own)}
        )  # fmt: skip
        return ExitCode.OK
    print(f"store {store.root}: cluster {store.cluster}, nodes {', '.join(store.nodes)}")
    for e in own:
        print(f"  {e.store:<12} {e.certificate.subject}")
    return ExitCode.OK


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        store = TrustStore.open(args.store)
        certs = []
        for f in args.files:  # read everything first: a bad file leaves the store unchanged
            certs += read_certificate_file(f, args.password)
        done = store.import_certificates(args.trust, certs, ttl=args.ttl)
    except StoreError as exc:
        return _fail(exc)
    if args.json:
        emit_json({"store": str(args.store), "imported": _entries(done), "reload_needed": True})
        return ExitCode.OK
    for e in done:
        roles = ", ".join(role_names(e.roles)) or "none"
        print(f"imported into {e.store} (roles {roles}): {e.certificate.subject}")
    print("note: TVS answers change after a reload (SIGHUP, `tvs reload`) or with --watch")
    return ExitCode.OK


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        store = TrustStore.open(args.store)
        entries = store.list(args.trust)
    except StoreError as exc:
        return _fail(exc)
    for problem in store.problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if args.json:
        emit_json(_entries(entries))
        return ExitCode.OK
    table = Table(box=None, pad_edge=False)
    for col in ("STORE", "ROLES", "TTL", "NOT AFTER", "SERIAL", "SUBJECT"):
        table.add_column(col, overflow="fold")
    for e in entries:
        expires = e.certificate.not_valid_after.strftime("%Y-%m-%d")
        if e.is_expired():
            expires += " EXPIRED"
        table.add_row(
            e.store,
            "+".join(role_names(e.roles)) or "-",
            str(e.ttl),
            expires,
            e.certificate.serial_hex,
            e.certificate.subject + (f" (link -> {e.link})" if e.link else ""),
        )
    Console(width=200, soft_wrap=True).print(table)
    return ExitCode.OK


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        store = TrustStore.open(args.store)
        entries = store.list(args.trust)
    except StoreError as exc:
        return _fail(exc)
    if args.match:
        m = args.match.lower().replace(":", "")
        entries = [e for e in entries if e.certificate.sha256.hex().startswith(m)]
    unique = list({e.certificate.der: e for e in entries}.values())
    if not unique:
        return _fail(StoreError("no certificate matches"))
    if args.format == "der" and len(unique) != 1:
        return _fail(StoreError(f"DER holds one certificate; {len(unique)} match (use --match)"))
    if args.format == "pem":
        data = b"".join(e.certificate.to_pem() for e in unique)
    elif args.format == "der":
        data = unique[0].certificate.der
    else:
        items = [LabelledCertificate(e.certificate, e.store, store.cluster, "") for e in unique]
        data = dump_pkcs12(items, args.password)
    try:
        atomic_write(args.out, data)
    except OSError as exc:
        return _fail(f"{args.out}: {exc.strerror or exc}")
    if args.json:
        emit_json({"out": str(args.out), "format": args.format, "entries": _entries(unique)})
        return ExitCode.OK
    print(f"wrote {len(unique)} certificate(s) to {args.out}")
    return ExitCode.OK


def _cmd_remove(args: argparse.Namespace) -> int:
    try:
        gone = TrustStore.open(args.store).remove(args.trust, args.match)
    except StoreError as exc:
        return _fail(exc)
    if args.json:
        emit_json({"store": str(args.store), "removed": _entries(gone)})
        return ExitCode.OK
    for e in gone:
        print(f"removed from {e.store}: {e.certificate.subject}")
    return ExitCode.OK


def _cmd_bulk_export(args: argparse.Namespace) -> int:
    try:
        paths = bulk_export(TrustStore.open(args.store), args.dir, args.password)
    except (StoreError, OSError) as exc:
        return _fail(exc)
    if args.json:
        emit_json({"dir": str(args.dir), "exported": [str(p) for p in paths]})
        return ExitCode.OK
    for p in paths:
        print(f"exported {p}")
    return ExitCode.OK


def _cmd_consolidate(args: argparse.Namespace) -> int:
    try:
        out = consolidate(args.dir, args.password)
    except (StoreError, OSError) as exc:
        return _fail(exc)
    if args.json:
        emit_json({"dir": str(args.dir), "consolidated": str(out)})
        return ExitCode.OK
    print(f"consolidated into {out}")
    return ExitCode.OK


def _cmd_bulk_import(args: argparse.Namespace) -> int:
    try:
        result = bulk_import(TrustStore.open(args.store), args.dir, args.password, kind=args.kind)
    except (StoreError, OSError) as exc:
        return _fail(exc)
    if args.json:
        emit_json(
            {"store": str(args.store), "imported": _entries(result.imported),
             "skipped": [str(x) for x in result.skipped]}
        )  # fmt: skip
        return ExitCode.OK
    for e in result.imported:
        print(f"imported into {e.store}: {e.certificate.subject}")
    unknown = f", {len(result.unknown)} of unknown kind (give --kind)" if result.unknown else ""
    print(
        f"{len(result.imported)} imported, "
        f"{len(result.skipped)} skipped (own cluster or no mapping){unknown}"
    )
    return ExitCode.OK
