"""``tvs tftp serve`` and ``tvs tftp get``: the TFTP server over a directory, and a client.

Exit codes: 0 success; 1 a TFTP failure (the server's error, a timeout, a protocol error;
the reason goes to stderr); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from pathlib import Path, PurePosixPath

from .app import hostport

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
    serve.add_argument(
        "--log-format", choices=("console", "json"), default="console",
        help="one line per transfer: console (default) or json",
    )  # fmt: skip
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
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
    get.set_defaults(func=_get)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from tvs.server import configure_logging
    from tvs.tftp import DirectoryProvider, TftpServer

    configure_logging(args.log_format, args.log_level)
    try:
        provider = DirectoryProvider(args.root)
    except OSError as exc:
        print(f"tvs tftp serve: {args.root}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    server = TftpServer(
        provider, max_transfers=args.max_transfers, timeout=args.timeout, retries=args.retries
    )
    host, port = args.listen

    async def run(port: int, reuse_port: bool) -> None:
        # SIGINT / SIGTERM stop the server cleanly (exit 0, logs flushed)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    functools.partial(server.serve, host, port, reuse_port=reuse_port)
                )
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    workers: list[int] = []
    try:
        if args.workers > 1:
            port, workers = _fork_workers(host, port, args.workers - 1, run)
        trio.run(run, port, args.workers > 1)
    except (OSError, ExceptionGroup) as raised:
        error = _first_os_error(raised)
        if error is None:
            raise
        print(
            f"tvs tftp serve: cannot listen on {host}:{port}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 1
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        for pid in workers:
            os.waitpid(pid, 0)
    return 0


def _fork_workers(host: str, port: int, count: int, run) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """Fork ``count`` worker processes serving (host, port) with SO_REUSEPORT, before any
    Trio loop exists. Returns the port (resolved when 0) and the workers' pids."""
    import trio

    from tvs.tftp._io import open_udp_socket

    holder = open_udp_socket(host, port, reuse_port=True)  # fixes the port for everyone
    port = holder.getsockname()[1]
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            holder.close()
            code = 0
            try:
                trio.run(run, port, True)
            except BaseException:
                code = 1
            sys.stdout.flush()
            os._exit(code)
        pids.append(pid)
    holder.close()
    return port, pids


def _first_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_os_error(inner)
            if found is not None:
                return found
    return None


def _get(args: argparse.Namespace) -> int:
    import trio

    from tvs.tftp import TftpError, tftp_get

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
    except (TftpError, ValueError, OSError) as exc:
        print(f"tvs tftp get: {args.file}: {exc}", file=sys.stderr)
        return 1
    out = args.out or PurePosixPath(args.file).name or "download"
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(out).write_bytes(data)
    return 0
