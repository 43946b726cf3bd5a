"""``phone-emu boot`` and ``phone-emu show``: boot one emulated phone, show its flash.

``boot`` loads the phone's state directory, runs the boot sequence against a TFTP server
(DHCP option 150) and prints the result: a summary (default), console lines in the 8861's
style (``--log-format phone``) or JSON (``--json``). Exit codes: 0 every step passed, 1 the
phone rejected something, 2 usage or transport error. ``show`` prints the trust lists, the
cached TVS answers and the configuration held in a state directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from tvs.certs import CertificateError
from tvs.cli.app import hostport
from tvs.cli.common import (
    CommandError,
    add_logging_options,
    check_output_file,
    describe_error,
    load_identity,
    setup_logging,
)
from tvs.exitcodes import ExitCode
from tvs.roles import role_label
from tvs.tlsconfig import TLS_MAX_VERSIONS
from tvs.wire import QueryTags

from ..phone import (
    BootOptions,
    BootResult,
    IdentityError,
    NetworkOptions,
    Phone,
    PhoneIdentity,
    StateError,
    StateStore,
    boot_phone,
    console_lines,
)
from ..phone.persist import LoadedState
from ..phone.values import CAPF_INTERVAL
from ..tvs_client import TvsClientConfig
from .lab_options import add_fetch_options, fetch_options

__all__ = ["register"]

EXIT_OK = ExitCode.OK


_hostport = hostport(69)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "boot",
        help="boot one emulated phone: CTL, ITL, configuration, secure SIP handshake",
        description="Fetch CTL, ITL and the signed configuration (HTTP 6970 first, TFTP per file "
        "when HTTP fails; --fetch), validate them "
        "(first use, held signers, TVS), apply the configuration and prove a TLS handshake "
        "to the CallManager's secure SIP port. Exit 0 all passed, 1 the phone rejected "
        "something, 2 usage or transport error.",
    )
    p.add_argument(
        "--tftp",
        required=True,
        type=_hostport,
        metavar="HOST:PORT",
        help="TFTP server (DHCP option 150); port 69 when omitted",
    )
    p.add_argument(
        "--state",
        required=True,
        type=Path,
        metavar="DIR",
        help="the phone's flash: trust lists, TVS answers, configuration",
    )
    p.add_argument("--lsc", required=True, type=Path, metavar="CERT", help="the phone's LSC")
    p.add_argument("--key", required=True, type=Path, metavar="KEY", help="the LSC's key")
    p.add_argument("--mac", help="MAC address (default: the one in the LSC's subject)")
    p.add_argument("--model", help="phone model (default: from the LSC's subject, else 8861)")
    p.add_argument(
        "--no-register",
        action="store_true",
        help="skip the secure SIP handshake (reported as skipped, not passed)",
    )
    add_tls_options(p)
    p.add_argument("--json", action="store_true", help="print the boot result as JSON")
    p.add_argument(
        "--log-format",
        choices=("summary", "phone"),
        default="summary",
        help="summary (default) or the phone's console lines (to stderr with --json)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="TVS and SIP connect/handshake/response deadline (default 5)",
    )
    p.add_argument(
        "--tftp-timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="TFTP retransmission timeout (default 1, 5 retries)",
    )
    add_fetch_options(p)
    p.add_argument("--query-tags", default="4,5", help="issuer/serial tags: 4,5 (default) or 5,6")
    p.add_argument("--keylog", type=Path, metavar="FILE", help="TLS secrets (SSLKEYLOGFILE)")
    add_logging_options(p, formats=None, default_level="warning")
    p.add_argument(
        "--capf-auth-string",
        metavar="DIGITS",
        help="the CAPF auth string a user types on the phone (used when the configuration "
        "asks for one, capfAuthMode 1)",
    )
    p.add_argument(
        "--capf-interval",
        type=float,
        default=CAPF_INTERVAL,
        metavar="S",
        help=f"wait between CAPF attempts (3 at most; 30 s on a real phone; default "
        f"{CAPF_INTERVAL})",
    )
    p.set_defaults(func=_cmd_boot)

    s = sub.add_parser(
        "show",
        help="print a phone's trust lists, cached TVS answers and configuration",
        description="Read a phone state directory (as written by phone-emu boot). Exit 0, "
        "2 when the directory does not exist.",
    )
    s.add_argument("--state", required=True, type=Path, metavar="DIR")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_cmd_show)

    e = sub.add_parser(
        "erase",
        help="erase a phone's trust lists (what Settings > Security > Reset does)",
        description="Erase the CTL and/or ITL a phone holds (both when neither --ctl nor --itl "
        "is given), as a user does on a real phone; --all also forgets the cached TVS answers "
        "and the configuration. The next boot then trusts the CTL/ITL it is given on first "
        "use. Exit 0, 2 when the state directory does not exist.",
    )
    e.add_argument("--state", required=True, type=Path, metavar="DIR", help="the phone's flash")
    e.add_argument("--ctl", action="store_true", help="erase the CTL")
    e.add_argument("--itl", action="store_true", help="erase the ITL")
    e.add_argument("--all", action="store_true", help="CTL, ITL, TVS answers and configuration")
    e.add_argument("--json", action="store_true", help="print what was erased as JSON")
    e.set_defaults(func=_cmd_erase)


def _error(msg: str) -> int:
    raise CommandError(msg)


def add_tls_options(p: argparse.ArgumentParser) -> None:
    """``--legacy-tls`` (also allow old TLS) and ``--tls-max`` (offer at most a version):
    one meaning in every client command (``boot``, ``query``)."""
    p.add_argument(
        "--legacy-tls",
        action="store_true",
        help="also allow TLS 1.0/1.1 and the RSA-kx CBC suites (AES256-SHA), as a CUCM with "
        "old phones does",
    )
    p.add_argument(
        "--tls-max",
        choices=TLS_MAX_VERSIONS,
        help="offer at most this TLS version; 1.0 offers only what old firmware does "
        "(TLS 1.0 with AES256-SHA)",
    )


def _cmd_boot(args: argparse.Namespace) -> int:
    setup_logging(args)
    if args.state.exists() and not args.state.is_dir():
        raise CommandError(f"--state {args.state}: not a directory")
    load_identity(args.lsc, args.key, cert_option="--lsc")  # one line naming the file
    check_output_file(args.keylog, "--keylog")
    try:
        identity = PhoneIdentity.load(args.lsc, args.key, mac=args.mac, model=args.model)
    except (OSError, CertificateError, IdentityError) as exc:
        return _error(describe_error(exc))
    try:
        tags = QueryTags.parse(args.query_tags)
    except ValueError as exc:
        return _error(f"--query-tags {args.query_tags}: {exc}")
    options = NetworkOptions(
        tvs=TvsClientConfig(
            legacy_tls=args.legacy_tls,
            tls_max=args.tls_max,
            connect_timeout=args.timeout,
            timeout=args.timeout,
            keylog=args.keylog,
        ),
        tftp_timeout=args.tftp_timeout,
        fetch=fetch_options(args),
        sip_timeout=args.timeout,
        boot=BootOptions(
            register=not args.no_register,
            keep_bytes=args.log_format == "phone",
            query_tags=tags,
            capf_auth_string=args.capf_auth_string,
            capf_interval=max(0.0, args.capf_interval),
        ),
        capf_timeout=args.timeout,
    )
    phone = Phone.open(identity, args.state)
    for problem in phone.problems:
        print(f"phone-emu: state {problem} (treated as absent)", file=sys.stderr)
    try:
        result = trio.run(
            lambda: boot_phone(phone, tftp=args.tftp, clock=time.time, options=options)
        )
    except StateError as exc:
        return _error(str(exc))
    out = sys.stdout
    if args.log_format == "phone":
        stream = sys.stderr if args.json else out
        for line in console_lines(result, identity, server=args.tftp[0]):
            print(line, file=stream)
    if args.json:
        doc = result.to_dict()
        doc["state_problems"] = [str(p) for p in phone.problems]
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif args.log_format == "summary":
        _print_summary(result)
    if result.exit_code == ExitCode.ERROR:  # the one line saying why, on stderr
        failed = next((s for s in result.steps if s.outcome.value == "error"), None)
        where = f"TFTP {args.tftp[0]}:{args.tftp[1]}"
        why = f"{failed.name} {failed.reason}" if failed else result.state.value
        detail = f": {failed.detail}" if failed and failed.detail else ""
        print(f"phone-emu boot: error: {where}: {why}{detail}", file=sys.stderr)
    return result.exit_code


def _print_summary(r: BootResult) -> None:
    print(
        f"{r.device_name}: {r.state.value} (exit {r.exit_code}) in {r.elapsed:.3f} s, "
        f"{r.tvs_queries} TVS quer{'y' if r.tvs_queries == 1 else 'ies'}"
    )
    for s in r.steps:
        line = f"  {s.name:<9}{s.outcome.value:<9}{s.reason}"
        if s.source:
            line += f" [{s.source}]"
        if s.detail:
            line += f": {s.detail}"
        print(line)
        for a in s.attempts:
            extra = f" roles={','.join(role_label(x) for x in a.roles)}" if a.roles else ""
            extra += f" ttl={a.ttl}" if a.ttl is not None else ""
            print(f"      -> {a.target} {a.reason}{extra}" + (f": {a.detail}" if a.detail else ""))
    for line in r.status_lines:
        print(f"  status: {line}")


# --- show ------------------------------------------------------------------------------------
def _show_doc(loaded: LoadedState, now: float) -> dict[str, Any]:
    t = loaded.trust
    return {
        "phone": loaded.phone,
        "problems": [str(p) for p in loaded.problems],
        "ctl": t.ctl.to_dict() if t.ctl else None,
        "itl": t.itl.to_dict() if t.itl else None,
        "tvs_cache": [e.to_dict(now) for e in t.tvs_cache],
        "config": loaded.config.to_dict() if loaded.config else None,
    }


def _print_list(title: str, tl: dict[str, Any] | None) -> None:
    if tl is None:
        print(f"{title}: none")
        return
    s = tl["signer"]
    print(
        f"{title}: {tl['filename']} sha256 {tl['sha256'][:16]}... signed by {s['name']} "
        f"(serial {s['serial']}, {tl['hash_algorithm']})"
    )
    for r in tl["records"]:
        print(f"  {r['role_name']:<10} {r['subject']}  serial {r['serial']}")


def _cmd_show(args: argparse.Namespace) -> int:
    if not args.state.is_dir():
        return _error(f"--state {args.state}: no such state directory")
    now = time.time()
    doc = _show_doc(StateStore(args.state).load(), now)
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if doc["phone"]:
        p = doc["phone"]
        last = p.get("last_boot") or {}
        tftp = p.get("tftp") or "?"
        print(f"{p.get('device_name')}: last boot {last.get('state', '?')} (TFTP {tftp})")
    for problem in doc["problems"]:
        print(f"problem: {problem} (treated as absent)")
    _print_list("CTL", doc["ctl"])
    _print_list("ITL", doc["itl"])
    print(f"TVS cache: {len(doc['tvs_cache'])} entr{'y' if len(doc['tvs_cache']) == 1 else 'ies'}")
    for e in doc["tvs_cache"]:
        state = "expired" if e["expires_in"] <= 0 else f"expires in {e['expires_in']:.0f} s"
        print(f"  {e['subject']}  serial {e['serial']}  roles {','.join(e['role_names'])}  {state}")
    cfg = doc["config"]
    if cfg is None:
        print("configuration: none")
    else:
        tvs = ", ".join(f"{m['address']}:{m['port']}" for m in cfg["tvs_members"]) or "none"
        cms = ", ".join(f"{c['host']}:{c['secure_sip_port']}" for c in cfg["callmanagers"])
        print(f"configuration: TVS {tvs}; CallManager group {cms or 'none'}")
    return EXIT_OK


# --- erase -----------------------------------------------------------------------------------
def _cmd_erase(args: argparse.Namespace) -> int:
    if not args.state.is_dir():
        return _error(f"--state {args.state}: no such state directory")
    both = not (args.ctl or args.itl)
    ctl, itl = args.ctl or both or args.all, args.itl or both or args.all
    store = StateStore(args.state)
    loaded = store.load()
    before = loaded.trust
    trust = before.erased(ctl=ctl, itl=itl, tvs_cache=args.all)
    try:
        written = store.save(trust, None if args.all else loaded.config)
    except StateError as exc:
        return _error(str(exc))
    erased = [
        name
        for name, held, asked in (
            ("ctl", before.ctl, ctl),
            ("itl", before.itl, itl),
            ("tvs_cache", before.tvs_cache, args.all),
            ("config", loaded.config, args.all),
        )
        if asked and held
    ]
    if args.json:
        json.dump({"state": str(args.state), "erased": erased, "files": written}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{args.state}: erased {', '.join(erased) or 'nothing (none held)'}")
    return EXIT_OK
