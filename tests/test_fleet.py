"""The fleet: numbering and sharding, identities issued on the fly, concurrent boots against a
real emulated cluster (in memory and with state directories), one phone's crash isolated, and
``phone-emu fleet`` as a process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from phone_emu.lab import fleet as fleet_module
from phone_emu.lab.config import LabConfig
from phone_emu.lab.fleet import (
    FleetBoot,
    FleetError,
    boot_fleet,
    fleet_macs,
    make_identities,
    make_phones,
    parse_shard,
    shard_range,
)
from phone_emu.phone.boot import BootState
from tvs.cluster import EmulatedCluster
from tvs.pki import LabPki

# --- numbering -----------------------------------------------------------------------------------


@given(st.integers(0, 5000), st.integers(1, 64))
def test_shards_partition_the_fleet(count: int, n: int) -> None:
    slices = [shard_range(count, (i, n)) for i in range(1, n + 1)]
    assert [x for r in slices for x in r] == list(range(count))
    sizes = [len(r) for r in slices]
    assert max(sizes) - min(sizes) <= 1


def test_macs_count_up_and_shards_do_not_collide() -> None:
    assert fleet_macs(3) == [(0, "B000B4BA0AEE"), (1, "B000B4BA0AEF"), (2, "B000B4BA0AF0")]
    assert fleet_macs(3, "00:00:00:00:00:FF", (2, 2)) == [(1, "000000000100"), (2, "000000000101")]
    shards = [fleet_macs(10, shard=(i, 3)) for i in (1, 2, 3)]
    macs = [m for s in shards for _, m in s]
    assert len(set(macs)) == 10
    with pytest.raises(FleetError, match="overflow"):
        fleet_macs(2, "FFFFFFFFFFFF")


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/2/3", "-1/2"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(FleetError):
        parse_shard(text)


def test_shard_parses() -> None:
    assert parse_shard("2/4") == (2, 4)


# --- identities ----------------------------------------------------------------------------------


def test_identities_have_lscs_from_the_capf(lab_pki: LabPki) -> None:
    capf = lab_pki.cluster("source").capf
    ids = make_identities(capf, fleet_macs(3), model="7975")
    assert [i.device_name for i in ids] == [
        "CP-7975-SEPB000B4BA0AEE",
        "CP-7975-SEPB000B4BA0AEF",
        "CP-7975-SEPB000B4BA0AF0",
    ]
    for i in ids:
        assert i.lsc is not None and i.key is not None
        assert i.lsc.issuer == capf.cert.subject
        assert i.lsc.common_name == i.device_name
    publics = {i.key.public_key().public_numbers() for i in ids}  # type: ignore[union-attr]
    assert len(publics) == 3
    shared = make_identities(capf, fleet_macs(3), shared_key=True)
    assert len({i.key.public_key().public_numbers() for i in shared}) == 1  # type: ignore[union-attr]
    assert len({i.lsc.serial for i in shared}) == 3  # type: ignore[union-attr]


# --- booting -------------------------------------------------------------------------------------


@pytest.fixture
async def source(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path):
    cfg = LabConfig.default().cluster_config("source", tmp_path).evolve(pki_dir=lab_pki_dir)
    async with trio.open_nursery() as nursery:
        cluster = await nursery.start(EmulatedCluster(cfg, pki=lab_pki).serve)
        yield cluster
        nursery.cancel_scope.cancel()


async def test_fleet_boots_concurrently_in_memory(source: EmulatedCluster, lab_pki) -> None:
    ids = make_identities(lab_pki.cluster("source").capf, fleet_macs(6, shard=(2, 2)))
    phones = make_phones(ids)
    seen: list[FleetBoot] = []
    boots = await boot_fleet(
        phones, tftp=source.tftp_address, concurrency=2, on_done=seen.append, indices=[3, 4, 5]
    )
    assert [b.index for b in boots] == [3, 4, 5]
    assert sorted(b.index for b in seen) == [3, 4, 5]
    for b, phone in zip(boots, phones, strict=True):
        assert b.result is not None and b.error is None
        assert b.result.state is BootState.REGISTERED, b.result.to_dict()
        assert b.device == phone.identity.device_name
        assert phone.trust.ctl is not None and phone.config is not None
        assert 0 <= b.started <= b.finished
    stats = source.statistics()
    assert stats.sip_handshakes >= 3 and stats.tftp_transfers >= 9
    again = await boot_fleet(phones, tftp=source.tftp_address, concurrency=8)
    assert {b.result.step("ctl").reason for b in again if b.result} == {"ctl.unchanged"}


async def test_fleet_with_state_directories(source: EmulatedCluster, lab_pki, tmp_path) -> None:
    ids = make_identities(lab_pki.cluster("source").capf, fleet_macs(2))
    await boot_fleet(make_phones(ids, tmp_path / "phones"), tftp=source.tftp_address)
    for i in ids:
        assert (tmp_path / "phones" / i.name / "CTLFile.tlv").is_file()
    reloaded = make_phones(ids, tmp_path / "phones")
    assert all(p.trust.ctl is not None for p in reloaded)
    boots = await boot_fleet(reloaded, tftp=source.tftp_address)
    assert {b.result.step("itl").reason for b in boots if b.result} == {"itl.unchanged"}


async def test_one_crashing_phone_does_not_stop_the_fleet(
    source: EmulatedCluster, lab_pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = make_identities(lab_pki.cluster("source").capf, fleet_macs(3))
    phones = make_phones(ids)
    real = fleet_module.boot_phone

    async def flaky(phone, **kw):
        if phone is phones[1]:
            raise RuntimeError("firmware bug")
        return await real(phone, **kw)

    monkeypatch.setattr(fleet_module, "boot_phone", flaky)
    boots = await boot_fleet(phones, tftp=source.tftp_address)
    assert [b.error is None for b in boots] == [True, False, True]
    assert boots[1].result is None and "firmware bug" in (boots[1].error or "")
    with pytest.raises(FleetError):
        await boot_fleet(phones, tftp=source.tftp_address, concurrency=0)


async def test_unreachable_tftp_is_a_transport_error(lab_pki) -> None:
    ids = make_identities(lab_pki.cluster("source").capf, fleet_macs(1))
    from phone_emu.phone.driver import NetworkOptions

    opts = NetworkOptions(tftp_timeout=0.05, tftp_retries=1)
    sock = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))  # bound, silent: the fetch times out
    with sock:
        [b] = await boot_fleet(make_phones(ids), tftp=sock.getsockname(), options=opts)
    assert b.result is not None and b.result.state is BootState.ERROR
    assert b.result.step("ctl").reason == "ctl.fetch-failed"


# --- the command ---------------------------------------------------------------------------------

_MAIN = "import sys; from phone_emu.cli import main; sys.exit(main(sys.argv[1:]))"


async def test_fleet_command_shards(source: EmulatedCluster, lab_pki_dir: Path, tmp_path) -> None:
    host, port = source.tftp_address
    outs = []
    for shard in ("1/2", "2/2"):
        done = await trio.run_process(
            [
                sys.executable,
                "-c",
                _MAIN,
                "fleet",
                "--tftp",
                f"{host}:{port}",
                "--http-port",  # the cluster's own (port 0): never a stray server's 6970
                str(source.http_address[1]),
                "--phones",
                "5",
                "--shard",
                shard,
                "--pki",
                str(lab_pki_dir),
                "--json",
                "--concurrency",
                "3",
                "--state-dir",
                str(tmp_path / "phones"),
                "--report",
                str(tmp_path / f"{shard[0]}.json"),
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outs.append(json.loads(done.stdout))
    assert [o["phones"] for o in outs] == [2, 3]
    assert all(o["states"] == {"registered": o["phones"]} for o in outs)
    assert all(o["peak_rss_mb"] > 0 and o["boot_time"] > 0 for o in outs)
    assert len(list((tmp_path / "phones").iterdir())) == 5
    detail = json.loads((tmp_path / "2.json").read_text())["phones_detail"]
    assert [d["index"] for d in detail] == [2, 3, 4]
    missing = await trio.run_process(
        [
            sys.executable,
            "-c",
            _MAIN,
            "fleet",
            "--tftp",
            f"{host}:{port}",
            "--pki",
            str(tmp_path / "nope"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert missing.returncode == 2


async def test_fleet_enroll_command(source: EmulatedCluster, lab_pki_dir: Path, tmp_path) -> None:
    """``--enroll``: phones with a MIC and no LSC; the cluster scheduled a null-string install
    for them (as ``tvs capf schedule`` would), so every phone enrolls, then registers."""
    from tvs.device import device_name

    macs = [mac for _, mac in fleet_macs(3, "B000B4BA1000")]
    source.capf_db.schedule([device_name(m) for m in macs], operation="install", auth_mode="null")
    host, port = source.tftp_address
    done = await trio.run_process(
        [
            sys.executable,
            "-c",
            _MAIN,
            "fleet",
            "--tftp",
            f"{host}:{port}",
            "--phones",
            "3",
            "--mac-start",
            "B000B4BA1000",
            "--pki",
            str(lab_pki_dir),
            "--enroll",
            "--http-port",
            str(source.http_address[1]),
            "--json",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["states"] == {"registered": 3} and out["enrolled"] == 3
    for m in macs:
        issued = source.capf_db.certificate(device_name(m))
        assert issued is not None  # what encrypted configuration's certHash comes from
        assert source.known_phone_certificate(device_name(m)).der == issued.der
