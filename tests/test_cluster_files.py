"""Generated cluster files: CTL/ITL records and signers by CUCM version and mode, rollback,
Phone-SAST-trust in the CTL, the phone configuration and its .sgn, TFTP names, caching."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs
import pytest

from phone_emu.phone.config import parse_config
from tvs.certs import Certificate
from tvs.cluster import (
    ClusterConfig,
    ClusterError,
    ClusterFiles,
    FileInputs,
    NodeConfig,
    NodeEndpoint,
    endpoints_from_config,
)
from tvs.pki import ClusterPki, LabPki, Recipe, generate
from tvs.roles import Role
from tvs.tlv import HashAlgorithm, TrustFile, parse_file, verify_file

MAC = "B000B4BA0AEE"
NOW = 1_700_000_000

BIG_RECIPE = """
[enterprise_ca]
common_name = "big-CA"
key_type = "ec-p256"

[[clusters]]
name = "big"
version = "12.5.1.10000-22"
domain = "big.lab"
key_type = "ec-p256"
nodes = [
    { name = "pub", fqdn = "pub.big.lab", address = "127.0.5.1" },
    { name = "sub1", fqdn = "sub1.big.lab", address = "127.0.5.2" },
    { name = "sub2", fqdn = "sub2.big.lab", address = "127.0.5.3" },
]
"""


@pytest.fixture(scope="module")
def big_pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    """A three-node EC cluster (CUCM 12.5) for multi-node and ITLRecovery-signer cases."""
    out = tmp_path_factory.mktemp("big-pki")
    return generate(Recipe.loads(BIG_RECIPE), out).clusters["big"]


def _config(name: str, **changes: object) -> ClusterConfig:
    return ClusterConfig.example(name).evolve(**changes)


def _files(config: ClusterConfig, pki: ClusterPki, **inputs: object) -> ClusterFiles:
    base = FileInputs(config, pki, endpoints_from_config(config), timestamp=NOW)
    return ClusterFiles(attrs.evolve(base, **inputs))  # type: ignore[arg-type]


def _parse(data: bytes | None) -> TrustFile:
    assert data is not None
    f = parse_file(data)
    return f


def _roles(f: TrustFile) -> list[tuple[int, str]]:
    return [(r.role, r.subject) for r in f.records]


def _big(version: str = "12.5.1.10000-22", **changes: object) -> ClusterConfig:
    return ClusterConfig(
        name="big",
        version=version,
        nodes=(
            NodeConfig("pub", "127.0.5.1"),
            NodeConfig("sub1", "sub1.big.lab"),
            NodeConfig("sub2", "127.0.5.3", tftp=False),
        ),
        **changes,  # type: ignore[arg-type]
    )


# --- CTL ------------------------------------------------------------------------------------


def test_source_ctl_105_2_callmanager_signs_itlrecovery_is_sast(lab_pki: LabPki) -> None:
    pki = lab_pki.clusters["source"]
    cm = pki.nodes["ucm105pub"].callmanager.cert
    ctl = _parse(_files(_config("source"), pki).ctl())
    assert verify_file(ctl) == cm
    assert verify_file(ctl, trusted=[cm]) == cm
    assert ctl.header.filename == "CTLFile.tlv" and ctl.header.timestamp == NOW
    assert ctl.header.signer_version is None  # CUCM 10.5 files carry none
    assert ctl.header.hash_algorithm == HashAlgorithm.SHA1
    assert _roles(ctl) == [
        (Role.SAST, cm.subject),
        (Role.SAST, pki.itlrecovery.cert.subject),
        (Role.CCM_TFTP, cm.subject),
        (Role.CAPF, pki.capf.cert.subject),
    ]
    assert ctl.records[0].ip_address == bytes([127, 0, 1, 1])
    assert ctl.records[1].ip_address is None


def test_destination_ctl_signed_by_enterprise_issued_callmanager(lab_pki: LabPki) -> None:
    pki = lab_pki.clusters["destination"]
    cm = pki.nodes["ucm11pub"].callmanager.cert
    ctl = _parse(_files(_config("destination"), pki).ctl())
    assert verify_file(ctl, trusted=[cm]) == cm
    assert cm.issuer == lab_pki.enterprise_ca.cert.subject
    assert ctl.header.signer.issuer == cm.issuer
    assert ctl.header.signer_version == (1, 0)
    assert [r.role for r in ctl.records] == [Role.SAST, Role.SAST, Role.CCM_TFTP, Role.CAPF]


def test_ctl_before_105_2_has_no_itlrecovery(lab_pki: LabPki) -> None:
    pki = lab_pki.clusters["source"]
    ctl = _parse(_files(_config("source", version="10.0.1.10000-24"), pki).ctl())
    assert pki.itlrecovery.cert.subject not in [r.subject for r in ctl.records]
    assert [r.role for r in ctl.records] == [Role.SAST, Role.CCM_TFTP, Role.CAPF]


def test_ctl_12x_itlrecovery_signs_callmanager_also_sast(big_pki: ClusterPki) -> None:
    files = _files(_big(), big_pki)
    ctl = _parse(files.ctl())
    rec = big_pki.itlrecovery.cert
    assert verify_file(ctl, trusted=[rec]) == rec
    assert ctl.header.signer_version == (1, 1)  # EC signer
    pub, sub1, sub2 = (big_pki.nodes[n].callmanager.cert.subject for n in ("pub", "sub1", "sub2"))
    assert _roles(ctl) == [
        (Role.SAST, rec.subject),
        (Role.SAST, pub),
        (Role.CCM_TFTP, pub),
        (Role.CCM_TFTP, sub1),
        (Role.CCM, sub2),
        (Role.CAPF, big_pki.capf.cert.subject),
    ]
    by_subject = {(r.role, r.subject): r for r in ctl.records}
    assert by_subject[(Role.CCM_TFTP, sub1)].ip_address is None  # announced by host name
    assert by_subject[(Role.CCM, sub2)].ip_address == bytes([127, 0, 5, 3])


def test_nonsecure_serves_no_ctl(lab_pki: LabPki) -> None:
    files = _files(_config("source", security_mode="nonsecure"), lab_pki.clusters["source"])
    assert files.ctl() is None
    assert files.get(f"CTLSEP{MAC}.tlv") is None
    assert f"CTLSEP{MAC}.tlv" not in files.files_for(MAC)
    itl = _parse(files.get(f"ITLSEP{MAC}.tlv"))
    assert [r.role for r in itl.records] == [Role.SAST, Role.TFTP, Role.SAST, Role.TVS, Role.CAPF]


def test_phone_sast_trust_appears_in_ctl_only_after_a_ctl_update(lab_pki: LabPki) -> None:
    src = lab_pki.clusters["source"]
    dst_cm = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    files = _files(_config("source"), src)
    before_bytes = files.ctl()
    before = _parse(before_bytes)
    itl_before = files.itl()
    assert dst_cm.subject not in [r.subject for r in before.records]
    own_cm = src.nodes["ucm105pub"].callmanager.cert
    files.update(sast_trust=(dst_cm, dst_cm, own_cm), timestamp=NOW + 1)
    assert files.generation == 1
    # an import rebuilds the ITL and configuration but keeps the CTL bytes (section 7, High)
    assert files.ctl() == before_bytes
    assert files.itl() != itl_before  # new timestamp
    files.update(config=_config("source", rollback_pre80=False))  # rebuilt, same trust
    assert dst_cm.subject not in [r.subject for r in _parse(files.ctl()).records]
    files.ctl_update()  # utils ctl update CTLFile
    after = _parse(files.ctl())
    assert after.header.timestamp == NOW + 1
    assert verify_file(after, trusted=[own_cm]) == own_cm
    added = [r for r in after.records if r.subject == dst_cm.subject]
    assert [(r.role, r.serial) for r in added] == [(Role.SAST, dst_cm.serial)]
    assert len(after.records) == len(before.records) + 1  # own CM is already SAST: not repeated
    assert [r.subject for r in _parse(files.itl()).records] == [
        r.subject for r in _parse(itl_before).records
    ]  # the ITL holds no Phone-SAST-trust


def test_sha512_digest(lab_pki: LabPki) -> None:
    files = _files(_config("source", digest="sha512"), lab_pki.clusters["source"])
    for data in (files.ctl(), files.itl(), files.config_sgn(MAC)):
        f = _parse(data)
        assert f.header.hash_algorithm == HashAlgorithm.SHA512
        verify_file(f, trusted=[lab_pki.clusters["source"].nodes["ucm105pub"].callmanager.cert])


# --- ITL ------------------------------------------------------------------------------------


def test_source_itl_callmanager_signs(lab_pki: LabPki) -> None:
    pki = lab_pki.clusters["source"]
    node = pki.nodes["ucm105pub"]
    itl = _parse(_files(_config("source"), pki).itl())
    assert itl.header.filename == "ITLFile.tlv"
    assert verify_file(itl, trusted=[node.callmanager.cert]) == node.callmanager.cert
    assert _roles(itl) == [
        (Role.SAST, node.callmanager.cert.subject),
        (Role.CCM_TFTP, node.callmanager.cert.subject),
        (Role.SAST, pki.itlrecovery.cert.subject),  # 10.x-11.x ITLs hold ITLRecovery (section 7)
        (Role.TVS, node.tvs.cert.subject),
        (Role.CAPF, pki.capf.cert.subject),
    ]
    tvs = itl.records_with_role(Role.TVS)[0]
    assert tvs.cert == node.tvs.cert and tvs.ip_address == bytes([127, 0, 1, 1])


def test_itl_per_tftp_node_before_12(big_pki: ClusterPki) -> None:
    files = _files(_big("11.5.1.10000-6"), big_pki)
    for node in ("pub", "sub1"):
        cm = big_pki.nodes[node].callmanager.cert
        itl = _parse(files.itl(node))
        assert verify_file(itl, trusted=[cm]) == cm
        assert itl.records[0].subject == cm.subject and itl.records[0].role == Role.SAST
        assert [r.role for r in itl.records] == [
            Role.SAST,
            Role.CCM_TFTP,  # each TFTP node's ITL holds its own CallManager (section 7, Med)
            Role.SAST,  # ITLRecovery
            *[Role.TVS] * 3,
            Role.CAPF,
        ]
        assert {r.subject for r in itl.records_with_role(Role.CCM_TFTP)} == {cm.subject}
        assert files.get("ITLFile.tlv", node) == files.itl(node)
    assert files.itl() == files.itl("pub")
    with pytest.raises(ClusterError, match="does not run TFTP"):
        files.itl("sub2")


def test_itl_12x_itlrecovery_signs(big_pki: ClusterPki) -> None:
    files = _files(_big(), big_pki)
    rec = big_pki.itlrecovery.cert
    for node in ("pub", "sub1"):
        itl = _parse(files.itl(node))
        assert verify_file(itl, trusted=[rec]) == rec
        assert (itl.records[0].role, itl.records[0].subject) == (Role.SAST, rec.subject)
        tvs = {r.subject for r in itl.records_with_role(Role.TVS)}
        assert tvs == {big_pki.nodes[n].tvs.cert.subject for n in ("pub", "sub1", "sub2")}


@pytest.mark.parametrize("version", ["10.5.2.11900-3", "11.0.1.10000-10", "12.5.1.10000-22"])
def test_itl_contents_by_version_match_section_7(lab_pki: LabPki, version: str) -> None:
    """Decode the served ITL of a 10.5, an 11.0 and a 12.5 cluster: records and roles as the
    section 7 table says (10.x-11.x: the serving CallManager signs, SAST + CCM+TFTP, ITLRecovery
    SAST; 12.0+: ITLRecovery signs, the serving CallManager as SAST and CCM+TFTP; every TVS;
    CAPF), and the CTL never holds a TVS."""
    pki = lab_pki.clusters["source"]
    node = pki.nodes["ucm105pub"]
    files = _files(_config("source", version=version), pki)
    itl = _parse(files.get(f"ITLSEP{MAC}.tlv") or b"")
    cm, rec = node.callmanager.cert.subject, pki.itlrecovery.cert.subject
    twelve = version.startswith("12.")
    expected_head = (
        [(Role.SAST, rec), (Role.SAST, cm), (Role.CCM_TFTP, cm)]
        if twelve
        else [(Role.SAST, cm), (Role.CCM_TFTP, cm), (Role.SAST, rec)]
    )
    assert _roles(itl) == [
        *expected_head,
        (Role.TVS, node.tvs.cert.subject),
        (Role.CAPF, pki.capf.cert.subject),
    ]
    signer = pki.itlrecovery.cert if twelve else node.callmanager.cert
    assert verify_file(itl, trusted=[signer]) == signer
    ctl = _parse(files.ctl() or b"")
    assert not ctl.records_with_role(Role.TVS)


def test_rollback_blanks_itl_and_leaves_ctl(lab_pki: LabPki) -> None:
    pki = lab_pki.clusters["source"]
    normal = _files(_config("source"), pki)
    rolled = _files(_config("source", rollback_pre80=True), pki)
    assert rolled.ctl() == normal.ctl()
    blank = _parse(rolled.itl())
    assert blank.records == () and blank.kind == "tlv"
    cm = pki.nodes["ucm105pub"].callmanager.cert
    assert verify_file(blank, trusted=[cm]) == cm
    normal.update(config=_config("source", rollback_pre80=True))
    assert normal.itl() == rolled.itl()


# --- configuration --------------------------------------------------------------------------


def test_config_lists_nodes_with_bound_ports(big_pki: ClusterPki) -> None:
    config = _big("11.5.1.10000-6")
    endpoints = tuple(
        NodeEndpoint(n.name, n.address, n.tftp, 40000 + i, 41000 + i, 42000 + i)
        for i, n in enumerate(config.nodes)
    )
    files = _files(config, big_pki, endpoints=endpoints)
    xml = files.get(f"SEP{MAC}.cnf.xml")
    assert xml is not None
    ET.fromstring(xml)  # well-formed
    parsed = parse_config(xml)
    assert [(m.priority, m.address, m.port) for m in parsed.tvs_members] == [
        (0, "127.0.5.1", 41000),
        (1, "sub1.big.lab", 41001),
        (2, "127.0.5.3", 41002),
    ]
    assert [(c.host, c.secure_sip_port) for c in parsed.callmanagers] == [
        ("127.0.5.1", 42000),
        ("sub1.big.lab", 42001),
        ("127.0.5.3", 42002),
    ]
    assert not parsed.tvs_from_callmanager_group


@pytest.mark.parametrize("mode", ["mixed", "nonsecure"])
def test_config_sgn_signed_by_tftp_callmanager(lab_pki: LabPki, mode: str) -> None:
    pki = lab_pki.clusters["source"]
    files = _files(_config("source", security_mode=mode), pki)
    sgn = _parse(files.get(f"sep{MAC.lower()}.cnf.xml.sgn"))
    cm = pki.nodes["ucm105pub"].callmanager.cert
    assert sgn.kind == "sgn" and sgn.header.filename == f"SEP{MAC}.cnf.xml.sgn"
    assert sgn.payload == files.config_xml()
    assert verify_file(sgn, trusted=[cm]) == cm
    other = _parse(files.config_sgn("0011223344AA"))
    assert other.header.filename == "SEP0011223344AA.cnf.xml.sgn"  # any MAC: auto-registration


def test_files_for_names_and_cache(lab_pki: LabPki) -> None:
    files = _files(_config("source"), lab_pki.clusters["source"])
    got = files.files_for(MAC.lower())
    assert set(got) == {
        f"CTLSEP{MAC}.tlv",
        f"ITLSEP{MAC}.tlv",
        "ITLFile.tlv",
        f"SEP{MAC}.cnf.xml",
        f"SEP{MAC}.cnf.xml.sgn",
    }
    assert got[f"ITLSEP{MAC}.tlv"] == got["ITLFile.tlv"]
    assert files.get("CTLFile.tlv") is got[f"CTLSEP{MAC}.tlv"]  # cached, same object
    assert files.get("ITLFile.tlv") is files.get("ITLFile.tlv")
    assert files.get("SEPdefault.cnf.xml") is None
    assert files.get("../etc/passwd") is None
    files.update(timestamp=NOW + 5)
    assert _parse(files.itl()).header.timestamp == NOW + 5
    assert _parse(files.ctl()).header.timestamp == NOW  # only a CTL update rebuilds the CTL
    files.ctl_update()
    assert _parse(files.ctl()).header.timestamp == NOW + 5


def test_node_missing_from_pki_is_refused(lab_pki: LabPki) -> None:
    config = ClusterConfig(name="source", nodes=(NodeConfig("ghost", "127.0.1.9"),))
    with pytest.raises(ClusterError, match="ghost"):
        FileInputs(config, lab_pki.clusters["source"], endpoints_from_config(config))
    good = ClusterConfig.example("source")
    with pytest.raises(ClusterError, match="endpoints"):
        FileInputs(good, lab_pki.clusters["source"], ())


# --- names ----------------------------------------------------------------------------------


def test_endpoint_ipv4() -> None:
    assert NodeEndpoint("a", "127.0.1.1", True, 1, 2, 3).ipv4 == bytes([127, 0, 1, 1])
    assert NodeEndpoint("a", "source", True, 1, 2, 3).ipv4 is None
    assert NodeEndpoint("a", "::1", True, 1, 2, 3).ipv4 is None
    assert NodeEndpoint("a", "0.0.0.0", True, 1, 2, 3).ipv4 is None


def test_certificate_records_round_trip(lab_pki: LabPki) -> None:
    """Every record's certificate is the PKI's own (DER), readable by ``Certificate``."""
    pki = lab_pki.clusters["source"]
    ctl = _parse(_files(_config("source"), pki).ctl())
    ders = {
        pki.itlrecovery.cert.der,
        pki.capf.cert.der,
        pki.nodes["ucm105pub"].callmanager.cert.der,
    }
    assert {r.certificate for r in ctl.records} == ders
    assert all(isinstance(r.cert, Certificate) for r in ctl.records)
