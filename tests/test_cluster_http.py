"""The emulated cluster's HTTP 6970 file service: the same generated files as its TFTP server
(one provider), ``http_port`` shifted like the other ports, ``http = false`` refusing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tvs.cluster import ClusterConfig, ClusterConfigError, EmulatedCluster
from tvs.http import HttpConnectError, HttpStatusError, http_get
from tvs.pki import LabPki
from tvs.tftp import tftp_get

MAC = "B000B4BA0AEE"


def _config(lab_pki_dir: Path, tmp_path: Path, **changes: object) -> ClusterConfig:
    return (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "store", watch_interval=0)
        .with_nodes(ports=0)
        .evolve(**changes)
    )


async def test_http_serves_what_tftp_serves(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    cluster = EmulatedCluster(_config(lab_pki_dir, tmp_path), pki=lab_pki)
    await nursery.start(cluster.serve)
    (th, tp), (hh, hp) = cluster.tftp_address, cluster.http_address
    assert hh == th and hp != 0
    with trio.fail_after(20):
        for name in (f"CTLSEP{MAC}.tlv", f"ITLSEP{MAC}.tlv", f"SEP{MAC}.cnf.xml.sgn"):
            via_http = await http_get(hh, hp, name)
            assert via_http == await tftp_get(th, tp, name, timeout=0.5, retries=4)
        with pytest.raises(HttpStatusError) as info:
            await http_get(hh, hp, "nothing-here.bin")
    assert info.value.status == 404
    stats = cluster.statistics()
    assert sum(s.files_sent for s in stats.http.values()) == 3


async def test_http_false_refuses_connections(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    cluster = EmulatedCluster(_config(lab_pki_dir, tmp_path, http=False), pki=lab_pki)
    await nursery.start(cluster.serve)
    host, port = cluster.http_address
    assert port != 0
    with trio.fail_after(10), pytest.raises(HttpConnectError):
        await http_get(host, port, f"CTLSEP{MAC}.tlv")
    assert not cluster.statistics().http


def test_http_port_key_offset_and_clash() -> None:
    cfg = ClusterConfig.from_dict(
        {"name": "c", "nodes": [{"name": "n1", "address": "127.0.0.1", "http_port": 8080}]}
    )
    assert cfg.nodes[0].http_port == 8080
    assert cfg.with_nodes(port_offset=100).nodes[0].http_port == 8180
    assert (
        ClusterConfig.from_dict({"name": "c", "nodes": [{"name": "n1"}]}).nodes[0].http_port == 6970
    )
    with pytest.raises(ClusterConfigError, match="tcp/2445"):
        ClusterConfig.from_dict({"name": "c", "nodes": [{"name": "n1", "http_port": 2445}]})
    assert (
        ClusterConfig.from_dict({"name": "c", "http": False, "nodes": [{"name": "n1"}]}).http
        is False
    )


async def test_http_metrics_beside_the_tvs_ones(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    from tvs.metrics import HttpPrometheusObserver, PrometheusObserver

    tvs = PrometheusObserver()
    http = HttpPrometheusObserver(tvs.registry)  # one registry, one /metrics page
    cluster = EmulatedCluster(_config(lab_pki_dir, tmp_path), pki=lab_pki, http_observer=http)
    await nursery.start(cluster.serve)
    host, port = cluster.http_address
    with trio.fail_after(20):
        await http_get(host, port, f"CTLSEP{MAC}.tlv")
        with pytest.raises(HttpStatusError):
            await http_get(host, port, "missing.bin")
    sample = tvs.registry.get_sample_value
    assert (
        sample("tvs_http_requests_total", {"method": "GET", "status": "200", "outcome": "ok"}) == 1
    )
    assert (
        sample(
            "tvs_http_requests_total", {"method": "GET", "status": "404", "outcome": "not-found"}
        )
        == 1
    )
    assert sample("tvs_http_bytes_sent_total") > 0
    assert cluster.http_addresses[cluster.config.nodes[0].name] == (host, port)
