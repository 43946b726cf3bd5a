"""The sans-I/O transfer machines, paired in memory on a virtual clock (no sockets)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tvs.tftp import TftpProtocolError, TftpRemoteError, TftpTimeout
from tvs.tftp.protocol import (
    Ack,
    Data,
    ErrorPacket,
    OptionAck,
    ReadRequest,
    decode_packet,
    negotiate_options,
)
from tvs.tftp.transfer import Receiver, Sender, TransferState

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 69)
SERVER_TID = ("127.0.0.1", 50000)
STRANGER = ("127.0.0.1", 40001)

Fault = Callable[[bytes, str], list[bytes]]  # datagram, direction -> datagrams delivered


def _no_fault(data: bytes, direction: str) -> list[bytes]:
    return [data]


class Pair:
    """A Receiver and the Sender our server would create for its RRQ, wired by ``fault``."""

    def __init__(
        self,
        content: bytes,
        *,
        options: dict[str, str] | None = None,
        fault: Fault = _no_fault,
        retries: int = 5,
    ):
        self.content = content
        self.fault = fault
        self.now = 0.0
        self.sent: list[bytes] = []  # every datagram the sender emitted
        self.receiver = Receiver(SERVER, "file.bin", options=options, retries=retries, now=self.now)
        self.sender: Sender | None = None
        self.receiver.start(self.now)

    def _server_gets_request(self, data: bytes) -> None:
        if self.sender is not None:
            return  # our server drops a retransmitted RRQ for a running transfer
        request = decode_packet(data)
        assert isinstance(request, ReadRequest)
        oack, options = negotiate_options(request.option_map(), size=len(self.content))
        self.sender = Sender(self.content, CLIENT, options=options, oack=oack, now=self.now)
        self.sender.start(self.now)

    def run(self, max_steps: int = 2_000_000) -> None:
        for _ in range(max_steps):
            moved = False
            for data, addr in self.receiver.datagrams_to_send():
                moved = True
                for copy in self.fault(data, "up"):
                    if addr == SERVER:
                        self._server_gets_request(copy)
                    elif self.sender is not None:
                        self.sender.receive_datagram(copy, CLIENT, self.now)
            if self.sender is not None:
                for data, addr in self.sender.datagrams_to_send():
                    assert addr == CLIENT
                    moved = True
                    self.sent.append(data)
                    for copy in self.fault(data, "down"):
                        self.receiver.receive_datagram(copy, SERVER_TID, self.now)
            if moved:
                continue
            timers = [
                t
                for t in (self.receiver.get_timer(), self.sender and self.sender.get_timer())
                if t is not None
            ]
            if not timers:
                return
            self.now = min(timers)
            self.receiver.handle_timer(self.now)
            if self.sender is not None:
                self.sender.handle_timer(self.now)
        raise AssertionError("transfer did not settle")


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1024, 5000])
@pytest.mark.parametrize(
    "options",
    [
        None,
        {"blksize": "100"},
        {"windowsize": "4"},
        {"blksize": "8", "windowsize": "3", "tsize": "0"},
    ],
)
def test_clean_transfer(size: int, options: dict[str, str] | None) -> None:
    content = random.Random(size).randbytes(size)
    pair = Pair(content, options=options)
    pair.run()
    assert pair.receiver.state is TransferState.COMPLETE
    assert pair.receiver.data == content
    assert pair.sender is not None and pair.sender.state is TransferState.COMPLETE
    assert pair.sender.retransmits == pair.receiver.retransmits == 0
    blksize = pair.receiver.options.blksize
    data_packets = [p for p in pair.sent if p[:2] == b"\x00\x03"]
    assert len(data_packets) == size // blksize + 1  # the last block is short, maybe empty


def test_block_numbers_roll_over() -> None:
    content = random.Random(1).randbytes(8 * 65536 + 3)  # 65537 blocks of 8 bytes
    pair = Pair(content, options={"blksize": "8", "windowsize": "64"})
    pair.run()
    assert pair.receiver.data == content
    blocks = [int.from_bytes(p[2:4], "big") for p in pair.sent if p[:2] == b"\x00\x03"]
    assert blocks[65534:65538] == [65535, 0, 1]


def test_no_sorcerers_apprentice() -> None:
    """Every ACK delivered twice: the sender still sends each DATA block exactly once."""

    def duplicate_acks(data: bytes, direction: str) -> list[bytes]:
        return [data, data] if direction == "up" and data[:2] == b"\x00\x04" else [data]

    content = bytes(range(256)) * 20
    pair = Pair(content, fault=duplicate_acks)
    pair.run()
    assert pair.receiver.data == content
    data_packets = [p for p in pair.sent if p[:2] == b"\x00\x03"]
    assert len(data_packets) == len(set(data_packets)) == len(content) // 512 + 1
    assert pair.sender is not None and pair.sender.duplicates > 0


def test_duplicate_ack_sends_nothing() -> None:
    sender = Sender(b"x" * 2000, CLIENT, now=0.0)
    sender.start(0.0)
    assert [decode_packet(d) for d, _ in sender.datagrams_to_send()] == [Data(1, b"x" * 512)]
    sender.receive_datagram(Ack(1).to_bytes(), CLIENT, 0.1)
    assert [decode_packet(d) for d, _ in sender.datagrams_to_send()] == [Data(2, b"x" * 512)]
    sender.receive_datagram(Ack(1).to_bytes(), CLIENT, 0.2)
    assert sender.datagrams_to_send() == []


@pytest.mark.parametrize("options", [None, {"windowsize": "8", "blksize": "64"}])
@pytest.mark.parametrize("seed", range(4))
def test_loss_duplication_reordering(options: dict[str, str] | None, seed: int) -> None:
    rng = random.Random(seed)
    held: list[bytes] = []

    def chaos(data: bytes, direction: str) -> list[bytes]:
        out = [] if rng.random() < 0.15 else [data]
        if rng.random() < 0.1:
            out.append(data)
        if out and rng.random() < 0.1:
            held.append(out.pop())  # delivered later, after another datagram
        elif held and rng.random() < 0.5:
            out.append(held.pop(0))
        return out

    content = random.Random(seed).randbytes(20_000)
    pair = Pair(content, options=options, fault=chaos, retries=50)
    pair.run()
    assert pair.receiver.data == content
    assert pair.receiver.retransmits + pair.sender.retransmits > 0  # type: ignore[union-attr]


def test_lost_data_is_resent_after_the_timeout() -> None:
    dropped: list[bytes] = []

    def drop_block_2_once(data: bytes, direction: str) -> list[bytes]:
        if data[:4] == b"\x00\x03\x00\x02" and not dropped:
            dropped.append(data)
            return []
        return [data]

    pair = Pair(b"y" * 1500, fault=drop_block_2_once)
    pair.run()
    assert pair.receiver.data == b"y" * 1500
    assert pair.sender is not None and pair.sender.retransmits >= 1
    assert pair.now >= 1.0


def test_receiver_gives_up_after_bounded_retries() -> None:
    receiver = Receiver(SERVER, "f", timeout=1.0, retries=3, now=0.0)
    receiver.start(0.0)
    sent = len(receiver.datagrams_to_send())
    now = 0.0
    while not receiver.done:
        timer = receiver.get_timer()
        assert timer is not None
        now = timer
        receiver.handle_timer(now)
        sent += len(receiver.datagrams_to_send())
    assert isinstance(receiver.error, TftpTimeout)
    assert sent == 4  # the request and 3 retransmissions
    assert now == pytest.approx(4.0)


def test_sender_gives_up_after_bounded_retries() -> None:
    sender = Sender(b"z" * 100, CLIENT, retries=2, now=0.0)
    sender.start(0.0)
    while not sender.done:
        sender.handle_timer(sender.get_timer())  # type: ignore[arg-type]
    assert sender.state is TransferState.FAILED
    assert sender.retransmits == 2
    assert isinstance(sender.error, TftpTimeout)


def test_unknown_tid_answered_without_disturbing() -> None:
    sender = Sender(b"a" * 1000, CLIENT, now=0.0)
    sender.start(0.0)
    sender.datagrams_to_send()
    sender.receive_datagram(Ack(1).to_bytes(), STRANGER, 0.1)
    out = sender.datagrams_to_send()
    assert [(decode_packet(d).code, a) for d, a in out] == [(5, STRANGER)]  # type: ignore[union-attr]
    sender.receive_datagram(ErrorPacket(5, "x").to_bytes(), STRANGER, 0.1)
    assert sender.datagrams_to_send() == []  # never answer an error with an error
    assert sender.state is TransferState.TRANSFERRING
    sender.receive_datagram(Ack(1).to_bytes(), CLIENT, 0.2)
    assert [decode_packet(d) for d, _ in sender.datagrams_to_send()] == [Data(2, b"a" * 488)]
    assert sender.unknown_tid == 2


def test_malformed_from_peer_is_dropped_and_counted() -> None:
    sender = Sender(b"a" * 1000, CLIENT, now=0.0)
    sender.start(0.0)
    sender.datagrams_to_send()
    for junk in (b"", b"\x00", b"\x00\x04\x00", b"\x00\x09zz"):
        sender.receive_datagram(junk, CLIENT, 0.1)
    assert sender.malformed == 4
    assert sender.datagrams_to_send() == []
    assert sender.state is TransferState.TRANSFERRING


def test_receiver_locks_onto_the_first_tid() -> None:
    receiver = Receiver(SERVER, "f", now=0.0)
    receiver.start(0.0)
    receiver.datagrams_to_send()
    receiver.receive_datagram(Data(1, b"abc").to_bytes(), SERVER_TID, 0.1)
    assert receiver.state is TransferState.COMPLETE
    assert receiver.datagrams_to_send() == [(Ack(1).to_bytes(), SERVER_TID)]
    receiver.receive_datagram(Data(1, b"abc").to_bytes(), ("127.0.0.1", 50001), 0.2)
    assert [a for _, a in receiver.datagrams_to_send()] == [("127.0.0.1", 50001)]
    assert receiver.data == b"abc"


def test_receiver_ignores_other_hosts_before_locking() -> None:
    receiver = Receiver(SERVER, "f", now=0.0)
    receiver.start(0.0)
    receiver.datagrams_to_send()
    receiver.receive_datagram(Data(1, b"evil").to_bytes(), ("127.0.0.9", 69), 0.1)
    assert receiver.state is TransferState.NEGOTIATING
    assert receiver.datagrams_to_send() == []


def test_remote_error_is_reported() -> None:
    receiver = Receiver(SERVER, "missing", now=0.0)
    receiver.start(0.0)
    receiver.receive_datagram(ErrorPacket(1, "File not found").to_bytes(), SERVER, 0.1)
    assert isinstance(receiver.error, TftpRemoteError)
    assert (receiver.error.code, receiver.error.message) == (1, "File not found")


@pytest.mark.parametrize("oack", [{"blksize": "2000"}, {"windowsize": "2"}, {"bogus": "1"}])
def test_bad_oack_is_refused_with_error_8(oack: dict[str, str]) -> None:
    receiver = Receiver(SERVER, "f", options={"blksize": "1428"}, now=0.0)
    receiver.start(0.0)
    receiver.datagrams_to_send()
    receiver.receive_datagram(OptionAck(oack).to_bytes(), SERVER_TID, 0.1)
    assert isinstance(receiver.error, TftpProtocolError)
    [(data, addr)] = receiver.datagrams_to_send()
    assert addr == SERVER_TID
    assert decode_packet(data) == ErrorPacket(8, str(receiver.error))


def test_receiver_bounds_the_size() -> None:
    pair_receiver = Receiver(SERVER, "f", options={"tsize": "0"}, max_size=100, now=0.0)
    pair_receiver.start(0.0)
    pair_receiver.receive_datagram(OptionAck({"tsize": "5000"}).to_bytes(), SERVER_TID, 0.1)
    assert isinstance(pair_receiver.error, TftpProtocolError)
    assert pair_receiver.error.code == 3

    receiver = Receiver(SERVER, "f", max_size=600, now=0.0)
    receiver.start(0.0)
    receiver.receive_datagram(Data(1, b"q" * 512).to_bytes(), SERVER_TID, 0.1)
    receiver.receive_datagram(Data(2, b"q" * 512).to_bytes(), SERVER_TID, 0.2)
    assert isinstance(receiver.error, TftpProtocolError)


def test_netascii_receive_converts_line_ends() -> None:
    receiver = Receiver(SERVER, "f", mode="netascii", now=0.0)
    receiver.start(0.0)
    receiver.receive_datagram(Data(1, b"a\r\nb\r\x00").to_bytes(), SERVER_TID, 0.1)
    assert receiver.data == b"a\nb\r"
