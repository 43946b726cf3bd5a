"""Trust stores on disk, the roles table, the TVS cache, PKCS#12 and bulk certificate management."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from hypothesis import given
from hypothesis import strategies as st

from tvs.certs import Certificate
from tvs.names import parse_name
from tvs.pki import LabPki, issue_lsc
from tvs.roles import Role, parse_role, role_names
from tvs.store import (
    BULK_IMPORT_MAP,
    OWN_STORES,
    PHONE_ISSUER_STORES,
    STORE_ROLES,
    TRUST_STORES,
    CertificateCache,
    LabelledCertificate,
    StoreInputError,
    StoreNotFoundError,
    TrustStore,
    UnknownStoreError,
    bulk_export,
    bulk_import,
    consolidate,
    dump_pkcs12,
    load_pkcs12,
    read_certificate_file,
)


@pytest.fixture
def source_store(tmp_path: Path, lab_pki_dir: Path) -> TrustStore:
    return TrustStore.init_from_pki(tmp_path / "source-store", lab_pki_dir / "source")


def _dest_cm(lab_pki: LabPki) -> Certificate:
    return lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- the one roles table ------------------------------------------------------------------


def test_roles_table_matches_protocol_notes_section_7() -> None:
    assert STORE_ROLES["Phone-SAST-trust"] == (Role.SAST, Role.TFTP)
    assert STORE_ROLES["CallManager-trust"] == ()
    assert STORE_ROLES["CAPF-trust"] == ()
    for store in ("tomcat-trust", "Phone-trust", "Phone-CTL-trust", "tomcat"):
        assert STORE_ROLES[store] == (Role.APP_SERVER,)
    assert STORE_ROLES["Phone-VPN-trust"] == (Role.VPN,)
    assert int(Role.VPN) == 26
    assert set(STORE_ROLES["CallManager"]) == {Role.SAST, Role.CCM_TFTP}
    assert STORE_ROLES["TVS"] == (Role.TVS,)
    assert STORE_ROLES["ITLRecovery"] == (Role.SAST,)
    assert STORE_ROLES["CAPF"] == (Role.CAPF,)
    assert set(TRUST_STORES) <= set(STORE_ROLES)
    assert set(OWN_STORES) <= set(STORE_ROLES)
    assert BULK_IMPORT_MAP["CallManager"] == ("Phone-SAST-trust", "CallManager-trust")
    assert BULK_IMPORT_MAP["CAPF"] == ("CallManager-trust",)


def test_role_codes_from_cucms_database_have_names() -> None:
    assert [(int(r), r.label) for r in (Role.SRST, Role.FIREWALL, Role.CA, Role.VPN)] == [
        (5, "SRST"),
        (6, "FIREWALL"),
        (20, "CA"),
        (26, "VPN"),
    ]
    assert role_names([0, 3, 26, 99]) == ["SAST", "TFTP", "VPN", "role-99"]
    assert parse_role("vpn") is Role.VPN and parse_role("20") is Role.CA


def test_phone_issuer_set_is_own_capf_capf_trust_and_callmanager_trust(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    assert set(PHONE_ISSUER_STORES) == {"CAPF", "CAPF-trust", "CallManager-trust"}
    src_capf = lab_pki.clusters["source"].capf.cert
    assert source_store.phone_issuer_certificates() == [src_capf]
    other = _dest_cm(lab_pki)
    source_store.import_certificates("CallManager-trust", [other])
    source_store.import_certificates(
        "Phone-SAST-trust", [lab_pki.clusters["destination"].capf.cert]
    )
    assert set(source_store.phone_issuer_certificates()) == {src_capf, other}
    # the servers' older names are the same set
    assert source_store.client_ca_certificates() == source_store.phone_issuer_certificates()
    assert source_store.sip_client_ca_certificates() == source_store.phone_issuer_certificates()


def test_a_certificate_only_in_callmanager_trust_is_answered_invalid(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    capf = lab_pki.clusters["destination"].capf.cert  # where bulk import puts a remote CAPF
    source_store.import_certificates("CallManager-trust", [capf])
    assert source_store.load_cache().find_by_serial_issuer(capf.serial, capf.issuer) is None


# --- init, import, list -------------------------------------------------------------------


def test_init_fills_own_certificates_with_their_roles(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    src = lab_pki.clusters["source"]
    assert source_store.cluster == "source"
    assert source_store.nodes == ("ucm105pub",)
    by_store = {e.store: e for e in source_store.list()}
    assert by_store["CallManager"].certificate == src.nodes["ucm105pub"].callmanager.cert
    assert by_store["TVS"].certificate == src.nodes["ucm105pub"].tvs.cert
    assert by_store["ITLRecovery"].certificate == src.itlrecovery.cert
    assert by_store["CAPF"].certificate == src.capf.cert
    cache = source_store.load_cache()
    tvs_cert = src.nodes["ucm105pub"].tvs.cert
    entry = cache.find_by_serial_issuer(tvs_cert.serial, tvs_cert.issuer)
    assert entry is not None and entry.roles == (21,)
    reopened = TrustStore.open(source_store.root)
    assert reopened.cluster == "source"


def test_init_rejects_a_directory_that_is_not_a_pki_cluster(tmp_path: Path) -> None:
    with pytest.raises(StoreInputError, match="not a lab PKI cluster"):
        TrustStore.init_from_pki(tmp_path / "s", tmp_path)


def test_open_missing_store_fails_unless_create(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        TrustStore.open(tmp_path / "nope")
    store = TrustStore.open(tmp_path / "nope", create=True)
    assert store.list() == []
    assert all((tmp_path / "nope" / name).is_dir() for name in TRUST_STORES)


@pytest.mark.parametrize("store_name", TRUST_STORES)
def test_import_into_each_store_answers_with_the_table_roles(
    source_store: TrustStore, lab_pki: LabPki, store_name: str
) -> None:
    cert = _dest_cm(lab_pki)
    source_store.import_certificates(store_name, [cert], ttl=3600)
    entry = source_store.load_cache().find_by_serial_issuer(cert.serial, cert.issuer)
    expected = tuple(sorted(int(r) for r in STORE_ROLES[store_name]))
    if expected:
        assert entry is not None
        assert entry.roles == expected
        assert entry.ttl == 3600
    else:  # stores TVS does not answer for
        assert entry is None


def test_seed_destination_callmanager_answers_sast_and_tftp(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    cert = _dest_cm(lab_pki)
    source_store.import_certificates("Phone-SAST-trust", [cert])
    source_store.import_certificates("CallManager-trust", [cert])
    cache = source_store.load_cache()
    entry = cache.find_by_serial_issuer(cert.serial, cert.issuer)
    assert entry is not None
    assert entry.roles == (0, 3)
    assert entry.ttl == 86400
    assert cache.find_by_sha256(cert.sha256) is entry


def test_import_is_idempotent(source_store: TrustStore, lab_pki: LabPki) -> None:
    cert = _dest_cm(lab_pki)
    source_store.import_certificates("Phone-SAST-trust", [cert])
    source_store.import_certificates("Phone-SAST-trust", [cert])
    assert len(source_store.list(["Phone-SAST-trust"])) == 1


def test_import_with_unknown_store_name_leaves_store_unchanged(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    before = _snapshot(source_store.root)
    with pytest.raises(UnknownStoreError, match="unknown store"):
        source_store.import_certificates("Phone-Sast-Trusted", [_dest_cm(lab_pki)])
    with pytest.raises(UnknownStoreError):  # own stores are filled by init, not import
        source_store.import_certificates("CallManager", [_dest_cm(lab_pki)])
    assert _snapshot(source_store.root) == before


def test_store_name_is_case_insensitive(source_store: TrustStore, lab_pki: LabPki) -> None:
    (entry,) = source_store.import_certificates("phone-sast-trust", [_dest_cm(lab_pki)])
    assert entry.store == "Phone-SAST-trust"


def test_remove(source_store: TrustStore, lab_pki: LabPki) -> None:
    cert = _dest_cm(lab_pki)
    source_store.import_certificates("Phone-SAST-trust", [cert])
    gone = source_store.remove("Phone-SAST-trust", cert.sha256.hex()[:10])
    assert [e.certificate for e in gone] == [cert]
    assert source_store.list(["Phone-SAST-trust"]) == []
    with pytest.raises(StoreNotFoundError):
        source_store.remove("Phone-SAST-trust", cert.serial_hex)


def test_expired_certificate_is_listed_and_still_served(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    capf = lab_pki.clusters["source"].capf
    old = issue_lsc(
        capf, mac="00AABBCCDDEE", now=_dt.datetime(2020, 1, 1, tzinfo=_dt.UTC), validity_days=1
    )
    source_store.import_certificates("Phone-trust", [old.cert])
    (entry,) = source_store.list(["Phone-trust"])
    assert entry.is_expired()
    found = source_store.load_cache().find_by_sha256(old.cert.sha256)
    assert found is not None and found.roles == (int(Role.APP_SERVER),)


# --- the cache: issuer names in any style ---------------------------------------------------


def _rfc4514(cucm: str) -> str:
    return ",".join(reversed(cucm.split(";")))


def test_cache_matches_issuer_in_cucm_and_rfc4514_style(
    source_store: TrustStore, lab_pki: LabPki
) -> None:
    cm = lab_pki.clusters["source"].nodes["ucm105pub"].callmanager.cert
    cache = source_store.load_cache()
    assert ";" in cm.issuer
    for issuer in (
        cm.issuer,
        _rfc4514(cm.issuer),
        cm.issuer.lower(),
        cm.x509.issuer.rfc4514_string(),
    ):
        entry = cache.find_by_serial_issuer(cm.serial, issuer)
        assert entry is not None, issuer
        assert entry.roles == (0, 2)
    assert cache.find_by_serial_issuer(cm.serial, "CN=someone else") is None
    assert cache.find_by_serial_issuer(cm.serial, "garbage without equals") is None
    assert cache.find_by_serial_issuer(b"\x00" + cm.serial, cm.issuer) is not None
    assert cache.find_by_serial_issuer(cm.serial + b"\x01", cm.issuer) is None


@given(st.permutations(["CN=ucm", "OU=IST", "O=Stormin", "L=Brisbane", "ST=QLD", "C=AU"]))
def test_issuer_attribute_order_does_not_matter(order: list[str]) -> None:
    assert sorted(parse_name(";".join(order))) == sorted(parse_name(",".join(order)))


def test_empty_cache() -> None:
    cache = CertificateCache.empty()
    assert len(cache) == 0
    assert cache.find_by_sha256(b"\x00" * 32) is None


# --- files: PEM, DER, PKCS#12; bad input ----------------------------------------------------


def test_read_pem_der_and_pkcs12(tmp_path: Path, lab_pki: LabPki) -> None:
    cert = _dest_cm(lab_pki)
    pem, der, p12 = tmp_path / "c.pem", tmp_path / "c.der", tmp_path / "c.p12"
    pem.write_bytes(cert.to_pem())
    der.write_bytes(cert.der)
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"cm", None, cert.x509, None, BestAvailableEncryption(b"secret")
        )
    )
    assert read_certificate_file(pem) == [cert]
    assert read_certificate_file(der) == [cert]
    assert read_certificate_file(p12, "secret") == [cert]
    with pytest.raises(StoreInputError, match="wrong password"):
        read_certificate_file(p12, "wrong")
    with pytest.raises(StoreInputError, match="needs a password"):
        read_certificate_file(p12)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello world", "not a PEM, DER or PKCS#12"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "bad PEM"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no certificate"),
        (b"\x30\x82\x01\x00" + b"\x00" * 40, "not a PEM, DER"),
    ],
)
def test_invalid_files_give_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.pem"
    f.write_bytes(content)
    with pytest.raises(StoreInputError, match=message):
        read_certificate_file(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreInputError, match="cannot read"):
        read_certificate_file(tmp_path / "missing.pem")


def test_pkcs12_round_trip_keeps_labels(lab_pki: LabPki) -> None:
    items = [
        LabelledCertificate(_dest_cm(lab_pki), "CallManager", "destination", "ucm11pub"),
        LabelledCertificate(lab_pki.clusters["destination"].capf.cert, "CAPF", "destination", ""),
    ]
    assert load_pkcs12(dump_pkcs12(items, "pw"), "pw") == items


# --- atomic writes ------------------------------------------------------------------------------


def test_crash_mid_import_leaves_a_readable_store(
    source_store: TrustStore, lab_pki: LabPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(source_store.root)
    real_replace = os.replace

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        source_store.import_certificates("Phone-SAST-trust", [_dest_cm(lab_pki)])
    monkeypatch.setattr(os, "replace", real_replace)
    assert _snapshot(source_store.root) == before  # temp file removed, nothing half-written
    assert len(source_store.load_cache()) == 4


def test_leftover_temporary_files_are_ignored(source_store: TrustStore) -> None:
    (source_store.root / "Phone-SAST-trust" / ".x.pem.123.tmp").write_bytes(b"-----BEGIN CERT")
    assert source_store.list(["Phone-SAST-trust"]) == []
    assert source_store.problems == []


def test_unreadable_file_in_store_is_skipped_and_reported(source_store: TrustStore) -> None:
    (source_store.root / "Phone-trust" / "junk.pem").write_bytes(b"junk")
    assert source_store.list(["Phone-trust"]) == []
    assert len(source_store.problems) == 1
    assert len(source_store.load_cache()) == 4


# --- bulk certificate management ------------------------------------------------------------------


def test_bulk_export_consolidate_import_both_ways(
    tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki
) -> None:
    src = TrustStore.init_from_pki(tmp_path / "src", lab_pki_dir / "source")
    dst = TrustStore.init_from_pki(tmp_path / "dst", lab_pki_dir / "destination")
    shared = tmp_path / "sftp"
    exported = bulk_export(src, shared) + bulk_export(dst, shared)
    assert sorted(p.name for p in exported) == ["destination_ucm11pub.p12", "source_ucm105pub.p12"]
    out = consolidate(shared)
    assert out.name == "consolidated.p12"
    r_src = bulk_import(src, shared)
    r_dst = bulk_import(dst, shared)
    assert r_src.imported and r_dst.imported

    d = lab_pki.clusters["destination"]
    s = lab_pki.clusters["source"]
    src_cache, dst_cache = src.load_cache(), dst.load_cache()
    cm = d.nodes["ucm11pub"].callmanager.cert
    entry = src_cache.find_by_serial_issuer(cm.serial, cm.issuer)
    assert entry is not None
    assert entry.roles == (0, 3)  # remote CallManager: Phone-SAST-trust + CallManager-trust
    itl = src_cache.find_by_sha256(d.itlrecovery.cert.sha256)
    assert itl is not None and itl.roles == (0, 3)
    # the remote CAPF lands in CallManager-trust: no TVS role (section 7), but it now
    # verifies the destination's phone certificates (the phone issuing set)
    assert src_cache.find_by_sha256(d.capf.cert.sha256) is None
    assert d.capf.cert in src.phone_issuer_certificates()
    # and back: the destination now vouches for the source (migrating back works)
    back = dst_cache.find_by_sha256(s.nodes["ucm105pub"].callmanager.cert.sha256)
    assert back is not None and back.roles == (0, 3)
    # own certificates are never imported into the own trust stores
    assert src_cache.find_by_sha256(s.nodes["ucm105pub"].callmanager.cert.sha256).roles == (0, 2)
    # TVS certificates are not bulk-exported
    assert src_cache.find_by_sha256(d.nodes["ucm11pub"].tvs.cert.sha256) is None


def test_bulk_import_with_wrong_password_leaves_store_unchanged(
    tmp_path: Path, lab_pki_dir: Path
) -> None:
    src = TrustStore.init_from_pki(tmp_path / "src", lab_pki_dir / "source")
    dst = TrustStore.init_from_pki(tmp_path / "dst", lab_pki_dir / "destination")
    shared = tmp_path / "sftp"
    bulk_export(dst, shared, "right")
    before = _snapshot(src.root)
    with pytest.raises(StoreInputError, match="wrong password"):
        bulk_import(src, shared, "wrong")
    with pytest.raises(StoreInputError, match="no exported bundles"):
        consolidate(tmp_path / "empty-dir-that-does-not-exist")
    assert _snapshot(src.root) == before
