"""Building a command from command-group modules, shared by ``tvs`` and ``phone-emu``.

A command module exposes ``register(subparsers)``, adding its parser(s) and setting
``func=handler`` where ``handler(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable, Sequence

from ..netaddr import parse_hostport

__all__ = ["build_command", "hostport", "run_command"]


def hostport(default_port: int | None = None) -> Callable[[str], tuple[str, int]]:
    """An argparse type for ``HOST:PORT`` (a bare host takes ``default_port`` when given)."""

    def parse(text: str) -> tuple[str, int]:
        try:
            return parse_hostport(text, default_port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "HOST:PORT"  # what argparse names in its error message
    return parse


def build_command(prog: str, description: str, modules: Iterable[str]) -> argparse.ArgumentParser:
    """One argparse tree with a subcommand group per module, in the order given."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen handler; Ctrl-C is 130, a closed pipe is quiet."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
