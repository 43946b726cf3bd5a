"""What every ``tvs`` and ``phone-emu`` command shares: logging options, error reporting, JSON.

Owns the conventions a command follows, as helpers it calls:

- **logging**: :func:`add_logging_options` adds ``--log-level`` (and ``--log-format`` when the
  command logs in several formats); :func:`setup_logging` configures structlog from them, on
  stderr (stdout is the command's result). Every command that runs library code which logs
  calls :func:`setup_logging` first (:mod:`tvs.server.logsetup` does the configuring).
- **errors**: a command raises :class:`CommandError` (one line naming the file, address or
  option, and an :class:`~tvs.exitcodes.ExitCode`) or lets an error of the library's
  hierarchies escape; :func:`tvs.cli.app.run_command` prints it as ONE line
  ``PROG COMMAND: error: ...`` on stderr and returns the code. :func:`first_error` finds the
  first error inside (nested) exception groups, which is what a Trio nursery raises when a
  server cannot start; :func:`describe_error` turns any error into that one line
  (``FILE: strerror`` for OS errors, the address for a bind failure).
- **JSON**: :func:`add_json_option` and :func:`emit_json` (indented, one document on stdout).
- **downloads**: :func:`save_download`, the end of every ``get`` command (``--out``, ``-`` for
  stdout, the ``--json`` summary with the SHA-256).

Exit codes are :class:`tvs.exitcodes.ExitCode`: 0 OK, 1 INVALID (the thing checked is invalid
or the peer refused), 2 ERROR (usage, input, environment, transport). Does not own any
command, nor the argparse tree (:mod:`tvs.cli.app`).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO, cast

from ..excgroup import first_error
from ..exitcodes import ExitCode

if TYPE_CHECKING:
    from ..certs import Certificate, PrivateKey

__all__ = [
    "LOG_LEVELS",
    "CommandError",
    "ExitCode",
    "add_json_option",
    "add_logging_options",
    "check_output_file",
    "describe_error",
    "emit_json",
    "first_error",
    "load_certificate_chain",
    "load_identity",
    "read_input",
    "save_download",
    "setup_logging",
    "startup_error",
    "user_errors",
]

LOG_LEVELS = ("debug", "info", "warning", "error")


class CommandError(Exception):
    """A failure a user can cause, ending the command with one line and ``code``.

    ``message`` names the file, address or option at fault (e.g. ``"--cert tvs.pem: no
    certificate in the file"``); :func:`tvs.cli.app.run_command` prefixes the command's name.
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code


# --- logging ---------------------------------------------------------------------------------


def add_logging_options(
    p: argparse.ArgumentParser,
    *,
    formats: Iterable[str] | None = ("console", "json", "cucm"),
    default_level: str = "info",
    default_format: str = "console",
) -> None:
    """``--log-level LEVEL`` and, unless ``formats`` is None, ``--log-format FORMAT``.

    Log lines always go to stderr. A command whose ``--log-format`` means something else
    (``phone-emu boot``: its console output) passes ``formats=None``.
    """
    if formats is not None:
        choices = tuple(formats)
        p.add_argument(
            "--log-format",
            choices=choices,
            default=default_format,
            help=f"log lines on stderr: {', '.join(choices)} (default {default_format})",
        )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=default_level,
        type=str.lower,
        help=f"log lines at or above LEVEL (default {default_level})",
    )


def setup_logging(
    args: argparse.Namespace, *, stream: TextIO | None = None, default_level: str = "info"
) -> None:
    """Configure logging from :func:`add_logging_options`' options (defaults when absent:
    a command without the options that runs library code which logs passes
    ``default_level="warning"``, keeping stderr quiet and stdout clean)."""
    from ..server.logsetup import LOG_FORMATS, configure_logging

    fmt = getattr(args, "log_format", "console")
    if fmt not in LOG_FORMATS:  # a command's own output format (phone-emu boot --log-format)
        fmt = "console"
    level = getattr(args, "log_level", default_level)
    configure_logging(fmt, level, stream=stream or cast(TextIO, _Stderr()))


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (a command run in-process by a test
    must not leave logging bound to a captured stream that is closed later)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# --- errors ----------------------------------------------------------------------------------


def user_errors() -> tuple[type[BaseException], ...]:
    """The library's error hierarchies: errors a user's input or environment can cause.

    Imported lazily, so ``tvs --help`` stays fast. A command's error that is not one of these
    (nor OSError) is a bug and keeps its traceback.
    """
    from ..certs import CertificateError
    from ..cluster import ClusterError
    from ..pki import PkiError
    from ..store import StoreError
    from ..tlv import TlvError

    return (OSError, CertificateError, ClusterError, PkiError, StoreError, TlvError)


def startup_error(exc: BaseException, *, address: str | None = None) -> CommandError:
    """``exc`` (or the first user-caused error inside an exception group) as a CommandError
    whose one line names ``address`` for bind and resolve errors; use as
    ``except BaseException as exc: raise startup_error(exc, address=...) from None``.

    Anything else (Ctrl-C, cancellation, a bug) is re-raised unchanged.
    """
    import ssl

    found = first_error(exc, (CommandError, ssl.SSLError, *user_errors()))
    if found is None:
        raise exc
    if isinstance(found, CommandError):
        return found
    return CommandError(describe_error(found, address=address))


_BIND_ERRORS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def describe_error(exc: BaseException, *, address: str | None = None) -> str:
    """One line for ``exc`` (the first error of a group): the file or address, then why.

    ``address`` names the listener a bind error belongs to (``"TVS 127.0.0.1:2445"``).
    """
    found = first_error(exc, (BaseException,)) or exc
    if isinstance(found, CommandError):
        text = str(found)
    elif isinstance(found, OSError):
        why = found.strerror or str(found) or type(found).__name__
        where = found.filename
        if where is not None and found.filename2 is not None:
            where = f"{where} -> {found.filename2}"
        if where is not None:
            text = f"{where}: {why}"
        elif address is not None and (found.errno in _BIND_ERRORS or _is_resolve_error(found)):
            text = f"cannot listen on {address}: {why}"
        elif address is not None:
            text = f"{address}: {why}"
        else:
            text = why
    else:
        text = str(found) or type(found).__name__
    return " ".join(text.split())  # one line, whatever the library put in the message


def _is_resolve_error(exc: OSError) -> bool:
    import socket

    return isinstance(exc, socket.gaierror)


# --- inputs ----------------------------------------------------------------------------------


def read_input(path: Path, option: str | None = None) -> bytes:
    """The bytes of ``path``; a CommandError naming the option and file when unreadable."""
    try:
        return path.read_bytes()
    except OSError as exc:
        where = f"{option} {path}" if option else str(path)
        raise CommandError(f"{where}: {exc.strerror or exc}") from None


def load_certificate_chain(path: Path, option: str = "--cert") -> list[Certificate]:
    """Every certificate in a PEM (or one DER) file; the first is the leaf."""
    from ..certs import CertificateError, load_certificates

    data = read_input(path, option)
    try:
        certs = load_certificates(data, source=f"{option} {path}")
    except CertificateError as exc:
        raise CommandError(str(exc)) from None
    if not certs:
        raise CommandError(f"{option} {path}: no certificate in the file")
    return certs


def load_identity(
    cert: Path, key: Path, *, cert_option: str = "--cert", key_option: str = "--key"
) -> tuple[list[Certificate], PrivateKey]:
    """A server's certificate chain and key, checked before anything listens: an unreadable
    or malformed file, or a key that does not belong to the certificate, is one line naming
    the option and file (instead of a TLS library's ``PEM lib`` deep inside a nursery)."""
    from cryptography.hazmat.primitives import serialization

    from ..certs import CertificateError, load_private_key

    chain = load_certificate_chain(cert, cert_option)
    data = read_input(key, key_option)
    try:
        private = load_private_key(data)
    except CertificateError as exc:
        raise CommandError(f"{key_option} {key}: {exc}") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = private.public_key().public_bytes(serialization.Encoding.DER, spki)
    theirs = chain[0].x509.public_key().public_bytes(serialization.Encoding.DER, spki)
    if mine != theirs:
        raise CommandError(
            f"{key_option} {key}: the key does not belong to the certificate in {cert} "
            f"({chain[0].subject})"
        )
    return chain, private


def check_output_file(path: Path | None, option: str) -> None:
    """An output file the command appends to later (``--keylog``): can it be opened? Else a
    CommandError naming the option, before anything listens or connects (a TLS library would
    otherwise fail silently at the first handshake)."""
    if path is None:
        return
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CommandError(f"{option} {path}: {exc.strerror or exc}") from None


# --- JSON ------------------------------------------------------------------------------------


def add_json_option(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def emit_json(data: Any, *, out: TextIO | None = None) -> None:
    """One JSON document on stdout (indented, UTF-8 kept readable)."""
    stream = out or sys.stdout
    json.dump(data, stream, indent=2, ensure_ascii=False)
    stream.write("\n")
    stream.flush()


def save_download(data: bytes, args: argparse.Namespace, server: str) -> int:
    """The end of a ``get`` command (``tvs http get``, ``tvs tftp get``): write ``data`` to
    ``--out`` (default: the file's own name; ``-``: stdout), and with ``--json`` say what was
    saved (server, file, out, size, sha256)."""
    out = args.out or PurePosixPath(args.file).name or "download"
    if out == "-":
        if args.json:
            raise CommandError("--out - writes the file to stdout; --json needs a file")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return int(ExitCode.OK)
    try:
        Path(out).write_bytes(data)
    except OSError as exc:
        raise CommandError(f"--out {out}: {exc.strerror or exc}") from None
    if args.json:
        emit_json(
            {"server": server, "file": args.file, "out": out, "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
        )  # fmt: skip
    return int(ExitCode.OK)
