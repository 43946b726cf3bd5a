"""What the lab commands (``migrate``, ``fleet``, ``scenarios``) share: options, exit codes, errors.

Owns the argument types (``HOST:PORT``, counts, TFTP block sizes, shards), the option groups
more than one lab command takes (how phones boot: :func:`add_boot_options`; where a lab runs:
:func:`add_lab_options`; scenario directories: :func:`add_scenario_dirs`), turning parsed
arguments into the lab's values (:func:`load_lab`, :func:`run_options`, :func:`progress_for`),
the exit codes and the errors that mean "lab error" (exit 2). Does not own any command: each
command group registers itself (``migrate``, ``fleet``, ``scenarios``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from tvs.cli.app import hostport as _hostport
from tvs.cli.common import CommandError, add_logging_options
from tvs.cli.common import setup_logging as _setup_logging
from tvs.cluster import ClusterError
from tvs.exitcodes import ExitCode
from tvs.pki import PkiError
from tvs.tftp.protocol import MAX_BLKSIZE, MIN_BLKSIZE

from ..lab.config import LabConfig, LabConfigError
from ..lab.fleet import FleetError, parse_shard
from ..lab.options import AUTO_WORKERS_FROM, MigrationError, RunOptions
from ..lab.progress import RunProgress
from ..lab.scenarios import ScenarioError
from ..lab.workers import WorkerError
from ..phone.fetch import DEFAULT_HTTP_PORT, FETCH_MODES, FetchOptions

__all__ = [
    "EXIT_DIFFERS",
    "EXIT_ERROR",
    "EXIT_OK",
    "LAB_ERRORS",
    "add_boot_options",
    "add_fetch_options",
    "add_lab_options",
    "add_phones",
    "add_scenario_dirs",
    "blksize",
    "fail",
    "fetch_options",
    "hostport",
    "load_lab",
    "positive",
    "progress_for",
    "run_options",
    "setup_logging",
    "shard",
]

# 0 as expected (every phone booted / migrated / did what the scenario says), 1 some phone did
# not, 2 usage, configuration or lab error
EXIT_OK, EXIT_DIFFERS, EXIT_ERROR = ExitCode.OK, ExitCode.INVALID, ExitCode.ERROR
LAB_ERRORS = (
    LabConfigError,
    ScenarioError,
    FleetError,
    MigrationError,
    ClusterError,
    PkiError,
    WorkerError,
)


# --- argument types --------------------------------------------------------------------------


hostport = _hostport(69)
"""``HOST:PORT`` (port 69 when omitted; ``[v6]:PORT``; an empty host is 127.0.0.1)."""


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive(text: str) -> int:
    value = _number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def blksize(text: str) -> int:
    """A TFTP block size the phones may ask for (RFC 2348)."""
    value = _number(text)
    if not MIN_BLKSIZE <= value <= MAX_BLKSIZE:
        raise argparse.ArgumentTypeError(f"block size {value} outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
    return value


def shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except FleetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- option groups ---------------------------------------------------------------------------


def add_boot_options(p: argparse.ArgumentParser) -> None:
    """How the phones boot, and what the terminal shows (every lab command that boots)."""
    p.add_argument(
        "--concurrency",
        type=positive,
        metavar="N",
        help="phones booting at once: the boot-storm limit (default 64)",
    )
    p.add_argument(
        "--no-register",
        action="store_true",
        help="skip the secure SIP TLS handshake at the end of each boot",
    )
    p.add_argument(
        "--shared-key",
        action="store_true",
        help="one EC key for every phone's LSC (default: one key per phone)",
    )
    p.add_argument(
        "--tftp-blksize",
        type=blksize,
        metavar="BYTES",
        help="ask for this TFTP block size (RFC 2348; default: plain 512-byte blocks). Larger "
        "blocks make big fleets lighter on this machine",
    )
    add_fetch_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
    add_logging_options(p, formats=None, default_level="error")  # servers' and phones' lines


def add_fetch_options(p: argparse.ArgumentParser) -> None:
    """How phones download files: ``--fetch`` and ``--http-port`` (every command that boots)."""
    p.add_argument(
        "--fetch",
        choices=FETCH_MODES,
        default="http+tftp",
        help="http+tftp (default, current firmware: HTTP 6970 first, TFTP for a file HTTP "
        "does not deliver), tftp (older firmware) or http (HTTP only)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        metavar="PORT",
        help=f"HTTP port of the TFTP server (default {DEFAULT_HTTP_PORT}; lab clusters tell "
        "the phones their own)",
    )


def fetch_options(args: argparse.Namespace) -> FetchOptions:
    """The phones' :class:`FetchOptions` from :func:`add_fetch_options`' options."""
    return FetchOptions(mode=args.fetch, http_port=args.http_port)


def add_lab_options(p: argparse.ArgumentParser) -> None:
    """Where a migration runs (lab file, working directory, PKI, workers), then the boot
    options (``migrate``, ``scenarios run``)."""
    p.add_argument(
        "--config",
        type=Path,
        metavar="LAB.toml",
        help="lab configuration (default: the embedded seed lab)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="where the PKI and the stores go (default: a temporary directory)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    p.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="boot the phones in N worker processes (default: one per core for fleets of "
        f"{AUTO_WORKERS_FROM} phones or more, else in the runner's process)",
    )
    p.add_argument(
        "--pki",
        type=Path,
        metavar="DIR",
        help="use this lab PKI (tvs certs generate) instead of generating one",
    )
    add_boot_options(p)


def add_phones(p: argparse.ArgumentParser, what: str, default: int | None = None) -> None:
    p.add_argument("--phones", type=positive, default=default, metavar="N", help=what)


def add_scenario_dirs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also read scenarios from DIR/*.toml (or a file); repeatable",
    )


# --- from arguments to the lab's values ------------------------------------------------------


def setup_logging(args: argparse.Namespace) -> None:
    """The one logging setup (:func:`tvs.cli.common.setup_logging`), console on stderr."""
    _setup_logging(args)


def load_lab(args: argparse.Namespace) -> LabConfig:
    return LabConfig.load(args.config) if args.config else LabConfig.default()


def progress_for(args: argparse.Namespace) -> RunProgress:
    """A progress bar on stderr, unless ``--no-progress`` or ``--json``."""
    return RunProgress(enabled=not (args.no_progress or args.json))


def run_options(args: argparse.Namespace, progress: RunProgress, **extra: Any) -> RunOptions:
    return RunOptions(
        phones=getattr(args, "phones", None),
        concurrency=args.concurrency,
        register=False if args.no_register else None,
        tftp_blksize=args.tftp_blksize,
        fetch_mode=args.fetch,
        http_port=args.http_port,
        workdir=args.workdir,
        keep=args.keep,
        pki_dir=args.pki,
        shared_key=args.shared_key,
        workers=args.workers,
        log_level=args.log_level,
        progress=progress,
        **extra,
    )


def fail(text: str) -> NoReturn:
    """End the command with the lab-error exit code and ``text`` as its one stderr line
    (``phone-emu migrate: error: ...``, by :func:`tvs.cli.app.run_command`)."""
    raise CommandError(text, ExitCode.ERROR)
