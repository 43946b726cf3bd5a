"""The emulated cluster against independent implementations: tftp-hpa and atftp fetch the
generated files (which then verify), openssl s_client meets the secure SIP port and the TVS."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tvs.certs import load_certificates
from tvs.cluster import ClusterConfig, EmulatedCluster
from tvs.pki import LabPki, issue_lsc
from tvs.tlv import parse_file, verify_file

pytestmark = pytest.mark.interop

MAC = "B000B4BA0AEE"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture
async def cluster(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> EmulatedCluster:
    config = (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "store", watch_interval=0)
        .with_nodes(ports=0)
    )
    started: EmulatedCluster = await nursery.start(EmulatedCluster(config, pki=lab_pki).serve)
    return started


async def _run(cmd: list[str], cwd: Path) -> str:
    with trio.fail_after(30):
        done = await trio.run_process(
            cmd, cwd=cwd, capture_stdout=True, capture_stderr=True, stdin=b"", check=False
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode(errors="replace")


@pytest.mark.parametrize("client", ["tftp", "atftp"])
async def test_tftp_clients_fetch_verifiable_files(
    client: str, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    tool = _need(client)
    host, port = cluster.tftp_address
    cm = cluster.pki.publisher.callmanager.cert
    for name in (f"CTLSEP{MAC}.tlv", f"ITLSEP{MAC}.tlv", f"SEP{MAC}.cnf.xml.sgn"):
        local = tmp_path / f"{client}-{name}"
        if client == "tftp":
            cmd = [tool, "-m", "binary", host, str(port), "-c", "get", name, str(local)]
        else:
            cmd = [
                tool,
                "--get",
                "--remote-file",
                name,
                "--local-file",
                str(local),
                host,
                str(port),
            ]
        await _run(cmd, tmp_path)
        data = local.read_bytes()
        assert data == cluster.files_for(MAC)[name]
        assert verify_file(parse_file(data), trusted=[cm]) == cm


@pytest.mark.parametrize("which", ["sip", "tvs"])
async def test_openssl_sees_the_node_certificates(
    which: str, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    tool = _need("openssl")
    host, port = (cluster.sip_addresses if which == "sip" else cluster.tvs_addresses)[0]
    cmd = [tool, "s_client", "-connect", f"{host}:{port}", "-showcerts"]
    if which == "sip":  # the secure SIP port requires a phone certificate (issue 11 item 6)
        lsc = issue_lsc(cluster.pki.capf, mac=MAC)
        (tmp_path / "lsc.pem").write_bytes(lsc.cert.to_pem())
        (tmp_path / "lsc.key").write_bytes(
            lsc.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
        cmd += ["-cert", str(tmp_path / "lsc.pem"), "-key", str(tmp_path / "lsc.key")]
    out = await _run(cmd, tmp_path)
    certs = load_certificates(out.encode())
    node = cluster.pki.publisher
    expected = node.callmanager.cert if which == "sip" else node.tvs.cert
    assert certs[0] == expected
