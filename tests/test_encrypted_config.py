"""Encrypted configuration files (``.enc.sgn``, protocol notes section 9): codec and ``tvs enc``.

The independent example is ``enccnf``'s (tests/vectors/encrypted-config/): our reader opens it
byte for byte; our writer's files carry every field of section 9 and only the phone's key
opens them; a flipped byte fails the signature; a wrong key fails cleanly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_tlv import make_cert, make_key

from tvs.certs import Certificate, load_private_key
from tvs.cli import main
from tvs.tlv import (
    ENC_SGN_VERSION,
    DecryptionError,
    EncryptionTag,
    FormatError,
    HashAlgorithm,
    HeaderTag,
    SignatureError,
    SignerNotFoundError,
    TlvError,
    UnknownAlgorithmError,
    decrypt_config,
    encode_encryption_info,
    encrypt_config,
    parse_file,
    read_elements,
    sign_file,
    verify_file,
)

VECTORS = Path(__file__).parent / "vectors" / "encrypted-config"
PLAIN = (VECTORS / "SEP001122334455.cnf.xml").read_bytes()
ENC = (VECTORS / "SEP001122334455.cnf.xml.enc.sgn").read_bytes()
STUB = (VECTORS / "SEP001122334455.cnf.xml.sgn").read_bytes()
PHONE_PEM = VECTORS / "SEP001122334455-lsc.pem"
SIGNER_PEM = VECTORS / "tftp-signer.pem"
KEY = load_private_key(PHONE_PEM)


@pytest.fixture(scope="module")
def phone() -> tuple[Certificate, object]:
    return Certificate.load(PHONE_PEM), load_private_key(PHONE_PEM)


@pytest.fixture(scope="module")
def signer() -> tuple[Certificate, object]:
    return Certificate.load(SIGNER_PEM), load_private_key(SIGNER_PEM)


# --- the independent example ----------------------------------------------------------------
def test_enccnf_example_decrypts_to_the_plaintext_byte_for_byte(phone, signer) -> None:
    f = parse_file(ENC)
    assert f.encrypted and f.header.version == ENC_SGN_VERSION
    assert verify_file(f, trusted=[signer[0]]) == signer[0]
    assert decrypt_config(f, phone[1]) == PLAIN


def test_enccnf_example_fields(phone) -> None:
    info = parse_file(ENC).header.encryption
    assert info is not None
    assert (info.iv_type, info.key_type, info.key_format, info.key_bits) == (0, 0, 1, 2048)
    assert info.pad_count == 16 - len(PLAIN) % 16 == 15
    assert info.hash_algorithm is HashAlgorithm.SHA512
    assert info.plaintext_hash == hashlib.sha512(PLAIN).digest()
    assert len(info.iv) == 16 and len(info.wrapped_key) == 256 and info.unknown == ()


def test_our_encoding_of_the_example_fields_is_enccnfs() -> None:
    """Tags 16, 26, 27 re-encoded from the parsed value are the example's bytes exactly."""
    f = parse_file(ENC)
    assert f.header.encryption is not None
    start = ENC.index(bytes([EncryptionTag.ENCRYPTION_INFO, 0x01, 0x32]))
    encoded = encode_encryption_info(f.header.encryption)
    assert ENC[start : start + len(encoded)] == encoded


@pytest.mark.parametrize("how", ["whole", "trailing"])
def test_example_parses_whole_and_ignores_nothing(how: str) -> None:
    data = ENC if how == "whole" else ENC + b"\x00" * 3  # trailing bytes are ciphertext
    f = parse_file(data)
    assert f.header.encryption is not None
    if how == "trailing":
        with pytest.raises(FormatError):  # no longer a multiple of 16
            decrypt_config(f, load_private_key(PHONE_PEM))


def test_example_cut_short_is_a_tlv_error() -> None:
    for n in range(0, 788, 7):
        with pytest.raises(TlvError):
            parse_file(ENC[:n])


def test_stub_is_an_ordinary_sgn_with_the_certificate_md5(phone) -> None:
    stub = parse_file(STUB)
    assert not stub.encrypted and stub.header.version == (1, 0)
    text = stub.payload.decode()
    assert f"<certHash>{hashlib.md5(phone[0].der).hexdigest()}</certHash>" in text
    assert "<encrConfig>true</encrConfig>" in text and "<fullConfig>false</fullConfig>" in text


# --- our writer -----------------------------------------------------------------------------
@pytest.mark.parametrize("digest", ["sha1", "sha512"])
def test_our_build_has_every_field_of_section_9(phone, signer, digest: str) -> None:
    data = encrypt_config(
        PLAIN,
        phone_cert=phone[0],
        filename="SEP001122334455.cnf.xml.enc.sgn",
        signer=signer[0],
        key=signer[1],
        digest=digest,
        timestamp=1_700_000_000,
    )
    f = parse_file(data)
    h = f.header
    assert h.version == (2, 0) and h.signer_version is None  # no tag 28 unless asked
    assert h.filename == "SEP001122334455.cnf.xml.enc.sgn" and h.timestamp == 1_700_000_000
    assert h.hash_algorithm.hash_name == digest
    info = h.encryption
    assert info is not None
    assert (info.iv_type, info.key_type, info.key_format, info.key_bits) == (0, 0, 1, 2048)
    assert len(info.iv) == 16 and len(info.wrapped_key) == 256
    assert info.pad_count == 15 and len(f.payload) == len(PLAIN) + 15
    assert info.plaintext_hash == hashlib.new(digest, PLAIN).digest()
    assert h.header_length % 4 == 0 and data[h.header_length :] == f.payload
    # every tag of section 9, at the top level and inside the containers
    top = {el.tag for el in read_elements(data, 0, h.header_length)}
    assert {16, 26, 27, 1, 2, 3, 7, 12, 14, 15}.issubset(top) and 28 not in top
    enc = next(el for el in read_elements(data, 0, h.header_length) if el.tag == 16)
    inner = read_elements(data, enc.offset + 3, enc.end)
    assert [el.tag for el in inner] == [17, 21]
    assert [el.tag for el in read_elements(data, inner[0].offset + 3, inner[0].end)] == [18, 19, 20]
    assert [el.tag for el in read_elements(data, inner[1].offset + 3, inner[1].end)] == [
        22,
        23,
        24,
        25,
    ]
    verify_file(f, trusted=[signer[0]])
    assert decrypt_config(f, phone[1]) == PLAIN


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096])
def test_round_trip_every_padding(phone, signer, size: int) -> None:
    plain = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    data = encrypt_config(
        plain, phone_cert=phone[0], filename="a.enc.sgn", signer=signer[0], key=signer[1]
    )
    info = parse_file(data).header.encryption
    assert info is not None and 1 <= info.pad_count <= 16 and (size + info.pad_count) % 16 == 0
    assert decrypt_config(parse_file(data), phone[1]) == plain


def test_signer_version_only_when_asked(phone, signer) -> None:
    data = encrypt_config(
        PLAIN,
        phone_cert=phone[0],
        filename="a.enc.sgn",
        signer=signer[0],
        key=signer[1],
        signer_version=(1, 0),
    )
    assert parse_file(data).header.signer_version == (1, 0)


def test_every_flipped_byte_fails_the_signature(phone, signer) -> None:
    data = encrypt_config(
        PLAIN, phone_cert=phone[0], filename="a.enc.sgn", signer=signer[0], key=signer[1]
    )
    f = parse_file(data)
    sig = next(el for el in read_elements(data, 0, f.header.header_length) if el.tag == 12)
    for pos in range(0, len(data), 13):
        if sig.offset <= pos < sig.end:
            continue
        bad = bytearray(data)
        bad[pos] ^= 0x01
        try:
            g = parse_file(bytes(bad))
        except TlvError:
            continue  # a flipped length or code: refused before any signature check
        with pytest.raises((SignatureError, SignerNotFoundError)):  # a flip in serial/issuer
            verify_file(g, trusted=[signer[0]])


def test_flipped_ciphertext_byte_also_fails_decryption(phone, signer) -> None:
    data = bytearray(
        encrypt_config(
            PLAIN, phone_cert=phone[0], filename="a.enc.sgn", signer=signer[0], key=signer[1]
        )
    )
    data[-20] ^= 0x80
    with pytest.raises(DecryptionError):
        decrypt_config(parse_file(bytes(data)), phone[1])


@pytest.mark.parametrize("bits", [2048, 1024])
def test_wrong_phone_key_fails_cleanly(phone, bits: int) -> None:
    with pytest.raises(DecryptionError, match="key"):
        decrypt_config(parse_file(ENC), make_key("rsa", bits))


def test_ec_phone_is_a_lab_limitation(signer) -> None:
    key = make_key("ec")
    cert = make_cert("SEP0011223344CC", key)
    with pytest.raises(UnknownAlgorithmError, match="lab limitation"):
        encrypt_config(PLAIN, phone_cert=cert, filename="a", signer=signer[0], key=signer[1])
    with pytest.raises(UnknownAlgorithmError, match="lab limitation"):
        decrypt_config(parse_file(ENC), key)


def test_plain_sgn_is_not_encrypted(signer, phone) -> None:
    data = sign_file(PLAIN, filename="a.sgn", signer=signer[0], key=signer[1])
    with pytest.raises(FormatError, match="not an encrypted file"):
        decrypt_config(parse_file(data), phone[1])


def test_partial_encryption_header_is_missing_element(signer) -> None:
    """Tag 26 without 16 and 27: a MissingElementError naming the absent element."""
    from tvs.tlv import MissingElementError
    from tvs.tlv.build import _signed_container

    data = _signed_container(
        version=(2, 0),
        body=b"",
        filename="a",
        signer=signer[0],
        key=signer[1],
        digest="sha1",
        timestamp=0,
        signer_version=None,
        extra=bytes([26, 0, 1, 1]),
    )
    with pytest.raises(MissingElementError, match="encryption info"):
        parse_file(data)
    assert HeaderTag.TIMESTAMP < EncryptionTag.ENCRYPTION_INFO


# --- tvs enc --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("enc")
    other = make_key("rsa", 2048)
    ec_key = make_key("ec")
    out = {"other": d / "other.key", "ec_cert": d / "ec.pem"}
    out["other"].write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out["ec_cert"].write_bytes(make_cert("SEP0011223344CC", ec_key).to_pem())
    return out


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main([str(a) for a in argv])
    cap = capsysbinary.readouterr()
    return code, cap.out, cap.err.decode()


def test_cli_decrypt_example_to_stdout(capsysbinary) -> None:
    code, out, err = run(
        capsysbinary,
        "enc",
        "decrypt",
        "--key",
        PHONE_PEM,
        "--trust",
        SIGNER_PEM,
        VECTORS / "SEP001122334455.cnf.xml.enc.sgn",
    )
    assert code == 0 and out == PLAIN and err == ""


def test_cli_build_show_decrypt(capsysbinary, tmp_path: Path) -> None:
    out_file = tmp_path / "SEP001122334455.cnf.xml.enc.sgn"
    code, out, _ = run(
        capsysbinary,
        "enc",
        "build",
        "--signer",
        SIGNER_PEM,
        "--key",
        SIGNER_PEM,
        "--phone-cert",
        PHONE_PEM,
        "--out",
        out_file,
        "--json",
        VECTORS / "SEP001122334455.cnf.xml",
    )
    assert code == 0 and json.loads(out)["digest"] == "sha1"
    code, out, _ = run(capsysbinary, "enc", "show", "--json", out_file)
    shown = json.loads(out)
    assert code == 0 and shown["version"] == "2.0" and shown["signer_version"] is None
    assert shown["encryption"]["pad_count"] == 15 and shown["encryption"]["key_bits"] == 2048
    assert shown["encryption"]["plaintext_hash"] == hashlib.sha1(PLAIN).hexdigest()
    plain_out = tmp_path / "plain.xml"
    code, out, err = run(
        capsysbinary, "enc", "decrypt", "--key", PHONE_PEM, "--out", plain_out, out_file
    )
    assert code == 0 and plain_out.read_bytes() == PLAIN
    assert "signature not checked" in err
    code, out, _ = run(capsysbinary, "enc", "show", VECTORS / "SEP001122334455.cnf.xml.enc.sgn")
    assert code == 0 and b"AES-128-CBC" in out and b"15 bytes of 0x0D" in out


def test_cli_refusals_exit_1(capsysbinary, tmp_path: Path, keys) -> None:
    enc = VECTORS / "SEP001122334455.cnf.xml.enc.sgn"
    code, out, err = run(capsysbinary, "enc", "decrypt", "--key", keys["other"], enc)
    assert code == 1 and out == b"" and "DecryptionError" in err and len(err.splitlines()) == 1
    bad = tmp_path / "bad.enc.sgn"
    data = bytearray(ENC)
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    code, out, err = run(
        capsysbinary, "enc", "decrypt", "--json", "--key", PHONE_PEM, "--trust", SIGNER_PEM, bad
    )
    assert code == 1 and json.loads(out)["signature"] == "invalid" and "SignatureError" in err


def test_cli_unreadable_exit_2(capsysbinary, tmp_path: Path, keys) -> None:
    code, _, err = run(capsysbinary, "enc", "show", VECTORS / "SEP001122334455.cnf.xml.sgn")
    assert code == 2 and "not an encrypted file" in err
    code, _, err = run(capsysbinary, "enc", "decrypt", "--key", tmp_path / "nope", STUB)
    assert code == 2 and "nope" in err and len(err.splitlines()) == 1
    (tmp_path / "short").write_bytes(ENC[:100])
    code, _, err = run(capsysbinary, "enc", "show", tmp_path / "short")
    assert code == 2 and "short" in err
    code, _, err = run(
        capsysbinary,
        "enc",
        "build",
        "--signer",
        SIGNER_PEM,
        "--key",
        SIGNER_PEM,
        "--phone-cert",
        keys["ec_cert"],
        "--out",
        tmp_path / "x",
        VECTORS / "SEP001122334455.cnf.xml",
    )
    assert code == 2 and "lab limitation" in err


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_is_a_value_or_a_tlv_error(data: st.DataObject) -> None:
    """The fuzz invariant for the encrypted layout: flips, cuts and trailing bytes of the
    enccnf example parse to a value or raise TlvError; opening raises only TlvError."""
    raw = bytearray(ENC)
    for _ in range(data.draw(st.integers(0, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    blob = bytes(raw[:cut]) + data.draw(st.binary(max_size=8))
    try:
        f = parse_file(blob)
    except TlvError:
        return
    assert f.raw == blob
    if f.encrypted:
        try:
            plain = decrypt_config(f, KEY)
        except TlvError:
            return
        assert plain == PLAIN  # only an undamaged ciphertext and header open at all
