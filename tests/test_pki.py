"""Lab PKI: recipe reading, the generated layout, certificate contents, idempotence, the CLI."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tvs.certs import Certificate
from tvs.cli import main as tvs_main
from tvs.names import names_match
from tvs.pki import (
    Identity,
    LabPki,
    PkiError,
    Recipe,
    RecipeError,
    generate,
    generate_key,
    issue_lsc,
    windows_ca_serial,
)

REPO = Path(__file__).resolve().parents[1]

SEED_CM_SUBJECT = "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU"
SEED_LSC_SUBJECT = (
    "serialNumber=PID:CP-8861 SN:FCH18198CNQ, C=AU, O=stormin, OU=IST, CN=CP-8861-SEPB000B4BA0AEE"
)
SEED_CAPF = "C=AU, O=stormin, OU=IST, CN=CAPF-a7fb32bf, ST=NSQ, L=Sydney"

EXPECTED_FILES = {
    f"{stem}.{ext}"
    for stem in (
        "enterprise-ca",
        "manufacturing-ca",
        "source/itlrecovery",
        "source/capf",
        "source/nodes/ucm105pub/callmanager",
        "source/nodes/ucm105pub/tvs",
        "source/phones/SEPB000B4BA0AEE",
        "source/phones/SEPB000B4BA0AEF",
        "destination/itlrecovery",
        "destination/capf",
        "destination/nodes/ucm11pub/callmanager",
        "destination/nodes/ucm11pub/tvs",
    )
    for ext in ("pem", "key")
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _ec_recipe() -> Recipe:
    """The default recipe with cheap keys, for tests that generate into their own directory."""
    return Recipe.default().with_key_type("ec-p256")


def _ca(cert: Certificate) -> bool:
    return bool(cert.x509.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)


def _eku(cert: Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.x509.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- the default recipe ----------------------------------------------------------------------


def test_default_recipe_is_the_seed_lab() -> None:
    recipe = Recipe.default()
    assert [c.name for c in recipe.clusters] == ["source", "destination"]
    source, destination = recipe.clusters
    assert source.version.startswith("10.5") and destination.version.startswith("11.0")
    assert [n.name for n in source.nodes] == ["ucm105pub"]
    assert destination.nodes[0].fqdn == "ucm11pub.stormin.local"
    assert [(n.address) for c in recipe.clusters for n in c.nodes] == ["127.0.1.1", "127.0.2.1"]
    assert source.callmanager_issuer == "self"
    assert destination.callmanager_issuer == "enterprise-ca"
    assert (source.phones[0].mac, source.phones[0].model) == ("B000B4BA0AEE", "8861")
    assert source.capf_name == "CAPF-a7fb32bf"
    assert recipe.enterprise_ca.common_name == "stormin-WIN2012-CA"
    assert {c.key_type for c in recipe.clusters} == {"rsa2048"}


def test_certs_lab_toml_is_the_packaged_recipe() -> None:
    link = REPO / "certs" / "lab.toml"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "tvs" / "pki" / "lab.toml").resolve()
    assert Recipe.load(link) == Recipe.default()


# --- bad recipes -----------------------------------------------------------------------------


def _recipe_dict(**cluster_changes: Any) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": "lab",
        "version": "12.5",
        "domain": "example.test",
        "nodes": [{"name": "pub", "address": "127.0.3.1"}],
        "phones": [{"mac": "b0:00:b4:ba:0a:ee"}],
    }
    cluster.update(cluster_changes)
    return {"clusters": [cluster]}


def test_recipe_from_dict_fills_defaults() -> None:
    recipe = Recipe.from_dict(_recipe_dict())
    (c,) = recipe.clusters
    assert c.nodes[0].fqdn == "pub.example.test"
    assert c.phones[0].mac == "B000B4BA0AEE"
    assert c.phones[0].device_name == "CP-8861-SEPB000B4BA0AEE"
    assert c.key_type_for("lsc") == "rsa2048"
    assert len(c.capf_id) == 8


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nodez": []}, "unknown key(s) 'nodez'"),
        ({"key_type": "rsa1024"}, "key type 'rsa1024'"),
        ({"key_types": {"tvs": "dsa"}}, "key_types.tvs"),
        ({"key_types": {"tomcat": "ec-p256"}}, "unknown key(s) 'tomcat'"),
        ({"nodes": []}, "non-empty list of nodes"),
        ({"nodes": [{"name": "pub", "address": "localhost"}]}, "not an IP address"),
        ({"nodes": [{"name": "a", "address": "127.0.0.1"}] * 2}, "duplicate node name 'a'"),
        ({"phones": [{"mac": "B000B4BA0AE"}]}, "not a MAC address"),
        ({"phones": [{"mac": "B000B4BA0AEE"}, {"mac": "b000b4ba0aee"}]}, "duplicate MAC"),
        ({"callmanager_issuer": "verisign"}, "callmanager_issuer"),
        ({"security_mode": "paranoid"}, "security_mode"),
        ({"capf": {"id": "XYZ"}}, "capf.id"),
        ({"subject": {"C": "AUS"}}, "two letters"),
        ({"validity_days": 0}, "validity_days"),
        ({"name": "../escape"}, "not a usable cluster"),
    ],
)
def test_bad_recipe_says_where(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(_recipe_dict(**changes))
    assert message in str(info.value)


def test_bad_recipe_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[clusters]\nname = ")
    with pytest.raises(RecipeError, match="not valid TOML"):
        Recipe.load(bad)
    bad.write_text("[enterprise_ca]\n")
    with pytest.raises(RecipeError, match=r"bad\.toml: recipe: expected at least one"):
        Recipe.load(bad)
    with pytest.raises(RecipeError, match="cannot read recipe"):
        Recipe.load(tmp_path / "missing.toml")
    assert isinstance(RecipeError("x"), ValueError)


# --- the generated directory -----------------------------------------------------------------


def test_layout_is_exactly_the_contract(lab_pki_dir: Path) -> None:
    assert set(_files(lab_pki_dir)) == EXPECTED_FILES
    for name in EXPECTED_FILES:
        mode = stat.S_IMODE((lab_pki_dir / name).stat().st_mode)
        if name.endswith(".key"):
            assert mode == 0o600, name
            assert (lab_pki_dir / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        else:
            assert Certificate.load(lab_pki_dir / name).der


def test_every_key_matches_its_certificate(lab_pki: LabPki) -> None:
    idents = list(lab_pki.identities())
    assert len(idents) == len(EXPECTED_FILES) // 2
    for name, ident in idents:
        assert ident.cert_path == lab_pki.root / f"{name}.pem"
        assert ident.key_path == lab_pki.root / f"{name}.key"
        assert ident.cert.public_key == ident.key.public_key(), name
        assert ident.key_type == "rsa2048"


def test_destination_callmanager_is_issued_by_the_enterprise_ca(lab_pki: LabPki) -> None:
    ca = lab_pki.enterprise_ca.cert
    cm = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    assert cm.subject == SEED_CM_SUBJECT
    assert cm.issuer == "CN=stormin-WIN2012-CA" == ca.subject
    assert cm.is_issued_by(ca)
    assert not cm.is_issued_by(cm)
    assert len(cm.serial) == 19 and cm.serial[1:4] == bytes(3) and cm.serial[13:18] == bytes(5)
    assert not _ca(cm) and _ca(ca)
    san = cm.x509.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "ucm11pub.stormin.local" in san.get_values_for_type(x509.DNSName)
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.2.1"]
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= _eku(cm)


def test_cucm_own_certificates_are_self_signed(lab_pki: LabPki) -> None:
    source = lab_pki.clusters["source"]
    destination = lab_pki.clusters["destination"]
    own = [
        source.nodes["ucm105pub"].callmanager,
        source.nodes["ucm105pub"].tvs,
        source.itlrecovery,
        source.capf,
        destination.nodes["ucm11pub"].tvs,
        destination.itlrecovery,
        destination.capf,
    ]
    for ident in own:
        assert ident.cert.is_issued_by(ident.cert), ident.subject
        assert ident.cert.subject == ident.cert.issuer
        assert _ca(ident.cert)
    assert source.nodes["ucm105pub"].callmanager.cert.common_name == "ucm105pub.stormin.local"
    assert source.nodes["ucm105pub"].tvs.cert.common_name == "ucm105pub.stormin.local"
    assert source.itlrecovery.cert.common_name == "ITLRECOVERY_ucm105pub"
    assert destination.itlrecovery.cert.common_name == "ITLRECOVERY_ucm11pub"
    assert destination.capf.cert.common_name.startswith("CAPF-")
    # distinct certificates, distinct keys
    assert len({i.cert.serial for i in own}) == len(own)
    assert source.publisher.name == "ucm105pub"


def test_lsc_is_issued_by_its_cluster_capf_with_the_seed_subject(lab_pki: LabPki) -> None:
    source = lab_pki.clusters["source"]
    assert set(source.phones) == {"B000B4BA0AEE", "B000B4BA0AEF"}
    assert dict(lab_pki.clusters["destination"].phones) == {}
    lsc = source.phones["B000B4BA0AEE"].cert
    assert names_match(lsc.subject, SEED_LSC_SUBJECT)
    assert names_match(lsc.issuer, SEED_CAPF)
    assert lsc.is_issued_by(source.capf.cert)
    assert not lsc.is_issued_by(lab_pki.clusters["destination"].capf.cert)
    # attribute order as the phone prints it: /serialNumber=.../C=AU/O=stormin/OU=IST/CN=...
    order = [a.oid for a in lsc.x509.subject]
    assert order == [
        NameOID.SERIAL_NUMBER,
        NameOID.COUNTRY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    capf_order = [a.value for a in source.capf.cert.x509.subject]
    assert capf_order == ["AU", "stormin", "IST", "CAPF-a7fb32bf", "NSQ", "Sydney"]
    assert not _ca(lsc)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in _eku(lsc)


def test_certificates_work_for_tls_with_hostname_checks(lab_pki: LabPki, tmp_path: Path) -> None:
    """Destination CallManager via the enterprise CA, source TVS pinned, LSC as client cert."""
    destination = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager
    source_tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs
    lsc = lab_pki.clusters["source"].phones["B000B4BA0AEE"]
    capf = lab_pki.clusters["source"].capf
    for server, anchor in ((destination, lab_pki.enterprise_ca), (source_tvs, source_tvs)):
        host = server.cert.common_name
        _handshake(server, anchor, host, client=lsc, client_anchor=capf)
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(server, anchor, "wrong.stormin.local", client=lsc, client_anchor=capf)


def _handshake(
    server: Identity, anchor: Identity, host: str, *, client: Identity, client_anchor: Identity
) -> None:
    """One TLS handshake in memory (no sockets), both sides verifying."""
    assert server.cert_path and server.key_path and client.cert_path and client.key_path
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server.cert_path, server.key_path)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cadata=client_anchor.cert.to_pem().decode())
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cadata=anchor.cert.to_pem().decode())
    cctx.load_cert_chain(client.cert_path, client.key_path)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    s = sctx.wrap_bio(bios[0], bios[1], server_side=True)
    c = cctx.wrap_bio(bios[2], bios[3], server_hostname=host)
    for _ in range(10):
        done = 0
        for side, out_bio, peer_in in ((c, bios[3], bios[0]), (s, bios[1], bios[2])):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out_bio.read())
        if done == 2:
            break
    c.write(b"ping")
    bios[0].write(bios[3].read())
    assert s.read(4) == b"ping"
    assert s.getpeercert() is not None


# --- idempotence and overwrite ---------------------------------------------------------------


def test_second_run_keeps_everything_and_overwrite_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    first = generate(_ec_recipe(), out)
    assert {str(p.relative_to(out)) for p in first.written} == EXPECTED_FILES
    before = _files(out)
    again = generate(_ec_recipe(), out)
    assert again.written == frozenset()
    assert _files(out) == before
    assert LabPki.load(out).enterprise_ca.cert == first.enterprise_ca.cert
    replaced = generate(_ec_recipe(), out, overwrite=True)
    after = _files(out)
    assert set(after) == EXPECTED_FILES
    assert all(after[name] != before[name] for name in EXPECTED_FILES)
    assert len(replaced.written) == len(EXPECTED_FILES)


def test_missing_files_are_made_and_dependents_reissued(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    generate(_ec_recipe(), out)
    before = _files(out)
    (out / "source/nodes/ucm105pub/callmanager.pem").unlink()
    (out / "enterprise-ca.key").unlink()
    lab = generate(_ec_recipe(), out)
    after = _files(out)
    changed = {name for name in EXPECTED_FILES if after[name] != before.get(name)}
    assert changed == {
        "source/nodes/ucm105pub/callmanager.pem",  # cert re-made with the kept key
        "enterprise-ca.key",
        "enterprise-ca.pem",
        "destination/nodes/ucm11pub/callmanager.pem",  # re-issued by the new CA, same key
    }
    cm = lab.clusters["destination"].nodes["ucm11pub"].callmanager
    assert cm.cert.is_issued_by(lab.enterprise_ca.cert)
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))


def test_unreadable_key_is_an_error_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    generate(_ec_recipe(), out)
    (out / "source/capf.key").write_text("not a key")
    with pytest.raises(PkiError, match=r"capf\.key.*--overwrite"):
        generate(_ec_recipe(), out)
    generate(_ec_recipe(), out, overwrite=True)
    assert LabPki.load(out).clusters["source"].capf.key_type == "ec-p256"


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="not a lab PKI directory"):
        LabPki.load(tmp_path / "nowhere")
    out = tmp_path / "pki"
    generate(_ec_recipe(), out)
    (out / "destination/nodes/ucm11pub/tvs.pem").unlink()
    with pytest.raises(PkiError, match=r"tvs\.pem: missing"):
        LabPki.load(out, Recipe.default())
    with pytest.raises(PkiError, match="not a directory"):
        generate(_ec_recipe(), out / "enterprise-ca.pem")


# --- key types -------------------------------------------------------------------------------


def test_key_types_per_cluster_per_kind_per_phone(tmp_path: Path) -> None:
    d = _recipe_dict(
        key_type="ec-p256",
        key_types={"callmanager": "rsa2048"},
        phones=[{"mac": "B000B4BA0AEE", "key_type": "rsa2048"}, {"mac": "B000B4BA0B00"}],
    )
    d["enterprise_ca"] = {"key_type": "ec-p256"}
    lab = generate(Recipe.from_dict(d), tmp_path)
    c = lab.clusters["lab"]
    assert isinstance(c.nodes["pub"].callmanager.key, rsa.RSAPrivateKey)
    assert isinstance(c.nodes["pub"].tvs.key, ec.EllipticCurvePrivateKey)
    assert isinstance(c.capf.cert.public_key, ec.EllipticCurvePublicKey)
    assert c.phones["B000B4BA0AEE"].key_type == "rsa2048"
    assert c.phones["B000B4BA0B00"].key_type == "ec-p256"
    assert c.phones["B000B4BA0AEE"].cert.is_issued_by(c.capf.cert)
    assert lab.enterprise_ca.key_type == "ec-p256"


def test_issue_lsc_in_memory_reusing_a_key(lab_pki: LabPki) -> None:
    capf = lab_pki.clusters["destination"].capf
    key = generate_key("ec-p256")
    a = issue_lsc(capf, mac="b0:00:b4:ba:00:01", model="7841", key=key)
    b = issue_lsc(capf, mac="SEPB000B4BA0002", key=key)
    assert a.cert_path is None and a.key_path is None
    assert a.key is key and a.cert.public_key == key.public_key()
    assert a.cert.common_name == "CP-7841-SEPB000B4BA0001"
    assert b.cert.common_name == "CP-8861-SEPB000B4BA0002"
    assert a.cert.serial != b.cert.serial
    assert a.cert.is_issued_by(capf.cert) and b.cert.is_issued_by(capf.cert)
    assert issue_lsc(capf, mac="B000B4BA0003").key_type == "ec-p256"
    assert issue_lsc(capf, mac="B000B4BA0003", key_type="rsa2048").key_type == "rsa2048"
    with pytest.raises(RecipeError, match="not a MAC"):
        issue_lsc(capf, mac="nope", key=key)


def test_windows_ca_serial_shape() -> None:
    for _ in range(200):
        raw = windows_ca_serial().to_bytes(19, "big")
        assert 0 < raw[0] < 0x80
        assert raw[1:4] == bytes(3) and raw[13:18] == bytes(5)
        assert raw[4] == raw[18] != 0


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_generate_json_then_kept_then_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pki"
    argv = ["certs", "generate", "--out", str(out), "--key-type", "ec-p256", "--json"]
    assert tvs_main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in doc["certificates"]}
    assert {f"{n}.pem" for n in rows} | {f"{n}.key" for n in rows} == EXPECTED_FILES
    cm = rows["destination/nodes/ucm11pub/callmanager"]
    assert cm["issuer"] == "CN=stormin-WIN2012-CA" and cm["status"] == "created"
    assert cm["subject"] == SEED_CM_SUBJECT and cm["key_type"] == "ec-p256"
    assert Certificate.load(cm["path"]).serial_hex == cm["serial"]
    assert tvs_main(argv) == 0
    assert {r["status"] for r in json.loads(capsys.readouterr().out)["certificates"]} == {"kept"}
    assert tvs_main([*argv, "--overwrite"]) == 0
    rows2 = {r["name"]: r for r in json.loads(capsys.readouterr().out)["certificates"]}
    assert {r["status"] for r in rows2.values()} == {"created"}
    assert rows2["enterprise-ca"]["serial"] != rows["enterprise-ca"]["serial"]
    assert tvs_main(["certs", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "destination/nodes/ucm11pub/callmanager.pem" in shown
    assert rows2["enterprise-ca"]["serial"] in shown


def test_cli_recipe_file_and_show_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "one.toml"
    recipe.write_text(
        '[[clusters]]\nname = "solo"\nversion = "14"\ndomain = "x.test"\nkey_type = "ec-p256"\n'
        'nodes = [{ name = "pub", address = "127.0.4.1" }]\n'
        '[enterprise_ca]\nkey_type = "ec-p256"\n'
    )
    out = tmp_path / "pki"
    assert tvs_main(["certs", "generate", "--recipe", str(recipe), "--out", str(out)]) == 0
    assert "solo/nodes/pub/callmanager.pem" in capsys.readouterr().out
    assert tvs_main(["certs", "show", str(out), "--recipe", str(recipe), "--json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)["certificates"]]
    assert names == [
        "enterprise-ca",
        "manufacturing-ca",
        "solo/capf",
        "solo/itlrecovery",
        "solo/nodes/pub/callmanager",
        "solo/nodes/pub/tvs",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["certs", "generate", "--recipe", "{tmp}/missing.toml", "--out", "{tmp}/o"],
        ["certs", "generate", "--recipe", "{tmp}/bad.toml", "--out", "{tmp}/o"],
        ["certs", "generate", "--out", "{tmp}/bad.toml"],
        ["certs", "show", "{tmp}/nowhere"],
    ],
)
def test_cli_errors_exit_2_with_a_message(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.toml").write_text("[[clusters]]\nname = 'x'\n")
    assert tvs_main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tvs certs {argv[1]}: error: ") and str(tmp_path) in err
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_rejects_unknown_key_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        tvs_main(["certs", "generate", "--out", str(tmp_path), "--key-type", "dsa"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_load_waits_for_a_generation_in_progress(lab_pki_dir: Path, tmp_path: Path) -> None:
    """Two clusters started at once (issue 12 item 13): one generates the shared lab PKI while
    the other, seeing the directory, loads it. Loading takes the generation lock shared, so it
    never reads a half-written PKI: here a file is missing while the lock is held (as during a
    generation) and the loader still gets the whole PKI once the lock is released."""
    import shutil
    import threading

    from tvs.pki.lab import _generation_lock

    root = tmp_path / "pki"
    shutil.copytree(lab_pki_dir, root)
    cert = root / "source" / "itlrecovery.pem"
    results: list[object] = []
    started = threading.Event()

    def load() -> None:
        started.set()
        try:
            results.append(LabPki.load(root).cluster("source").itlrecovery.cert.subject)
        except Exception as exc:  # the failure this test exists for
            results.append(exc)

    with _generation_lock(root):
        moved = cert.rename(root / "itlrecovery.pem.writing")
        loader = threading.Thread(target=load)
        loader.start()
        started.wait(5)
        loader.join(0.5)  # the loader gets its chance to read the half-written directory
        moved.rename(cert)
    loader.join(30)
    assert not loader.is_alive()
    assert len(results) == 1 and isinstance(results[0], str), results
