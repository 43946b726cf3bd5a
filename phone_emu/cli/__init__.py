"""The ``phone-emu`` command: one argparse tree, each command group in its own module.

A command module exposes ``register(subparsers)``, adding its parser(s) and setting
``func=handler`` where ``handler(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

_COMMAND_MODULES = (
    "phone_emu.cli.query",  # query
    "phone_emu.cli.boot",  # boot, show
    "phone_emu.cli.lab",  # fleet, migrate, scenarios
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phone-emu", description="Emulated Cisco phones and secure-cluster migration lab"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
