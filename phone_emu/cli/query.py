"""``phone-emu query``: ask a TVS (ours or a real CUCM) about one certificate, as a phone does.

VERIFY_REQUEST with ``--cert FILE``; QUERY_CERT_REQ with ``--subject/--issuer/--serial`` or
``--signer-of FILE.tlv|FILE.sgn`` (the file's signer fields). The TVS certificate is pinned
with ``--trust`` (a certificate, or the TVS-role records of an ITL) unless ``--insecure``.
Prints the decoded answer (``--json`` for machine-readable). Exit codes: 0 valid, 1 invalid,
2 transport, TLS or protocol error (and usage errors).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import trio

from tvs.certs import Certificate, CertificateError, PrivateKey, load_certificates, load_private_key
from tvs.cli.app import hostport
from tvs.cli.common import CommandError, check_output_file
from tvs.exitcodes import ExitCode
from tvs.roles import Role
from tvs.tlv import TlvError, parse_file, parse_trust_list
from tvs.wire import (
    Message,
    QueryCertRequest,
    QueryCertResponse,
    QueryTags,
    Status,
    VerifyRequest,
    VerifyResponse,
    format_message,
    message_to_dict,
)

from ..tvs_client import TvsClientConfig, TvsClientError, TvsExchange, tvs_exchange
from .boot import add_tls_options

__all__ = ["register"]

DEFAULT_DEVICE = "CP-8861-SEP000000000000"


class _UsageError(Exception):
    pass


_hostport = hostport(2445)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "query",
        help="ask a TVS about a certificate (VERIFY or QUERY_CERT), over TLS",
        description="One TLS connection to a TVS, one request, the decoded answer. "
        "Exit 0 valid, 1 invalid, 2 transport/TLS/protocol error.",
    )
    p.add_argument("--tvs", required=True, type=_hostport, metavar="HOST:PORT")
    p.add_argument("--lsc", type=Path, metavar="CERT", help="client certificate (phone LSC)")
    p.add_argument("--key", type=Path, metavar="KEY", help="the client certificate's key")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="CERT|ITL-FILE",
        help="pin the TVS certificate: a PEM/DER certificate or an ITL's TVS records (repeat)",
    )
    trust.add_argument("--insecure", action="store_true", help="accept any TVS certificate")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--cert", type=Path, metavar="FILE", help="VERIFY_REQUEST this certificate")
    what.add_argument("--subject", help="QUERY_CERT_REQ: subject (with --issuer and --serial)")
    what.add_argument(
        "--signer-of", type=Path, metavar="FILE", help="QUERY_CERT_REQ for a .tlv/.sgn signer"
    )
    p.add_argument("--issuer", help="QUERY_CERT_REQ: issuer name (CUCM ; or RFC 4514 , style)")
    p.add_argument("--serial", help="QUERY_CERT_REQ: serial number in hex")
    p.add_argument("--device", help="device name (default: the LSC's CN, else CP-8861-SEP0...)")
    p.add_argument("--id", type=int, default=1001, help="request id (1001, as in the seed)")
    p.add_argument("--query-tags", default="4,5", help="issuer/serial tags: 4,5 (default) or 5,6")
    add_tls_options(p)
    p.add_argument("--keylog", type=Path, metavar="FILE", help="TLS secrets (SSLKEYLOGFILE)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_query)


def _pinned(paths: list[Path]) -> tuple[Certificate, ...]:
    out: list[Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _UsageError(f"{path}: {exc.strerror or exc}") from None
        try:
            out += load_certificates(data, source=str(path))
            continue
        except CertificateError:
            pass
        try:
            itl = parse_trust_list(data)
        except TlvError as exc:
            raise _UsageError(
                f"{path}: neither a certificate nor an ITL/CTL file ({exc})"
            ) from None
        tvs = [r.cert for r in itl.records_with_role(Role.TVS)]
        out += [c for c in tvs if c is not None]  # none: every handshake fails, as on a phone
    return tuple(out)


def _serial(text: str) -> bytes:
    t = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if len(t) % 2:
        t = "0" + t
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise _UsageError(f"--serial must be hex, not {text!r}") from None


def _request(args: argparse.Namespace, device: str) -> Message:
    if args.cert is not None:
        try:
            cert = Certificate.load(args.cert)
        except (OSError, CertificateError) as exc:
            raise _UsageError(f"--cert: {exc}") from None
        return VerifyRequest(device=device, certificate=cert.der, request_id=args.id)
    if args.signer_of is not None:
        try:
            signer = parse_file(args.signer_of.read_bytes()).header.signer
        except (OSError, TlvError) as exc:
            raise _UsageError(f"--signer-of {args.signer_of}: {exc}") from None
        return QueryCertRequest.for_signer(device, signer, request_id=args.id)
    if not args.issuer or not args.serial:
        raise _UsageError("--subject needs --issuer and --serial")
    return QueryCertRequest(
        device=device,
        subject=args.subject,
        issuer=args.issuer,
        serial=_serial(args.serial),
        request_id=args.id,
    )


def _client_config(args: argparse.Namespace) -> tuple[TvsClientConfig, Certificate | None]:
    lsc: Certificate | None = None
    key: PrivateKey | None = None
    if (args.lsc is None) != (args.key is None):
        raise _UsageError("--lsc and --key go together")
    if args.lsc is not None:
        try:
            lsc = Certificate.load(args.lsc)
            key = load_private_key(args.key)
        except (OSError, CertificateError) as exc:
            raise _UsageError(f"client certificate: {exc}") from None
    try:
        tags = QueryTags.parse(args.query_tags)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    config = TvsClientConfig(
        lsc=lsc,
        key=key,
        pinned=_pinned(args.trust or []),
        insecure=args.insecure,
        legacy_tls=args.legacy_tls,
        tls_max=args.tls_max,
        timeout=args.timeout,
        connect_timeout=args.timeout,
        keylog=args.keylog,
        query_tags=tags,
    )
    return config, lsc


def _print(exchange: TvsExchange, as_json: bool) -> None:
    resp = exchange.response
    server = exchange.server_certificate
    if as_json:
        out = message_to_dict(resp)
        out["tls"] = {
            "cipher": exchange.cipher,
            "version": exchange.tls_version,
            "server_subject": server.subject if server else None,
            "server_sha256": server.sha256.hex() if server else None,
        }
        print(json.dumps(out, indent=2))
        return
    if server is not None:
        print(f"tvs:         {server.subject} ({exchange.tls_version}, {exchange.cipher})")
    for line in format_message(resp):
        print(line)


def _cmd_query(args: argparse.Namespace) -> int:
    check_output_file(args.keylog, "--keylog")
    try:
        config, lsc = _client_config(args)
        device = args.device or (lsc.common_name if lsc and lsc.common_name else DEFAULT_DEVICE)
        request = _request(args, device)
    except _UsageError as exc:
        raise CommandError(str(exc)) from None
    host, port = args.tvs
    try:
        exchange = trio.run(tvs_exchange, host, port, request, config)
    except TvsClientError as exc:
        raise CommandError(f"TVS {host}:{port}: {type(exc).__name__}: {exc}") from None
    _print(exchange, args.json)
    resp = exchange.response
    if not isinstance(resp, QueryCertResponse | VerifyResponse):
        raise CommandError(f"TVS {host}:{port}: answered with a non-response message")
    return ExitCode.OK if resp.status == Status.VALID else ExitCode.INVALID
