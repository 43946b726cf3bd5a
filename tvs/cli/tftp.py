"""``tvs tftp serve`` and ``tvs tftp get``: the TFTP server over a directory, and a client.

Exit codes (:class:`tvs.exitcodes.ExitCode`): 0 success; 1 the server refused (a TFTP error
packet: file not found, access violation); 2 usage, a timeout, a protocol error, an address that
cannot be bound or resolved, an unwritable output; the reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import functools
import signal
import socket
from pathlib import Path
from typing import Any

from ..exitcodes import ExitCode
from .app import hostport
from .common import (
    CommandError,
    add_json_option,
    add_logging_options,
    save_download,
    setup_logging,
)
from .common import startup_error as _startup_error

__all__ = ["register"]


_listen = hostport(6969)
_server = hostport(69)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("tftp", help="TFTP server and client (RFC 1350 with options)")
    tftp_sub = parser.add_subparsers(dest="tftp_command", metavar="COMMAND", required=True)

    serve = tftp_sub.add_parser("serve", help="serve a directory read-only over TFTP")
    serve.add_argument("--root", required=True, type=Path, metavar="DIR", help="directory to serve")
    serve.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 6969),
        metavar="ADDR:PORT",
        help="address to listen on (default 127.0.0.1:6969; use ADDR:69 for the real port)",
    )
    serve.add_argument(
        "--max-transfers",
        type=int,
        default=1024,
        metavar="N",
        help="concurrent transfers; requests beyond are dropped (default 1024)",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="retransmission timeout in seconds (default 1)",
    )
    serve.add_argument(
        "--retries",
        type=int,
        default=5,
        metavar="N",
        help="retransmissions before a transfer is abandoned (default 5)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT; default 1)",
    )
    add_logging_options(serve, formats=("console", "json"))  # one line per transfer
    serve.set_defaults(func=_serve)

    get = tftp_sub.add_parser("get", help="download one file")
    get.add_argument(
        "server", type=_server, metavar="HOST:PORT", help="server (port 69 if omitted)"
    )
    get.add_argument("file", metavar="FILE", help="name of the file on the server")
    get.add_argument(
        "--out",
        metavar="PATH",
        help="where to write it ('-' for stdout; default: FILE's base name)",
    )
    get.add_argument("--blksize", type=int, metavar="N", help="request RFC 2348 block size N")
    get.add_argument("--windowsize", type=int, metavar="N", help="request RFC 7440 window N")
    get.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="retransmission timeout in seconds (default 1)",
    )
    get.add_argument(
        "--retries",
        type=int,
        default=5,
        metavar="N",
        help="retransmissions before giving up (default 5)",
    )
    get.add_argument("--netascii", action="store_true", help="netascii mode instead of octet")
    add_json_option(get, "what was fetched (file, size, sha256, out) instead of nothing")
    get.set_defaults(func=_get)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from tvs.tftp import DirectoryProvider, TftpServer

    setup_logging(args)
    try:
        provider = DirectoryProvider(args.root)
    except OSError as exc:
        raise CommandError(f"--root {args.root}: {exc.strerror or exc}") from None
    server = TftpServer(
        provider, max_transfers=args.max_transfers, timeout=args.timeout, retries=args.retries
    )
    host, port = args.listen

    if args.workers > 1:  # N processes on one port: tvs.workerpool (restarts, signals)
        from tvs.workerpool import PoolConfig, reserve_port, run_pool

        try:
            reservation = reserve_port(host, port, socket.SOCK_DGRAM)
        except OSError as exc:
            raise _startup_error(exc, address=f"TFTP {host}:{port}") from None
        options = (
            args.root,
            args.max_transfers,
            args.timeout,
            args.retries,
            host,
            getattr(args, "log_format", "console"),
            getattr(args, "log_level", "info"),
        )
        config = PoolConfig(workers=args.workers, name="tftp-worker")
        return run_pool(_tftp_worker, options, config, reservation=reservation)
    try:
        trio.run(_serve_until_signalled, server, host, port, False, None)
    except BaseException as exc:
        raise _startup_error(exc, address=f"TFTP {host}:{port}") from None
    return ExitCode.OK


async def _serve_until_signalled(
    server: Any, host: str, port: int, reuse_port: bool, ready: Any
) -> None:
    """Serve until SIGINT / SIGTERM (then stop cleanly: exit 0, logs flushed)."""
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(
                functools.partial(server.serve, host, port, reuse_port=reuse_port)
            )
            if ready is not None:
                ready(address)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def _tftp_worker(
    root: Path,
    max_transfers: int,
    timeout: float,
    retries: int,
    host: str,
    log_format: str,
    log_level: str,
    *,
    index: int,
    port: int,
    ready: Any,
) -> None:
    """One ``tvs tftp serve --workers N`` process (run by :func:`tvs.workerpool.run_pool`)."""
    import structlog
    import trio

    from tvs.server.logsetup import configure_logging
    from tvs.tftp import DirectoryProvider, TftpServer

    configure_logging(log_format, log_level)
    structlog.contextvars.bind_contextvars(worker=index)
    server = TftpServer(
        DirectoryProvider(root), max_transfers=max_transfers, timeout=timeout, retries=retries
    )
    trio.run(_serve_until_signalled, server, host, port, True, ready)


def _get(args: argparse.Namespace) -> int:

    import trio

    from tvs.tftp import TftpError, TftpRemoteError, tftp_get

    host, port = args.server
    try:
        data = trio.run(
            lambda: tftp_get(
                host,
                port,
                args.file,
                blksize=args.blksize,
                windowsize=args.windowsize,
                timeout=args.timeout,
                retries=args.retries,
                mode="netascii" if args.netascii else "octet",
            )
        )
    except TftpRemoteError as exc:  # the server answered with an error packet: refused
        raise CommandError(f"{host}:{port} {args.file}: {exc}", ExitCode.INVALID) from None
    except (TftpError, ValueError, OSError) as exc:
        raise CommandError(f"{host}:{port} {args.file}: {exc}") from None
    return save_download(data, args, f"{host}:{port}")
