"""The seed's migration through the phone emulator's eyes, against two emulated clusters on
127.0.1.1 and 127.0.2.1: boot at the source, then "option 150" to the destination fails until
the destination CallManager is imported at the source *and* TVS is restarted; rollback to
pre 8.0 on a secure source strands the phone (its TVS can no longer be authenticated)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from phone_emu.phone.boot import BootResult, BootState
from phone_emu.phone.driver import NetworkOptions, Phone, boot_phone
from phone_emu.phone.fetch import FetchOptions
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.tvs_client import TvsClientConfig
from tvs.cluster import ClusterConfig, EmulatedCluster
from tvs.pki import LabPki

MAC = "B000B4BA0AEE"
OPTIONS = NetworkOptions(
    tvs=TvsClientConfig(timeout=5, connect_timeout=5),
    tftp_timeout=0.5,
    fetch=FetchOptions(mode="tftp"),  # never HTTP 6970 on a shared loopback address
)


@pytest.fixture
def clusters(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path) -> dict[str, EmulatedCluster]:
    out = {}
    for name in ("source", "destination"):
        config = (
            ClusterConfig.example(name)
            .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / name, watch_interval=0)
            .with_nodes(ports=0)
        )
        out[name] = EmulatedCluster(config, pki=lab_pki)
    return out


@pytest.fixture
def phone(lab_pki: LabPki, tmp_path: Path) -> Phone:
    lsc = lab_pki.clusters["source"].phones[MAC]
    return Phone.open(PhoneIdentity.from_lsc(lsc.cert, lsc.key), tmp_path / "phone")


async def _boot(phone: Phone, cluster: EmulatedCluster) -> BootResult:
    with trio.fail_after(30):
        return await boot_phone(phone, tftp=cluster.tftp_address, options=OPTIONS)


async def test_manual_migration_needs_import_and_tvs_restart(
    clusters: dict[str, EmulatedCluster], phone: Phone, nursery: trio.Nursery
) -> None:
    source = await nursery.start(clusters["source"].serve)
    destination = await nursery.start(clusters["destination"].serve)
    first = await _boot(phone, source)
    assert first.state is BootState.REGISTERED, first.reasons
    assert first.tvs_queries == 0

    not_imported = await _boot(phone, destination)
    assert not_imported.state is BootState.REJECTED
    assert source.statistics().tvs_requests.get("INVALID", 0) >= 1

    dst_cm = destination.pki.publisher.callmanager.cert
    source.import_certificates("Phone-SAST-trust", [dst_cm])
    source.import_certificates("CallManager-trust", [dst_cm])
    # the destination's SIP port must trust the phone's LSC (the source CAPF): upload_capf
    destination.import_certificates("CAPF-trust", [source.pki.capf.cert])
    not_restarted = await _boot(phone, destination)
    assert not_restarted.state is BootState.REJECTED  # stale TVS cache

    await source.restart_tvs()
    migrated = await _boot(phone, destination)
    assert migrated.state is BootState.REGISTERED, migrated.reasons
    assert migrated.tvs_queries >= 1
    assert source.statistics().tvs_requests.get("VALID", 0) >= 1


async def test_rollback_on_secure_source_strands_the_phone(
    clusters: dict[str, EmulatedCluster], phone: Phone, nursery: trio.Nursery
) -> None:
    source = await nursery.start(clusters["source"].serve)
    destination = await nursery.start(clusters["destination"].serve)
    assert (await _boot(phone, source)).state is BootState.REGISTERED
    source.set_rollback_pre80(True)
    rolled = await _boot(phone, source)  # the phone takes the blank ITL (its CTL vouches for it)
    assert rolled.state is BootState.REGISTERED, rolled.reasons
    assert phone.trust.tvs_pins() == ()  # no TVS record left to pin the source TVS to
    dst_cm = destination.pki.publisher.callmanager.cert
    source.import_certificates("Phone-SAST-trust", [dst_cm])
    source.import_certificates("CallManager-trust", [dst_cm])
    await source.restart_tvs()
    stranded = await _boot(phone, destination)
    assert stranded.state is not BootState.REGISTERED
    assert "tvs.handshake-failed" in stranded.reasons  # the source TVS is not in the ITL
    assert "Trust List update failed" in stranded.status_lines
    assert source.statistics().tvs_requests == {}
