"""``phone-emu capf``: one CAPF session as a phone, against our server or a real CUCM.

Like the open-source ``capfc``: TLS to ``--capf HOST:PORT`` (3804), the CAPF certificate pinned
with ``--trust`` (a certificate, or the CAPF records of a CTL/ITL) unless ``--insecure``, the
device name, and the phone's authentication: nothing (null string), ``--auth-string`` (as a
user types it), or ``--lsc``/``--mic`` with ``--key`` (proof by an existing certificate; a MIC
also sends SUDI data). The key the server asks for is made here; ``--out`` gets the new
certificate then its key (PEM). ``--lsc`` is also what a fetch returns and a delete removes.
Exit codes: 0 installed, fetched, deleted or nothing pending; 1 refused by the server (its
reason on stderr, or in ``--json``); 2 transport, TLS, protocol or usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import trio

from tvs.capf import CertType
from tvs.certs import Certificate, CertificateError, load_certificates, load_private_key
from tvs.cli.app import hostport
from tvs.cli.common import (
    CommandError,
    add_json_option,
    check_output_file,
    emit_json,
    read_input,
)
from tvs.exitcodes import ExitCode

from ..capf_client import (
    CapfClientConfig,
    CapfClientError,
    Credential,
    capf_enroll,
    trust_from_file,
)

__all__ = ["register"]

_hostport = hostport(3804)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "capf",
        help="enroll, fetch or delete an LSC with a CAPF (TLS 3804), as a phone does",
        description="One CAPF session as a phone. Exit 0 installed/fetched/deleted/nothing "
        "pending, 1 refused by the server, 2 transport/TLS/protocol error.",
    )
    p.add_argument("--capf", required=True, type=_hostport, metavar="HOST:PORT")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="CERT|ITL-FILE",
        help="pin the CAPF certificate: a PEM/DER certificate or a CTL/ITL's CAPF records",
    )
    trust.add_argument("--insecure", action="store_true", help="accept any CAPF certificate")
    p.add_argument("--device", required=True, metavar="SEP<MAC>", help="the device name")
    p.add_argument("--auth-string", default="", metavar="DIGITS", help="the auth string")
    cert = p.add_mutually_exclusive_group()
    cert.add_argument("--lsc", type=Path, metavar="FILE", help="existing LSC (authenticate)")
    cert.add_argument("--mic", type=Path, metavar="FILE", help="existing MIC (authenticate)")
    p.add_argument("--key", type=Path, metavar="FILE", help="the key of --lsc/--mic")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the new LSC then its key (PEM)")
    p.add_argument("--keylog", type=Path, metavar="FILE", help="write TLS secrets (SSLKEYLOGFILE)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per message")
    add_json_option(p)
    p.set_defaults(func=_cmd_capf)


def _load_cert(path: Path, option: str) -> Certificate:
    try:
        certs = load_certificates(read_input(path, option), source=f"{option} {path}")
    except CertificateError as exc:
        raise CommandError(str(exc)) from None
    if not certs:
        raise CommandError(f"{option} {path}: no certificate in the file")
    return certs[0]


def _config(args: argparse.Namespace) -> CapfClientConfig:
    trust: list[Certificate] = []
    for path in args.trust or ():
        try:
            trust.extend(trust_from_file(path))
        except ValueError as exc:
            raise CommandError(f"--trust {exc}") from None
    credential = None
    current = None
    option = "--lsc" if args.lsc is not None else "--mic"
    path = args.lsc if args.lsc is not None else args.mic
    if path is not None:
        cert = _load_cert(path, option)
        key_path = args.key if args.key is not None else path  # a PEM holding both
        try:
            key = load_private_key(read_input(key_path, "--key"))
        except CertificateError as exc:
            where = "--key" if args.key is not None else f"{option} (no --key)"
            raise CommandError(f"{where} {key_path}: {exc}") from None
        kind = CertType.LSC if args.lsc is not None else CertType.MIC
        credential = Credential(kind, cert.der, key)
        current = cert if args.lsc is not None else None
    elif args.key is not None:
        raise CommandError("--key needs --lsc or --mic")
    try:
        return CapfClientConfig(
            device_name=args.device,
            trust=trust,
            insecure=args.insecure,
            password=args.auth_string,
            credential=credential,
            sudi=credential if args.mic is not None else None,
            current_lsc=current,
            keylog=args.keylog,
            timeout=args.timeout,
        )
    except ValueError as exc:
        raise CommandError(f"--device {args.device}: {exc}") from None


def _cmd_capf(args: argparse.Namespace) -> int:
    check_output_file(args.keylog, "--keylog")
    config = _config(args)
    host, port = args.capf
    try:
        result = trio.run(capf_enroll, host, port, config)
    except CapfClientError as exc:
        if args.json:
            emit_json({"device": config.device_name, "result": "error",
                       "reason_code": exc.reason_code, "why": str(exc)})  # fmt: skip
        raise CommandError(f"{exc} [{exc.reason_code}]") from None
    if args.out is not None and result.certificate is not None and result.key is not None:
        try:
            args.out.write_bytes(result.pem())
            args.out.chmod(0o600)
        except OSError as exc:
            raise CommandError(f"--out {args.out}: {exc.strerror or exc}") from None
    if args.json:
        data = result.to_dict()
        data["out"] = str(args.out) if args.out is not None and result.key is not None else None
        emit_json(data)
    else:
        line = f"{result.device_name}: {result.result} ({result.reason_code})"
        if result.certificate is not None:
            line += f" {result.certificate.subject}"
        print(line)
        if result.result == "refused":
            print(f"refused: {result.why} (END_SESSION reason {result.reason})", file=sys.stderr)
    return ExitCode.INVALID if result.result == "refused" else ExitCode.OK
