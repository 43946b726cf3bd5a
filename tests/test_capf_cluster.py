"""CAPF inside ``tvs cluster serve``: the phone's configuration announces the scheduled
operation (``capfAuthMode``, ``capfList`` with the bound port), a phone trusting the CAPF
record of the cluster's ITL enrolls by null string or by its MIC from the lab's manufacturing
CA, and the file changes back to "nothing pending" once the LSC is installed."""

from __future__ import annotations

import re
from pathlib import Path

import trio

from phone_emu.capf_client import CapfClientConfig, Credential, capf_enroll, trust_from_file
from tvs.capf import CertType
from tvs.cluster import ClusterConfig, EmulatedCluster
from tvs.pki import LabPki
from tvs.pki.issue import generate_key, issue_mic

MAC = "B000B4BA0AEE"
DEVICE = f"SEP{MAC}"


def make(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path) -> EmulatedCluster:
    config = (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "store", watch_interval=0)
        .with_nodes(ports=0)
    )
    return EmulatedCluster(config, pki=lab_pki)


async def test_enroll_from_the_cluster(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path) -> None:
    cluster = make(lab_pki, lab_pki_dir, tmp_path)
    assert b"<capfAuthMode>0</capfAuthMode>" in cluster.files.config_xml(MAC)
    cluster.capf_db.schedule([DEVICE], operation="install", auth_mode="null", key="ec-p256")
    cluster.capf_db.schedule(["SEP00000000AB01"], operation="install", auth_mode="mic")
    async with trio.open_nursery() as nursery:
        await nursery.start(cluster.serve)
        (host, port) = cluster.capf_addresses[0]
        xml = cluster.files.get(f"SEP{MAC}.cnf.xml")
        assert xml is not None
        assert b"<capfAuthMode>2</capfAuthMode>" in xml
        m = re.search(rb"<capfList><capf><phonePort>(\d+)</phonePort>", xml)
        assert m is not None and int(m.group(1)) == port != 0
        sgn = cluster.files.get(f"SEP{MAC}.cnf.xml.sgn")
        assert sgn is not None and b"<capfAuthMode>2</capfAuthMode>" in sgn
        other = cluster.files.get("SEP00000000AB02.cnf.xml")
        assert other is not None and b"<capfAuthMode>0</capfAuthMode>" in other

        itl = tmp_path / "ITLFile.tlv"
        itl.write_bytes(cluster.files.itl())
        trust = trust_from_file(itl)
        assert trust == (lab_pki.clusters["source"].capf.cert,)
        result = await capf_enroll(host, port, CapfClientConfig(device_name=DEVICE, trust=trust))
        assert result.result == "installed"
        assert result.certificate is not None
        assert result.certificate.is_issued_by(lab_pki.clusters["source"].capf.cert)
        assert "CP-8861-SEPB000B4BA0AEE" in result.certificate.subject
        assert b"<capfAuthMode>0</capfAuthMode>" in (cluster.files.get(f"SEP{MAC}.cnf.xml") or b"")

        # a phone with only a MIC from the lab's manufacturing CA
        mfg = lab_pki.manufacturing_ca
        assert mfg is not None
        key = generate_key("ec-p256")
        mic = issue_mic(mfg, key, mac="00000000AB01")
        cred = Credential(CertType.MIC, mic.der, key)
        by_mic = await capf_enroll(
            host,
            port,
            CapfClientConfig(
                device_name="SEP00000000AB01", trust=trust, credential=cred, sudi=cred
            ),
        )
        assert by_mic.result == "installed", by_mic.why
        nursery.cancel_scope.cancel()
    stored = cluster.capf_db.certificate(DEVICE)
    assert stored is not None and result.certificate.der == stored.der
