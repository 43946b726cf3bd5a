"""The TFTP server's pure decisions (``tvs.tftp.plan``) and the transfer machines' own state
changes (``abort()``, a read-only ``state``): no sockets."""

from __future__ import annotations

import pytest

from tvs.tftp import FileVersion
from tvs.tftp.errors import TftpError
from tvs.tftp.plan import (
    Accept,
    Drop,
    DropWhy,
    Refuse,
    RefuseWhy,
    ServerCounters,
    ServerLimits,
    admit,
    plan_transfer,
)
from tvs.tftp.protocol import (
    Ack,
    Data,
    ErrorCode,
    ErrorPacket,
    OptionAck,
    ReadRequest,
    WriteRequest,
    decode_packet,
)
from tvs.tftp.transfer import Receiver, Sender, TransferState

PEER = ("127.0.0.1", 40000)
LIMITS = ServerLimits(max_transfers=2)


def _admit(data: bytes, active: set = frozenset(), n: int | None = None):  # type: ignore[assignment]
    return admit(data, PEER, active=active, n_active=len(active) if n is None else n, limits=LIMITS)


def test_a_read_request_is_accepted() -> None:
    d = _admit(ReadRequest("CTLFile.tlv", "octet").to_bytes())
    assert isinstance(d, Accept) and d.request.filename == "CTLFile.tlv"


@pytest.mark.parametrize(
    ("packet", "why", "code"),
    [
        (WriteRequest("x", "octet").to_bytes(), RefuseWhy.WRITE, ErrorCode.ACCESS_VIOLATION),
        (ReadRequest("x", "mail").to_bytes(), RefuseWhy.MODE, ErrorCode.ILLEGAL_OPERATION),
    ],
)
def test_refusals_carry_the_error_packet(packet: bytes, why: RefuseWhy, code: int) -> None:
    d = _admit(packet)
    assert isinstance(d, Refuse) and d.why is why and d.code == code
    answer = decode_packet(d.reply)
    assert isinstance(answer, ErrorPacket) and answer.code == code
    assert "read-only" not in answer.message  # the client learns the code, not our reasons


def test_drops() -> None:
    rrq = ReadRequest("x", "octet").to_bytes()
    assert _admit(rrq, active={PEER}) == Drop(DropWhy.DUPLICATE, filename="x")
    busy = _admit(rrq, active={("h", 1), ("h", 2)})
    assert isinstance(busy, Drop) and busy.why is DropWhy.BUSY
    garbage = _admit(b"\x00\x09??")
    assert isinstance(garbage, Drop) and garbage.why is DropWhy.MALFORMED and garbage.reply is None
    stray = _admit(Ack(3).to_bytes())
    assert isinstance(stray, Drop) and stray.why is DropWhy.MALFORMED
    assert stray.reply is not None and decode_packet(stray.reply) == ErrorPacket(
        ErrorCode.ILLEGAL_OPERATION, "not a request"
    )
    error = _admit(ErrorPacket(0, "bye").to_bytes())
    assert isinstance(error, Drop) and error.reply is None  # never answer an ERROR


def test_counters_are_an_attrs_class() -> None:
    c = ServerCounters()
    c.count(_admit(b"\x00"))
    c.count(_admit(WriteRequest("x", "octet").to_bytes()))
    assert (c.malformed_dropped, c.requests_refused) == (1, 1)


def test_plan_transfer_shares_the_version_buffer() -> None:
    version = FileVersion(b"a\nb" * 1000)
    request = ReadRequest("f", "octet", (("blksize", "1428"), ("tsize", "0")))
    sender = plan_transfer(request, version, PEER, ServerLimits(), now=0.0)
    (oack, to), *_ = sender.datagrams_to_send()
    assert to == PEER and decode_packet(oack) == OptionAck(
        (("blksize", "1428"), ("tsize", str(version.size)))
    )
    assert sender._data.obj is version.data  # a view of the one buffer, not a copy
    ascii_sender = plan_transfer(ReadRequest("f", "netascii"), version, PEER, ServerLimits(), 0.0)
    assert ascii_sender._data.obj is version.netascii()
    (data, _), *_ = ascii_sender.datagrams_to_send()
    assert isinstance(decode_packet(data), Data)


def test_state_changes_only_through_the_machine() -> None:
    sender = Sender(b"x" * 600, PEER, now=0.0)
    sender.start(0.0)
    with pytest.raises(AttributeError):
        sender.state = TransferState.COMPLETE  # type: ignore[misc]
    sender.abort("socket closed", notify=True)
    assert sender.state is TransferState.FAILED and sender.done
    assert isinstance(sender.error, TftpError) and "socket closed" in str(sender.error)
    assert sender.get_timer() is None
    out = [decode_packet(d) for d, _ in sender.datagrams_to_send()]
    assert isinstance(out[-1], ErrorPacket) and out[-1].code == ErrorCode.NOT_DEFINED
    sender.abort("again")  # a finished transfer stays as it is
    assert "socket closed" in str(sender.error)
    receiver = Receiver(PEER, "f", now=0.0)
    receiver.start(0.0)
    receiver.abort("cancelled")
    assert receiver.state is TransferState.FAILED and receiver.get_timer() is None
