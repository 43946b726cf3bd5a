"""Building a command from command-group modules, shared by ``tvs`` and ``phone-emu``.

A command module exposes ``register(subparsers)``, adding its parser(s) and setting
``func=handler`` where ``handler(args) -> int`` returns the exit code
(:class:`tvs.exitcodes.ExitCode`). :func:`run_command` sets up logging for every command
(:func:`tvs.cli.common.setup_logging`: stderr, the command's level or warnings) and owns how a
command ends: a
:class:`~tvs.cli.common.CommandError` or an error of the library's hierarchies (also inside an
exception group) becomes ONE line ``PROG COMMAND: error: ...`` on stderr and exit code 2 (or the
CommandError's code); Ctrl-C is 130; a closed stdout pipe is quiet. :func:`iter_commands` walks
the tree (the tests check every command's conventions with it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from ..exitcodes import ExitCode
from ..netaddr import parse_hostport
from .common import CommandError, describe_error, first_error, setup_logging, user_errors

__all__ = ["build_command", "hostport", "iter_commands", "package_version", "run_command"]


def hostport(default_port: int | None = None) -> Callable[[str], tuple[str, int]]:
    """An argparse type for ``HOST:PORT`` (a bare host takes ``default_port`` when given)."""

    def parse(text: str) -> tuple[str, int]:
        try:
            return parse_hostport(text, default_port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "HOST:PORT"  # what argparse names in its error message
    return parse


def package_version() -> str:
    """The installed tvs-lab version (``--version`` of both commands)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tvs-lab")
    except PackageNotFoundError:  # pragma: no cover - running from a tree without metadata
        return "unknown"


def build_command(prog: str, description: str, modules: Iterable[str]) -> argparse.ArgumentParser:
    """One argparse tree with a subcommand group per module, in the order given."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (tvs-lab) {package_version()}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(sub)
    for path, leaf in iter_commands(parser):
        leaf.set_defaults(_prog=" ".join((prog, *path)))
    return parser


def iter_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every leaf command of the tree: (its words after the program name, its parser)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    seen: set[int] = set()
    for group in groups:
        for name, child in group.choices.items():
            if id(child) in seen:  # an alias
                continue
            seen.add(id(child))
            yield from iter_commands(child, (*path, name))


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen handler; errors end in one line (see module doc)."""
    args = parser.parse_args(argv)
    prog = getattr(args, "_prog", parser.prog)
    # every command's library log lines go to stderr (stdout is its result): the command's
    # --log-level/--log-format when it has them, else warnings and worse
    setup_logging(args, default_level="warning")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return int(ExitCode.OK)
    except CommandError as exc:
        print(f"{prog}: error: {describe_error(exc)}", file=sys.stderr)
        return int(exc.code)
    except BaseException as exc:
        only_interrupts = (
            isinstance(exc, BaseExceptionGroup)
            and first_error(exc, (KeyboardInterrupt,)) is not None
            and first_error(exc, (Exception,)) is None
        )
        if only_interrupts:
            return 130  # Ctrl-C inside a nursery
        kinds: tuple[type[BaseException], ...] = (CommandError, *user_errors())
        found = first_error(exc, kinds) if isinstance(exc, BaseExceptionGroup) else exc
        if found is None or not isinstance(found, kinds):
            raise  # a bug: keep the traceback
        code = found.code if isinstance(found, CommandError) else ExitCode.ERROR
        print(f"{prog}: error: {describe_error(found)}", file=sys.stderr)
        return int(code)
