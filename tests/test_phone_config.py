"""CUCM configuration parsing and the phone identity (MAC, device name, file names)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from phone_support import MAC, config_xml

from phone_emu.phone.config import (
    CallManager,
    ConfigError,
    PhoneConfig,
    TvsMember,
    parse_config,
)
from phone_emu.phone.identity import IdentityError, PhoneIdentity

CUCM_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="94" uuid="{a3b5}">
<fullConfig>true</fullConfig>
<devicePool uuid="{1b1b}">
 <name>Default</name>
 <callManagerGroup>
  <name>Default</name>
  <tftpDefault>true</tftpDefault>
  <members>
   <member priority="1">
    <callManager>
     <name>ucm11sub</name>
     <ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>5060</sipPort></ports>
     <processNodeName>ucm11sub.stormin.local</processNodeName>
    </callManager>
   </member>
   <member priority="0">
    <callManager>
     <name>ucm11pub</name>
     <ports><sipPort>5060</sipPort><securedSipPort>5071</securedSipPort></ports>
     <processNodeName>ucm11pub.stormin.local</processNodeName>
    </callManager>
   </member>
  </members>
 </callManagerGroup>
</devicePool>
<TVS>
 <members>
  <member priority="1"><port>2446</port><address>192.168.11.33</address></member>
  <member priority="0"><port>2445</port><address>192.168.11.32</address></member>
 </members>
</TVS>
</device>
"""


def test_cucm_configuration_with_undeclared_xsi_prefix():
    cfg = parse_config(CUCM_SAMPLE)
    assert cfg.tvs_members == (
        TvsMember(0, "192.168.11.32", 2445),
        TvsMember(1, "192.168.11.33", 2446),
    )
    assert cfg.callmanagers == (
        CallManager(0, "ucm11pub.stormin.local", 5060, 5071),
        CallManager(1, "ucm11sub.stormin.local", 5060, 5061),  # missing port: default
    )
    assert not cfg.tvs_from_callmanager_group
    assert len(cfg.sha256) == 32


def test_missing_tvs_section_uses_the_callmanager_group():
    data = CUCM_SAMPLE.split(b"<TVS>")[0] + b"</device>"
    cfg = parse_config(data)
    assert cfg.tvs_from_callmanager_group
    assert [str(m) for m in cfg.tvs_members] == [
        "ucm11pub.stormin.local:2445",
        "ucm11sub.stormin.local:2445",
    ]


def test_at_most_five_tvs_members_lowest_priority_first():
    tvs = [(f"h{i}", 2445) for i in range(7)]
    cfg = parse_config(config_xml(tvs=list(reversed(tvs))))
    assert len(cfg.tvs_members) == 5
    assert [m.priority for m in cfg.tvs_members] == [0, 1, 2, 3, 4]


def test_defaults_when_ports_absent():
    cfg = parse_config(config_xml(tvs=[], cms=[("cm", None)]))
    assert cfg.callmanagers[0].secure_sip_port == 5061
    data = b"<device><TVS><members><member><address>t</address></member></members></TVS></device>"
    assert parse_config(data).tvs_members == (TvsMember(0, "t", 2445),)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"<device><TVS>", "well-formed"),
        (b"", "well-formed"),
        (b"<device/>trailing", "well-formed"),
        (b'<!DOCTYPE d [<!ENTITY a "b">]><device/>', "DTD"),
        (
            b"<device><TVS><members><member><port>x</port><address>a</address>"
            b"</member></members></TVS></device>",
            "not a number",
        ),
        (
            b"<device><TVS><members><member><port>70000</port><address>a</address>"
            b"</member></members></TVS></device>",
            "outside",
        ),
        (
            b"<device><TVS><members><member><port>1</port></member></members></TVS></device>",
            "no <address>",
        ),
        (
            b"<device><devicePool><callManagerGroup><members><member><callManager/></member>"
            b"</members></callManagerGroup></devicePool></device>",
            "processNodeName",
        ),
    ],
)
def test_bad_configurations_raise_config_error(data, words):
    with pytest.raises(ConfigError, match=words):
        parse_config(data)


@given(st.binary(max_size=200))
def test_garbage_gives_config_error_or_a_value(data):
    """The fuzz invariant: a PhoneConfig or ConfigError, never another exception."""
    _value_or_config_error(data)


def _value_or_config_error(data: bytes) -> None:
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, PhoneConfig) and all(1 <= m.port <= 65535 for m in cfg.tvs_members)


@given(st.text(max_size=60))
def test_garbage_text_inside_elements(text):
    esc = text.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "surrogatepass")
    data = b"<device><TVS><members><member><port>" + esc + b"</port><address>a</address>"
    data += b"</member></members></TVS></device>"
    _value_or_config_error(data)


def test_config_dict_round_trip():
    cfg = parse_config(CUCM_SAMPLE)
    assert PhoneConfig.from_dict(cfg.to_dict()) == cfg


# --- identity ----------------------------------------------------------------------------------
def test_identity_from_the_seed_lsc(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    ident = PhoneIdentity.from_lsc(phone.cert, phone.key)
    assert ident.mac == MAC and ident.model == "8861"
    assert ident.device_name == "CP-8861-SEPB000B4BA0AEE"
    assert ident.ctl_filename == "CTLSEPB000B4BA0AEE.tlv"
    assert ident.itl_filenames == ("ITLSEPB000B4BA0AEE.tlv", "ITLFile.tlv")
    assert ident.config_filename(signed=True) == "SEPB000B4BA0AEE.cnf.xml.sgn"
    assert ident.config_filename(signed=False) == "SEPB000B4BA0AEE.cnf.xml"
    other = PhoneIdentity.from_lsc(phone.cert, phone.key, mac="00:11:22:33:44:55", model="7975")
    assert other.device_name == "CP-7975-SEP001122334455"
    assert PhoneIdentity.load(phone.cert_path, phone.key_path) == ident


def test_identity_needs_a_mac(lab_pki):
    capf = lab_pki.clusters["source"].capf
    with pytest.raises(IdentityError, match="--mac"):
        PhoneIdentity.from_lsc(capf.cert, capf.key)
    with pytest.raises(IdentityError):
        PhoneIdentity(mac=MAC, model="88 61")


def test_identity_refuses_a_key_of_another_certificate(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    other = lab_pki.clusters["source"].capf
    with pytest.raises(IdentityError, match="does not belong"):
        PhoneIdentity.from_lsc(phone.cert, other.key)
