"""``tvs http serve``: a directory over HTTP on port 6970, as CUCM serves its TFTP files to
newer phone firmware (the same file provider and path rules as ``tvs tftp serve``).

Exit codes: 0 stopped by SIGINT/SIGTERM; 2 bad arguments, an unusable root, or an address
that cannot be listened on (one line on stderr).
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..admission import add_admission_arguments, limits_from_args
from ..exitcodes import ExitCode
from .app import hostport
from .common import CommandError, add_logging_options, setup_logging, startup_error

__all__ = ["register"]

_listen = hostport(6970)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("http", help="HTTP file service (CUCM's port 6970)")
    http_sub = parser.add_subparsers(dest="http_command", metavar="COMMAND", required=True)

    serve = http_sub.add_parser("serve", help="serve a directory read-only over HTTP")
    serve.add_argument("--root", required=True, type=Path, metavar="DIR", help="directory to serve")
    serve.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 6970),
        metavar="ADDR:PORT",
        help="address to listen on (default 127.0.0.1:6970)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=2500,
        metavar="N",
        help="concurrent connections; beyond, 503 and close (default 2500, as CUCM)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="seconds a connection may wait for its next request (default 15)",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds from a request's first byte to the end of its headers (default 10)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        default=8192,
        metavar="N",
        help="bound of a request line and headers together (default 8192)",
    )
    serve.add_argument(
        "--metrics", type=hostport(None), metavar="ADDR:PORT",
        help="serve Prometheus metrics (tvs_http_*) at http://ADDR:PORT/metrics",
    )  # fmt: skip
    serve.add_argument(
        "--no-request-log",
        action="store_true",
        help="log only refused and failed requests (load tests)",
    )
    add_admission_arguments(serve)
    add_logging_options(serve, formats=("console", "json"))
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from ..http import HttpLimits, HttpObserver, HttpServer
    from ..tftp import DirectoryProvider

    setup_logging(args)
    for option, value in (
        ("--max-connections", args.max_connections),
        ("--max-request-bytes", args.max_request_bytes),
    ):
        if value < 1:
            raise CommandError(f"{option} {value}: must be at least 1", ExitCode.ERROR)
    try:
        provider = DirectoryProvider(args.root)
    except OSError as exc:
        raise CommandError(f"--root {args.root}: {exc.strerror or exc}") from None
    observer: HttpObserver | None = None
    if args.metrics is not None:
        from ..metrics import HttpPrometheusObserver, MetricsServer

        prom = HttpPrometheusObserver()
        try:
            MetricsServer(prom.registry, *args.metrics)
        except OSError as exc:
            where = f"metrics {args.metrics[0]}:{args.metrics[1]}"
            raise startup_error(exc, address=where) from None
        observer = prom
    limits = HttpLimits(
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        request_timeout=args.request_timeout,
        max_request_bytes=args.max_request_bytes,
    )
    server = HttpServer(
        provider,
        limits=limits,
        observer=observer,
        log_requests=not args.no_request_log,
        admission=limits_from_args(args, max_connections=args.max_connections),
    )
    host, port = args.listen

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, host, port)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(run)
    except (OSError, BaseExceptionGroup) as exc:
        raise startup_error(exc, address=f"HTTP {host}:{port}") from None
    return int(ExitCode.OK)
