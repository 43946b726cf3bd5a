"""``tvs cluster serve`` (run one emulated CUCM cluster) and ``tvs cluster files`` (write what
its TFTP would serve a phone).

A thin shell over :mod:`tvs.cluster`. ``serve`` generates the lab PKI into the configured
``pki_dir`` when this cluster's directory is missing, prints the bound addresses (one line per
node, or one JSON object with ``--json``) once everything listens, then runs until SIGTERM or
SIGINT (exit 0); SIGHUP restarts TVS on every node (re-reads the stores, like CUCM's "restart
TVS"); SIGUSR1 rebuilds the CTL from the current stores (``utils ctl update CTLFile``; send it
with ``tvs cluster ctl-update --pid PID | --pidfile FILE``, ``serve --pidfile`` writes it).
``--metrics ADDR:PORT`` serves the TVS and HTTP metrics of every node; ``--keylog FILE``
appends every listener's TLS secrets. Two clusters started at once share the lab PKI safely
(generation takes a lock). Exit codes: 0 done, 2 bad configuration, PKI, store, or an address
that cannot be bound (the line names the listener: ``TVS of ucm105pub at 127.0.1.1:2445``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import structlog
import trio

from ..certs import CertificateError
from ..cluster import EXAMPLES, ClusterConfig, ClusterError, EmulatedCluster
from ..device import DeviceNameError, normalise_mac
from ..exitcodes import ExitCode
from ..pki import LabPki, PkiError, Recipe, generate
from ..server import LOG_FORMATS
from ..store import StoreError
from ..store.atomic import atomic_write
from .app import hostport
from .common import (
    CommandError,
    add_json_option,
    add_logging_options,
    check_output_file,
    describe_error,
    emit_json,
    setup_logging,
    startup_error,
)

__all__ = ["load_config", "register"]

EXIT_OK = ExitCode.OK

log = structlog.get_logger("tvs.cli.cluster")

_ERRORS = (ClusterError, PkiError, StoreError, CertificateError, DeviceNameError)


def register(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="an emulated CUCM cluster: TVS, TFTP, secure SIP")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    p = cluster_sub.add_parser(
        "serve",
        help="run one emulated cluster (TVS + TFTP + secure SIP per node)",
        description="Run the cluster FILE.toml describes: per node a TVS, a TFTP server whose "
        "CTL/ITL/config files are generated and signed with the cluster's keys, and a TLS "
        f"listener for the secure SIP port. FILE may also name a packaged example "
        f"({', '.join(EXAMPLES)}). SIGHUP restarts TVS (re-reads the stores).",
    )
    _add_config(p)
    p.add_argument(
        "--listen",
        metavar="ADDR",
        help="bind every node's listeners here (e.g. 0.0.0.0 in a container); "
        "default: each node's address",
    )
    p.add_argument(
        "--advertise",
        metavar="HOST",
        help="announce every node as HOST in the generated files (e.g. the container's "
        "service name); default: each node's address",
    )
    p.add_argument(
        "--port-offset",
        type=int,
        default=0,
        metavar="N",
        help="add N to every configured non-zero port (two clusters publishing on one host)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the bound addresses as one JSON object"
    )
    p.add_argument(
        "--metrics",
        type=hostport(),
        metavar="ADDR:PORT",
        help="serve Prometheus metrics of every node's TVS and HTTP service at "
        "http://ADDR:PORT/metrics",
    )
    p.add_argument(
        "--keylog",
        type=Path,
        metavar="FILE",
        help="append the TLS secrets of every listener (TVS, SIP, CAPF) here (SSLKEYLOGFILE "
        "format, for Wireshark and tvs trace --keylog)",
    )
    add_logging_options(p, formats=LOG_FORMATS)
    p.add_argument(
        "--pidfile",
        type=Path,
        metavar="FILE",
        help="write the process id here (for `tvs cluster ctl-update` and SIGHUP)",
    )
    p.set_defaults(func=_cmd_serve)

    u = cluster_sub.add_parser(
        "ctl-update",
        help="rebuild a running cluster's CTL from its stores (utils ctl update CTLFile)",
        description="Send SIGUSR1 to a running `tvs cluster serve`: it rebuilds its CTL from "
        "the current stores (imports never do, as on CUCM). SIGHUP still restarts TVS.",
    )
    g = u.add_mutually_exclusive_group(required=True)
    g.add_argument("--pid", type=int, help="the process id of `tvs cluster serve`")
    g.add_argument("--pidfile", type=Path, metavar="FILE", help="the file `serve --pidfile` wrote")
    add_json_option(u, "what was sent")
    u.set_defaults(func=_cmd_ctl_update)

    p = cluster_sub.add_parser(
        "files",
        help="write the files the cluster's TFTP serves one phone (no servers started)",
    )
    _add_config(p)
    p.add_argument("--mac", required=True, help="the phone's MAC (12 hex digits)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    add_json_option(p, "the files written (name, path, size, sha256)")
    p.set_defaults(func=_cmd_files)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE.toml",
        help=f"cluster configuration, or a packaged example name ({', '.join(EXAMPLES)})",
    )
    p.add_argument("--pki", type=Path, metavar="DIR", help="lab PKI directory (overrides pki_dir)")
    p.add_argument(
        "--store", type=Path, metavar="DIR", help="trust-store directory (overrides store_dir)"
    )
    p.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="recipe used when the lab PKI must be generated (default: the packaged lab recipe)",
    )


def _fail(message: str) -> int:
    raise CommandError(message)


def load_config(args: argparse.Namespace) -> ClusterConfig:
    """The configuration with the command line's overrides applied."""
    config = ClusterConfig.load(args.config)
    changes: dict[str, Any] = {}
    if args.pki is not None:
        changes["pki_dir"] = args.pki
    if args.store is not None:
        changes["store_dir"] = args.store
    if changes:
        config = config.evolve(**changes)
    listen, advertise = getattr(args, "listen", None), getattr(args, "advertise", None)
    offset = getattr(args, "port_offset", 0)
    if listen or advertise or offset:
        config = config.with_nodes(listen=listen, address=advertise, port_offset=offset)
    return config


def _lab_pki(config: ClusterConfig, recipe_path: Path | None) -> LabPki:
    """Load the lab PKI, generating it first when this cluster's directory is missing."""
    if not config.cluster_pki_dir.is_dir():
        recipe = Recipe.load(recipe_path) if recipe_path else Recipe.default()
        if config.name not in {c.name for c in recipe.clusters}:
            where = recipe_path or "the packaged lab recipe"
            raise ClusterError(
                f"{config.cluster_pki_dir} is missing and {where} has no cluster "
                f"{config.name!r} to generate it from (use --recipe)"
            )
        generate(recipe, config.pki_dir)
        print(f"generated the lab PKI in {config.pki_dir}", file=sys.stderr)
    return LabPki.load(config.pki_dir)


def _addresses(cluster: EmulatedCluster) -> dict[str, Any]:
    return {
        "cluster": cluster.config.name,
        "version": cluster.config.version,
        "security_mode": cluster.config.security_mode,
        "tftp": f"{cluster.tftp_address[0]}:{cluster.tftp_address[1]}",
        "http": f"{cluster.http_address[0]}:{cluster.http_address[1]}"
        if cluster.config.http
        else None,
        "nodes": [
            {
                "name": e.name,
                "address": e.address,
                "tftp": f"{e.address}:{e.tftp_port}" if e.tftp else None,
                "tvs": f"{e.address}:{e.tvs_port}",
                "sip": f"{e.address}:{e.sip_port}",
                "http": "{}:{}".format(*cluster.http_addresses[e.name])
                if e.tftp and cluster.config.http
                else None,
            }
            for e in cluster.endpoints
        ],
    }


def _print_addresses(cluster: EmulatedCluster, as_json: bool) -> None:
    info = _addresses(cluster)
    if as_json:
        print(json.dumps(info), flush=True)
        return
    print(
        f"cluster {info['cluster']} ({info['version']}, {info['security_mode']}): "
        f"TFTP (option 150) {info['tftp']}"
    )
    for n in info["nodes"]:
        tftp = f"tftp {n['tftp']}  " if n["tftp"] else ""
        http = f"http {n['http']}  " if n["http"] else ""
        print(f"  node {n['name']}: {tftp}{http}tvs {n['tvs']}  sip {n['sip']}")
    sys.stdout.flush()


async def _serve(cluster: EmulatedCluster, as_json: bool) -> None:
    wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
    with trio.open_signal_receiver(*wanted) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(cluster.serve)
            _print_addresses(cluster, as_json)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        await cluster.restart_tvs()
                    except (OSError, *_ERRORS) as exc:
                        log.error("restart failed", reason=str(exc))
                    continue
                if signum == signal.SIGUSR1:
                    try:
                        cluster.ctl_update()
                    except (OSError, *_ERRORS) as exc:
                        log.error("CTL update failed", reason=str(exc))
                    continue
                log.info("signal received", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def _cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args)
    check_output_file(args.keylog, "--keylog")
    try:
        config = load_config(args)
        pki = _lab_pki(config, args.recipe)
    except _ERRORS as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(describe_error(exc))
    tvs_observer, http_observer = _metrics(args)
    try:
        cluster = EmulatedCluster(
            config,
            pki=pki,
            tvs_observer=tvs_observer,
            http_observer=http_observer,
            keylog=args.keylog,
        )
    except _ERRORS as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(describe_error(exc))
    pidfile: Path | None = args.pidfile
    if pidfile is not None:
        try:
            atomic_write(pidfile, f"{os.getpid()}\n".encode())
        except OSError as exc:
            return _fail(f"--pidfile {pidfile}: {exc.strerror or exc}")
    try:
        trio.run(_serve, cluster, args.json)
    except BaseException as exc:
        raise startup_error(exc) from None
    finally:
        if pidfile is not None:
            with contextlib.suppress(OSError):
                pidfile.unlink()
    return EXIT_OK


def _cmd_ctl_update(args: argparse.Namespace) -> int:
    """Send SIGUSR1 (rebuild the CTL) to a running ``tvs cluster serve``."""
    where = f"--pid {args.pid}" if args.pid is not None else f"--pidfile {args.pidfile}"
    try:
        pid = args.pid if args.pid is not None else int(args.pidfile.read_text().strip())
        os.kill(pid, signal.SIGUSR1)
    except ValueError:
        return _fail(f"{where}: not a process id")
    except OSError as exc:
        return _fail(f"{where}: {exc.strerror or exc}")
    if args.json:
        emit_json({"pid": pid, "signal": "SIGUSR1", "action": "ctl-update"})
    else:
        print(f"sent SIGUSR1 (CTL update) to {pid}")
    return EXIT_OK


def _metrics(args: argparse.Namespace) -> tuple[Any, Any]:
    """``--metrics``: the TVS and HTTP observers, their registry served at ADDR:PORT."""
    if args.metrics is None:
        return None, None
    from ..metrics import HttpPrometheusObserver, MetricsServer, PrometheusObserver

    tvs = PrometheusObserver()
    http = HttpPrometheusObserver(tvs.registry)
    host, port = args.metrics
    try:
        server = MetricsServer(tvs.registry, host, port)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise CommandError(f"--metrics: cannot listen on {host}:{port}: {why}") from None
    log.info("metrics listening", url=server.url)
    return tvs, http


def _cmd_files(args: argparse.Namespace) -> int:
    setup_logging(args, default_level="warning")  # library lines on stderr, not in --json
    try:
        mac = normalise_mac(args.mac)
        config = load_config(args)
        cluster = EmulatedCluster(config, pki=_lab_pki(config, args.recipe))
        files = cluster.files_for(mac)
        args.out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in files.items():
            (args.out / name).write_bytes(data)
            written.append(
                {"name": name, "path": str(args.out / name), "size": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
            )  # fmt: skip
            if not args.json:
                print(args.out / name)
        if args.json:
            emit_json({"cluster": config.name, "mac": mac, "files": written})
    except _ERRORS as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(describe_error(exc))
    return EXIT_OK
