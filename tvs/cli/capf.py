"""``tvs capf``: the CAPF server and its administration (CUCM's phone page, scriptable).

``serve`` runs a CAPF on TLS (default 127.0.0.1:3804); ``schedule`` sets the certificate
operation of devices (``SEP<MAC>``, or fleet ranges ``SEP0011223344[00-FF]``), ``list`` and
``show`` read it back with the certificate the CAPF issued. Every administration command takes
``--db FILE`` or ``--config CLUSTER`` (the cluster's ``store_dir/capf.sqlite3``); a running
server reads the database at each session, so a new schedule needs no restart.
Exit codes: 0 done; 1 ``show`` of a device with nothing scheduled; 2 usage, file, database or
address errors (one line).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

from ..admission import add_admission_arguments, limits_from_args
from ..exitcodes import ExitCode
from .app import hostport
from .common import (
    CommandError,
    add_json_option,
    add_logging_options,
    check_output_file,
    emit_json,
    load_certificate_chain,
    load_identity,
    setup_logging,
    startup_error,
)

__all__ = ["register"]

_listen = hostport(3804)
_RELATIVE = re.compile(r"^\+(\d+)([dhm])$")


def _deadline(text: str) -> dt.datetime:
    """``2026-12-31``, ``2026-12-31T18:00``, ``...Z`` (UTC unless an offset is given), ``+7d``,
    ``+12h``, ``+30m``."""
    m = _RELATIVE.match(text.strip())
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
        return dt.datetime.now(dt.UTC) + dt.timedelta(**{unit: int(m.group(1))})
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-12-31, 2026-12-31T18:00Z) or +7d/+12h/+30m"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _db_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--db", type=Path, metavar="FILE", help="the CAPF operations database")
    g.add_argument(
        "--config",
        metavar="CLUSTER",
        help="an emulated cluster's TOML (or example name): its store_dir/capf.sqlite3",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("capf", help="CAPF server (TCP 3804) and certificate operations")
    csub = parser.add_subparsers(dest="capf_command", metavar="COMMAND", required=True)

    s = csub.add_parser("serve", help="run a CAPF server: phones enroll LSCs over TLS")
    s.add_argument(
        "--listen", type=_listen, default=("127.0.0.1", 3804), metavar="ADDR:PORT",
        help="address to listen on (default 127.0.0.1:3804)",
    )  # fmt: skip
    s.add_argument("--cert", type=Path, required=True, metavar="CAPF.pem", help="CAPF certificate")
    s.add_argument("--key", type=Path, required=True, metavar="CAPF.key", help="its private key")
    s.add_argument("--db", type=Path, required=True, metavar="FILE", help="operations database")
    s.add_argument(
        "--trust", type=Path, action="append", default=[], metavar="PEM",
        help="other CAPF certificates whose LSCs authenticate phones (CAPF-trust; repeat)",
    )  # fmt: skip
    s.add_argument(
        "--mic-trust", type=Path, action="append", default=[], metavar="PEM",
        help="manufacturing roots whose MICs authenticate phones (repeat)",
    )  # fmt: skip
    s.add_argument("--handshake-timeout", type=float, default=10.0, metavar="S")
    s.add_argument(
        "--message-timeout", type=float, default=60.0, metavar="S",
        help="seconds for each phone message (default 60: phones make keys)",
    )  # fmt: skip
    s.add_argument("--session-timeout", type=float, default=180.0, metavar="S")
    s.add_argument("--max-connections", type=int, default=1024, metavar="N")
    add_admission_arguments(s)
    s.add_argument("--legacy-tls", action="store_true", help="also TLS 1.0/1.1 (old firmware)")
    s.add_argument("--keylog", type=Path, metavar="FILE", help="write TLS secrets (SSLKEYLOGFILE)")
    add_logging_options(s)
    s.set_defaults(func=_cmd_serve)

    sc = csub.add_parser(
        "schedule",
        help="set the certificate operation of devices (SEP<MAC>, or SEP0011223344[00-FF])",
    )
    sc.add_argument("devices", nargs="+", metavar="DEVICE", help="SEP<MAC> or a bracket range")
    sc.add_argument(
        "--operation", required=True, choices=("install", "delete", "fetch", "none"),
        help="install/upgrade, delete, fetch (troubleshoot) or none (no pending operation)",
    )  # fmt: skip
    sc.add_argument(
        "--auth", default="null", choices=("null", "string", "lsc", "mic"),
        help="authentication mode (default null string)",
    )  # fmt: skip
    sc.add_argument("--auth-string", metavar="DIGITS", help="the auth string (4-10 digits)")
    sc.add_argument(
        "--key", default="rsa-2048", metavar="KEY",
        help="rsa-2048 (default), rsa-4096, ec-p256, ec-p384 or ec-p521",
    )  # fmt: skip
    sc.add_argument(
        "--deadline", type=_deadline, metavar="WHEN",
        help="operation completes by: 2026-12-31, 2026-12-31T18:00Z, +7d, +12h",
    )  # fmt: skip
    _db_options(sc)
    add_json_option(sc, "how many devices were scheduled")
    sc.set_defaults(func=_cmd_schedule)

    ls = csub.add_parser("list", help="every device with its operation and last result")
    _db_options(ls)
    add_json_option(ls, "the devices")
    ls.set_defaults(func=_cmd_list)

    sh = csub.add_parser("show", help="one device: operation, last result, issued certificate")
    sh.add_argument("device", metavar="DEVICE")
    _db_options(sh)
    add_json_option(sh, "the device")
    sh.set_defaults(func=_cmd_show)


def _db_path(args: argparse.Namespace) -> Path:
    if args.db is not None:
        return Path(args.db)
    from ..cluster import ClusterConfig

    return ClusterConfig.load(args.config).capf_db


def _open(args: argparse.Namespace, *, create: bool) -> Any:
    from ..capf.db import CapfDb
    from ..capf.errors import CapfDbError

    path = _db_path(args)
    where = f"--db {path}" if args.db is not None else f"--config {args.config} ({path})"
    try:
        return CapfDb(path, create=create)
    except CapfDbError as exc:
        raise CommandError(f"{where}: {str(exc).removeprefix(f'{path}: ')}") from None


def _cmd_schedule(args: argparse.Namespace) -> int:
    from ..capf.devices import DeviceNameError, expand_devices

    try:
        devices = expand_devices(args.devices)
    except DeviceNameError as exc:
        raise CommandError(f"DEVICE: {exc}") from None
    if args.auth_string is not None and args.auth != "string":
        raise CommandError("--auth-string needs --auth string")
    with _open(args, create=True) as db:
        try:
            count = db.schedule(
                devices,
                operation=args.operation,
                auth_mode=args.auth,
                auth_string=args.auth_string,
                key=args.key,
                deadline=args.deadline,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if args.json:
        emit_json(
            {
                "scheduled": count,
                "operation": args.operation,
                "auth": args.auth,
                "key": args.key,
                "deadline": args.deadline.isoformat() if args.deadline else None,
                "first": devices[0],
                "last": devices[-1],
            }
        )
    else:
        span = devices[0] if count == 1 else f"{devices[0]} .. {devices[-1]}"
        print(f"scheduled {args.operation} (auth {args.auth}, {args.key}) for {count}: {span}")
    return ExitCode.OK


def _cmd_list(args: argparse.Namespace) -> int:
    with _open(args, create=False) as db:
        ops = db.operations()
    if args.json:
        emit_json({"devices": [op.to_dict() for op in ops]})
        return ExitCode.OK
    for op in ops:
        last = f"{op.last_result} ({op.last_why})" if op.last_result else "-"
        state = op.operation if op.pending() else f"{op.operation} (expired)"
        state = "none" if op.operation == "none" else state
        print(f"{op.name}  {state:<9} auth={op.auth_mode:<6} key={op.key:<8} last={last}")
    print(f"{len(ops)} device(s)")
    return ExitCode.OK


def _cmd_show(args: argparse.Namespace) -> int:
    from ..capf.devices import DeviceNameError, device_name

    try:
        name = device_name(args.device)
    except DeviceNameError as exc:
        raise CommandError(f"DEVICE: {exc}") from None
    with _open(args, create=False) as db:
        op = db.get(name)
        issued = db.certificate(name)
        fetched = db.certificate(name, "fetched")
    if op is None:
        raise CommandError(f"{name}: not in the CAPF database", ExitCode.INVALID)
    data = op.to_dict()
    data["issued"] = issued.to_dict() if issued else None
    data["fetched"] = fetched.to_dict() if fetched else None
    if args.json:
        emit_json(data)
        return ExitCode.OK
    for key in ("device", "operation", "auth", "key", "deadline", "pending", "updated"):
        print(f"{key:>12}: {data[key]}")
    print(f"{'last':>12}: {op.last_result or '-'} {op.last_why or ''}".rstrip())
    if issued:
        print(f"{'issued':>12}: serial {issued.serial}, until {issued.not_after:%Y-%m-%d}")
        print(f"{'certHash':>12}: {issued.md5} (MD5 of the DER)")
    if fetched:
        print(f"{'fetched':>12}: serial {fetched.serial}, sha256 {fetched.sha256}")
    return ExitCode.OK


def _cmd_serve(args: argparse.Namespace) -> int:
    import trio

    from ..capf.errors import CapfDbError
    from ..capf.server import CapfServer, CapfServerConfig

    setup_logging(args)
    chain, key = load_identity(args.cert, args.key)
    check_output_file(args.keylog, "--keylog")
    trust = [c for p in args.trust for c in load_certificate_chain(p, "--trust")]
    mics = [c for p in args.mic_trust for c in load_certificate_chain(p, "--mic-trust")]
    host, port = args.listen
    config = CapfServerConfig(
        chain=chain,
        key=key,
        db=args.db,
        host=host,
        port=port,
        lsc_issuers=trust,
        mic_issuers=mics,
        handshake_timeout=args.handshake_timeout,
        message_timeout=args.message_timeout,
        session_timeout=args.session_timeout,
        admission=limits_from_args(args, max_connections=args.max_connections),
        legacy_tls=args.legacy_tls,
        keylog=args.keylog,
    )
    try:
        server = CapfServer(config)
    except CapfDbError as exc:
        raise CommandError(f"--db {exc}") from None
    try:
        trio.run(server.serve)
        return ExitCode.OK
    except BaseException as exc:
        raise startup_error(exc, address=f"CAPF {host}:{port}") from None
    finally:
        server.close()
