"""What keeps big fleets fast by default: worker processes chosen from the fleet size and the
cores, the command line leaving the choice to that rule unless ``--workers`` is given, and
phone identities loaded into TLS contexts without file system work."""

from __future__ import annotations

import os
import ssl
from typing import Any

import pytest

from phone_emu.cli import build_parser
from phone_emu.cli.lab_options import run_options
from phone_emu.lab.fleet import fleet_macs, make_identities
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


@pytest.mark.parametrize("memfd", [True, False])
def test_in_memory_identities_load_with_or_without_memfd(
    lab_pki: Any, memfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone's LSC and key load into a client context from memory (through a memfd, or the
    private temporary file where memfds are missing) and nothing is left behind."""
    from tvs import tlsconfig

    monkeypatch.setattr(tlsconfig, "_memfd_works", memfd)
    capf = lab_pki.cluster("source").capf
    [phone] = make_identities(capf, fleet_macs(1))
    pins = [lab_pki.cluster("source").publisher.callmanager.cert]
    ctx = tlsconfig.client_context(cert=phone.lsc, key=phone.key, pinned=pins)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1
    if not memfd:
        assert os.listdir(tlsconfig._identity_dir()) == []
