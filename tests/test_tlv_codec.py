"""CTL/ITL/.sgn codec: round trips, element order, padding, corruption, truncation, fuzzing."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies_tlv import assemble_header, el, make_cert, make_key, tlv_like_bytes

from tvs.certs import Certificate, sign_digest
from tvs.names import cucm_name
from tvs.roles import Role
from tvs.tlv import (
    MODULUS_SIZES,
    SIGNATURE_ALGORITHM_EC,
    SIGNATURE_ALGORITHM_RSA,
    FormatError,
    HashAlgorithm,
    LengthError,
    MissingElementError,
    RecordSpec,
    SignatureError,
    SignerNotFoundError,
    TlvError,
    TruncatedError,
    UnknownAlgorithmError,
    build_trust_list,
    describe,
    encode_record,
    parse_file,
    parse_signed_file,
    parse_trust_list,
    sign_file,
    verify_file,
    verify_with_certificate,
)

DIGESTS = ["sha1", "sha256", "sha512"]
TS = 1_700_000_000


class Pki:
    def __init__(self, kind: str, bits: int = 2048) -> None:
        self.ca_key = make_key("rsa", 2048)
        self.ca = make_cert("stormin-WIN2012-CA", self.ca_key)
        self.key = make_key(kind, bits)
        self.cert = make_cert("ucm11pub.stormin.local", self.key, issuer=(self.ca, self.ca_key))
        self.tvs_key = make_key("ec")
        self.tvs = make_cert(
            "ucm11pub-EC.stormin.local", self.tvs_key, issuer=(self.ca, self.ca_key)
        )
        self.recovery_key = make_key("rsa", 1024)
        self.recovery = make_cert("ITLRECOVERY_ucm11pub", self.recovery_key)


@pytest.fixture(scope="module", params=["rsa", "ec"])
def pki(request: pytest.FixtureRequest) -> Pki:
    return Pki(request.param)


@pytest.fixture(scope="module")
def small() -> Pki:
    """RSA-1024 signer: small files for the every-offset loops."""
    return Pki("rsa", 1024)


def ctl(p: Pki, digest: str = "sha1", **kw: object) -> bytes:
    records = [(Role.SAST, p.cert), (Role.CCM_TFTP, p.cert), (Role.CAPF, p.ca)]
    return build_trust_list(
        records,
        signer=p.cert,
        key=p.key,
        digest=digest,
        timestamp=TS,
        **kw,  # type: ignore[arg-type]
    )


# --- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("digest", DIGESTS)
def test_ctl_round_trip(pki: Pki, digest: str) -> None:
    data = ctl(pki, digest)
    f = parse_trust_list(data)
    h = f.header
    assert h.version == (1, 2)
    assert h.hash_algorithm == HashAlgorithm.from_name(digest)
    assert h.hash_algorithm.hash_name == digest
    assert h.filename == "CTLFile.tlv"
    assert h.timestamp == TS
    assert h.signer.name == pki.cert.subject == cucm_name(pki.cert.x509.subject)
    assert h.signer.name.startswith("CN=ucm11pub.stormin.local;OU=IST;O=Stormin;ST=QLD;C=AU")
    assert h.signer.serial == pki.cert.serial
    assert h.signer.issuer == pki.ca.subject
    assert [r.role for r in f.records] == [0, 2, 4]
    rec = f.records[0]
    assert rec.subject == pki.cert.subject and rec.issuer == pki.ca.subject
    assert rec.serial == pki.cert.serial
    assert rec.certificate == pki.cert.der and rec.cert == pki.cert
    assert rec.cert_signature == pki.cert.x509.signature
    assert rec.dns_name == "ucm11pub.stormin.local"
    assert f.records[2].dns_name is None  # "stormin-WIN2012-CA" is not a host name
    assert f.signer_record() == rec
    assert f.records_with_role(Role.CAPF, Role.TVS) == (f.records[2],)
    assert f.payload == b"" and f.raw == data and f.kind == "tlv"
    assert len(f.signed_data) == len(data) - 3 - len(h.signature)
    assert verify_file(f) == pki.cert
    assert parse_file(data) == f


def test_rsa_and_ec_header_algorithms(pki: Pki) -> None:
    h = parse_trust_list(ctl(pki)).header
    if (
        pki.cert.x509.public_key().__class__.__name__.startswith("_RSA")
        or h.signature_algorithm == 0
    ):
        assert h.signature_algorithm == SIGNATURE_ALGORITHM_RSA
        assert MODULUS_SIZES[h.modulus_index] == len(h.signature) == 256
        assert h.signer_version is None
    else:
        assert h.signature_algorithm == SIGNATURE_ALGORITHM_EC
        assert h.signer_version == (1, 1)


def test_public_key_encoding(pki: Pki) -> None:
    f = parse_trust_list(ctl(pki))
    key = pki.cert.public_key
    rec = f.records[0]
    if f.header.signature_algorithm == SIGNATURE_ALGORITHM_RSA:
        want = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        want = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert rec.public_key[0] == 4
    assert rec.public_key == want


@pytest.mark.parametrize("digest", DIGESTS)
def test_itl_signed_by_recovery_outside_records(pki: Pki, digest: str) -> None:
    records = [
        RecordSpec(Role.TVS, pki.tvs, ip_address="127.0.0.5"),
        RecordSpec(Role.TFTP, pki.cert, dns_name="tftp.lab"),
    ]
    data = build_trust_list(
        records,
        signer=pki.recovery,
        key=pki.recovery_key,
        filename="ITLFile.tlv",
        digest=digest,
        timestamp=TS,
    )
    f = parse_file(data)
    assert f.header.filename == "ITLFile.tlv"
    assert f.records[0].ip_address == bytes([127, 0, 0, 5])
    assert f.records[1].dns_name == "tftp.lab"
    assert f.signer_record() is None
    with pytest.raises(SignerNotFoundError, match="serial"):
        verify_file(f)
    assert verify_file(f, trusted=[pki.ca, pki.recovery]) == pki.recovery
    verify_with_certificate(f, pki.recovery)
    with pytest.raises(SignatureError):
        verify_with_certificate(f, pki.cert)


def test_blank_itl(pki: Pki) -> None:
    data = build_trust_list([], signer=pki.cert, key=pki.key, filename="ITLFile.tlv", timestamp=TS)
    f = parse_file(data)
    assert f.records == () and f.kind == "tlv"
    assert len(data) == f.header.header_length
    assert verify_file(f, trusted=[pki.cert]) == pki.cert


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize("payload", [b"", b"<device><x/></device>\n", bytes(range(256)) * 40])
def test_sgn_round_trip(pki: Pki, digest: str, payload: bytes) -> None:
    name = "SEPB000B4BA0AEE.cnf.xml.sgn"
    data = sign_file(
        payload, filename=name, signer=pki.cert, key=pki.key, digest=digest, timestamp=TS
    )
    f = parse_signed_file(data)
    assert f.header.version == (1, 0)
    assert f.header.filename == name
    assert f.payload == payload and f.records == ()
    assert data.endswith(payload)
    assert f.kind == "sgn"
    assert parse_file(data) == f
    with pytest.raises(SignerNotFoundError):
        verify_file(f)
    assert verify_file(f, trusted=[pki.ca, pki.cert]) == pki.cert


def test_sgn_trusted_by_parsed_name_not_raw_string(pki: Pki) -> None:
    data = sign_file(b"x", filename="a.sgn", signer=pki.cert, key=pki.key, timestamp=TS)
    f = parse_file(data)
    # the issuer written RFC 4514 style by another tool still matches
    assert pki.ca.x509.subject.rfc4514_string() != f.header.signer.issuer
    assert verify_file(f, trusted=[pki.cert]) == pki.cert


def test_trusted_impostor_with_same_serial_and_issuer_fails(pki: Pki) -> None:
    data = ctl(pki)
    other = make_key("rsa", 1024)
    impostor = make_cert(
        "ucm11pub.stormin.local",
        other,
        issuer=(pki.ca, pki.ca_key),
        serial=pki.cert.x509.serial_number,
    )
    with pytest.raises(SignatureError, match=r"does not verify|holds a"):
        verify_file(parse_file(data), trusted=[impostor])


def test_digest_choice_changes_only_hash(small: Pki) -> None:
    a = parse_file(ctl(small, "sha1")).header
    b = parse_file(ctl(small, "sha512")).header
    assert (a.hash_algorithm, b.hash_algorithm) == (HashAlgorithm.SHA1, HashAlgorithm.SHA512)
    assert a.header_length == b.header_length


# --- layout ---------------------------------------------------------------------------------
def test_padding_makes_header_a_multiple_of_four(small: Pki) -> None:
    """Filenames of 4 successive lengths need 4 different amounts of lone-byte padding."""
    lens = set()
    for e in range(4):
        d = build_trust_list(
            [], signer=small.cert, key=small.key, filename="f" * (5 + e), timestamp=TS
        )
        head = d[: parse_file(d).header.header_length]
        assert len(head) % 4 == 0
        lens.add(len(head) - len(head.rstrip(b"\x0d")))
        verify_file(parse_file(d), trusted=[small.cert])
    assert lens == {0, 1, 2, 3}


def test_record_layout(small: Pki) -> None:
    raw = encode_record(RecordSpec(Role.TVS, small.cert, ip_address=b"\x7f\x00\x00\x01"))
    assert raw[:3] == b"\x01\x00\x02"
    assert int.from_bytes(raw[3:5], "big") == len(raw)
    tags = []
    pos = 5
    while pos < len(raw):
        tags.append(raw[pos])
        pos += 3 + int.from_bytes(raw[pos + 1 : pos + 3], "big")
    assert tags == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_writer_layout_is_byte_exact(small: Pki) -> None:
    """The whole file, rebuilt by hand from the protocol notes' layout (RSA PKCS#1 v1.5 is
    deterministic, so the signature is reproducible too)."""
    p = small
    cert = p.cert
    data = build_trust_list([(Role.SAST, cert)], signer=cert, key=p.key, timestamp=TS)
    pkcs1 = cert.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    body = b"".join(
        [
            el(2, b"ucm11pub.stormin.local\0"),
            el(3, cert.subject.encode() + b"\0"),
            el(4, b"\x00\x00"),
            el(5, p.ca.subject.encode() + b"\0"),
            el(6, cert.serial),
            el(7, pkcs1),
            el(8, cert.x509.signature),
            el(9, cert.der),
        ]
    )
    record = el(1, (len(body) + 5).to_bytes(2, "big")) + body
    signer = b"".join(
        [
            el(4, cert.subject.encode() + b"\0"),
            el(5, cert.serial),
            el(6, p.ca.subject.encode() + b"\0"),
        ]
    )
    sig_info = el(7, el(8, b"\x01") + el(9, el(10, b"\x00") + el(11, b"\x01")))
    assert len(sig_info) == 3 + 15 and sig_info[7:10] == b"\x09\x00\x08"
    tail = el(14, b"CTLFile.tlv\0") + el(15, TS.to_bytes(4, "big"))
    fixed = 5 + 5 + len(el(3, signer)) + len(sig_info) + 3 + 128 + len(tail)
    pad = b"\x0d" * (-fixed % 4)
    before = el(1, b"\x01\x02") + el(2, (fixed + len(pad)).to_bytes(2, "big")) + el(3, signer)
    before += sig_info
    signature = sign_digest(p.key, before + tail + pad + record, "sha1")
    assert data == before + el(12, signature) + tail + pad + record


def _top_elements(p: Pki, hash_code: int = 1, algo: int = 0) -> list[tuple[int, bytes]]:
    signer = (
        el(4, p.cert.subject.encode() + b"\0")
        + el(5, p.cert.serial)
        + el(6, p.cert.issuer.encode() + b"\0")
    )
    algo_info = el(10, bytes([algo])) + el(11, b"\x01")
    return [
        (1, b"\x01\x02"),
        (3, signer),
        (7, el(8, bytes([hash_code])) + el(9, algo_info)),
        (14, b"CTLFile.tlv\0"),
        (15, TS.to_bytes(4, "big")),
        (28, b"\x01\x00"),
        (99, b"future"),
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(9)), pad_at=st.integers(0, 9), data=st.data())
def test_any_element_order_parses_and_verifies(order, pad_at, data, small_pki_for_hypothesis):
    p = small_pki_for_hypothesis
    top = _top_elements(p)
    # shuffle inside the signer info container too
    inner = [
        el(4, p.cert.subject.encode() + b"\0"),
        el(5, p.cert.serial),
        el(6, p.cert.issuer.encode() + b"\0"),
    ]
    perm = data.draw(st.permutations(range(3)))
    top[1] = (3, b"".join(inner[i] for i in perm))
    body = encode_record(RecordSpec(Role.SAST, p.cert))
    raw = assemble_header(
        top,
        order=order,
        sig_len=128,
        sign=lambda b: sign_digest(p.key, b, "sha1"),
        body=body,
        padding_at=pad_at,
    )
    f = parse_trust_list(raw)
    assert f.header.signer.name == p.cert.subject
    assert f.header.signer.serial == p.cert.serial
    assert f.header.signer_version == (1, 0)
    assert f.header.filename == "CTLFile.tlv" and f.header.timestamp == TS
    assert [e.tag for e in f.header.unknown] == [99]
    assert len(f.records) == 1
    assert verify_file(f) == p.cert


@pytest.fixture(scope="module")
def small_pki_for_hypothesis(small: Pki) -> Pki:
    return small


def _signed(p: Pki, top: list[tuple[int, bytes]]) -> bytes:
    return assemble_header(
        top,
        order=list(range(len(top) + 2)),
        sig_len=128,
        sign=lambda b: sign_digest(p.key, b, "sha1"),
        body=b"",
    )


def test_unknown_hash_algorithm(small: Pki) -> None:
    with pytest.raises(UnknownAlgorithmError, match="hash algorithm code 7"):
        parse_file(_signed(small, _top_elements(small, hash_code=7)))


def test_unknown_signature_algorithm(small: Pki) -> None:
    f = parse_file(_signed(small, _top_elements(small, algo=9)))
    with pytest.raises(UnknownAlgorithmError, match="signature algorithm code 9"):
        verify_file(f, trusted=[small.cert])


@pytest.mark.parametrize("missing", [1, 3, 7, 14, 15])
def test_missing_header_element(small: Pki, missing: int) -> None:
    top = [t for t in _top_elements(small) if t[0] != missing]
    with pytest.raises(MissingElementError, match=f"tag {missing}"):
        parse_file(_signed(small, top))


def test_missing_signature(small: Pki) -> None:
    data = ctl(small)
    f = parse_file(data)
    sig_at = data.index(b"\x0c" + len(f.header.signature).to_bytes(2, "big") + f.header.signature)
    bad = bytearray(data)
    bad[sig_at] = 0x63  # the signature element becomes an unknown tag
    with pytest.raises(MissingElementError, match="signature"):
        parse_file(bytes(bad))


def test_duplicate_element(small: Pki) -> None:
    top = [*_top_elements(small), (14, b"again\0")]
    with pytest.raises(FormatError, match="tag 14 repeated"):
        parse_file(_signed(small, top))


def test_errors_say_where(small: Pki) -> None:
    data = ctl(small)
    with pytest.raises(TruncatedError, match=r"offset \d+"):
        parse_file(data[:-10])
    bad = bytearray(data)
    hl = parse_file(data).header.header_length
    bad[hl + 3 : hl + 5] = (3).to_bytes(2, "big")  # a record too short for its length element
    with pytest.raises(LengthError, match=f"offset {hl}"):
        parse_file(bytes(bad))


def test_unsupported_keys_and_digests(small: Pki) -> None:
    with pytest.raises(UnknownAlgorithmError):
        build_trust_list([], signer=small.cert, key=small.key, digest="md5")
    with pytest.raises(FormatError, match="does not belong"):
        build_trust_list([], signer=small.cert, key=small.recovery_key)
    key = make_key("rsa", 1536)
    cert = make_cert("odd.size.lab", key)
    with pytest.raises(UnknownAlgorithmError, match="RSA-1536"):
        build_trust_list([], signer=cert, key=key)


def test_describe_is_json(pki: Pki) -> None:
    d = describe(parse_file(ctl(pki)))
    again = json.loads(json.dumps(d))
    assert again["kind"] == "tlv" and again["version"] == "1.2"
    assert again["signer"]["serial"] == pki.cert.serial_hex
    assert again["signer_record"] == 0
    assert [r["role_name"] for r in again["records"]] == ["SAST", "CCM+TFTP", "CAPF"]
    assert again["records"][0]["sha256"] == pki.cert.sha256.hex()


# --- corruption, truncation, fuzz -----------------------------------------------------------
def _fails(data: bytes, trusted: list[Certificate]) -> type[TlvError]:
    try:
        f = parse_file(data)
        verify_file(f, trusted=trusted)
    except TlvError as exc:
        return type(exc)
    raise AssertionError("corrupted file verified")


@pytest.mark.parametrize("kind", ["ctl", "sgn"])
def test_flipped_byte_at_every_offset_fails(small: Pki, kind: str) -> None:
    if kind == "ctl":
        data = build_trust_list(
            [(Role.SAST, small.cert)], signer=small.cert, key=small.key, timestamp=TS
        )
        trusted: list[Certificate] = []
    else:
        data = sign_file(
            b"<cfg/>", filename="SEP1.cnf.xml.sgn", signer=small.cert, key=small.key, timestamp=TS
        )
        trusted = [small.cert]
    verify_file(parse_file(data), trusted=trusted)
    seen = set()
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            seen.add(_fails(bytes(bad), trusted))
    assert SignatureError in seen and TruncatedError in seen | {LengthError}


def test_truncation_at_every_length(small: Pki) -> None:
    data = ctl(small)
    hl = parse_file(data).header.header_length
    for n in range(len(data)):
        try:
            f = parse_file(data[:n])
        except (TruncatedError, LengthError):
            continue
        # a cut at a record boundary leaves a well-formed file that must not verify
        assert n >= hl
        with pytest.raises((SignatureError, SignerNotFoundError)):
            verify_file(f)
    sgn = sign_file(b"abcdef", filename="x.sgn", signer=small.cert, key=small.key, timestamp=TS)
    hl = parse_file(sgn).header.header_length
    for n in range(len(sgn)):
        if n < hl:
            with pytest.raises((TruncatedError, LengthError)):
                parse_file(sgn[:n])
        else:
            with pytest.raises(SignatureError):
                verify_file(parse_file(sgn[:n]), trusted=[small.cert])


@pytest.mark.parametrize("trailer", [b"\x00", b"\x01", b"\x01\x00\x02\x00\x05", b"\x0d" * 4])
def test_trailing_bytes(small: Pki, trailer: bytes) -> None:
    data = ctl(small) + trailer
    with pytest.raises(TlvError):
        verify_file(parse_file(data))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=600), tlv_like_bytes()))
def test_garbage_gives_tlv_error(data: bytes) -> None:
    for parse in (parse_file, parse_trust_list, parse_signed_file):
        try:
            f = parse(data)
        except TlvError:
            continue
        assert json.loads(json.dumps(describe(f)))  # a value that parsed describes as JSON


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_file_gives_tlv_error(data: st.DataObject, small_pki_for_hypothesis: Pki) -> None:
    p = small_pki_for_hypothesis
    good = _mutation_base(p)
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=5))
        else:
            del raw[i : i + data.draw(st.integers(1, 5))]
    if bytes(raw) == good:
        return
    try:
        f = parse_file(bytes(raw))
        describe(f)
        verify_file(f, trusted=[p.cert])
    except TlvError:
        return
    raise AssertionError("a mutated file verified")


_BASES: dict[int, bytes] = {}


def _mutation_base(p: Pki) -> bytes:
    key = id(p)
    if key not in _BASES:
        _BASES[key] = build_trust_list(
            [(Role.SAST, p.cert), (Role.TVS, p.tvs)], signer=p.cert, key=p.key, timestamp=TS
        )
    return _BASES[key]


def test_ec_signature_length_retry_is_stable() -> None:
    key = make_key("ec")
    cert = make_cert("ec.signer.lab", key)
    rng = random.Random(7)
    lengths = set()
    for _ in range(30):
        payload = rng.randbytes(rng.randrange(0, 50))
        f = parse_file(sign_file(payload, filename="e.sgn", signer=cert, key=key, timestamp=TS))
        lengths.add(len(f.header.signature))
        assert f.header.header_length % 4 == 0
        assert verify_file(f, trusted=[cert]) == cert
    assert len(lengths) >= 2  # ECDSA lengths vary; the writer still fits the header to each
