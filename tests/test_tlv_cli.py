"""``tvs tlv`` / ``tvs sgn`` commands, called through ``tvs.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from strategies_tlv import make_cert, make_key

from tvs.cli import main
from tvs.tlv import parse_file


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = make_key("rsa", 2048)
    ca = make_cert("stormin-WIN2012-CA", ca_key)
    key = make_key("rsa", 1024)
    cert = make_cert("ucm11pub.stormin.local", key, issuer=(ca, ca_key))
    ec_key = make_key("ec")
    ec_cert = make_cert("tvs.stormin.local", ec_key, issuer=(ca, ca_key))
    out = {
        "ca": d / "ca.pem",
        "cert": d / "callmanager.pem",
        "key": d / "callmanager.key",
        "ec": d / "tvs.pem",
        "ec_key": d / "tvs.key",
        "bundle": d / "bundle.pem",
    }
    out["ca"].write_bytes(ca.to_pem())
    out["cert"].write_bytes(cert.to_pem())
    out["ec"].write_bytes(ec_cert.to_pem())
    out["bundle"].write_bytes(ca.to_pem() + cert.to_pem())
    for name, k in (("key", key), ("ec_key", ec_key)):
        out[name].write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def build_ctl(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "tlv",
        "build",
        "--out",
        str(out),
        "--signer",
        str(files["cert"]),
        "--key",
        str(files["key"]),
        "--record",
        f"SAST={files['cert']}",
        "--record",
        f"ccm+tftp={files['cert']}",
        "--record",
        f"21={files['ec']}",
        "--timestamp",
        "1700000000",
        *extra,
    ]


def test_build_verify_flip_garbage(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctl = tmp_path / "CTLFile.tlv"
    code, out = run(capsys, *build_ctl(files, ctl, "--json"))
    assert code == 0
    built = json.loads(out)
    assert built["ok"] is True and built["signer_in_records"] is True
    assert [r["role_name"] for r in built["records"]] == ["SAST", "CCM+TFTP", "TVS"]

    code, out = run(capsys, "tlv", "verify", str(ctl), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["valid"] is True and result["verified_by"]["source"] == "record"
    assert result["verified_by"]["subject"].startswith("CN=ucm11pub.stormin.local;OU=IST")

    data = ctl.read_bytes()
    sig = parse_file(data).header.signature
    bad = bytearray(data)
    bad[data.index(sig) + 10] ^= 0x01
    flipped = tmp_path / "flipped.tlv"
    flipped.write_bytes(bytes(bad))
    code, out = run(capsys, "tlv", "verify", str(flipped), "--json")
    assert code == 1
    result = json.loads(out)
    assert result["valid"] is False and result["error_type"] == "SignatureError"

    garbage = tmp_path / "garbage.tlv"
    garbage.write_bytes(b"this is not a trust list")
    code, out = run(capsys, "tlv", "verify", str(garbage), "--json")
    assert code == 2
    assert json.loads(out)["ok"] is False
    assert run(capsys, "tlv", "verify", str(tmp_path / "missing.tlv"))[0] == 2


def test_any_changed_byte_fails_verify(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's done-when check, through the CLI. Every offset is covered by the codec test
    ``test_flipped_byte_at_every_offset_fails``; here every 5th (argparse costs ~20 ms a call)."""
    ctl = tmp_path / "CTLFile.tlv"
    argv = ["tlv", "build", "--out", str(ctl), "--signer", str(files["cert"])]
    argv += ["--key", str(files["key"]), "--record", f"SAST={files['cert']}"]
    assert run(capsys, *argv)[0] == 0
    data = ctl.read_bytes()
    assert main(["tlv", "verify", str(ctl)]) == 0
    target = tmp_path / "changed.tlv"
    codes = set()
    for i in [*range(0, len(data), 5), len(data) - 1]:
        bad = bytearray(data)
        bad[i] = (bad[i] + 1) % 256
        target.write_bytes(bytes(bad))
        code = main(["tlv", "verify", str(target)])
        assert code in (1, 2), i
        codes.add(code)
    capsys.readouterr()
    assert codes == {1, 2}


def test_show(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctl = tmp_path / "ITLFile.tlv"
    assert run(capsys, *build_ctl(files, ctl, "--digest", "sha512"))[0] == 0
    code, out = run(capsys, "tlv", "show", str(ctl))
    assert code == 0
    assert "sha512" in out and "ITLFile.tlv" in out and "(signer)" in out
    assert "CCM+TFTP (role 2)" in out and "TVS (role 21)" in out
    code, out = run(capsys, "tlv", "show", str(ctl), "--json")
    d = json.loads(out)
    assert d["kind"] == "tlv" and d["hash_algorithm"] == "sha512"
    assert d["filename"] == "ITLFile.tlv" and d["timestamp"] == 1700000000
    assert d["records"][0]["dns_name"] == "ucm11pub.stormin.local"
    assert run(capsys, "tlv", "show", str(tmp_path / "nope"))[0] == 2


def test_verify_with_trust_when_signer_not_in_records(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    itl = tmp_path / "ITLFile.tlv"
    argv = ["tlv", "build", "--out", str(itl), "--signer", str(files["ec"])]
    argv += ["--key", str(files["ec_key"]), "--record", f"TFTP={files['cert']}", "--json"]
    code, out = run(capsys, *argv)
    assert code == 0 and json.loads(out)["signer_in_records"] is False
    code, out = run(capsys, "tlv", "verify", str(itl), "--json")
    assert code == 1 and json.loads(out)["error_type"] == "SignerNotFoundError"
    code, out = run(capsys, "tlv", "verify", str(itl), "--trust", str(files["ec"]), "--json")
    assert code == 0
    assert json.loads(out)["verified_by"]["source"] == "trusted"
    d = json.loads(run(capsys, "tlv", "show", str(itl), "--json")[1])
    assert d["signer_version"] == "1.1" and d["signature_algorithm_name"] == "EC"


def test_blank_itl(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    itl = tmp_path / "ITLFile.tlv"
    argv = ["tlv", "build", "--out", str(itl), "--signer", str(files["cert"])]
    assert run(capsys, *argv, "--key", str(files["key"]))[0] == 0
    assert parse_file(itl.read_bytes()).records == ()
    assert run(capsys, "tlv", "verify", str(itl), "--trust", str(files["bundle"]))[0] == 0


def test_sgn_sign_show_verify(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "SEPB000B4BA0AEE.cnf.xml"
    cfg.write_bytes(b"<device><deviceSecurityMode>2</deviceSecurityMode></device>\n")
    sgn = tmp_path / "SEPB000B4BA0AEE.cnf.xml.sgn"
    argv = ["sgn", "sign", "--signer", str(files["cert"]), "--key", str(files["key"])]
    code, out = run(capsys, *argv, "--out", str(sgn), "--digest", "sha512", str(cfg), "--json")
    assert code == 0
    assert json.loads(out)["filename"] == "SEPB000B4BA0AEE.cnf.xml.sgn"

    code, out = run(capsys, "sgn", "show", str(sgn), "--json")
    d = json.loads(out)
    assert code == 0 and d["kind"] == "sgn" and d["version"] == "1.0"
    assert d["payload_length"] == len(cfg.read_bytes())
    extracted = tmp_path / "payload.xml"
    assert run(capsys, "sgn", "show", str(sgn), "--payload-out", str(extracted))[0] == 0
    assert extracted.read_bytes() == cfg.read_bytes()

    assert run(capsys, "sgn", "verify", str(sgn))[0] == 1  # no records: signer unknown
    trust = ["--trust", str(files["ca"]), str(files["cert"])]
    code, out = run(capsys, "sgn", "verify", str(sgn), *trust, "--json")
    assert code == 0 and json.loads(out)["valid"] is True

    bad = bytearray(sgn.read_bytes())
    bad[-3] ^= 0x20
    sgn.write_bytes(bytes(bad))
    assert run(capsys, "sgn", "verify", str(sgn), *trust)[0] == 1


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["--record", "PHONE=x.pem"],
        ["--record", "SAST"],
        ["--digest", "sha1", "--signer-version", "one"],
    ],
)
def test_build_bad_arguments(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv_tail: list[str],
) -> None:
    argv = ["tlv", "build", "--out", str(tmp_path / "x.tlv"), "--signer", str(files["cert"])]
    code = main([*argv, "--key", str(files["key"]), *argv_tail])
    err = capsys.readouterr().err
    assert code == 2 and "tvs tlv build:" in err
    assert not (tmp_path / "x.tlv").exists()


def test_build_key_mismatch(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tlv", "build", "--out", str(tmp_path / "x.tlv"), "--signer", str(files["cert"])]
    assert main([*argv, "--key", str(files["ec_key"])]) == 2
    assert "does not belong" in capsys.readouterr().err


def test_build_error_as_json(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.tlv"
    argv = ["tlv", "build", "--out", str(out), "--signer", str(files["cert"]), "--json"]
    code, text = run(capsys, *argv, "--key", str(files["ec_key"]))
    result = json.loads(text)
    assert code == 2 and result["ok"] is False
    assert result["error_type"] == "FormatError" and result["file"] == str(out)


# --- issue 12 item 1: --trust and --trust-list limit trust --------------------------------------


def _forged_ctl(files: dict[str, Path], tmp_path: Path, *, copy_issuer_serial: bool) -> Path:
    """A CTL signed with a fresh key in a certificate whose subject copies the real
    CallManager's (self-signed; or also copying the real issuer name and serial number)."""
    from cryptography import x509

    from tvs.certs import Certificate

    real = Certificate.load(files["cert"])
    key = make_key("rsa", 1024)
    subject = real.x509.subject
    issuer = real.x509.issuer if copy_issuer_serial else subject
    now = real.x509.not_valid_before_utc
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(real.x509.serial_number if copy_issuer_serial else 4242)
        .not_valid_before(now)
        .not_valid_after(real.x509.not_valid_after_utc)
    )
    from cryptography.hazmat.primitives import hashes

    forged = Certificate.from_der(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )
    cert_path, key_path = tmp_path / "forged.pem", tmp_path / "forged.key"
    cert_path.write_bytes(forged.to_pem())
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctl = tmp_path / "CTLFile.tlv"
    argv = ["tlv", "build", "--out", str(ctl), "--signer", str(cert_path), "--key", str(key_path)]
    assert main([*argv, "--record", f"SAST={cert_path}", "--record", f"CCM={cert_path}"]) == 0
    return ctl


@pytest.mark.parametrize("copy_issuer_serial", [False, True])
def test_forged_ctl_with_trust_is_invalid(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    copy_issuer_serial: bool,
) -> None:
    ctl = _forged_ctl(files, tmp_path, copy_issuer_serial=copy_issuer_serial)
    capsys.readouterr()
    code, out = run(capsys, "tlv", "verify", str(ctl))
    assert code == 0 and "only self-consistency was checked" in out
    code, out = run(capsys, "tlv", "verify", str(ctl), "--trust", str(files["cert"]))
    assert code == 1
    assert "INVALID" in out and "self-consistent" in out
    code, out = run(capsys, "tlv", "verify", str(ctl), "--trust", str(files["cert"]), "--json")
    d = json.loads(out)
    assert code == 1 and d["valid"] is False and d["self_consistent"] is True
    assert d["trust"] == "certificates" and d["verified_by"] is None


def test_verify_against_trust_list(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--trust-list applies the phone's signing-role table: SAST signs a CTL, TFTP/CCM+TFTP a
    configuration file; a signer held only with another role is refused."""
    held = tmp_path / "held" / "CTLFile.tlv"
    held.parent.mkdir()
    assert run(capsys, *build_ctl(files, held))[0] == 0  # SAST + CCM+TFTP = cert, TVS = ec
    new_ctl = tmp_path / "CTLFile.tlv"
    assert run(capsys, *build_ctl(files, new_ctl))[0] == 0
    code, out = run(capsys, "tlv", "verify", str(new_ctl), "--trust-list", str(held), "--json")
    d = json.loads(out)
    assert code == 0 and d["verified_by"]["source"] == "trust-list"
    assert d["role_name"] == "SAST" and d["file_kind"] == "ctl"

    # the TVS certificate is in the held list, but TVS may not sign a CTL
    by_tvs = tmp_path / "by-tvs" / "CTLFile.tlv"
    by_tvs.parent.mkdir()
    argv = ["tlv", "build", "--out", str(by_tvs), "--signer", str(files["ec"])]
    assert (
        run(capsys, *argv, "--key", str(files["ec_key"]), "--record", f"SAST={files['ec']}")[0] == 0
    )
    code, out = run(capsys, "tlv", "verify", str(by_tvs), "--trust-list", str(held))
    assert code == 1 and "may not sign a ctl file" in out and "self-consistent" in out

    # a configuration file signed by the CCM+TFTP holder verifies; by the TVS one it does not
    cfg = tmp_path / "SEP001122334455.cnf.xml"
    cfg.write_bytes(b"<device/>\n")
    for signer, key, want in (("cert", "key", 0), ("ec", "ec_key", 1)):
        sgn = tmp_path / f"{signer}.cnf.xml.sgn"
        argv = ["sgn", "sign", "--signer", str(files[signer]), "--key", str(files[key])]
        assert run(capsys, *argv, "--out", str(sgn), str(cfg))[0] == 0
        assert run(capsys, "sgn", "verify", str(sgn), "--trust-list", str(held))[0] == want

    # a trust list that is not one, or missing, is an input error
    assert run(capsys, "tlv", "verify", str(new_ctl), "--trust-list", str(cfg))[0] == 2
    assert run(capsys, "tlv", "verify", str(new_ctl), "--trust-list", str(tmp_path / "no"))[0] == 2
