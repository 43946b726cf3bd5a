"""``tvs http serve`` and ``tvs http get``: a directory over HTTP on port 6970, as CUCM serves
its TFTP files to newer phone firmware (the same file provider and path rules as ``tvs tftp
serve``), and the phone's own fetch.

Exit codes (serve): 0 stopped by SIGINT/SIGTERM; 2 bad arguments, an unusable root, or an
address that cannot be listened on (one line on stderr). Get: 0 fetched; 1 the server answered
another status; 2 transport, a file over ``--max-size``, usage.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..admission import add_admission_arguments, limits_from_args
from ..exitcodes import ExitCode
from .app import hostport
from .common import (
    CommandError,
    add_json_option,
    add_logging_options,
    save_download,
    setup_logging,
    startup_error,
)

__all__ = ["register"]

_listen = hostport(6970)
_server = hostport(6970)


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

    get = http_sub.add_parser(
        "get",
        help="download one file the way a phone does (its exact request bytes)",
        description="GET /FILE with the phone's own request (Host: without a space), from CUCM "
        "or any server. Exit 0 fetched, 1 the server answered another status (404, 503), 2 "
        "no answer, a broken one, a file over --max-size, or a usage error.",
    )
    get.add_argument(
        "server", type=_server, metavar="HOST:PORT", help="server (port 6970 if omitted)"
    )
    get.add_argument("file", metavar="FILE", help="name of the file on the server")
    get.add_argument(
        "--out",
        metavar="PATH",
        help="where to write it ('-' for stdout; default: FILE's base name)",
    )
    get.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="whole exchange (default 10)"
    )
    get.add_argument(
        "--max-size",
        type=int,
        default=64 * 1024 * 1024,
        metavar="BYTES",
        help="refuse a larger file (default 64 MiB)",
    )
    add_json_option(get, "what was fetched (file, size, sha256, out) instead of nothing")
    get.set_defaults(func=_get)


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


def _get(args: argparse.Namespace) -> int:

    import trio

    from ..http import HttpError, HttpStatusError, http_get

    host, port = args.server
    where = f"{host}:{port} {args.file}"
    try:
        data = trio.run(
            lambda: http_get(host, port, args.file, timeout=args.timeout, max_size=args.max_size)
        )
    except HttpStatusError as exc:  # the server answered: refused or absent
        raise CommandError(f"{where}: {exc}", ExitCode.INVALID) from None
    except (HttpError, ValueError, OSError) as exc:
        raise CommandError(f"{where}: {exc}") from None
    return save_download(data, args, f"{host}:{port}")
