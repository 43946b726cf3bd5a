"""tvs.device: MAC forms, device names and per-phone file names, shared by PKI, phone, cluster."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phone_emu.phone.identity import IdentityError, PhoneIdentity
from tvs import device
from tvs.pki import Recipe, RecipeError

MAC = "B000B4BA0AEE"


@pytest.mark.parametrize(
    "text",
    ["B000B4BA0AEE", "b000b4ba0aee", "SEPB000B4BA0AEE", "b0:00:b4:ba:0a:ee", "b000.b4ba.0aee"],
)
def test_mac_forms(text: str) -> None:
    assert device.normalise_mac(text) == MAC


@pytest.mark.parametrize("text", ["", "B000B4BA0AE", "B000B4BA0AEEF", "G000B4BA0AEE", 12])
def test_bad_macs(text: object) -> None:
    with pytest.raises(device.DeviceNameError, match="MAC"):
        device.normalise_mac(text)


def test_names() -> None:
    mac = "b0:00:b4:ba:0a:ee"
    assert device.device_name(mac) == f"SEP{MAC}"
    assert device.phone_device_name("8861", mac) == f"CP-8861-SEP{MAC}"
    assert device.ctl_filename(mac) == f"CTLSEP{MAC}.tlv"
    assert device.itl_filename(mac) == f"ITLSEP{MAC}.tlv"
    assert device.config_filename(mac, signed=False) == f"SEP{MAC}.cnf.xml"
    assert device.config_filename(mac, signed=True) == f"SEP{MAC}.cnf.xml.sgn"
    assert device.mac_in(f"CN=CP-8861-SEP{MAC.lower()};OU=x") == MAC
    assert device.mac_in("CN=ucm11pub") is None
    assert device.model_in(f"CP-7841-SEP{MAC}") == "7841"
    assert device.model_in("ucm11pub") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"CTLSEP{MAC}.tlv", ("ctl", MAC)),
        ("CTLFile.tlv", ("ctl", None)),
        (f"itlsep{MAC.lower()}.tlv", ("itl", MAC)),
        ("ITLFile.tlv", ("itl", None)),
        (f"/SEP{MAC}.cnf.xml", ("xml", MAC)),
        (f"SEP{MAC}.cnf.xml.sgn", ("sgn", MAC)),
        (f"SEP{MAC}1.cnf.xml", None),
        (f"SEP{MAC}.cnf.xml.sgn.bak", None),
        ("CTLSEPXYZ.tlv", None),
        ("", None),
    ],
)
def test_file_names(name: str, expected: tuple[str, str | None] | None) -> None:
    assert device.parse_file_name(name) == expected


@given(st.text(max_size=40))
def test_file_names_never_raise(name: str) -> None:
    got = device.parse_file_name(name)
    assert got is None or got[0] in {"ctl", "itl", "xml", "sgn"}


def test_built_names_parse_back() -> None:
    assert device.parse_file_name(device.ctl_filename(MAC)) == ("ctl", MAC)
    assert device.parse_file_name(device.itl_filename(MAC)) == ("itl", MAC)
    assert device.parse_file_name(device.config_filename(MAC, signed=True)) == ("sgn", MAC)


def test_the_three_users_agree() -> None:
    """The recipe, the phone identity and the file names all come from tvs.device."""
    phone = PhoneIdentity(mac="sepb000b4ba0aee", model="8845")
    recipe = Recipe.default()
    spec = next(p for c in recipe.clusters for p in c.phones)
    assert phone.name == device.device_name(MAC)
    assert phone.device_name == device.phone_device_name("8845", MAC)
    assert phone.ctl_filename == device.ctl_filename(MAC)
    assert phone.itl_filenames == (device.itl_filename(MAC), device.ITL_FILE)
    assert spec.device_name == device.phone_device_name(spec.model, spec.mac)


def test_errors_keep_their_layer() -> None:
    with pytest.raises(IdentityError, match="not a MAC"):
        PhoneIdentity(mac="nope")
    with pytest.raises(RecipeError, match=r"phones\[0\].mac: not a MAC"):
        Recipe.from_dict(
            {
                "clusters": [
                    {
                        "name": "c",
                        "version": "12.5",
                        "domain": "lab",
                        "nodes": [{"name": "pub", "address": "127.0.0.1"}],
                        "phones": [{"mac": "nope"}],
                    }
                ]
            }
        )


# --- names: the one comparison for names that may not parse ---------------------------------


def test_match_key_is_the_one_name_comparison() -> None:
    from tvs.names import match_key, same_name

    assert same_name("CN=ucm11pub;OU=IST", "OU=IST, CN=ucm11pub")
    assert same_name("not a name", "not a name")
    assert not same_name("not a name", "CN=not a name")
    assert isinstance(match_key("not a name"), str)
    assert match_key("CN=a;O=b") == match_key("O=b,CN=a")
