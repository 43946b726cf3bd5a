"""``tvs store``: init, import, list, export, remove, bulk-export, consolidate, bulk-import."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from tvs.cli import main
from tvs.pki import LabPki, issue_lsc
from tvs.store import TrustStore


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path, lab_pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    d = tmp_path / "store"
    code, out, _ = _run(
        capsys, "store", "init", "--store", str(d), "--cluster", str(lab_pki_dir / "source")
    )
    assert code == 0 and "cluster source" in out
    return d


def test_import_list_json_and_expiry(
    store: Path,
    lab_pki_dir: Path,
    lab_pki: LabPki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cm = lab_pki_dir / "destination" / "nodes" / "ucm11pub" / "callmanager.pem"
    code, out, _ = _run(
        capsys, "store", "import", "--store", str(store), "--trust", "Phone-SAST-trust", str(cm)
    )
    assert code == 0 and "roles SAST" in out
    old = issue_lsc(lab_pki.clusters["source"].capf, mac="00AABBCCDDEE",
                    now=_dt.datetime(2020, 1, 1, tzinfo=_dt.UTC), validity_days=1)  # fmt: skip
    der = tmp_path / "old.der"
    der.write_bytes(old.cert.der)
    code, _, _ = _run(
        capsys,
        "store",
        "import",
        "--store",
        str(store),
        "--trust",
        "Phone-trust",
        "--ttl",
        "60",
        str(der),
    )
    assert code == 0
    code, out, _ = _run(capsys, "store", "list", "--store", str(store), "--json")
    rows = json.loads(out)
    by_store = {r["store"]: r for r in rows}
    assert by_store["Phone-SAST-trust"]["role_names"] == ["SAST", "TFTP"]
    assert by_store["Phone-SAST-trust"]["roles"] == [0, 3]
    assert by_store["Phone-trust"] == by_store["Phone-trust"] | {
        "expired": True,
        "ttl": 60,
        "roles": [7],
        "role_names": ["APP-SERVER"],
    }
    assert by_store["CallManager"]["roles"] == [0, 2]
    assert by_store["CallManager"]["role_names"] == ["SAST", "CCM+TFTP"]
    assert not by_store["CallManager"]["expired"]
    code, out, _ = _run(capsys, "store", "list", "--store", str(store))
    assert code == 0 and "EXPIRED" in out and "SAST+CCM+TFTP" in out


def test_import_pkcs12_and_wrong_password(
    store: Path, lab_pki: LabPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = lab_pki.clusters["destination"].capf.cert
    p12 = tmp_path / "capf.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"capf", None, cert.x509, None, BestAvailableEncryption(b"pw")
        )
    )
    before = _snapshot(store)
    code, _, err = _run(
        capsys,
        "store",
        "import",
        "--store",
        str(store),
        "--trust",
        "CAPF-trust",
        "--password",
        "bad",
        str(p12),
    )
    assert code == 2 and "wrong password" in err
    assert _snapshot(store) == before
    code, _, _ = _run(
        capsys,
        "store",
        "import",
        "--store",
        str(store),
        "--trust",
        "CAPF-trust",
        "--password",
        "pw",
        str(p12),
    )
    assert code == 0
    assert [e.certificate for e in TrustStore.open(store).list(["CAPF-trust"])] == [cert]


@pytest.mark.parametrize("bad", ["unknown-store", "invalid-file", "missing-store"])
def test_errors_leave_the_store_unchanged(
    store: Path, lab_pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    good = str(lab_pki_dir / "destination" / "capf.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    argv = {
        "unknown-store": ["--store", str(store), "--trust", "Phone-SAST", good],
        "invalid-file": ["--store", str(store), "--trust", "Phone-trust", good, str(junk)],
        "missing-store": ["--store", str(tmp_path / "nope"), "--trust", "Phone-trust", good],
    }[bad]
    before = _snapshot(store)
    code, _, err = _run(capsys, "store", "import", *argv)
    assert code == 2 and err.startswith("tvs store import: error:")
    assert _snapshot(store) == before
    assert not (tmp_path / "nope").exists()


def test_export_and_remove(
    store: Path, lab_pki: LabPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tvs_cert = lab_pki.clusters["source"].nodes["ucm105pub"].tvs.cert
    out_pem = tmp_path / "tvs.pem"
    code, _, _ = _run(
        capsys, "store", "export", "--store", str(store), "--trust", "TVS", "--out", str(out_pem)
    )
    assert code == 0 and out_pem.read_bytes() == tvs_cert.to_pem()
    out_der = tmp_path / "tvs.der"
    match = tvs_cert.sha256.hex()[:12]
    code, _, _ = _run(
        capsys, "store", "export", "--store", str(store), "--match", match,
        "--format", "der", "--out", str(out_der),
    )  # fmt: skip
    assert code == 0 and out_der.read_bytes() == tvs_cert.der
    code, _, err = _run(
        capsys, "store", "export", "--store", str(store), "--format", "der", "--out", str(out_der)
    )
    assert code == 2 and "one certificate" in err
    code, out, _ = _run(
        capsys, "store", "remove", "--store", str(store), "--trust", "TVS", tvs_cert.serial_hex
    )
    assert code == 0 and "removed from TVS" in out
    code, _, err = _run(
        capsys, "store", "remove", "--store", str(store), "--trust", "TVS", tvs_cert.serial_hex
    )
    assert code == 2 and "no certificate matching" in err


def test_bulk_commands(
    tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "sftp"
    stores = {}
    for cluster in ("source", "destination"):
        stores[cluster] = tmp_path / cluster
        assert (
            _run(
                capsys,
                "store",
                "init",
                "--store",
                str(stores[cluster]),
                "--cluster",
                str(lab_pki_dir / cluster),
            )[0]
            == 0
        )
        code, out, _ = _run(
            capsys, "store", "bulk-export", "--store", str(stores[cluster]), "--dir", str(shared)
        )
        assert code == 0 and f"{cluster}_" in out
    code, out, _ = _run(capsys, "store", "consolidate", "--dir", str(shared))
    assert code == 0 and "consolidated.p12" in out
    code, _, err = _run(
        capsys,
        "store",
        "bulk-import",
        "--store",
        str(stores["source"]),
        "--dir",
        str(shared),
        "--password",
        "x",
    )
    assert code == 2 and "wrong password" in err
    for cluster in stores:
        code, out, _ = _run(
            capsys, "store", "bulk-import", "--store", str(stores[cluster]), "--dir", str(shared)
        )
        assert code == 0 and "imported into Phone-SAST-trust" in out
    cm = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    entry = (
        TrustStore.open(stores["source"]).load_cache().find_by_serial_issuer(cm.serial, cm.issuer)
    )
    assert entry is not None and entry.roles == (0, 3)
