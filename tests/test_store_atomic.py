"""Store imports are all or nothing (a real kill -9 mid-import), stale temporary files go at the
next open, duplicates are written once, symlinked trust folders are refused, and bulk import
reads real exports (.pfx, openssl pkcs12 -export, kinds told from content or --kind)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tvs.certs import Certificate
from tvs.cli import main
from tvs.pki import LabPki
from tvs.store import (
    StoreError,
    StoreInputError,
    TrustStore,
    bulk_export,
    bulk_import,
    recognise,
)

N_CERTS = 1000
CLI = [sys.executable, "-c", "import sys; from tvs.cli import main; sys.exit(main())"]


def _many_certificates(n: int) -> list[Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    out = []
    for i in range(n):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bulk-{i:04d}.lab")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(i + 1)
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        out.append(Certificate.from_x509(cert))
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "thousand.pem"
    path.write_bytes(b"".join(c.to_pem() for c in _many_certificates(N_CERTS)))
    return path


def _pems(store: Path) -> list[Path]:
    return sorted((store / "Phone-SAST-trust").glob("*.pem"))


def _leftovers(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if p.name.endswith((".tmp", ".journal"))]


def _import_and_kill(store: Path, bundle: Path, when: str) -> int:
    """Start a 1000-certificate import in a subprocess and SIGKILL it at ``when``: ``staging``
    (the journal is being written), ``applying`` (some files are in place), or ``early``."""
    proc = subprocess.Popen(
        [
            *CLI,
            "store",
            "import",
            "--store",
            str(store),
            "--trust",
            "Phone-SAST-trust",
            str(bundle),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            names = [p.name for p in store.iterdir()] if store.is_dir() else []
            if when == "early":
                break
            if when == "staging" and any(
                n.endswith(".journal.tmp") or ".journal." in n for n in names
            ):
                break
            if when == "applying" and len(_pems(store)) >= 10:
                break
            time.sleep(0.0005)  # polling the disk for a moment to kill at, not a timed check
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize("when", ["early", "staging", "applying", "early", "staging", "applying"])
def test_kill_9_mid_import_leaves_the_store_untouched_or_complete(
    tmp_path: Path, lab_pki_dir: Path, bundle: Path, when: str
) -> None:
    store = tmp_path / "store"
    TrustStore.init_from_pki(store, lab_pki_dir / "source")
    code = _import_and_kill(store, bundle, when)
    reopened = TrustStore.open(store)
    count = len(_pems(store))
    assert count in (0, N_CERTS), f"killed ({code}) at {when}: {count} of {N_CERTS} imported"
    assert _leftovers(store) == []
    if code == -signal.SIGKILL and count == N_CERTS and when == "applying":
        assert any("interrupted import" in line for line in reopened.recovered)
    assert len(reopened.list(["Phone-SAST-trust"])) == count
    assert not reopened.problems


def test_a_whole_import_and_duplicates_written_once(tmp_path: Path, lab_pki_dir: Path) -> None:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    certs = _many_certificates(5)
    done = store.import_certificates("Phone-SAST-trust", [*certs, certs[0], certs[3], certs[0]])
    assert len(done) == 5
    assert len(_pems(store.root)) == 5
    many = store.import_many([("Phone-SAST-trust", certs[1]), ("CallManager-trust", certs[1])] * 3)
    assert sorted(e.store for e in many) == ["CallManager-trust", "Phone-SAST-trust"]
    assert _leftovers(store.root) == []


def test_stale_temporary_files_are_removed_at_the_next_open(
    tmp_path: Path, lab_pki_dir: Path
) -> None:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    stale = [
        store.root / "Phone-SAST-trust" / ".x.pem.4242.deadbeef.tmp",
        store.root / ".import-4242-abcdef.journal.4242.00aa.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half")
    reopened = TrustStore.open(store.root)
    assert not any(p.exists() for p in stale)
    assert len(reopened.recovered) == 2


def test_a_trust_folder_that_is_a_symlink_is_refused(tmp_path: Path, lab_pki_dir: Path) -> None:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder = store.root / "Phone-SAST-trust"
    folder.rmdir()
    folder.symlink_to(outside)
    with pytest.raises(StoreError, match="symbolic link is refused"):
        TrustStore.open(store.root)


def test_a_linked_certificate_is_listed_as_one(
    tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    target = lab_pki_dir / "destination" / "itlrecovery.pem"
    (store.root / "Phone-SAST-trust" / "linked.pem").symlink_to(target)
    (entry,) = TrustStore.open(store.root).list(["Phone-SAST-trust"])
    assert entry.link == str(target)
    argv = ["store", "list", "--store", str(store.root), "--trust", "Phone-SAST-trust", "--json"]
    assert main(argv) == 0
    assert [e["link"] for e in json.loads(capsys.readouterr().out)] == [str(target)]


# --- real bulk exports ----------------------------------------------------------------------


def _openssl_p12(out: Path, cert: Path, key: Path, *, name: str | None = None) -> Path:
    cmd = ["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key)]
    cmd += ["-out", str(out), "-passout", "pass:tvs-lab"]
    if name is not None:
        cmd += ["-name", name]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def _sast(store: Path) -> list[Path]:
    return sorted((store / "Phone-SAST-trust").glob("*.pem"))


def test_openssl_pkcs12_exports_import_by_content_or_kind(
    tmp_path: Path, lab_pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = TrustStore.init_from_pki(tmp_path / "src", lab_pki_dir / "source")
    d = lab_pki_dir / "destination"
    shared = tmp_path / "sftp"
    shared.mkdir()
    # ITLRecovery is told by its subject; a .pfx is read like a .p12
    _openssl_p12(shared / "export.pfx", d / "itlrecovery.pem", d / "itlrecovery.key")
    r = bulk_import(src, shared, "tvs-lab")
    assert [(e.store, e.certificate.common_name) for e in r.imported] == [
        ("Phone-SAST-trust", "ITLRECOVERY_ucm11pub"),
        ("CallManager-trust", "ITLRECOVERY_ucm11pub"),
    ]
    # a CallManager certificate looks like a TVS or tomcat one: not imported without a name...
    (shared / "export.pfx").unlink()
    node = d / "nodes" / "ucm11pub"
    _openssl_p12(shared / "node.p12", node / "callmanager.pem", node / "callmanager.key")
    store = str(src.root)
    code = main(["store", "bulk-import", "--store", store, "--dir", str(shared)])
    err = capsys.readouterr().err
    assert code != 0 and "nothing imported" in err and "give --kind" in err
    assert err.count("\n") == 1
    # ... and imported when the user says what it is
    code = main(
        ["store", "bulk-import", "--store", store, "--dir", str(shared), "--kind", "CallManager"]
    )
    assert code == 0 and "2 imported" in capsys.readouterr().out
    # CUCM-style friendly names say it too
    (shared / "node.p12").unlink()
    tvs = _openssl_p12(shared / "t.p12", node / "tvs.pem", node / "tvs.key", name="tomcat")
    assert bulk_import(src, shared, "tvs-lab").imported[0].store == "tomcat-trust"
    tvs.unlink()


def test_our_own_bundles_and_nothing_to_import(tmp_path: Path, lab_pki_dir: Path) -> None:
    src = TrustStore.init_from_pki(tmp_path / "src", lab_pki_dir / "source")
    shared = tmp_path / "sftp"
    bulk_export(src, shared)
    with pytest.raises(StoreInputError, match=r"nothing imported.*of this cluster"):
        bulk_import(src, shared)


def test_recognise_table(lab_pki: LabPki) -> None:
    d = lab_pki.clusters["destination"]
    assert recognise(d.itlrecovery.cert).kind == "ITLRecovery"  # type: ignore[union-attr]
    assert recognise(d.capf.cert).kind == "CAPF"  # type: ignore[union-attr]
    cm = d.nodes["ucm11pub"].callmanager.cert
    assert recognise(cm) is None
    assert recognise(cm, "CallManager|destination|ucm11pub").kind == "CallManager"  # type: ignore[union-attr]
    assert recognise(cm, "ucm11pub-ccm").kind == "CallManager"  # type: ignore[union-attr]
    assert recognise(cm, "", "dest_tomcat.pfx").kind == "tomcat"  # type: ignore[union-attr]
    assert recognise(cm, "", "dest.pfx") is None
    assert os.sep not in recognise(d.capf.cert).why  # type: ignore[union-attr]


def test_an_open_never_disturbs_an_import_in_progress(tmp_path: Path, lab_pki_dir: Path) -> None:
    """Recovery runs only when it can take the store's lock; a live writer holds it."""
    from tvs.store.journal import store_lock

    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    busy = store.root / "Phone-SAST-trust" / ".x.pem.1.ab.tmp"
    busy.write_bytes(b"being written")
    with store_lock(store.root):
        assert TrustStore.open(store.root).recovered == []
        assert busy.exists()
    assert TrustStore.open(store.root).recovered and not busy.exists()


def test_store_import_reads_a_pfx_from_openssl(
    tmp_path: Path, lab_pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    node = lab_pki_dir / "destination" / "nodes" / "ucm11pub"
    pfx = _openssl_p12(tmp_path / "cm.pfx", node / "callmanager.pem", node / "callmanager.key")
    argv = ["store", "import", "--store", str(store.root), "--trust", "Phone-SAST-trust"]
    assert main([*argv, "--password", "tvs-lab", str(pfx)]) == 0
    assert "ucm11pub" in capsys.readouterr().out
    assert len(_sast(store.root)) == 1
