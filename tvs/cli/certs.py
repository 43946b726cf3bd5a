"""``tvs certs generate`` and ``tvs certs show``: the lab PKI from a recipe, and what it holds.

A thin shell over :mod:`tvs.pki`. Prints one row per certificate (name, status, path,
subject, issuer, serial hex), as a table or ``--json``. Exit codes: 0 done, 2 bad recipe,
unusable output directory, or an unreadable key or certificate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..exitcodes import ExitCode
from ..pki import KEY_TYPES, Identity, LabPki, PkiError, Recipe, generate
from .common import CommandError

__all__ = ["register"]

EXIT_OK = ExitCode.OK


def register(sub: Any) -> None:
    certs = sub.add_parser("certs", help="lab PKI: generate and show keys and certificates")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)

    p = certs_sub.add_parser(
        "generate",
        help="make the lab's keys and certificates from a recipe (keeps existing keys)",
        description="Make every key and certificate the recipe lists under --out. Existing "
        "keys are kept (and their certificates, while they still match) unless --overwrite.",
    )
    _add_recipe(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing keys and certificates"
    )
    p.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        help="use this key type for every new key, whatever the recipe says",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_generate)

    p = certs_sub.add_parser("show", help="list the certificates in a lab PKI directory")
    p.add_argument("dir", type=Path, metavar="DIR", help="a directory made by `certs generate`")
    p.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="read exactly this recipe's certificates (default: whatever DIR holds)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_show)


def _add_recipe(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="recipe TOML (default: the packaged lab recipe, same as certs/lab.toml)",
    )


def _fail(message: str) -> int:
    raise CommandError(message)


def _cmd_generate(args: argparse.Namespace) -> int:
    try:
        recipe = Recipe.load(args.recipe) if args.recipe else Recipe.default()
        if args.key_type:
            recipe = recipe.with_key_type(args.key_type)
        lab = generate(recipe, args.out, overwrite=args.overwrite)
    except PkiError as exc:
        return _fail(str(exc))
    rows = [_row(lab, name, ident) for name, ident in lab.identities()]
    if args.json:
        _print_json(lab, rows, recipe=str(args.recipe) if args.recipe else "default")
    else:
        made = sum(r["status"] != "kept" for r in rows)
        _print_table(rows, f"{lab.root}: {made} of {len(rows)} certificates made")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        recipe = Recipe.load(args.recipe) if args.recipe else None
        lab = LabPki.load(args.dir, recipe)
    except PkiError as exc:
        return _fail(str(exc))
    rows = [_row(lab, name, ident) for name, ident in lab.identities()]
    for row in rows:
        del row["status"]
    if args.json:
        _print_json(lab, rows, recipe=str(args.recipe) if args.recipe else None)
    else:
        _print_table(rows, f"{lab.root}: {len(rows)} certificates")
    return EXIT_OK


def _status(lab: LabPki, ident: Identity) -> str:
    if ident.key_path in lab.written:
        return "created"
    if ident.cert_path in lab.written:
        return "reissued"
    return "kept"


def _row(lab: LabPki, name: str, ident: Identity) -> dict[str, Any]:
    cert = ident.cert
    return {
        "name": name,
        "status": _status(lab, ident),
        "path": str(ident.cert_path),
        "key_path": str(ident.key_path),
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial_hex,
        "key_type": ident.key_type,
        "not_after": cert.not_valid_after.isoformat(),
        "sha256": cert.sha256.hex(),
    }


def _print_json(lab: LabPki, rows: list[dict[str, Any]], *, recipe: str | None) -> None:
    doc = {"out": str(lab.root), "recipe": recipe, "certificates": rows}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_table(rows: list[dict[str, Any]], title: str) -> None:
    console = Console(width=None if sys.stdout.isatty() else 220, highlight=False)
    table = Table(title=title, title_justify="left")
    columns = ["file", "status", "subject", "issuer", "serial", "key_type"]
    if rows and "status" not in rows[0]:
        columns.remove("status")
    for col in columns:
        table.add_column(col.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(f"{row['name']}.pem" if c == "file" else row[c] for c in columns))
    console.print(table)
