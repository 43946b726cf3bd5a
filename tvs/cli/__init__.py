"""The ``tvs`` command: one argparse tree, each command group in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .app import build_command, run_command

__all__ = ["build_parser", "main"]

# command groups, in the order `tvs --help` lists them
_COMMAND_MODULES = (
    "tvs.cli.codec",  # decode, encode
    "tvs.cli.files",  # tlv, sgn
    "tvs.cli.enc",  # enc build, show, decrypt
    "tvs.cli.certs",  # certs generate
    "tvs.cli.serve",  # serve, reload
    "tvs.cli.store",  # store ...
    "tvs.cli.tftp",  # tftp serve, tftp get
    "tvs.cli.http",  # http serve
    "tvs.cli.cluster",  # cluster serve
    "tvs.cli.capf",  # capf serve, schedule, list, show
    "tvs.cli.trace",  # trace, trace diff
)


def build_parser() -> argparse.ArgumentParser:
    return build_command(
        "tvs", "Cisco TVS, CTL/ITL and TFTP tools for secure-cluster labs", _COMMAND_MODULES
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
