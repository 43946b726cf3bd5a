"""The cluster's files for an encrypted-configuration phone (section 9): the stub instead of the
full ``.cnf.xml.sgn``, and the ``.cnf.xml.enc.sgn`` encrypted to the certificate it knows."""

from __future__ import annotations

from collections.abc import Callable

from strategies_tlv import make_cert, make_key

from phone_emu.phone.config import parse_config
from tvs.certs import Certificate
from tvs.cluster import ClusterConfig, ClusterFiles, FileInputs, endpoints_from_config
from tvs.cluster.profiles import MacRange, SecurityProfile
from tvs.pki import LabPki
from tvs.tlv import cert_hash, decrypt_config, parse_file, verify_file

MAC = "B000B4BA0AEE"
NOW = 1_700_000_000
RANGE = MacRange.parse(f"{MAC}-B000B4BA0AEF", "test")


def _files(
    lab_pki: LabPki,
    *,
    encrypted: Callable[[str], bool] | None,
    known: Callable[[str], Certificate | None] | None,
    mode: int = 0,
) -> ClusterFiles:
    config = ClusterConfig.example("source")
    pki = lab_pki.clusters["source"]
    inputs = FileInputs(config, pki, endpoints_from_config(config), timestamp=NOW)
    return ClusterFiles(
        inputs, capf_mode=lambda name: mode, encrypted=encrypted, known_certificate=known
    )


def test_plain_profile_serves_the_full_configuration(lab_pki: LabPki) -> None:
    files = _files(lab_pki, encrypted=lambda name: False, known=lambda name: None)
    assert files.get(f"SEP{MAC}.cnf.xml.enc.sgn") is None
    payload = parse_file(files.get(f"SEP{MAC}.cnf.xml.sgn") or b"").payload
    assert b"<fullConfig>true</fullConfig>" in payload and b"encrConfig" not in payload


def test_encrypted_profile_serves_stub_and_encrypted_file(lab_pki: LabPki) -> None:
    phone = lab_pki.clusters["source"].phones[MAC]
    seen: list[str] = []

    def known(name: str) -> Certificate | None:
        seen.append(name)
        return phone.cert

    files = _files(lab_pki, encrypted=lambda name: name == f"SEP{MAC}", known=known, mode=2)
    stub = parse_file(files.get(f"SEP{MAC}.cnf.xml.sgn") or b"")
    cm = lab_pki.clusters["source"].publisher.callmanager.cert
    verify_file(stub, trusted=[cm])
    text = stub.payload.decode()
    assert "<fullConfig>false</fullConfig>" in text and "<encrConfig>true</encrConfig>" in text
    assert f"<certHash>{cert_hash(phone.cert)}</certHash>" in text
    assert "<capfAuthMode>2</capfAuthMode>" in text and "<phonePort>" in text
    enc = parse_file(files.get(f"SEP{MAC}.cnf.xml.enc.sgn") or b"")
    assert enc.encrypted and enc.header.filename == f"SEP{MAC}.cnf.xml.enc.sgn"
    verify_file(enc, trusted=[cm])
    full = decrypt_config(enc, phone.key)
    assert full == files.config_xml(MAC) and parse_config(full).tvs_members
    assert seen and set(seen) == {f"SEP{MAC}"}
    assert f"SEP{MAC}.cnf.xml.enc.sgn" in files.files_for(MAC)
    # another phone of the same cluster keeps the ordinary configuration
    other = parse_file(files.get("SEPB000B4BA0AEF.cnf.xml.sgn") or b"")
    assert b"<fullConfig>true</fullConfig>" in other.payload


def test_no_known_certificate_empty_cert_hash_and_no_encrypted_file(lab_pki: LabPki) -> None:
    files = _files(lab_pki, encrypted=lambda name: True, known=lambda name: None)
    stub = parse_file(files.get(f"SEP{MAC}.cnf.xml.sgn") or b"")
    assert b"<certHash></certHash>" in stub.payload
    assert files.get(f"SEP{MAC}.cnf.xml.enc.sgn") is None


def test_ec_certificate_gets_a_stub_but_no_encrypted_file(lab_pki: LabPki) -> None:
    ec_cert = make_cert(f"CP-8861-SEP{MAC}", make_key("ec"))
    files = _files(lab_pki, encrypted=lambda name: True, known=lambda name: ec_cert)
    stub = parse_file(files.get(f"SEP{MAC}.cnf.xml.sgn") or b"")
    assert cert_hash(ec_cert).encode() in stub.payload
    assert files.get(f"SEP{MAC}.cnf.xml.enc.sgn") is None


def test_a_new_certificate_changes_both_files(lab_pki: LabPki) -> None:
    src = lab_pki.clusters["source"]
    current = {"cert": src.phones[MAC].cert}
    files = _files(lab_pki, encrypted=lambda name: True, known=lambda name: current["cert"])
    stub1 = files.get(f"SEP{MAC}.cnf.xml.sgn")
    enc1 = files.get(f"SEP{MAC}.cnf.xml.enc.sgn")
    assert files.get(f"SEP{MAC}.cnf.xml.sgn") == stub1  # cached while nothing changes
    from tvs.pki import issue_lsc

    new = issue_lsc(src.capf, mac=MAC, key_type="rsa2048")
    current["cert"] = new.cert
    stub2 = files.get(f"SEP{MAC}.cnf.xml.sgn")
    assert stub2 != stub1 and cert_hash(new.cert).encode() in parse_file(stub2 or b"").payload
    enc2 = parse_file(files.get(f"SEP{MAC}.cnf.xml.enc.sgn") or b"")
    assert enc2.raw != enc1 and decrypt_config(enc2, new.key) == files.config_xml(MAC)


def test_security_profile_decides(lab_pki: LabPki) -> None:
    """``tftp_encrypted_config`` of the phone's profile (tvs.cluster.profiles), no hook."""
    config = ClusterConfig.example("source").evolve(
        security_profiles=(
            SecurityProfile(
                "enc", device_security_mode=3, tftp_encrypted_config=True, phones=(RANGE,)
            ),
        )
    )
    pki = lab_pki.clusters["source"]
    files = ClusterFiles(
        FileInputs(config, pki, endpoints_from_config(config), timestamp=NOW),
        known_certificate=lambda name: pki.phones[MAC].cert,
    )
    assert b"<encrConfig>true</encrConfig>" in (files.get(f"SEP{MAC}.cnf.xml.sgn") or b"")
    enc = parse_file(files.get(f"SEP{MAC}.cnf.xml.enc.sgn") or b"")
    assert b"<deviceSecurityMode>3</deviceSecurityMode>" in decrypt_config(enc, pki.phones[MAC].key)
    other = files.get("SEPB000B4BA0AF0.cnf.xml.sgn") or b""
    assert b"encrConfig" not in other and files.get("SEPB000B4BA0AF0.cnf.xml.enc.sgn") is None
