"""TFTP packet codec: byte vectors, prefixes and trailing bytes, option negotiation, Hypothesis.

Vectors are built from the packet layouts of RFC 1350 section 5 (figures 5-1 to 5-4) and the
RFC 2347 example request/OACK (``foobar`` in octet mode with ``blksize 1428``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvs.tftp import MalformedPacket
from tvs.tftp.protocol import (
    Ack,
    Data,
    ErrorCode,
    ErrorPacket,
    OptionAck,
    ReadRequest,
    TransferOptions,
    WriteRequest,
    accept_oack,
    decode_packet,
    from_netascii,
    negotiate_options,
    to_netascii,
)

VECTORS = [
    (b"\x00\x01foobar\x00octet\x00", ReadRequest("foobar", "octet")),
    (
        b"\x00\x01foobar\x00octet\x00blksize\x001428\x00",
        ReadRequest("foobar", "octet", (("blksize", "1428"),)),
    ),
    (b"\x00\x02up.bin\x00netascii\x00", WriteRequest("up.bin", "netascii")),
    (b"\x00\x03\x00\x01hello", Data(1, b"hello")),
    (b"\x00\x03\xff\xff", Data(65535, b"")),
    (b"\x00\x04\x00\x00", Ack(0)),
    (b"\x00\x04\x12\x34", Ack(0x1234)),
    (b"\x00\x05\x00\x01File not found\x00", ErrorPacket(1, "File not found")),
    (b"\x00\x06blksize\x001428\x00", OptionAck((("blksize", "1428"),))),
    (b"\x00\x06", OptionAck(())),
]


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_vectors_decode_and_encode(wire: bytes, packet: object) -> None:
    assert decode_packet(wire) == packet
    assert packet.to_bytes() == wire  # type: ignore[attr-defined]


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_every_prefix_is_a_packet_or_malformed(wire: bytes, packet: object) -> None:
    for cut in range(len(wire)):
        try:
            decoded = decode_packet(wire[:cut])
        except MalformedPacket:
            continue
        # a prefix that parses is itself canonical (an ERROR may lack its final NUL)
        assert decoded.to_bytes() in (wire[:cut], wire[:cut] + b"\0")
        assert isinstance(decoded, type(packet))


def test_rrq_byte_by_byte_only_complete_at_the_end() -> None:
    wire = b"\x00\x01SEP001122334455.cnf.xml.sgn\x00octet\x00tsize\x000\x00"
    complete = [cut for cut in range(2, len(wire) + 1) if _decodes(wire[:cut])]
    # complete at the end, and where the prefix ends right after the mode
    assert complete == [wire.index(b"tsize"), len(wire)]


def _decodes(data: bytes) -> bool:
    try:
        decode_packet(data)
    except MalformedPacket:
        return False
    return True


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"\x00\x01ITLFile.tlv\x00octet\x00\x00", ReadRequest("ITLFile.tlv", "octet")),
        (
            b"\x00\x01CTLFile.tlv\x00octet\x00blksize\x001428\x00\x00",
            ReadRequest("CTLFile.tlv", "octet", (("blksize", "1428"),)),
        ),
    ],
)
def test_request_tolerates_one_extra_trailing_nul(wire: bytes, expected: ReadRequest) -> None:
    assert decode_packet(wire) == expected


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00",
        b"\x00\x07\x00\x01",  # unknown opcode
        b"\x00\x00",
        b"\x00\x04\x00",  # short ACK
        b"\x00\x04\x00\x01\x00",  # ACK with a trailing byte
        b"\x00\x03\x00",  # short DATA
        b"\x00\x01file",  # filename not terminated
        b"\x00\x01file\x00",  # no mode
        b"\x00\x01\x00octet\x00",  # empty file name
        b"\x00\x01f\x00octet\x00blksize\x00",  # option without value
        b"\x00\x01f\x00octet\x00blksize\x001428",  # value not terminated
        b"\x00\x06blksize\x00",  # OACK option without value
    ],
)
def test_malformed(wire: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_packet(wire)


def test_error_message_without_final_nul_and_with_trailing_bytes() -> None:
    assert decode_packet(b"\x00\x05\x00\x02denied") == ErrorPacket(2, "denied")
    assert decode_packet(b"\x00\x05\x00\x02denied\x00junk") == ErrorPacket(2, "denied")


def test_option_names_are_case_insensitive_first_wins() -> None:
    rrq = ReadRequest("f", "octet", (("BLKSIZE", "1024"), ("blksize", "8")))
    assert rrq.option_map() == {"blksize": "1024"}


def test_block_numbers_wrap_on_the_wire() -> None:
    assert Data(65536, b"x").to_bytes() == b"\x00\x03\x00\x00x"
    assert Ack(65537).to_bytes() == b"\x00\x04\x00\x01"


# -- netascii --------------------------------------------------------------------------------


def test_netascii_vectors() -> None:
    assert to_netascii(b"a\nb\rc") == b"a\r\nb\r\x00c"
    assert from_netascii(b"a\r\nb\r\x00c") == b"a\nb\rc"


@given(st.binary())
def test_netascii_round_trip(data: bytes) -> None:
    assert from_netascii(to_netascii(data)) == data


# -- option negotiation ----------------------------------------------------------------------


def test_negotiate_known_options() -> None:
    oack, options = negotiate_options(
        {"blksize": "1428", "tsize": "0", "timeout": "3", "windowsize": "16", "foo": "bar"},
        size=5000,
    )
    assert oack == (("blksize", "1428"), ("tsize", "5000"), ("timeout", "3"), ("windowsize", "16"))
    assert options == TransferOptions(1428, 16, 3.0, 5000)


@pytest.mark.parametrize(
    ("requested", "oack", "blksize"),
    [
        ({"blksize": "100000"}, (("blksize", "65464"),), 65464),
        ({"blksize": "8"}, (("blksize", "8"),), 8),
        ({"blksize": "7"}, (), 512),  # below RFC 2348's range: ignored
        ({"blksize": "lots"}, (), 512),
        ({"blksize": "-1"}, (), 512),
        ({"timeout": "0"}, (), 512),
        ({"timeout": "256"}, (), 512),
        ({"unknown": "1"}, (), 512),
        ({}, (), 512),
    ],
)
def test_negotiate_clamps_or_ignores(requested: dict[str, str], oack: tuple, blksize: int) -> None:
    got_oack, options = negotiate_options(requested, size=1)
    assert got_oack == oack
    assert options.blksize == blksize


def test_negotiate_respects_server_limits() -> None:
    oack, options = negotiate_options(
        {"blksize": "9000", "windowsize": "1000"}, size=0, max_blksize=1428, max_windowsize=8
    )
    assert oack == (("blksize", "1428"), ("windowsize", "8"))
    assert (options.blksize, options.windowsize) == (1428, 8)


def test_negotiate_caps_the_window_in_bytes() -> None:
    oack, options = negotiate_options({"blksize": "65464", "windowsize": "64"}, size=10**7)
    assert oack == (("blksize", "65464"), ("windowsize", "2"))
    _, options = negotiate_options({"blksize": "1428", "windowsize": "64"}, size=10**7)
    assert options.windowsize == 64


def test_accept_oack() -> None:
    requested = {"blksize": "1428", "tsize": "0", "windowsize": "8"}
    assert accept_oack(requested, {"blksize": "1024", "tsize": "77"}) == TransferOptions(
        1024, 1, None, 77
    )
    for bad in ({"blksize": "2000"}, {"windowsize": "9"}, {"timeout": "3"}, {"blksize": "x"}):
        with pytest.raises(MalformedPacket):
            accept_oack(requested, bad)


# -- Hypothesis --------------------------------------------------------------------------------

_field = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
_name = _field.filter(bool)
_options = st.lists(st.tuples(_name, _field), max_size=5).map(tuple)
_packets = st.one_of(
    st.builds(ReadRequest, _name, st.sampled_from(["octet", "netascii", "OCTET"]), _options),
    st.builds(WriteRequest, _name, st.sampled_from(["octet", "netascii"]), _options),
    st.builds(Data, st.integers(0, 0xFFFF), st.binary(max_size=1500)),
    st.builds(Ack, st.integers(0, 0xFFFF)),
    st.builds(ErrorPacket, st.sampled_from(list(ErrorCode)), _field),
    st.builds(OptionAck, _options),
)


@given(_packets)
def test_round_trip(packet: object) -> None:
    wire = packet.to_bytes()  # type: ignore[attr-defined]
    assert decode_packet(wire) == packet


@given(st.binary(max_size=200))
def test_garbage_gives_a_packet_or_malformed(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except MalformedPacket:
        return
    assert isinstance(packet, ReadRequest | WriteRequest | Data | Ack | ErrorPacket | OptionAck)
