"""``tvs decode`` and ``tvs encode``: TVS messages from and to hex.

``decode`` takes plain hex, or pasted CUCM TVS trace / phone console text with ``HEX_DUMP``
rows (a dump cut short is decoded as far as it goes); bytes starting with 0x55 are CAPF
messages (TCP 3804), decoded by :mod:`tvs.capf` (TVS starts with 0x57). ``encode`` builds a
QUERY_CERT_REQ or VERIFY_REQUEST and prints it as one line of lower-case hex.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..capf.describe import CapfInspection, capf_to_dict, format_capf, inspect_capf, is_capf
from ..exitcodes import ExitCode
from ..hexdump import extract_hex_dumps, parse_hex
from ..roles import role_names
from ..wire import (
    DISCRIMINATOR,
    Inspection,
    QueryCertRequest,
    QueryTags,
    Tag,
    VerifyRequest,
    describe_partial_value,
    encode_message,
    format_message,
    inspect_message,
    message_to_dict,
    type_name,
)
from .common import CommandError, add_json_option, emit_json, load_certificate_chain

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decode",
        help="decode a TVS (or CAPF) message from hex or from pasted trace lines",
        description="Decode a TVS message given as hex, or every TVS message in pasted CUCM "
        "TVS trace / phone console text containing HEX_DUMP byte rows. Bytes starting with "
        "0x55 are decoded as CAPF (TCP 3804) messages, 0x57 as TVS.",
    )
    p.add_argument("input", nargs="?", default="-", help="hex string, or - for standard input")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_decode)

    e = sub.add_parser("encode", help="build a TVS request and print it as hex")
    esub = e.add_subparsers(dest="kind", metavar="KIND", required=True)
    q = esub.add_parser("query", help="QUERY_CERT_REQ for a file signer")
    q.add_argument("--device", required=True, help="device name, e.g. CP-8861-SEPB000B4BA0AEE")
    q.add_argument("--subject", required=True, help="signer subject, CUCM style")
    q.add_argument("--issuer", required=True, help="signer issuer, CUCM style")
    q.add_argument("--serial", required=True, help="signer serial number in hex")
    q.add_argument("--id", type=int, default=1001, help="request id (default 1001)")
    q.add_argument(
        "--query-tags", default="4,5", help="tags carrying issuer,serial: 4,5 (default) or 5,6"
    )
    add_json_option(q, "the request (hex and decoded fields)")
    q.set_defaults(func=_encode_query)
    v = esub.add_parser("verify", help="VERIFY_REQUEST for a certificate")
    v.add_argument("--device", required=True)
    v.add_argument("--cert", required=True, type=Path, help="certificate file, PEM or DER")
    v.add_argument("--id", type=int, default=1001)
    add_json_option(v, "the request (hex and decoded fields)")
    v.set_defaults(func=_encode_verify)


def _fail(message: str) -> int:
    raise CommandError(message)


def _print_request(msg: QueryCertRequest | VerifyRequest, data: bytes, as_json: bool) -> int:
    if as_json:
        emit_json({"hex": data.hex(), "length": len(data), "message": message_to_dict(msg)})
    else:
        print(data.hex())
    return ExitCode.OK


def _encode_query(args: argparse.Namespace) -> int:
    try:
        tags = QueryTags.parse(args.query_tags)
    except ValueError as exc:
        return _fail(f"--query-tags {args.query_tags}: {exc}")
    try:
        serial = parse_hex(args.serial)
    except ValueError as exc:
        return _fail(f"--serial {args.serial}: {exc}")
    msg = QueryCertRequest(
        device=args.device,
        subject=args.subject,
        issuer=args.issuer,
        serial=serial,
        request_id=args.id,
    )
    return _print_request(msg, encode_message(msg, query_tags=tags), args.json)


def _encode_verify(args: argparse.Namespace) -> int:
    cert = load_certificate_chain(args.cert)[0]
    msg = VerifyRequest(device=args.device, certificate=cert.der, request_id=args.id)
    return _print_request(msg, encode_message(msg), args.json)


def _inspection_dict(ins: Inspection, label: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"label": label, "bytes": ins.length, "complete": ins.complete}
    if ins.message is not None:
        out["message"] = message_to_dict(ins.message)
    elif ins.header is not None:
        h = ins.header
        out["header"] = {
            "discriminator": h.discriminator,
            "version": h.version,
            "type": type_name(h.type),
            "type_code": h.type,
            "reserved": h.reserved,
            "request_id": h.request_id,
            "length": h.length,
        }
        out["elements"] = [
            {"tag": e.tag, "length": len(e.value), "value": describe_partial_value(e.tag, e.value)}
            for e in ins.elements
        ]
        if ins.cut_element is not None:
            tag, declared, present = ins.cut_element
            out["cut_element"] = {
                "tag": tag,
                "declared_length": declared,
                "present": len(present),
                "value": describe_partial_value(tag, present),
            }
    if ins.error:
        out["note"] = ins.error
    return out


def _tag_name(tag: int) -> str:
    try:
        return Tag(tag).name.lower().replace("_", " ")
    except ValueError:
        return f"tag {tag}"


def _print_inspection(d: dict[str, Any]) -> None:
    if d.get("label"):
        print(f"== {d['label']} ({d['bytes']} bytes)")
    if "header" in d:
        h = d["header"]
        print(f"type:        {h['type']} ({h['type_code']})")
        print(f"request id:  {h['request_id']}")
        print(f"reserved:    0x{h['reserved']:02x}")
        print(f"length:      {h['length']}")
        for el in d["elements"]:
            name = _tag_name(el["tag"])
            value = el["value"]
            if el["tag"] == Tag.ROLES:
                value = ", ".join(role_names(bytes.fromhex(value)))
            print(f"{name + ':':<12} {value}")
        cut = d.get("cut_element")
        if cut:
            print(
                f"{_tag_name(cut['tag']) + ':':<12} {cut['value']}... "
                f"(cut: {cut['present']} of {cut['declared_length']} bytes)"
            )
    if d.get("note"):
        print(f"note:        {d['note']}")


def _decode(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.input == "-" else args.input
    results: list[tuple[Inspection | CapfInspection, str | None]] = []
    if "HEX_DUMP" in text or "byte dump" in text:
        for dump in extract_hex_dumps(text):
            if dump.data[:1] == bytes([DISCRIMINATOR]):
                results.append((inspect_message(dump.data), dump.label or None))
            elif is_capf(dump.data):
                results.append((inspect_capf(dump.data), dump.label or None))
        if not results:
            return _fail("input: no TVS (0x57) or CAPF (0x55) message found in the dumps")
    else:
        try:
            data = parse_hex(text)
        except ValueError as exc:
            return _fail(f"input: cannot read it as hex: {exc}")
        if not data:
            return _fail("input: empty")
        results.append((inspect_capf(data) if is_capf(data) else inspect_message(data), None))
    dicts = [_result_dict(ins, label) for ins, label in results]
    if args.json:
        json.dump(dicts if len(dicts) > 1 else dicts[0], sys.stdout, indent=2)
        print()
    else:
        for i, (ins, label) in enumerate(results):
            if i:
                print()
            if isinstance(ins, CapfInspection):
                if label:
                    print(f"== {label} ({ins.length} bytes)")
                if ins.message is not None:
                    for line in format_capf(ins.message):
                        print(line)
                else:
                    print("protocol:    CAPF")
                    print(f"note:        {ins.error}")
                continue
            if ins.message is not None:
                if label:
                    print(f"== {label} ({ins.length} bytes)")
                for line in format_message(ins.message):
                    print(line)
                if ins.error:
                    print(f"note:        {ins.error}")
            else:
                _print_inspection(dicts[i])
    readable = all(
        ins.message is not None if isinstance(ins, CapfInspection) else ins.readable
        for ins, _ in results
    )
    return ExitCode.OK if readable else ExitCode.INVALID


def _result_dict(ins: Inspection | CapfInspection, label: str | None) -> dict[str, Any]:
    if not isinstance(ins, CapfInspection):
        return _inspection_dict(ins, label)
    out: dict[str, Any] = {"label": label, "bytes": ins.length, "complete": ins.message is not None}
    if ins.message is not None:
        out["message"] = capf_to_dict(ins.message)
    else:
        out["protocol"] = "capf"
        out["note"] = ins.error
    return out
