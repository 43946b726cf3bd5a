"""What keeps big fleets fast by default: worker processes chosen from the fleet size and the
cores, and the command line leaving the choice to that rule unless ``--workers`` is given."""

from __future__ import annotations

import pytest

from phone_emu.cli import build_parser
from phone_emu.cli.lab_options import run_options
from phone_emu.lab.options import AUTO_WORKERS_FROM, auto_workers
from phone_emu.lab.progress import RunProgress


@pytest.mark.parametrize(
    ("phones", "cpus", "expected"),
    [
        (4, 8, 1),  # scenario-sized fleets stay in the runner
        (AUTO_WORKERS_FROM - 1, 2, 1),
        (AUTO_WORKERS_FROM, 2, 2),
        (10_000, 2, 2),
        (10_000, 1, 1),
        (10_000, 16, 16),
    ],
)
def test_auto_workers(phones: int, cpus: int, expected: int) -> None:
    assert auto_workers(phones, cpus) == expected


def test_migrate_leaves_workers_to_the_rule_unless_given() -> None:
    args = build_parser().parse_args(["migrate", "--phones", "10000"])
    assert run_options(args, RunProgress(enabled=False)).workers is None
    args = build_parser().parse_args(["migrate", "--workers", "3"])
    assert run_options(args, RunProgress(enabled=False)).workers == 3
