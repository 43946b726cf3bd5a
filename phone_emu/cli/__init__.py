"""The ``phone-emu`` command: one argparse tree, each command group in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tvs.cli.app import build_command, run_command

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "phone_emu.cli.query",  # query
    "phone_emu.cli.capf",  # capf
    "phone_emu.cli.boot",  # boot, show
    "phone_emu.cli.migrate",  # migrate
    "phone_emu.cli.fleet",  # fleet
    "phone_emu.cli.scenarios",  # scenarios list, scenarios run
    "phone_emu.cli.report",  # report merge
)


def build_parser() -> argparse.ArgumentParser:
    return build_command(
        "phone-emu", "Emulated Cisco phones and secure-cluster migration lab", _COMMAND_MODULES
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
