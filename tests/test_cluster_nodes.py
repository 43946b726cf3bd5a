"""A three-node emulated cluster on loopback (two TFTP nodes, EC keys, CUCM 11.5): per-node
listeners in CallManager-group order, each TFTP node's ITL signed by its own CallManager,
client certificates required at the secure SIP port, legacy TLS for old phones."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import pytest
import trio

from phone_emu.phone.config import parse_config
from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.cluster import ClusterConfig, EmulatedCluster, NodeConfig
from tvs.pki import LabPki, Recipe, generate, issue_lsc
from tvs.roles import Role
from tvs.tftp import tftp_get
from tvs.tlsconfig import client_context
from tvs.tlv import parse_file, verify_file
from tvs.wire import QueryCertRequest, QueryCertResponse, Status

MAC = "0011223344AA"

RECIPE = """
[enterprise_ca]
common_name = "trio-CA"
key_type = "ec-p256"

[[clusters]]
name = "trio"
version = "11.5.1.10000-6"
domain = "trio.lab"
key_type = "ec-p256"
nodes = [
    { name = "pub", fqdn = "pub.trio.lab", address = "127.0.7.1" },
    { name = "sub1", fqdn = "sub1.trio.lab", address = "127.0.7.2" },
    { name = "sub2", fqdn = "sub2.trio.lab", address = "127.0.7.3" },
]
"""


@pytest.fixture(scope="module")
def trio_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    """An EC lab PKI with one three-node cluster ``trio``."""
    return generate(Recipe.loads(RECIPE), tmp_path_factory.mktemp("trio-pki"))


def _config(pki: LabPki, store: Path, **changes: object) -> ClusterConfig:
    return ClusterConfig(
        name="trio",
        version="11.5.1.10000-6",
        nodes=(
            NodeConfig("pub", "127.0.7.1", tftp_port=0, tvs_port=0, sip_port=0, http_port=0),
            NodeConfig("sub1", "127.0.7.2", tftp_port=0, tvs_port=0, sip_port=0, http_port=0),
            NodeConfig("sub2", "127.0.7.3", tftp=False, tvs_port=0, sip_port=0),
        ),
        pki_dir=pki.root,
        store_dir=store,
        watch_interval=0,
        **changes,  # type: ignore[arg-type]
    )


async def _tls(host: str, port: int, ctx: ssl.SSLContext) -> trio.SSLStream[trio.SocketStream]:
    tls = trio.SSLStream(await trio.open_tcp_stream(host, port), ctx, server_side=False)
    await tls.do_handshake()
    return tls


async def test_every_node_serves_in_group_order(
    trio_pki: LabPki, tmp_path: Path, nursery: trio.Nursery
) -> None:
    cluster: EmulatedCluster = await nursery.start(
        EmulatedCluster(_config(trio_pki, tmp_path / "store"), pki=trio_pki).serve
    )
    pki = trio_pki.clusters["trio"]
    assert [h for h, _ in cluster.tvs_addresses] == ["127.0.7.1", "127.0.7.2", "127.0.7.3"]
    assert cluster.tftp_address[0] == "127.0.7.1"
    assert set(cluster.statistics().tftp) == {"pub", "sub1"}
    pinned = [n.tvs.cert for n in pki.nodes.values()]
    cm = pki.nodes["pub"].callmanager.cert
    msg = QueryCertRequest(f"CP-8861-SEP{MAC}", cm.subject, cm.issuer, cm.serial, request_id=7)
    with trio.fail_after(20):
        for host, port in cluster.tvs_addresses:
            resp = await tvs_request(host, port, msg, TvsClientConfig(pinned=pinned, timeout=5))
            assert isinstance(resp, QueryCertResponse) and resp.status == Status.VALID
            assert set(resp.roles) == {Role.SAST, Role.CCM_TFTP}
        sub1 = next(e for e in cluster.endpoints if e.name == "sub1")
        data = await tftp_get(sub1.address, sub1.tftp_port, f"ITLSEP{MAC}.tlv", timeout=0.5)
        xml = await tftp_get(sub1.address, sub1.tftp_port, f"SEP{MAC}.cnf.xml", timeout=0.5)
    itl = parse_file(data)
    sub1_cm = pki.nodes["sub1"].callmanager.cert
    assert verify_file(itl, trusted=[sub1_cm]) == sub1_cm
    assert len(itl.records_with_role(Role.TVS)) == 3
    assert len(itl.records_with_role(Role.CCM_TFTP)) == 1  # its own CallManager (section 7)
    members = parse_config(xml).tvs_members
    assert [(m.address, m.port) for m in members] == cluster.tvs_addresses
    assert cluster.statistics().tvs_requests == {"VALID": 3}


async def test_sip_requires_the_phone_certificate(
    trio_pki: LabPki, tmp_path: Path, nursery: trio.Nursery
) -> None:
    config = _config(trio_pki, tmp_path / "store", sip_client_auth="required")
    cluster: EmulatedCluster = await nursery.start(EmulatedCluster(config, pki=trio_pki).serve)
    pki = trio_pki.clusters["trio"]
    host, port = cluster.sip_addresses[0]
    lsc = issue_lsc(pki.capf, mac=MAC)
    with trio.fail_after(20):
        tls = await _tls(host, port, client_context(cert=lsc.cert, key=lsc.key))
        assert tls.getpeercert(binary_form=True) == pki.nodes["pub"].callmanager.cert.der
        await tls.send_all(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 9\r\nContent-Length: 0\r\n\r\n")
        assert (await tls.receive_some(4096)).startswith(b"SIP/2.0 200 OK")
        await tls.aclose()
        stream = await trio.open_tcp_stream(host, port)
        anonymous = trio.SSLStream(stream, client_context(), server_side=False)
        try:
            with pytest.raises(trio.BrokenResourceError):  # no certificate: refused
                await anonymous.do_handshake()
                await anonymous.send_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
                await anonymous.receive_some(4096)
        finally:
            await trio.aclose_forcefully(anonymous)
    stats = cluster.statistics().sip["pub"]
    assert (stats.handshakes, stats.handshake_failures) == (1, 1)


async def test_legacy_tls_offers_aes256_sha(
    trio_pki: LabPki, lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Old phones: TLS 1.0 with AES256-SHA (RSA key exchange needs the RSA lab keys)."""
    config = (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "s", watch_interval=0, legacy_tls=True)
        .evolve(sip_client_auth="none")  # the cipher is under test, not the phone certificate
        .with_nodes(ports=0)
    )
    cluster: EmulatedCluster = await nursery.start(EmulatedCluster(config, pki=lab_pki).serve)
    ctx = client_context(legacy=True)
    with warnings.catch_warnings():  # TLS 1.0 is deprecated: exactly what old phones speak
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("AES256-SHA:@SECLEVEL=0")
    with trio.fail_after(20):
        for host, port in (cluster.sip_addresses[0], cluster.tvs_addresses[0]):
            tls = await _tls(host, port, ctx)
            assert tls.cipher()[0] == "AES256-SHA" and tls.version() == "TLSv1"
            await tls.aclose()
