"""The secure-SIP stand-in's pure parts: message framing (whole, byte by byte, with trailing
bytes, over the limits) and responses; any bytes give a message, a wait, or SipError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvs.sip import MAX_SIP_HEAD, SipError, sip_response, split_message

REGISTER = (
    b"REGISTER sip:127.0.1.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK77\r\n"
    b"From: <sip:1000@127.0.1.1>;tag=a\r\n"
    b"To: <sip:1000@127.0.1.1>\r\n"
    b"Call-ID: 42@phone\r\n"
    b"CSeq: 101 REGISTER\r\n"
    b"Contact: <sip:1000@127.0.0.1:5061;transport=tls>\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 4\r\n\r\nbody"
)


def test_split_whole_byte_by_byte_and_trailing() -> None:
    assert split_message(REGISTER) == (REGISTER, b"")
    assert split_message(REGISTER + b"OPTIONS") == (REGISTER, b"OPTIONS")
    for i in range(len(REGISTER)):
        assert split_message(REGISTER[:i]) is None


def test_split_limits() -> None:
    with pytest.raises(SipError, match="no end of headers"):
        split_message(b"A" * (MAX_SIP_HEAD + 1))
    with pytest.raises(SipError, match="body"):
        split_message(b"INVITE x SIP/2.0\r\nl: 999999999\r\n\r\n")


def test_register_is_accepted_with_its_headers() -> None:
    reply = sip_response(REGISTER)
    lines = reply.decode().split("\r\n")
    assert lines[0] == "SIP/2.0 200 OK"
    for header in (
        "Via: ",
        "From: ",
        "To: ",
        "Call-ID: 42@phone",
        "CSeq: 101",
        "Contact: ",
        "Expires",
    ):
        assert any(line.startswith(header) for line in lines), header
    assert reply.endswith(b"Content-Length: 0\r\n\r\n")


def test_other_methods() -> None:
    assert sip_response(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n").startswith(
        b"SIP/2.0 200 OK"
    )
    invite = sip_response(b"INVITE sip:x SIP/2.0\r\nContact: <sip:a>\r\n\r\n")
    assert invite.startswith(b"SIP/2.0 501 Not Implemented") and b"Contact" not in invite


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\xff\xfe SIP/2.0\r\n\r\n",
        b"\r\n\r\n",
    ],
)
def test_not_requests(data: bytes) -> None:
    with pytest.raises(SipError):
        sip_response(data)


@given(st.binary(max_size=300))
def test_any_bytes_frame_or_raise_sip_error(data: bytes) -> None:
    try:
        whole = split_message(data)
        if whole is not None:
            message, rest = whole
            assert message + rest == data
            sip_response(message)
    except SipError:
        pass
