"""The ``tvs`` command: one argparse tree, each command group in its own module.

A command module exposes ``register(subparsers)``, adding its parser(s) and setting
``func=handler`` where ``handler(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# command groups, in the order `tvs --help` lists them
_COMMAND_MODULES = (
    "tvs.cli.codec",  # decode, encode
    "tvs.cli.files",  # tlv, sgn
    "tvs.cli.certs",  # certs generate
    "tvs.cli.serve",  # serve, reload
    "tvs.cli.store",  # store ...
    "tvs.cli.tftp",  # tftp serve, tftp get
    "tvs.cli.cluster",  # cluster serve
    "tvs.cli.trace",  # trace, trace diff
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvs", description="Cisco TVS, CTL/ITL and TFTP tools for secure-cluster labs"
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
