"""The emulated cluster on real loopback sockets: TFTP files, TVS answers and restart semantics,
rollback, imports, bulk certificate management, the secure SIP listener, two clusters at once."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.certs import Certificate
from tvs.cluster import (
    ClusterConfig,
    ClusterError,
    EmulatedCluster,
    consolidate,
)
from tvs.pki import LabPki, issue_lsc
from tvs.roles import Role
from tvs.store import TrustStore
from tvs.tftp import TftpRemoteError, tftp_get
from tvs.tlsconfig import client_context
from tvs.tlv import TrustFile, parse_file, verify_file
from tvs.wire import QueryCertRequest, QueryCertResponse, Status

MAC = "B000B4BA0AEE"
DEVICE = f"CP-8861-SEP{MAC}"

Factory = Callable[..., EmulatedCluster]


@pytest.fixture
def make_cluster(lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path) -> Factory:
    """Build an ``EmulatedCluster`` from a packaged example on port 0 with its own store."""

    def make(name: str = "source", **changes: object) -> EmulatedCluster:
        config = (
            ClusterConfig.example(name)
            .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / f"store-{name}", watch_interval=0)
            .with_nodes(ports=0)
            .evolve(**changes)
        )
        return EmulatedCluster(config, pki=lab_pki)

    return make


async def _start(nursery: trio.Nursery, cluster: EmulatedCluster) -> EmulatedCluster:
    started: EmulatedCluster = await nursery.start(cluster.serve)
    return started


async def _get(cluster: EmulatedCluster, name: str) -> bytes:
    host, port = cluster.tftp_address
    with trio.fail_after(10):
        return await tftp_get(host, port, name, timeout=0.5, retries=4)


async def _get_file(cluster: EmulatedCluster, name: str) -> TrustFile:
    return parse_file(await _get(cluster, name))


async def _query(cluster: EmulatedCluster, cert: Certificate) -> QueryCertResponse:
    host, port = cluster.tvs_addresses[0]
    pinned = [n.tvs.cert for n in cluster.pki.nodes.values()]
    msg = QueryCertRequest(DEVICE, cert.subject, cert.issuer, cert.serial, request_id=1001)
    with trio.fail_after(10):
        resp = await tvs_request(host, port, msg, TvsClientConfig(pinned=pinned, timeout=5))
    assert isinstance(resp, QueryCertResponse)
    assert resp.request_id == 1001
    return resp


@pytest.fixture
async def source(make_cluster: Factory, nursery: trio.Nursery) -> AsyncIterator[EmulatedCluster]:
    yield await _start(nursery, make_cluster("source"))


def _cm(cluster: EmulatedCluster) -> Certificate:
    return cluster.pki.publisher.callmanager.cert


async def test_tftp_serves_files_that_verify(source: EmulatedCluster) -> None:
    cm = _cm(source)
    assert source.tftp_address[0] == "127.0.1.1" and source.tftp_address[1] != 0
    ctl = await _get_file(source, f"CTLSEP{MAC}.tlv")
    assert verify_file(ctl, trusted=[cm]) == cm
    assert [r.role for r in ctl.records] == [Role.SAST, Role.SAST, Role.CCM_TFTP, Role.CAPF]
    itl = await _get_file(source, f"ITLSEP{MAC}.tlv")
    assert verify_file(itl, trusted=[cm]) == cm
    assert itl.records_with_role(Role.TVS)[0].cert == source.pki.publisher.tvs.cert
    assert await _get(source, "ITLFile.tlv") == await _get(source, f"ITLSEP{MAC}.tlv")
    sgn = await _get_file(source, f"SEP{MAC}.cnf.xml.sgn")
    assert verify_file(sgn, trusted=[cm]) == cm
    xml = await _get(source, f"SEP{MAC}.cnf.xml")
    assert sgn.payload == xml
    tvs_host, tvs_port = source.tvs_addresses[0]
    assert f"<port>{tvs_port}</port><address>{tvs_host}</address>".encode() in xml
    assert f"<securedSipPort>{source.sip_addresses[0][1]}</securedSipPort>".encode() in xml
    assert source.files_for(MAC)[f"SEP{MAC}.cnf.xml.sgn"] == await _get(
        source, f"SEP{MAC}.cnf.xml.sgn"
    )
    with pytest.raises(TftpRemoteError) as info:
        await _get(source, "SEPdefault.cnf.xml")
    assert info.value.code == 1
    stats = source.statistics()
    assert stats.tftp_transfers >= 7


async def test_nonsecure_has_no_ctl(make_cluster: Factory, nursery: trio.Nursery) -> None:
    cluster = await _start(nursery, make_cluster("source", security_mode="nonsecure"))
    with pytest.raises(TftpRemoteError) as info:
        await _get(cluster, f"CTLSEP{MAC}.tlv")
    assert info.value.code == 1
    itl = await _get_file(cluster, f"ITLSEP{MAC}.tlv")
    assert [r.role for r in itl.records] == [Role.SAST, Role.TFTP, Role.SAST, Role.TVS, Role.CAPF]


async def test_rollback_blanks_itl_only(source: EmulatedCluster) -> None:
    ctl_before = await _get(source, f"CTLSEP{MAC}.tlv")
    source.set_rollback_pre80(True)
    itl = await _get_file(source, f"ITLSEP{MAC}.tlv")
    assert itl.records == ()
    assert verify_file(itl, trusted=[_cm(source)]) == _cm(source)
    ctl_after = await _get_file(source, f"CTLSEP{MAC}.tlv")
    assert [r.subject for r in ctl_after.records] == [
        r.subject for r in parse_file(ctl_before).records
    ]
    source.set_rollback_pre80(False)
    assert (await _get_file(source, f"ITLSEP{MAC}.tlv")).records_with_role(Role.TVS)


async def test_tvs_answers_own_callmanager_without_import(source: EmulatedCluster) -> None:
    resp = await _query(source, _cm(source))
    assert resp.status == Status.VALID
    assert resp.certificate == _cm(source).der
    assert set(resp.roles) == {Role.SAST, Role.CCM_TFTP}
    assert resp.ttl == source.config.tvs_ttl
    assert source.statistics().tvs_requests == {"VALID": 1}


async def test_import_regenerates_files_but_tvs_needs_restart(
    make_cluster: Factory, nursery: trio.Nursery, lab_pki: LabPki
) -> None:
    source = await _start(nursery, make_cluster("source", tvs_ttl=3600))
    dst_cm = lab_pki.clusters["destination"].publisher.callmanager.cert
    assert (await _query(source, dst_cm)).status == Status.INVALID
    generation = source.statistics().files_generation
    source.import_certificates("Phone-SAST-trust", [dst_cm])
    source.import_certificates("CallManager-trust", [dst_cm])
    assert source.statistics().files_generation == generation + 2
    ctl = await _get_file(source, f"CTLSEP{MAC}.tlv")
    assert dst_cm.subject not in [r.subject for r in ctl.records]  # no CTL update yet
    assert (await _query(source, dst_cm)).status == Status.INVALID  # stale cache, as on CUCM
    await source.restart_tvs()
    resp = await _query(source, dst_cm)
    assert resp.status == Status.VALID
    assert set(resp.roles) == {Role.SAST, Role.TFTP}
    assert resp.ttl == 3600
    assert resp.certificate == dst_cm.der
    assert source.statistics().tvs_requests == {"INVALID": 2, "VALID": 1}


async def test_import_from_file(make_cluster: Factory, lab_pki: LabPki, tmp_path: Path) -> None:
    cluster = make_cluster("source")
    pem = tmp_path / "CallManager.pem"
    pem.write_bytes(lab_pki.clusters["destination"].publisher.callmanager.cert.to_pem())
    cluster.import_certificates("Phone-SAST-trust", [pem])
    assert len(parse_file(cluster.files_for(MAC)[f"CTLSEP{MAC}.tlv"]).records) == 4
    cluster.ctl_update()
    ctl = parse_file(cluster.files_for(MAC)[f"CTLSEP{MAC}.tlv"])
    assert len(ctl.records) == 5


async def test_store_changed_elsewhere_regenerates_files(
    make_cluster: Factory, nursery: trio.Nursery, lab_pki: LabPki
) -> None:
    cluster = await _start(nursery, make_cluster("source", watch_interval=0.05))
    ctl_before = await _get(cluster, f"CTLSEP{MAC}.tlv")
    generation = cluster.statistics().files_generation
    other = TrustStore.open(cluster.config.store_dir)  # as `tvs store import` would
    other.import_certificates(
        "Phone-SAST-trust", [lab_pki.clusters["destination"].itlrecovery.cert]
    )
    recovery = lab_pki.clusters["destination"].itlrecovery.cert
    with trio.fail_after(5):
        while cluster.statistics().files_generation == generation:
            await trio.sleep(0.05)
    assert await _get(cluster, f"CTLSEP{MAC}.tlv") == ctl_before  # the CTL keeps its bytes
    cluster.ctl_update()
    assert len((await _get_file(cluster, f"CTLSEP{MAC}.tlv")).records) == 5
    assert recovery.der in {
        r.certificate for r in (await _get_file(cluster, f"CTLSEP{MAC}.tlv")).records
    }


async def test_bulk_certificate_management(make_cluster: Factory, tmp_path: Path) -> None:
    source, destination = make_cluster("source"), make_cluster("destination")
    shared = tmp_path / "sftp"
    exported = source.bulk_export(shared) + destination.bulk_export(shared)
    assert {p.name for p in exported} == {"source_ucm105pub.p12", "destination_ucm11pub.p12"}
    assert consolidate(shared).name == "consolidated.p12"
    source.bulk_import(shared)
    destination.bulk_import(shared)
    dst_cm = _cm(destination)
    ctl = parse_file(source.files_for(MAC)[f"CTLSEP{MAC}.tlv"])
    assert dst_cm.subject not in [r.subject for r in ctl.records]  # imports keep the CTL
    source.ctl_update()
    destination.ctl_update()
    ctl = parse_file(source.files_for(MAC)[f"CTLSEP{MAC}.tlv"])
    assert (Role.SAST, dst_cm.subject) in [(r.role, r.subject) for r in ctl.records]
    back = parse_file(destination.files_for(MAC)[f"CTLSEP{MAC}.tlv"])
    assert _cm(source).subject in [r.subject for r in back.records]


async def test_tvs_falls_back_to_the_current_ctl(
    make_cluster: Factory, nursery: trio.Nursery, lab_pki: LabPki
) -> None:
    """A certificate only in the CTL (Phone-SAST-trust at the last CTL update, then removed
    from the store) is answered from the CTL with its CTL role; the trace says which source."""
    source = await _start(nursery, make_cluster("source"))
    dst_rec = lab_pki.clusters["destination"].itlrecovery.cert
    entry = source.store.import_certificates("Phone-SAST-trust", [dst_rec])[0]
    source.ctl_update()
    source.store.remove("Phone-SAST-trust", entry.certificate.sha256.hex())
    source.regenerate_files()
    await source.restart_tvs()  # restart mode: the TVS reads the new CTL on restart
    with capture_logs() as logs:
        resp = await _query(source, dst_rec)
    assert resp.status == Status.VALID and resp.roles == (int(Role.SAST),)
    lookups = [e for e in logs if e["event"] == "cache lookup"]
    assert [e["source"] for e in lookups] == ["ctl"]
    # the own CallManager is in both: the trust-store cache answers, with its store roles
    with capture_logs() as logs:
        own = await _query(source, _cm(source))
    assert set(own.roles) == {Role.SAST, Role.CCM_TFTP}
    assert [e["source"] for e in logs if e["event"] == "cache lookup"] == ["cache"]
    # the CAPF is in the CTL (role CAPF) and in the store (own CAPF): the cache answers
    assert (await _query(source, source.pki.capf.cert)).roles == (int(Role.CAPF),)


async def test_ctl_update_reaches_a_notify_tvs_by_itself(
    make_cluster: Factory, nursery: trio.Nursery, lab_pki: LabPki
) -> None:
    source = await _start(
        nursery, make_cluster("source", tvs_refresh="notify", tvs_refresh_delay=0.1)
    )
    dst_cm = lab_pki.clusters["destination"].publisher.callmanager.cert
    source.import_certificates("Phone-trust", [dst_cm])  # APP-SERVER, after the delay
    with trio.fail_after(20):
        while (resp := await _query(source, dst_cm)).status != Status.VALID:
            await trio.sleep(0.1)
    assert resp.roles == (int(Role.APP_SERVER),)
    # a CTL update with a new Phone-SAST-trust entry: followed without a restart too
    dst_rec = lab_pki.clusters["destination"].itlrecovery.cert
    entry = source.store.import_certificates("Phone-SAST-trust", [dst_rec])[0]
    source.ctl_update()
    source.store.remove("Phone-SAST-trust", entry.certificate.sha256.hex())
    with trio.fail_after(20):  # until the TVS has read both the store and the new CTL
        while (await _query(source, dst_rec)).roles != (int(Role.SAST),):  # CTL role only
            await trio.sleep(0.1)
    assert source.statistics().tvs_requests.get("VALID", 0) >= 2


def _phone_context(cluster: EmulatedCluster) -> ssl.SSLContext:
    """A phone's TLS context with an LSC from ``cluster``'s CAPF (the secure SIP port of an
    authenticated profile requires it)."""
    lsc = issue_lsc(cluster.pki.capf, mac=MAC, model="8861")
    return client_context(cert=lsc.cert, key=lsc.key)


async def test_sip_listener_presents_callmanager(source: EmulatedCluster) -> None:
    host, port = source.sip_addresses[0]
    ctx = _phone_context(source)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        tls = trio.SSLStream(stream, ctx, server_side=False)
        await tls.do_handshake()
        assert tls.getpeercert(binary_form=True) == _cm(source).der
        await tls.send_all(
            b"REGISTER sip:127.0.1.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK1\r\n"
            b"Call-ID: abc\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += await tls.receive_some(4096)
        await tls.aclose()
    assert reply.startswith(b"SIP/2.0 200 OK\r\n") and b"Call-ID: abc\r\n" in reply
    assert source.statistics().sip_handshakes == 1


async def test_sip_listener_survives_a_bad_handshake(source: EmulatedCluster) -> None:
    host, port = source.sip_addresses[0]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")  # not TLS
        while await stream.receive_some(4096):
            pass
        await stream.aclose()
        ctx = _phone_context(source)
        tls = trio.SSLStream(await trio.open_tcp_stream(host, port), ctx, server_side=False)
        await tls.do_handshake()
        await tls.aclose()
    stats = source.statistics().sip[source.config.nodes[0].name]
    assert (stats.handshakes, stats.handshake_failures) == (1, 1)


async def test_two_clusters_side_by_side(
    make_cluster: Factory, nursery: trio.Nursery, lab_pki: LabPki
) -> None:
    source = await _start(nursery, make_cluster("source"))
    destination = await _start(nursery, make_cluster("destination"))
    assert source.tftp_address[0] == "127.0.1.1"
    assert destination.tftp_address[0] == "127.0.2.1"
    for cluster in (source, destination):
        ctl = await _get_file(cluster, f"CTLSEP{MAC}.tlv")
        assert verify_file(ctl, trusted=[_cm(cluster)]) == _cm(cluster)
        assert (await _query(cluster, _cm(cluster))).status == Status.VALID
    dst_ctl = await _get_file(destination, f"CTLSEP{MAC}.tlv")
    assert dst_ctl.header.signer.issuer == lab_pki.enterprise_ca.cert.subject
    assert (await _query(source, _cm(destination))).status == Status.INVALID


async def test_tvs_pins_to_the_itl_tvs_record(source: EmulatedCluster) -> None:
    """The TVS's server certificate is the one the ITL names with role TVS."""
    itl = await _get_file(source, f"ITLSEP{MAC}.tlv")
    tvs_certs = [r.cert for r in itl.records_with_role(Role.TVS)]
    host, port = source.tvs_addresses[0]
    msg = QueryCertRequest(DEVICE, _cm(source).subject, _cm(source).issuer, _cm(source).serial)
    config = TvsClientConfig(pinned=[c for c in tvs_certs if c is not None], timeout=5)
    with trio.fail_after(10):
        resp = await tvs_request(host, port, msg, config)
    assert isinstance(resp, QueryCertResponse) and resp.status == Status.VALID


def test_missing_pki_is_a_cluster_error(tmp_path: Path, lab_pki: LabPki) -> None:
    config = ClusterConfig.example("source").evolve(
        pki_dir=tmp_path / "nowhere", store_dir=tmp_path / "s"
    )
    with pytest.raises(ClusterError, match="not a lab PKI directory"):
        EmulatedCluster(config)
    with pytest.raises(ClusterError, match="no cluster 'elsewhere'"):
        EmulatedCluster(config.evolve(name="elsewhere"), pki=lab_pki)
    ghost = config.with_nodes().evolve(nodes=(config.nodes[0].__class__("ghost", "127.0.1.9"),))
    with pytest.raises(ClusterError, match="ghost"):
        EmulatedCluster(ghost, pki=lab_pki)


@pytest.mark.parametrize("version", ["10.5.2.11900-3", "11.0.1.10000-10", "12.5.1.10000-22"])
async def test_served_itl_by_version(
    make_cluster: Factory, nursery: trio.Nursery, version: str
) -> None:
    """The ITL a running 10.5, 11.0 and 12.5 cluster serves over TFTP, decoded: records and
    roles as protocol notes section 7 says (issue 11 item 5)."""
    cluster = await _start(nursery, make_cluster("source", version=version))
    itl = await _get_file(cluster, f"ITLSEP{MAC}.tlv")
    cm, rec = _cm(cluster), cluster.pki.itlrecovery.cert
    tvs = cluster.pki.publisher.tvs.cert
    twelve = version.startswith("12.")
    head = (
        [(Role.SAST, rec), (Role.SAST, cm), (Role.CCM_TFTP, cm)]
        if twelve
        else [(Role.SAST, cm), (Role.CCM_TFTP, cm), (Role.SAST, rec)]
    )
    expected = [*head, (Role.TVS, tvs), (Role.CAPF, cluster.pki.capf.cert)]
    assert [(r.role, r.subject) for r in itl.records] == [(r, c.subject) for r, c in expected]
    signer = rec if twelve else cm
    assert verify_file(itl, trusted=[signer]) == signer
    ctl = await _get_file(cluster, f"CTLSEP{MAC}.tlv")
    assert not ctl.records_with_role(Role.TVS)  # never TVS in a CTL
