"""CAPF codec: the capfd/capfc transcripts byte for byte, signatures, every fault, properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from hypothesis import given
from hypothesis import strategies as st

from tvs import capf
from tvs.capf import (
    CLOSED,
    NEED_DATA,
    CertificateBlob,
    Command,
    Decoder,
    Element,
    Message,
    Sha2Signature,
    SudiData,
    Tag,
    decode_message,
    signing,
)
from tvs.capf.transcript import parse_transcript

VECTORS = Path(__file__).parent / "vectors" / "capf"
TRANSCRIPTS = sorted(p.name for p in VECTORS.glob("*.hex"))


def transcript(name: str) -> list[capf.transcript.Exchange]:
    return parse_transcript((VECTORS / name).read_text())


def load_pem(name: str) -> tuple[x509.Certificate, object]:
    data = (VECTORS / name).read_bytes()
    return x509.load_pem_x509_certificate(data), load_pem_private_key(data, None)


def test_every_transcript_is_here() -> None:
    assert TRANSCRIPTS == [
        "certauth.hex",
        "delete.hex",
        "ec256_pw.hex",
        "ec384.hex",
        "ec_certauth.hex",
        "fetch.hex",
        "none.hex",
    ]


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_messages_round_trip(name: str) -> None:
    exchanges = transcript(name)
    assert exchanges[0].direction == "S>C"
    assert exchanges[0].message.command == Command.AUTH_REQUEST
    assert exchanges[-1].message.command == Command.END_SESSION
    for ex in exchanges:
        assert ex.message.encode() == ex.raw
        assert decode_message(ex.raw) == ex.message
        assert all(el.tag in set(Tag) for el in ex.message.elements)


@pytest.mark.parametrize("name", TRANSCRIPTS)
@pytest.mark.parametrize("mode", ["whole", "bytewise", "trailing"])
def test_transcript_fed_whole_bytewise_and_with_trailing(name: str, mode: str) -> None:
    server = [ex for ex in transcript(name) if ex.direction == "S>C"]
    stream = b"".join(ex.raw for ex in server)
    decoder = Decoder()
    got: list[Message] = []
    chunks = [stream] if mode != "bytewise" else [stream[i : i + 1] for i in range(len(stream))]
    if mode == "trailing":
        chunks = [stream + b"\x55\x0f"]
    for chunk in chunks:
        decoder.receive_data(chunk)
        while isinstance(msg := decoder.next_message(), Message):
            got.append(msg)
        assert msg is NEED_DATA
    assert got == [ex.message for ex in server]
    decoder.receive_data(b"")
    if mode == "trailing":
        with pytest.raises(capf.TruncatedMessage):
            decoder.next_message()
    else:
        assert decoder.next_message() is CLOSED


def test_sequences_match_section_8() -> None:
    names = {n: [(ex.direction, ex.message.name) for ex in transcript(n)] for n in TRANSCRIPTS}
    assert [m for _d, m in names["none.hex"]] == ["AUTH_REQUEST", "AUTH_RESPONSE", "END_SESSION"]
    assert transcript("none.hex")[-1].message.reason == capf.Reason.NO_ACTION
    fetch = transcript("fetch.hex")
    assert fetch[3].message.certificate is not None
    assert fetch[-1].message.reason == 0
    delete = transcript("delete.hex")
    assert delete[3].message.reason == capf.Reason.FAILURE
    pw = transcript("ec256_pw.hex")
    assert pw[1].message.password == "4321"
    assert pw[1].message.device_name == "SEP0011223344CC"
    assert (pw[2].message.key_type, pw[2].message.curve) == (capf.KeyType.EC, capf.Curve.P256)
    ec384 = transcript("ec384.hex")
    assert ec384[2].message.key_size is None and ec384[2].message.curve == capf.Curve.P384
    assert ec384[1].message.password == ""
    assert ec384[3].message.command == Command.REQUEST_IN_PROGRESS
    key = x509.load_der_x509_certificate(ec384[5].message.certificate.der).public_key()  # type: ignore[union-attr]
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"


@pytest.mark.parametrize(
    ("name", "lsc", "sudi"),
    [
        ("certauth.hex", "SEP001122334455-lsc.pem", "SEP001122334455-lsc.pem"),
        ("ec_certauth.hex", "SEP0011223344CC-ec-lsc.pem", "sudi-for-ec-certauth.pem"),
    ],
)
def test_certificate_auth_signatures_verify(name: str, lsc: str, sudi: str) -> None:
    auth = transcript(name)[1].message
    cert, _key = load_pem(lsc)
    sudi_cert, _ = load_pem(sudi)
    blob = auth.certificate
    assert blob is not None and blob.der == cert.public_bytes(Encoding.DER)
    assert auth.sha2_signed_data is not None and auth.sha2_signed_data.hash_id == capf.HashId.SHA512
    assert auth.device_name is not None
    signing.verify_auth(
        cert.public_key(), auth.device_name, blob.der, auth.signed_data, auth.sha2_signed_data
    )
    assert auth.sudi_data is not None
    assert auth.sudi_data.certificate == sudi_cert.public_bytes(Encoding.DER)
    signing.verify_sudi(sudi_cert.public_key(), auth.session_id, auth.sudi_data)
    # the session id is little-endian: another id (or big-endian) fails
    with pytest.raises(capf.CapfSignatureError):
        signing.verify_sudi(sudi_cert.public_key(), auth.session_id + 1, auth.sudi_data)
    with pytest.raises(capf.CapfSignatureError):
        signing.verify_auth(cert.public_key(), "SEP000000000000", blob.der, auth.signed_data, None)


def test_issued_certificates_are_signed_by_the_capf_issuer() -> None:
    issuer, _ = load_pem("capf-issuer.pem")
    for name in ("certauth.hex", "ec256_pw.hex", "ec384.hex", "ec_certauth.hex"):
        store = next(ex.message for ex in transcript(name) if ex.message.command == 9)
        assert store.certificate_type == capf.CertType.LSC
        assert store.certificate is not None
        cert = x509.load_der_x509_certificate(store.certificate.der)
        cert.verify_directly_issued_by(issuer)


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["rsa", "ec"],
)
def test_sign_verify_round_trip(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    signed, sha2 = signing.sign_auth(key, "SEP001122334455", b"der")
    signing.verify_auth(key.public_key(), "SEP001122334455", b"der", signed, sha2)
    sudi = signing.make_sudi(key, 7, b"mic")
    signing.verify_sudi(key.public_key(), 7, sudi)
    with pytest.raises(capf.CapfSignatureError):
        signing.verify_auth(key.public_key(), "SEP001122334455", b"other", signed, None)
    with pytest.raises(capf.CapfSignatureError):
        signing.verify_auth(key.public_key(), "SEP001122334455", b"der", None, None)


def test_build_orders_elements_as_given_and_skips_none() -> None:
    msg = Message.build(
        Command.AUTH_RESPONSE,
        4,
        reason=1,
        version=3,
        password="",
        device_name="SEP001122334466",
        certificate=None,
    )
    assert msg.encode() == bytes.fromhex(
        "550200000004001f01000101070001030b0001000d001053455030303131323233333434363600"
    )
    with pytest.raises(capf.CapfEncodeError):
        Message.build(1, 1, colour=3)
    with pytest.raises(capf.CapfEncodeError):
        Message.build(1, 1, reason=256)
    with pytest.raises(capf.CapfEncodeError):
        Message.build(1, 1, device_name="SEP\x00")


def test_unknown_commands_and_tags_are_kept() -> None:
    raw = bytes.fromhex("55630000000900080500020102630000")
    msg = decode_message(raw)
    assert msg.name == "COMMAND_99"
    assert msg.elements == (Element(5, b"\x01\x02"), Element(0x63, b""))
    assert msg.field(5) == b"\x01\x02"
    assert msg.encode() == raw


@pytest.mark.parametrize(
    ("hexdata", "error"),
    [
        ("5601000000010000", capf.BadMagic),
        ("550100000001", capf.TruncatedMessage),
        ("5501000000010004010002", capf.TruncatedMessage),
        ("5501000000010004010002aa", capf.ElementOverrun),
        ("55010000000100020100", capf.ElementOverrun),
        ("5501000000010005010002aaaa", capf.ElementSizeError),
        ("55010000000100040d000141", capf.TrailingData),
        ("550100000001000404000101", capf.BadCertificateElement),
        ("55010000000100080400050200030001", capf.BadCertificateElement),
        ("55010000000100080400050100050001", capf.BadCertificateElement),
        ("55010000000100050d0002ff00", capf.BadString),
        ("55010000000100050d00024100", None),
        ("55010000000100060d0003410041", capf.BadString),
        ("5501000000010005140002aabb", capf.BadSubElement),
        ("5501000000010006140003030005", capf.BadSubElement),
        ("5501000000010006100003000000", capf.BadSubElement),
        ("550100000001000410000100", capf.BadSubElement),
        ("5501000000010009100006010000000000", capf.BadSubElement),
    ],
)
def test_every_fault_has_its_error(hexdata: str, error: type[Exception] | None) -> None:
    data = bytes.fromhex(hexdata)
    if error is capf.TrailingData:
        data += b"\x00"
    if error is None:
        assert decode_message(data).device_name == "A"
        return
    with pytest.raises(error) as info:
        decode_message(data)
    assert info.value.reason == error.reason
    assert isinstance(info.value, capf.CapfDecodeError)


def test_size_limit_fails_on_the_header() -> None:
    decoder = Decoder(max_size=100)
    decoder.receive_data(bytes.fromhex("5509000000010200"))
    with pytest.raises(capf.MessageTooLarge):
        decoder.next_message()
    with pytest.raises(ValueError):
        Decoder(max_size=4)


def test_receive_after_close_is_a_bug() -> None:
    decoder = Decoder()
    decoder.receive_data(b"")
    decoder.receive_data(b"")
    assert decoder.closed and decoder.next_message() is CLOSED
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"\x55")


# -- properties ----------------------------------------------------------------------------

_u8 = st.integers(0, 255)
_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=20)
_blobs = st.binary(max_size=64)
_values: dict[str, st.SearchStrategy[object]] = {
    "reason": _u8,
    "reason_info": _text,
    "certificate_type": _u8,
    "certificate": st.builds(CertificateBlob, _u8, _blobs),
    "signed_data": _blobs,
    "version": _u8,
    "auth_type": _u8,
    "public_key": _blobs,
    "key_size": st.integers(0, 0xFFFF),
    "password": _text,
    "device_name": _text,
    "sudi_data": st.builds(SudiData, _blobs, _blobs, st.none() | _blobs),
    "key_type": _u8,
    "curve": _u8,
    "sha2_signed_data": st.builds(Sha2Signature, _u8, _blobs),
}
_known = st.sampled_from(sorted(_values)).flatmap(lambda n: st.tuples(st.just(n), _values[n]))


@given(
    command=_u8,
    session_id=st.integers(0, 0xFFFFFFFF),
    fields=st.lists(_known, max_size=6),
    unknown=st.lists(st.tuples(st.sampled_from([0, 5, 12, 14, 19, 99, 255]), _blobs), max_size=3),
)
def test_round_trip(
    command: int,
    session_id: int,
    fields: list[tuple[str, object]],
    unknown: list[tuple[int, bytes]],
) -> None:
    built = Message.build(command, session_id, **dict(fields))
    msg = Message(command, session_id, built.elements + tuple(Element(t, v) for t, v in unknown))
    raw = msg.encode()
    assert decode_message(raw) == msg
    for name, value in dict(fields).items():
        assert getattr(msg, name) == value


@given(st.binary(max_size=300), st.integers(1, 17))
def test_garbage_gives_a_codec_error(data: bytes, step: int) -> None:
    decoder = Decoder(max_size=200)
    try:
        for i in range(0, len(data), step):
            decoder.receive_data(data[i : i + step])
            while isinstance(decoder.next_message(), Message):
                pass
        decoder.receive_data(b"")
        while isinstance(decoder.next_message(), Message):
            pass
    except capf.CapfDecodeError as exc:
        assert exc.reason


@given(st.binary(max_size=120))
def test_garbage_body_with_valid_header(body: bytes) -> None:
    raw = capf.Header(1, 1, len(body)).encode() + body
    try:
        msg = decode_message(raw)
    except capf.CapfDecodeError:
        return
    assert msg.encode() == raw
