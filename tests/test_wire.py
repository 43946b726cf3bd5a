"""TVS message codec: seed vectors, incremental decoding, every fault, property tests."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvs import wire
from tvs.tlv import SignerInfo
from tvs.wire import (
    Decoder,
    Element,
    MessageType,
    QueryCertRequest,
    QueryCertResponse,
    QueryTags,
    Status,
    UnknownMessage,
    VerifyRequest,
    VerifyResponse,
    decode_message,
    encode_message,
)

VECTORS = Path(__file__).parent / "vectors"
SEED_DEVICE = "CP-8861-SEPB000B4BA0AEE"
SEED_SUBJECT = "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU"
SEED_ISSUER = "CN=stormin-WIN2012-CA"
SEED_SERIAL = bytes.fromhex("24000000179479B8F124AC3F3B000000000017")


def vector(name: str) -> bytes:
    return bytes.fromhex((VECTORS / name).read_text())


def seed_request() -> QueryCertRequest:
    return QueryCertRequest(
        device=SEED_DEVICE,
        subject=SEED_SUBJECT,
        issuer=SEED_ISSUER,
        serial=SEED_SERIAL,
        request_id=1001,
    )


def decode_all_ways(data: bytes) -> list[wire.Message]:
    """Decode ``data`` whole, one byte at a time, and followed by the start of a next message."""
    whole = decode_message(data)
    d = Decoder()
    got: object = wire.NEED_DATA
    for i in range(len(data)):
        assert got is wire.NEED_DATA, "a message came out before its last byte"
        d.receive_data(data[i : i + 1])
        got = d.next_frame()
    assert isinstance(got, wire.Frame) and got.data == data
    got_message = got.message
    d.receive_data(b"")
    assert d.next_frame() is wire.CLOSED  # a clean close after a message
    trailing = Decoder()
    trailing.receive_data(data + data[:5])
    first = trailing.next_message()
    assert trailing.next_message() is wire.NEED_DATA and trailing.buffered == 5
    trailing.receive_data(b"")
    with pytest.raises(wire.TruncatedMessage, match="mid-message after 5 bytes"):
        trailing.next_message()
    with pytest.raises(wire.TrailingData):
        decode_message(data + b"\x00")
    return [whole, got_message, first]


def test_seed_query_cert_req_encodes_to_the_seed_bytes() -> None:
    data = encode_message(seed_request())
    assert len(data) == 153
    assert data[:50] == vector("seed_query_cert_req.first50.hex")
    for decoded in decode_all_ways(data):
        assert decoded == seed_request()
        assert decoded.cache_key == "24000000179479B8F124AC3F3B000000000017CN=stormin-WIN2012-CA"


def test_seed_query_cert_res_shape() -> None:
    seed = vector("seed_query_cert_res.first50.hex")
    cert = seed[17:] + bytes(1451 - len(seed[17:]))  # the seed's certificate start, padded
    msg = QueryCertResponse(
        status=Status.VALID,
        certificate=cert,
        roles=(0, 3),
        ttl=86400,
        request_id=1001,
        reserved=0x00,
    )
    data = encode_message(msg)
    assert len(data) == 1480
    assert data[:3] == seed[:3] and data[4:17] == seed[4:17]  # all but the reserved byte
    assert data[3] == 0x00
    assert data[-7:] == bytes.fromhex("09000400015180")  # TTL 86400 last
    for decoded in decode_all_ways(data):
        assert decoded == msg


def test_seed_response_header_with_reserved_f7_decodes() -> None:
    seed = vector("seed_query_cert_res.first50.hex")
    d = Decoder()
    d.receive_data(seed)
    assert d.next_message() is wire.NEED_DATA  # body incomplete
    assert d.header is not None
    assert (d.header.type, d.header.reserved, d.header.request_id, d.header.length) == (
        MessageType.QUERY_CERT_RES,
        0xF7,
        1001,
        1470,
    )
    ins = wire.inspect_message(seed)
    assert ins.truncated and ins.readable
    assert ins.elements == (Element(7, b"\x00"),)
    assert ins.cut_element is not None and ins.cut_element[:2] == (2, 1451)


def test_query_tags_5_6_encode_and_both_pairs_decode() -> None:
    msg = seed_request()
    a = encode_message(msg)
    b = encode_message(msg, query_tags=QueryTags.TAGS_5_6)
    assert a != b
    assert b"\x05\x00\x16CN=stormin-WIN2012-CA\x00" in b
    assert b"\x06\x00\x13" + SEED_SERIAL in b
    assert decode_message(a) == decode_message(b) == msg
    assert QueryTags.parse("5,6") is QueryTags.TAGS_5_6
    with pytest.raises(ValueError):
        QueryTags.parse("4,6")


@pytest.mark.parametrize(
    "msg",
    [
        VerifyRequest(device=SEED_DEVICE, certificate=b"\x30\x03\x02\x01\x01", request_id=7),
        VerifyResponse(status=Status.VALID, roles=(7,), ttl=3600, request_id=7),
        VerifyResponse(status=Status.INVALID, request_id=8),
        QueryCertResponse(status=Status.INVALID, request_id=9),
        UnknownMessage(type=9, elements=(Element(1, b"x"), Element(200, b"")), request_id=3),
        QueryCertRequest(
            device="d", subject="s", issuer="i", serial=b"\x00\x01", extra=(Element(77, b"kept"),)
        ),
    ],
)
def test_round_trips(msg: wire.Message) -> None:
    for decoded in decode_all_ways(encode_message(msg)):
        assert decoded == msg


def _header(body: bytes, *, disc: int = 0x57, version: int = 1, mtype: int = 3) -> bytes:
    head = bytes([disc, version, mtype, 0]) + (1001).to_bytes(4, "big")
    return head + len(body).to_bytes(2, "big") + body


def _req_body(device: bytes = b"\x01dev", subject: bytes = b"CN=a\x00") -> bytes:
    def el(tag: int, v: bytes) -> bytes:
        return bytes([tag]) + len(v).to_bytes(2, "big") + v

    return el(1, device) + el(3, subject) + el(4, b"CN=ca\x00") + el(5, b"\x01\x02")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x58\x01", wire.BadDiscriminator),
        (b"\x57\x02", wire.UnsupportedVersion),
        (_header(b"")[:8] + b"\xff\xff", wire.MessageTooLarge),
        (_header(b"\x01\x00\x05ab"), wire.ElementOverrun),
        (_header(b"\x01\x00"), wire.ElementOverrun),
        (_header(b"\x07\x00\x02\x00\x00", mtype=4), wire.ElementSizeError),
        (_header(b"\x07\x00\x01\x00\x09\x00\x02\x00\x01", mtype=4), wire.ElementSizeError),
        (_header(b"\x07\x00\x01\x05", mtype=4), wire.BadValue),
        (_header(_req_body(device=b"dev")), wire.BadDeviceName),
        (_header(_req_body(device=b"\x01\xff\xfe")), wire.BadDeviceName),
        (_header(_req_body(subject=b"CN=a")), wire.BadName),
        (_header(_req_body(subject=b"\xff\x00")), wire.BadName),
        (_header(b"\x01\x00\x02\x01a"), wire.MissingElement),
        (_header(b"", mtype=2), wire.MissingElement),
    ],
)
def test_each_fault_has_its_error(data: bytes, error: type[wire.DecodeError]) -> None:
    with pytest.raises(error) as info:
        d = Decoder()
        for b in data:  # fed byte by byte: the fault is found as early as possible
            d.receive_data(bytes([b]))
            d.next_message()
    assert isinstance(info.value, wire.DecodeError) and isinstance(info.value, ValueError)
    assert str(info.value)


def test_limit_applies_before_the_body_arrives() -> None:
    d = Decoder(max_size=100)
    d.receive_data(_header(bytes(91))[:10])
    with pytest.raises(wire.MessageTooLarge):
        d.next_message()
    ok = Decoder(max_size=101)
    ok.receive_data(_header(bytes(91))[:10])
    assert ok.next_message() is wire.NEED_DATA


def test_eof_mid_message_is_truncation() -> None:
    d = Decoder()
    d.receive_data(encode_message(seed_request())[:20])
    assert d.next_message() is wire.NEED_DATA
    d.receive_data(b"")  # end of stream, as h11 does
    assert d.closed
    with pytest.raises(wire.TruncatedMessage, match="10 of 143") as info:
        d.next_message()
    assert info.value.reason == "truncated"
    header = Decoder()
    header.receive_data(encode_message(seed_request())[:4])
    header.receive_data(b"")
    with pytest.raises(wire.TruncatedMessage, match="after 4 bytes"):
        header.next_frame()
    with pytest.raises(wire.TruncatedMessage):
        decode_message(b"")
    nothing = Decoder()
    nothing.receive_data(b"")
    with pytest.raises(wire.TruncatedMessage, match="before sending a message"):
        nothing.next_frame()
    with pytest.raises(RuntimeError):
        nothing.receive_data(b"late")


def test_frames_carry_their_exact_bytes() -> None:
    a = encode_message(seed_request())
    b = encode_message(attrs.evolve(seed_request(), request_id=7), query_tags=QueryTags.TAGS_5_6)
    d = Decoder()
    d.receive_data(a + b)
    first, second = d.next_frame(), d.next_frame()
    assert isinstance(first, wire.Frame) and isinstance(second, wire.Frame)
    assert (first.data, second.data) == (a, b)
    assert second.message.request_id == 7
    assert d.next_frame() is wire.NEED_DATA


def test_encode_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(wire.EncodeError):
        encode_message(VerifyResponse(status=Status.VALID, roles=(256,)))
    with pytest.raises(wire.EncodeError):
        encode_message(VerifyResponse(status=Status.VALID, ttl=2**32))
    with pytest.raises(wire.EncodeError):
        encode_message(VerifyRequest(device="d", certificate=bytes(70000)))


def test_format_and_dict_name_roles() -> None:
    msg = QueryCertResponse(status=Status.VALID, certificate=b"junk", roles=(0, 3), ttl=86400)
    d = wire.message_to_dict(msg)
    assert d["role_names"] == ["SAST", "TFTP"] and d["status"] == "valid"
    assert d["certificate"]["error"]
    text = "\n".join(wire.format_message(msg))
    assert "SAST (0), TFTP (3)" in text and "86400" in text


# --- property tests -----------------------------------------------------------------------

names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80
)
extras = st.lists(st.builds(Element, st.integers(10, 255), st.binary(max_size=20)), max_size=3)
messages = st.one_of(
    st.builds(
        QueryCertRequest,
        device=names,
        subject=names,
        issuer=names,
        serial=st.binary(max_size=20),
        request_id=st.integers(0, 2**32 - 1),
        reserved=st.integers(0, 255),
        extra=extras.map(tuple),
    ),
    st.builds(
        QueryCertResponse,
        status=st.sampled_from(Status),
        certificate=st.one_of(st.none(), st.binary(max_size=300)),
        roles=st.lists(st.integers(0, 255), max_size=5).map(tuple),
        ttl=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        request_id=st.integers(0, 2**32 - 1),
    ),
    st.builds(VerifyRequest, device=names, certificate=st.binary(max_size=300)),
    st.builds(
        VerifyResponse,
        status=st.sampled_from(Status),
        roles=st.lists(st.integers(0, 255), max_size=5).map(tuple),
        ttl=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    ),
)


@given(messages)
def test_property_round_trip(msg: wire.Message) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert decode_message(encode_message(msg, query_tags=QueryTags.TAGS_5_6)) == msg


@given(st.binary(max_size=200), st.booleans())
def test_property_garbage_gives_codec_errors_only(data: bytes, valid_prefix: bool) -> None:
    if valid_prefix:
        data = b"\x57\x01" + data
    d = Decoder(max_size=150)
    try:
        d.receive_data(data)
        d.receive_data(b"")
        while d.next_message() is not wire.CLOSED:
            pass
    except wire.DecodeError:
        pass
    ins = wire.inspect_message(data)  # the tolerant path never raises
    assert ins.length == len(data)


def test_query_for_a_files_signer_is_one_constructor() -> None:
    signer = SignerInfo(name=SEED_SUBJECT, serial=SEED_SERIAL, issuer=SEED_ISSUER)
    q = QueryCertRequest.for_signer(SEED_DEVICE, signer, request_id=1001)
    assert q == seed_request()
