"""``tvs serve`` (the TVS server) and ``tvs reload`` (send it SIGHUP: "restart TVS").

A thin shell over :mod:`tvs.server`. Exit codes (:class:`tvs.exitcodes.ExitCode`): 0 stopped
cleanly (SIGTERM/SIGINT); 2 usage, or the server could not start (bad certificate or key,
address in use, unreadable store), said in one line naming the file, option or address.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import trio

from ..admission import add_admission_arguments
from ..exitcodes import ExitCode
from ..metrics import metrics_endpoint
from ..server import (
    DEFAULT_PORT,
    LOG_FORMATS,
    ServerObserver,
    TvsServer,
    TvsServerConfig,
    run_workers,
    serve_until_signalled,
)
from ..server.config import REFRESH_MODES
from ..store.atomic import atomic_write
from ..tlsconfig import ClientAuth
from ..wire import DEFAULT_MAX_MESSAGE
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

__all__ = ["parse_listen", "register"]


parse_listen = hostport(DEFAULT_PORT)
"""``--listen``: ``HOST:PORT``, ``[v6]:PORT``, ``HOST`` or ``:PORT`` (host 127.0.0.1)."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the TVS server (TLS, default 127.0.0.1:2445)",
        description="Serve TVS QUERY_CERT_REQ / VERIFY_REQUEST over TLS from a trust store. "
        "The cache is read at start and on SIGHUP (`tvs reload`), like CUCM's TVS "
        "(--refresh notify: also by itself after --refresh-delay); a cache miss is answered "
        "from the --ctl file's records.",
    )
    p.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", DEFAULT_PORT),
        metavar="ADDR:PORT",
        help="address to listen on (127.0.0.1:2445)",
    )
    p.add_argument("--cert", required=True, type=Path, help="TVS certificate (PEM, chain ok)")
    p.add_argument("--key", required=True, type=Path, help="TVS private key (PEM)")
    p.add_argument(
        "--store",
        required=True,
        type=Path,
        metavar="DIR",
        help="trust store directory (created empty when missing)",
    )
    p.add_argument(
        "--legacy-tls",
        action="store_true",
        help="also allow TLS 1.0/1.1 and AES256-SHA (old phone firmware)",
    )
    p.add_argument(
        "--client-auth",
        choices=[c.value for c in ClientAuth],
        default="none",
        help="phone certificates: not asked (default: CUCM's TVS is not known to check them); "
        "optional (asked; one that does not verify is logged and still answered); required "
        "(one that does not verify is refused); verified against the phone issuing set "
        "(own CAPF, CAPF-trust, CallManager-trust)",
    )
    p.add_argument(
        "--mic-ca",
        type=Path,
        metavar="PEM",
        help="manufacturing CA certificate(s) that also verify phone certificates",
    )
    p.add_argument("--handshake-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--max-message", type=int, default=DEFAULT_MAX_MESSAGE, metavar="BYTES")
    p.add_argument("--max-connections", type=int, default=1024, metavar="N")
    add_admission_arguments(p)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (SO_REUSEPORT)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="alias of --refresh notify --refresh-delay 0 (reload as soon as the store changes)",
    )
    p.add_argument(
        "--refresh",
        choices=REFRESH_MODES,
        default="restart",
        help="restart (default, the seed's caution): the cache changes on SIGHUP / `tvs reload` "
        "only; notify: it follows store and CTL changes by itself after --refresh-delay",
    )
    p.add_argument(
        "--refresh-delay",
        type=float,
        default=8.0,
        metavar="S",
        help="notify: seconds between noticing a change and answering from it (CUCM: ~8)",
    )
    p.add_argument(
        "--ctl",
        type=Path,
        metavar="FILE",
        help="the cluster's current CTLFile.tlv: on a cache miss, answer from its records "
        "with their CTL roles (as CUCM's TVS); re-read with the cache",
    )
    add_logging_options(p, formats=LOG_FORMATS)
    p.add_argument("--pidfile", type=Path, help="write the server's process id here")
    p.add_argument("--keylog", type=Path, metavar="FILE", help="write TLS secrets (SSLKEYLOGFILE)")
    # --metrics ADDR:PORT (Prometheus) is added by tvs.metrics: see _observer_factory
    p.add_argument(
        "--metrics",
        type=hostport(),
        metavar="ADDR:PORT",
        help="serve Prometheus metrics at http://ADDR:PORT/metrics",
    )
    p.set_defaults(func=_cmd_serve)

    r = sub.add_parser("reload", help="make a running `tvs serve` re-read its store (SIGHUP)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--pid", type=int)
    g.add_argument("--pidfile", type=Path)
    add_json_option(r, "the process signalled")
    r.set_defaults(func=_cmd_reload)


def _observer_factory(args: argparse.Namespace) -> Any:
    """Where a metrics observer plugs in: return a picklable zero-argument callable making a
    :class:`~tvs.server.ServerObserver` (one per worker process), or None."""
    if getattr(args, "metrics", None) is None:
        return None
    return metrics_endpoint(*args.metrics, workers=args.workers)


def config_from_args(args: argparse.Namespace) -> TvsServerConfig:
    host, port = args.listen
    return TvsServerConfig(
        store=args.store,
        cert=args.cert,
        key=args.key,
        host=host,
        port=port,
        legacy_tls=args.legacy_tls,
        client_auth=args.client_auth,
        mic_ca=args.mic_ca,
        handshake_timeout=args.handshake_timeout,
        request_timeout=args.request_timeout,
        max_message=args.max_message,
        max_connections=args.max_connections,
        max_handshakes_per_address=args.max_handshakes_per_address,
        trusted_networks=tuple(args.trusted_networks),
        first_bytes_timeout=args.first_bytes_timeout,
        watch=args.watch,
        refresh=args.refresh,
        refresh_delay=args.refresh_delay,
        ctl=args.ctl,
        keylog=args.keylog,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args)
    load_identity(args.cert, args.key)  # one line naming the file, before anything listens
    check_output_file(args.keylog, "--keylog")
    if args.mic_ca is not None:
        load_certificate_chain(args.mic_ca, "--mic-ca")
    if args.store.exists() and not args.store.is_dir():
        raise CommandError(f"--store {args.store}: not a directory")
    config = config_from_args(args)
    observer: ServerObserver | None = None
    try:
        factory = _observer_factory(args)  # --metrics with --workers: the endpoint binds here
        if factory is not None and args.workers <= 1:
            observer = factory()  # one process: its endpoint binds here
    except OSError as exc:
        host, port = args.metrics
        why = exc.strerror or str(exc)
        raise CommandError(f"--metrics: cannot listen on {host}:{port}: {why}") from None
    if args.pidfile is not None:
        try:
            atomic_write(args.pidfile, f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise CommandError(f"--pidfile {args.pidfile}: {exc.strerror or exc}") from None
    host, port = args.listen
    try:
        if args.workers > 1:
            return run_workers(
                config,
                args.workers,
                log_format=args.log_format,
                log_level=args.log_level,
                observer_factory=factory,
            )
        server = TvsServer(config, observer=observer)
        trio.run(serve_until_signalled, server)
        return ExitCode.OK
    except BaseException as exc:
        raise startup_error(exc, address=f"TVS {host}:{port}") from None
    finally:
        if args.pidfile is not None:
            with contextlib.suppress(OSError):
                args.pidfile.unlink()


def _cmd_reload(args: argparse.Namespace) -> int:
    try:
        pid = args.pid if args.pid is not None else int(args.pidfile.read_text().strip())
    except OSError as exc:
        raise CommandError(f"--pidfile {args.pidfile}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"--pidfile {args.pidfile}: no process id in the file") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise CommandError(f"process {pid}: {exc.strerror or exc}") from None
    if args.json:
        emit_json({"pid": pid, "signal": "SIGHUP", "action": "reload"})
    else:
        print(f"sent SIGHUP to {pid}")
    return ExitCode.OK
