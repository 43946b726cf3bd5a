"""Phone security profiles (issue 11 item 6): the configuration shape, ``deviceSecurityMode`` in
each phone's configuration, and the phone registering by mode against a cluster on loopback:
TCP 5060 for mode 1, TLS 5061 with a required, verified certificate for modes 2 and 3."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from phone_emu.phone.boot import BootResult, BootState
from phone_emu.phone.config import parse_config
from phone_emu.phone.console import console_lines
from phone_emu.phone.driver import NetworkOptions, Phone, boot_phone
from phone_emu.phone.fetch import FetchOptions
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.tvs_client import TvsClientConfig
from tvs.cluster import ClusterConfig, EmulatedCluster
from tvs.cluster.errors import ClusterConfigError
from tvs.cluster.files import build_config_xml
from tvs.cluster.profiles import MacRange, SecurityProfile
from tvs.pki import Identity, LabPki, issue_lsc

MAC = "B000B4BA0AEE"
OPTIONS = NetworkOptions(
    tvs=TvsClientConfig(timeout=5, connect_timeout=5),
    tftp_timeout=0.5,
    fetch=FetchOptions(mode="tftp"),  # never HTTP 6970 on a shared loopback address
)
BASE = {"name": "c", "nodes": [{"name": "n"}]}


def _mode(xml: bytes) -> int | None:
    """deviceSecurityMode as the phone parses it (ports made non-zero: files before serving
    carry the configured port 0)."""
    return parse_config(re.sub(rb">0</", b">1</", xml)).device_security_mode


# --- configuration shape ------------------------------------------------------------------------


def test_default_profile_follows_the_security_mode() -> None:
    mixed = ClusterConfig.from_dict(BASE)
    assert mixed.default_profile.name == "authenticated"
    assert mixed.profile_for(MAC).device_security_mode == 2
    assert mixed.profile_for(MAC).tftp_encrypted_config is False
    nonsecure = ClusterConfig.from_dict({**BASE, "security_mode": "nonsecure"})
    assert nonsecure.profile_for(MAC).device_security_mode == 1


def test_profiles_by_mac_range_and_by_model() -> None:
    c = ClusterConfig.from_dict(
        {
            **BASE,
            "default_security_profile": "encrypted",
            "security_profiles": [
                {"name": "plain", "device_security_mode": 1, "phones": [f"{MAC}-B000B4BA0AF0"]},
                {"name": "auth-7841", "device_security_mode": 2, "models": ["CP-7841"]},
            ],
            "devices": [{"phones": ["B000B4BA0B00-B000B4BA0BFF"], "model": "7841"}],
        }
    )
    assert c.profile_for(f"SEP{MAC}").name == "plain"
    assert c.profile_for("b0:00:b4:ba:0a:f0").name == "plain"
    assert c.profile_for("B000B4BA0B10").name == "auth-7841"  # by the model [[devices]] gives
    assert c.profile_for("B000B4BA0C00").name == "encrypted"  # the default
    assert c.profile_for("B000B4BA0C00").secure
    assert not c.profile_for(MAC).secure
    assert c.security_profiles[0].phones == (MacRange(0xB000B4BA0AEE, 0xB000B4BA0AF0),)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"default_security_profile": "nope"}, "no profile 'nope'"),
        ({"security_profiles": [{"name": "x", "device_security_mode": 4}]}, "1 \\(non-secure\\)"),
        ({"security_profiles": [{"name": "x", "tftp_encrypted_config": "yes"}]}, "true or false"),
        ({"security_profiles": [{"name": "x", "colour": 1}]}, "unknown key"),
        ({"security_profiles": [{"name": "x", "phones": ["B000B4BA0AF0-" + MAC]}]}, "ends before"),
        ({"security_profiles": [{"name": "x"}, {"name": "x"}]}, "repeat"),
        ({"devices": [{"phones": ["zz"], "model": "7841"}]}, "not a MAC"),
        ({"tvs_refresh": "sometimes"}, "tvs_refresh"),
        ({"tvs_refresh_delay": -1}, "tvs_refresh_delay"),
    ],
)
def test_bad_profile_configuration_names_the_key(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ClusterConfigError, match=match):
        ClusterConfig.from_dict({**BASE, **changes})


def test_packaged_examples_follow_the_profiles() -> None:
    for name in ("source", "destination"):
        c = ClusterConfig.example(name)
        assert c.sip_client_auth is None and c.client_auth == "none"
        assert c.default_profile.device_security_mode == 2
        assert (c.tvs_refresh, c.tvs_refresh_delay) == ("restart", 8.0)


# --- the served configuration -------------------------------------------------------------------


def _cluster(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, **changes: object
) -> EmulatedCluster:
    config = (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "source", watch_interval=0, **changes)
        .with_nodes(ports=0)
    )
    return EmulatedCluster(config, pki=lab_pki)


def test_configuration_xml_carries_each_phones_device_security_mode(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path
) -> None:
    plain = SecurityProfile("plain", 1, phones=(MacRange.parse(MAC, "t"),))
    cluster = _cluster(lab_pki, lab_pki_dir, tmp_path, security_profiles=(plain,))
    files = cluster.files
    assert _mode(files.get(f"SEP{MAC}.cnf.xml") or b"") == 1
    assert _mode(files.get("SEPB000B4BA0AEF.cnf.xml") or b"") == 2
    assert b"<deviceSecurityMode>2</deviceSecurityMode>" in build_config_xml(files.inputs)
    enc = SecurityProfile("enc", 3)
    xml3 = build_config_xml(files.inputs, profile=enc)
    assert b"<deviceSecurityMode>3</deviceSecurityMode>" in xml3


# --- registering by mode (loopback) --------------------------------------------------------------


def _phone(lsc: Identity, where: Path) -> Phone:
    return Phone.open(PhoneIdentity.from_lsc(lsc.cert, lsc.key), where)


async def _boot(phone: Phone, cluster: EmulatedCluster) -> BootResult:
    with trio.fail_after(30):
        return await boot_phone(phone, tftp=cluster.tftp_address, options=OPTIONS)


async def test_mode_1_registers_over_tcp_and_modes_2_3_need_a_trusted_certificate(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    stranger = issue_lsc(lab_pki.clusters["destination"].capf, mac=MAC)  # not trusted here
    plain = SecurityProfile("plain", 1, phones=(MacRange.parse(MAC, "t"),))
    source = await nursery.start(
        _cluster(lab_pki, lab_pki_dir, tmp_path, security_profiles=(plain,)).serve
    )
    r = await _boot(_phone(stranger, tmp_path / "plain"), source)
    assert r.state is BootState.REGISTERED, r.to_dict()
    attempt = r.step("register").attempts[0]
    assert attempt.detail == "TCP; SIP/2.0 200 OK"
    tcp_port = source.endpoints[0].sip_tcp_port
    assert attempt.target.endswith(f":{tcp_port}")
    text = "\n".join(console_lines(r, _phone(stranger, tmp_path / "x").identity))
    assert "SIPCC-Opening TCP connection" in text and "non-secure profile" in text
    assert sum(s.handshakes for s in source.statistics().sip.values()) == 0  # no TLS at all

    # the same phone in the default (authenticated) profile of another cluster: 5061, refused
    secure = await nursery.start(_cluster(lab_pki, lab_pki_dir, tmp_path / "2").serve)
    refused = await _boot(_phone(stranger, tmp_path / "auth"), secure)
    reg = refused.step("register")
    assert reg.reason == "register.handshake-failed", refused.to_dict()
    assert "the server refused the phone's certificate" in reg.attempts[0].detail
    own = lab_pki.clusters["source"].phones[MAC]
    ok = await _boot(_phone(own, tmp_path / "own"), secure)
    assert ok.state is BootState.REGISTERED
    assert ok.step("register").attempts[0].detail.startswith("TLSv1.3")
