"""Cluster configuration: the packaged examples, TOML reading, and one error per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvs.cluster import (
    EXAMPLES,
    ClusterConfig,
    ClusterConfigError,
    NodeConfig,
    example_text,
    parse_version,
)


def _base(**changes: object) -> dict[str, object]:
    d: dict[str, object] = {
        "name": "lab",
        "version": "12.5.1.10000-22",
        "nodes": [{"name": "pub", "address": "127.0.3.1"}],
    }
    d.update(changes)
    return d


def test_examples_are_the_seed_clusters() -> None:
    src = ClusterConfig.example("source")
    dst = ClusterConfig.example("destination")
    assert (src.name, src.version_tuple[:3], src.security_mode) == ("source", (10, 5, 2), "mixed")
    assert [(n.name, n.address) for n in src.nodes] == [("ucm105pub", "127.0.1.1")]
    assert [(n.name, n.address) for n in dst.nodes] == [("ucm11pub", "127.0.2.1")]
    assert dst.version_tuple[:2] == (11, 0)
    assert src.cluster_pki_dir == Path("lab/pki/source")
    assert src.store_dir == Path("lab/stores/source")
    assert not src.rollback_pre80 and src.tvs_ttl == 86400
    assert set(EXAMPLES) == {"source", "destination"}
    assert "127.0.1.1" in example_text("source")


def test_defaults_and_derived_values() -> None:
    c = ClusterConfig.from_dict(_base())
    assert c.store_dir == Path("lab/stores/lab")
    assert c.pki_dir == Path("lab/pki")
    n = c.nodes[0]
    assert (n.tftp, n.tftp_port, n.tvs_port, n.sip_port) == (True, 6969, 2445, 5061)
    assert n.bind_address == "127.0.3.1"
    assert c.mixed_mode and c.tftp_nodes == c.nodes and c.digest == "sha1"
    assert c.node("pub") is n
    with pytest.raises(ClusterConfigError, match="no node 'x'"):
        c.node("x")


def test_load_file_and_example_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.toml"
    f.write_text(example_text("destination").replace("127.0.2.1", "127.0.9.1"))
    assert ClusterConfig.load(f).nodes[0].address == "127.0.9.1"
    monkeypatch.chdir(tmp_path)
    assert ClusterConfig.load("source").name == "source"  # no such file: the packaged example
    with pytest.raises(ClusterConfigError, match="cannot read"):
        ClusterConfig.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(ClusterConfigError, match="not valid TOML"):
        ClusterConfig.load(tmp_path / "bad.toml")
    with pytest.raises(ClusterConfigError, match="no example"):
        ClusterConfig.example("nowhere")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"security_mode": "secure"}, "security_mode"),
        ({"client_auth": "maybe"}, "client_auth"),
        ({"digest": "md5"}, "digest"),
        ({"version": "eleven"}, "version"),
        ({"tvs_ttl": -1}, "tvs_ttl"),
        ({"tvs_ttl": True}, "tvs_ttl"),
        ({"rollback_pre80": "yes"}, "rollback_pre80"),
        ({"watch_interval": "soon"}, "watch_interval"),
        ({"nodes": []}, "non-empty array"),
        ({"nodes": ["pub"]}, "expected a table"),
        ({"nodes": [{"address": "127.0.3.1"}]}, "missing 'name'"),
        ({"nodes": [{"name": "pub", "tvs_port": 70000}]}, "tvs_port"),
        ({"nodes": [{"name": "pub", "speed": 1}]}, "unknown key"),
        ({"nodes": [{"name": "a b"}]}, "not a node name"),
        ({"nodes": [{"name": "pub", "tftp": False}]}, "no node runs TFTP"),
        ({"nodes": [{"name": "pub"}, {"name": "pub"}]}, "repeat"),
        ({"nodes": [{"name": "a"}, {"name": "b"}]}, "also used by"),
        ({"nodes": [{"name": "a", "tvs_port": 5061}]}, "also used by"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_configs_name_the_key(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        ClusterConfig.from_dict(_base(**changes))


def test_port_zero_never_clashes_and_distinct_addresses_share_ports() -> None:
    c = ClusterConfig.from_dict(
        _base(
            nodes=[
                {
                    "name": "a",
                    "tftp_port": 0,
                    "tvs_port": 0,
                    "sip_port": 0,
                    "http_port": 0,
                    "capf_port": 0,
                    "sip_tcp_port": 0,
                },
                {
                    "name": "b",
                    "tftp_port": 0,
                    "tvs_port": 0,
                    "sip_port": 0,
                    "http_port": 0,
                    "capf_port": 0,
                    "sip_tcp_port": 0,
                },
                {"name": "c", "address": "127.0.3.2"},
                {"name": "d", "address": "127.0.3.3", "tftp": False},
            ]
        )
    )
    assert [n.name for n in c.tftp_nodes] == ["a", "b", "c"]


def test_with_nodes_overrides_every_node() -> None:
    c = ClusterConfig.example("source")
    z = c.with_nodes(ports=0)
    assert {(n.tftp_port, n.tvs_port, n.sip_port) for n in z.nodes} == {(0, 0, 0)}
    moved = c.with_nodes(listen="0.0.0.0", address="source", port_offset=1000)
    n = moved.nodes[0]
    assert (n.bind_address, n.address, n.tvs_port, n.tftp_port) == ("0.0.0.0", "source", 3445, 7969)
    assert c.nodes[0].listen is None  # the original is unchanged
    with pytest.raises(ClusterConfigError):
        c.evolve(security_mode="open")


def test_direct_construction_is_checked_too() -> None:
    c = ClusterConfig(name="x", nodes=[NodeConfig("pub")])  # a list becomes a tuple
    assert isinstance(c.nodes, tuple)
    with pytest.raises(ClusterConfigError):
        NodeConfig("pub", tvs_port=-1)
    with pytest.raises(ClusterConfigError, match="no nodes"):
        ClusterConfig(name="x", nodes=())


@given(st.lists(st.integers(0, 99999), min_size=1, max_size=5), st.integers(0, 99) | st.none())
def test_version_round_trip(parts: list[int], build: int | None) -> None:
    text = ".".join(map(str, parts)) + (f"-{build}" if build is not None else "")
    assert parse_version(text) == (*parts, *(() if build is None else (build,)))


@pytest.mark.parametrize("text", ["", "10.", "v12", "10.5(2)", "12.5-", "1..2"])
def test_bad_versions(text: str) -> None:
    with pytest.raises(ValueError, match="CUCM version"):
        parse_version(text)
