"""A JSON-able description of a parsed file, for ``tvs tlv show --json`` and reports.

Owns the field names of that JSON; bytes are upper-case hex, times Unix seconds plus ISO 8601.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from typing import Any

from ..roles import role_label
from .elements import Element
from .model import SIGNATURE_ALGORITHM_EC, SIGNATURE_ALGORITHM_RSA, Record, TrustFile

__all__ = ["describe", "describe_record"]

_ALGORITHMS = {SIGNATURE_ALGORITHM_RSA: "RSA", SIGNATURE_ALGORITHM_EC: "EC"}


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex().upper()


def _version(v: tuple[int, int] | None) -> str | None:
    return None if v is None else f"{v[0]}.{v[1]}"


def _unknown(elements: tuple[Element, ...]) -> list[dict[str, Any]]:
    return [{"tag": e.tag, "offset": e.offset, "value": _hex(e.value)} for e in elements]


def describe_record(rec: Record) -> dict[str, Any]:
    cert = rec.cert
    ip = None
    if rec.ip_address is not None:
        ip = str(ipaddress.IPv4Address(rec.ip_address)) if len(rec.ip_address) == 4 else None
    return {
        "role": rec.role,
        "role_name": role_label(rec.role),
        "subject": rec.subject,
        "issuer": rec.issuer,
        "serial": _hex(rec.serial),
        "dns_name": rec.dns_name,
        "ip_address": ip if ip is not None else _hex(rec.ip_address),
        "public_key_length": len(rec.public_key),
        "cert_signature_length": len(rec.cert_signature),
        "certificate_length": None if rec.certificate is None else len(rec.certificate),
        "sha256": None if cert is None else cert.sha256.hex(),
        "not_after": None if cert is None else cert.not_valid_after.isoformat(),
        "cert_hash": _hex(rec.cert_hash),
        "hash_algorithm": rec.hash_algorithm,
        "unknown": _unknown(rec.unknown),
    }


def describe(f: TrustFile) -> dict[str, Any]:
    """Everything in ``f`` as plain JSON types."""
    h = f.header
    signer_rec = f.signer_record()
    return {
        "kind": f.kind,
        "version": _version(h.version),
        "header_length": h.header_length,
        "signer_version": _version(h.signer_version),
        "signer": {
            "name": h.signer.name,
            "serial": _hex(h.signer.serial),
            "issuer": h.signer.issuer,
        },
        "signer_record": None if signer_rec is None else f.records.index(signer_rec),
        "hash_algorithm": h.hash_algorithm.hash_name,
        "signature_algorithm": h.signature_algorithm,
        "signature_algorithm_name": _ALGORITHMS.get(h.signature_algorithm, "unknown"),
        "modulus_index": h.modulus_index,
        "signature_length": len(h.signature),
        "filename": h.filename,
        "timestamp": h.timestamp,
        "time": _dt.datetime.fromtimestamp(h.timestamp, _dt.UTC).isoformat(),
        "size": len(f.raw),
        "payload_length": len(f.payload),
        "records": [describe_record(r) for r in f.records],
        "unknown": _unknown(h.unknown),
    }
