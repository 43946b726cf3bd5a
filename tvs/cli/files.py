"""``tvs tlv`` and ``tvs sgn``: show, verify, build and sign CTL/ITL ``.tlv`` and ``.sgn`` files.

A thin shell over :mod:`tvs.tlv`: reads files, calls the codec, prints text or ``--json``.
Exit codes: 0 success / valid, 1 invalid (signature, signer not found, signer not trusted), 2
unreadable input (missing file, malformed file, bad certificate or key, bad arguments).
``verify`` reports through :func:`tvs.tlv.check_file` (who is trusted is library policy).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from ..certs import Certificate, CertificateError, load_certificates, load_private_key
from ..exitcodes import ExitCode
from ..roles import parse_role, role_label
from ..tlv import (
    RecordSpec,
    TlvError,
    TrustFile,
    build_trust_list,
    check_file,
    describe,
    matches_signer,
    parse_file,
    sign_file,
)

__all__ = ["register"]

EXIT_OK = ExitCode.OK
EXIT_UNREADABLE = ExitCode.ERROR

_DIGESTS = ("sha1", "sha256", "sha512")


class _Unreadable(Exception):
    """Input the command cannot use; becomes exit code 2."""


def register(sub: Any) -> None:
    tlv = sub.add_parser("tlv", help="CTL/ITL .tlv files: show, verify, build")
    tlv_sub = tlv.add_subparsers(dest="tlv_command", metavar="ACTION", required=True)

    p = tlv_sub.add_parser("show", help="print a .tlv (or .sgn) file's header and records")
    _add_file(p)
    p.set_defaults(func=_cmd_show)

    p = tlv_sub.add_parser("verify", help="check a .tlv file's signature (0 valid, 1 invalid)")
    _add_file(p)
    _add_trust(p)
    p.set_defaults(func=_cmd_verify)

    p = tlv_sub.add_parser("build", help="build and sign a CTL/ITL")
    p.add_argument("--out", required=True, type=Path, help="file to write")
    _add_signer(p)
    p.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="ROLE=CERT",
        help="a record: role (SAST, CCM, CCM+TFTP, TFTP, CAPF, SRST, FIREWALL, APP-SERVER, CA, "
        "TVS, VPN or a number) and a PEM/DER certificate file; repeat for more; none gives a "
        "blank trust list",
    )
    p.add_argument(
        "--filename",
        help="filename written in the header (default: the --out file's name)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_build)

    sgn = sub.add_parser("sgn", help=".sgn signed files: sign, show, verify")
    sgn_sub = sgn.add_subparsers(dest="sgn_command", metavar="ACTION", required=True)

    p = sgn_sub.add_parser("sign", help="wrap FILE in a signed .sgn header")
    _add_signer(p)
    p.add_argument("--out", required=True, type=Path, help="the .sgn file to write")
    p.add_argument("--filename", help="filename in the header (default: the --out file's name)")
    p.add_argument("file", type=Path, metavar="FILE", help="the file to sign")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_sign)

    p = sgn_sub.add_parser("show", help="print a .sgn file's header")
    _add_file(p)
    p.add_argument("--payload-out", type=Path, help="also write the signed payload here")
    p.set_defaults(func=_cmd_show)

    p = sgn_sub.add_parser("verify", help="check a .sgn file's signature (0 valid, 1 invalid)")
    _add_file(p)
    _add_trust(p)
    p.set_defaults(func=_cmd_verify)


def _add_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust",
        action="extend",
        nargs="+",
        default=[],
        type=Path,
        metavar="CERT",
        help="trusted certificate file(s) (PEM, several per file allowed, or DER): the file is "
        "valid only if its signer IS one of them (same serial and issuer, and the signature "
        "verifies with its key)",
    )
    p.add_argument(
        "--trust-list",
        type=Path,
        metavar="FILE.tlv",
        help="a CTL/ITL the phone holds: the file is valid only if its signer is a record of it "
        "with a role allowed to sign this kind of file (SAST for CTL/ITL, TFTP or CCM+TFTP for "
        "signed configuration). Without --trust or --trust-list only self-consistency is "
        "checked (the file's own signer record)",
    )


def _add_signer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--signer", required=True, type=Path, metavar="CERT", help="signer certificate")
    p.add_argument("--key", required=True, type=Path, metavar="KEY", help="signer private key")
    p.add_argument("--digest", choices=_DIGESTS, default="sha1", help="hash (default sha1)")
    p.add_argument("--timestamp", type=int, help="header time, Unix seconds (default: now)")
    p.add_argument(
        "--signer-version",
        metavar="MAJOR.MINOR",
        help="write signer version tag 28 (1.0, or 1.1 = EC capable; EC signers default to 1.1)",
    )


# --- helpers --------------------------------------------------------------------------------
def _err(args: argparse.Namespace, message: str) -> None:
    name = " ".join(
        x
        for x in (
            args.command,
            getattr(args, "tlv_command", None) or getattr(args, "sgn_command", None),
        )
        if x
    )
    print(f"tvs {name}: error: {message}", file=sys.stderr)


def _emit(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Unreadable(f"{path}: {exc.strerror or exc}") from None


def _load_file(path: Path) -> TrustFile:
    data = _read(path)
    try:
        return parse_file(data)
    except TlvError as exc:
        raise _Unreadable(f"{path}: {type(exc).__name__}: {exc}") from None


def _load_cert(path: Path) -> Certificate:
    try:
        return Certificate.load(path)
    except (OSError, CertificateError) as exc:
        raise _Unreadable(f"{path}: {exc}") from None


def _load_trust(paths: list[Path]) -> list[Certificate]:
    out: list[Certificate] = []
    for path in paths:
        try:
            out += load_certificates(_read(path), source=str(path))
        except CertificateError as exc:
            raise _Unreadable(str(exc)) from None
    return out


def _signer_args(args: argparse.Namespace) -> dict[str, Any]:
    signer = _load_cert(args.signer)
    try:
        key = load_private_key(_read(args.key))
    except CertificateError as exc:
        raise _Unreadable(f"{args.key}: {exc}") from None
    version = None
    if args.signer_version:
        major, _, minor = args.signer_version.partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise _Unreadable(f"--signer-version {args.signer_version!r}: expected MAJOR.MINOR")
        version = (int(major), int(minor))
    return {
        "signer": signer,
        "key": key,
        "digest": args.digest,
        "timestamp": args.timestamp,
        "signer_version": version,
    }


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _Unreadable(f"{path}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        return int(body())
    except _Unreadable as exc:
        _err(args, str(exc))
        if getattr(args, "json", False):
            path = getattr(args, "file", None) or getattr(args, "out", None)
            _emit({"file": None if path is None else str(path), "ok": False, "error": str(exc)})
        return EXIT_UNREADABLE
    except TlvError as exc:
        _err(args, f"{type(exc).__name__}: {exc}")
        if getattr(args, "json", False):
            path = getattr(args, "file", None) or getattr(args, "out", None)
            _emit(
                {
                    "file": None if path is None else str(path),
                    "ok": False,
                    "error": str(exc),
                    "error_type": type(exc).__name__,
                }
            )
        return EXIT_UNREADABLE


# --- commands -------------------------------------------------------------------------------
def _cmd_show(args: argparse.Namespace) -> int:
    def body() -> int:
        f = _load_file(args.file)
        payload_out = getattr(args, "payload_out", None)
        if payload_out is not None:
            _write(payload_out, f.payload)
        if args.json:
            _emit({"file": str(args.file), **describe(f)})
        else:
            _print_file(args.file, f)
        return EXIT_OK

    return _run(args, body)


def _print_file(path: Path, f: TrustFile) -> None:
    d = describe(f)
    h = f.header
    print(f"{path}: {d['kind']} file, {d['size']} bytes, header {h.header_length} bytes")
    print(f"  version         {d['version']}")
    if d["signer_version"]:
        print(f"  signer version  {d['signer_version']}")
    print(f"  filename        {h.filename}")
    print(f"  timestamp       {h.timestamp} ({d['time']})")
    print(f"  signer          {h.signer.name}")
    print(f"  signer serial   {d['signer']['serial']}")
    print(f"  signer issuer   {h.signer.issuer}")
    print(
        f"  signature       {d['signature_algorithm_name']} (code {h.signature_algorithm}), "
        f"{d['hash_algorithm']}, {d['signature_length']} bytes, modulus index {h.modulus_index}"
    )
    for el in h.unknown:
        print(f"  unknown tag {el.tag} at offset {el.offset}: {len(el.value)} bytes")
    if d["kind"] == "sgn":
        print(f"  payload         {len(f.payload)} bytes")
        return
    print(f"  records         {len(f.records)}")
    for i, rec in enumerate(d["records"]):
        mark = " (signer)" if d["signer_record"] == i else ""
        print(f"  [{i}] {rec['role_name']} (role {rec['role']}){mark}")
        print(f"      subject {rec['subject']}")
        print(f"      issuer  {rec['issuer']}")
        print(f"      serial  {rec['serial']}")
        if rec["dns_name"]:
            print(f"      dns     {rec['dns_name']}")
        if rec["ip_address"]:
            print(f"      ip      {rec['ip_address']}")
        if rec["sha256"]:
            print(f"      sha256  {rec['sha256']}")


def _cmd_verify(args: argparse.Namespace) -> int:
    def body() -> int:
        trusted = _load_trust(args.trust)
        trust_list = None
        if args.trust_list is not None:
            trust_list = _load_file(args.trust_list)
            if trust_list.kind != "tlv":
                raise _Unreadable(f"--trust-list {args.trust_list}: not a CTL/ITL (.tlv) file")
        f = _load_file(args.file)
        report = check_file(f, trusted=trusted, trust_list=trust_list)
        if args.json:
            _emit({"file": str(args.file), "kind": f.kind, **report.to_dict()})
        else:
            print(f"{args.file}: {report.summary()}")
        return ExitCode.OK if report.valid else ExitCode.INVALID

    return _run(args, body)


def _cmd_build(args: argparse.Namespace) -> int:
    def body() -> int:
        specs: list[RecordSpec] = []
        for item in args.record:
            role_text, sep, cert_path = item.partition("=")
            if not sep or not cert_path:
                raise _Unreadable(f"--record {item!r}: expected ROLE=CERT")
            try:
                role = parse_role(role_text)
            except ValueError as exc:
                raise _Unreadable(f"--record {item!r}: {exc}") from None
            specs.append(RecordSpec(role=int(role), certificate=_load_cert(Path(cert_path))))
        signing = _signer_args(args)
        filename = args.filename or args.out.name
        data = build_trust_list(specs, filename=filename, **signing)
        _write(args.out, data)
        signer: Certificate = signing["signer"]
        in_file = any(matches_signer(parse_file(data), s.certificate) for s in specs)
        summary = {
            "file": str(args.out),
            "ok": True,
            "size": len(data),
            "filename": filename,
            "records": [
                {"role": s.role, "role_name": role_label(s.role), "subject": s.certificate.subject}
                for s in specs
            ],
            "signer": signer.subject,
            "signer_in_records": in_file,
            "digest": args.digest,
        }
        if args.json:
            _emit(summary)
        else:
            print(
                f"wrote {args.out} ({len(data)} bytes, {len(specs)} records, "
                f"signed by {signer.subject} with {args.digest})"
            )
            if not in_file:
                print("note: the signer is not among the records; verify needs --trust")
        return EXIT_OK

    return _run(args, body)


def _cmd_sign(args: argparse.Namespace) -> int:
    def body() -> int:
        payload = _read(args.file)
        signing = _signer_args(args)
        filename = args.filename or args.out.name
        data = sign_file(payload, filename=filename, **signing)
        _write(args.out, data)
        summary = {
            "file": str(args.out),
            "ok": True,
            "size": len(data),
            "filename": filename,
            "payload_length": len(payload),
            "signer": signing["signer"].subject,
            "digest": args.digest,
            "time": _dt.datetime.fromtimestamp(
                parse_file(data).header.timestamp, _dt.UTC
            ).isoformat(),
        }
        if args.json:
            _emit(summary)
        else:
            print(f"wrote {args.out} ({len(data)} bytes, payload {len(payload)} bytes)")
        return EXIT_OK

    return _run(args, body)
