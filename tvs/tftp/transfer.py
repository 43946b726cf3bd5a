"""Sans-I/O TFTP read transfers: the sending side (server) and the receiving side (client).

Time is passed in and timers come out, as in aioquic: feed ``receive_datagram(data, addr,
now)``, arm ``get_timer()``, call ``handle_timer(now)`` when it fires, and send what
``datagrams_to_send()`` returns. No sockets, no trio here.

Both machines count absolute block numbers internally and put ``block & 0xFFFF`` on the wire,
so transfers roll over past block 65535 to 0. A duplicate ACK never triggers a DATA (no
Sorcerer's Apprentice syndrome): only the retransmission timer resends. A datagram from an
unknown transfer ID is answered with ERROR 5 and leaves the transfer alone. Malformed
datagrams are dropped and counted.

A machine's ``state`` is read-only: it changes only through the machine's own methods (one
``_set_state``), and an adapter whose socket broke ends it with ``abort()``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import Any

from .errors import MalformedPacket, TftpError, TftpProtocolError, TftpRemoteError, TftpTimeout
from .protocol import (
    Ack,
    Data,
    ErrorCode,
    ErrorPacket,
    OptionAck,
    ReadRequest,
    TransferOptions,
    accept_oack,
    decode_packet,
    from_netascii,
)

__all__ = ["Address", "Receiver", "Sender", "TransferState"]

Address = tuple[Any, ...]

_DATA_HEADER = struct.Struct("!HH")
_DEFAULT_OPTIONS = TransferOptions()
_UNKNOWN_TID = ErrorPacket(ErrorCode.UNKNOWN_TID, "unknown transfer ID").to_bytes()


class TransferState(enum.Enum):
    NEGOTIATING = "negotiating"  # sender: OACK sent; receiver: RRQ sent
    TRANSFERRING = "transferring"
    COMPLETE = "complete"
    FAILED = "failed"


class _Machine:
    """Shared bookkeeping: outgoing queue, retries, counters, the stray-TID answer."""

    def __init__(self, peer: Address | None, *, timeout: float, retries: int, now: float):
        self.peer = peer
        self._state = TransferState.NEGOTIATING
        self.timeout = timeout
        self.max_retries = retries
        self.error: TftpError | None = None
        self.retransmits = 0
        self.malformed = 0
        self.unknown_tid = 0
        self.duplicates = 0
        self.started = now
        self._retries = 0
        self._deadline: float | None = None
        self._out: list[tuple[bytes, Address]] = []

    @property
    def state(self) -> TransferState:
        """Where the transfer is; it changes only through the machine's own methods."""
        return self._state

    def _set_state(self, state: TransferState) -> None:
        self._state = state
        if state is TransferState.COMPLETE or state is TransferState.FAILED:
            self._deadline = None

    @property
    def done(self) -> bool:
        return self._state is TransferState.COMPLETE or self._state is TransferState.FAILED

    def abort(self, reason: str, *, notify: bool = False) -> None:
        """End the transfer now as failed (the adapter's socket broke, the server stops).
        ``notify`` queues an ERROR 0 for the peer; a finished transfer stays as it is."""
        if self.done:
            return
        answer = ErrorPacket(ErrorCode.NOT_DEFINED, "transfer aborted") if notify else None
        self._fail(TftpError(reason), answer)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must be called next (None once the transfer is over)."""
        return None if self.done else self._deadline

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def _fail(self, error: TftpError, answer: ErrorPacket | None = None) -> None:
        if answer is not None and self.peer is not None:
            self._out.append((answer.to_bytes(), self.peer))
        self.error = error
        self._set_state(TransferState.FAILED)

    def _stray(self, data: bytes, addr: Address) -> None:
        """A datagram from another TID: answer ERROR 5 unless it is itself an error."""
        self.unknown_tid += 1
        if len(data) >= 2 and data[:2] != b"\x00\x05":
            self._out.append((_UNKNOWN_TID, addr))

    def _expire(self, now: float) -> bool:
        """True when the retransmission timer fired and we may retry once more."""
        if self.done or self._deadline is None or now < self._deadline:
            return False
        self._retries += 1
        if self._retries > self.max_retries:
            self._fail(TftpTimeout(f"no answer after {self.max_retries} retries"))
            return False
        self._deadline = now + self.timeout
        return True


class Sender(_Machine):
    """Sends ``data`` to ``peer`` for one read request (the server's side of RRQ).

    ``oack`` holds the options to acknowledge (empty: start with DATA 1 at once) and
    ``options`` the negotiated block and window sizes. Call ``start(now)`` first.
    """

    def __init__(
        self,
        data: bytes,
        peer: Address,
        *,
        options: TransferOptions = _DEFAULT_OPTIONS,
        oack: tuple[tuple[str, str], ...] = (),
        timeout: float = 1.0,
        retries: int = 5,
        now: float,
    ):
        super().__init__(peer, timeout=options.timeout or timeout, retries=retries, now=now)
        self._to: Address = peer
        self._data = memoryview(data)
        self.size = len(data)
        self.blksize = options.blksize
        self.windowsize = options.windowsize
        self._oack = OptionAck(oack).to_bytes() if oack else None
        self.blocks = self.size // self.blksize + 1  # the last block is always short
        self._acked = 0  # absolute number of the highest block acknowledged
        self._sent = 0  # absolute number of the highest block sent in this window

    @property
    def bytes_acked(self) -> int:
        return min(self._acked * self.blksize, self.size)

    def start(self, now: float) -> None:
        if self._oack is not None:
            self._out.append((self._oack, self._to))
            self._deadline = now + self.timeout
        else:
            self._set_state(TransferState.TRANSFERRING)
            self._send_window(now)

    def _send_window(self, now: float) -> None:
        peer, blksize, data = self._to, self.blksize, self._data
        if self.windowsize == 1:  # lockstep, the common case: one block, no loop
            block = self._acked + 1
            offset = self._acked * blksize
            packet = _DATA_HEADER.pack(3, block & 0xFFFF) + data[offset : offset + blksize]
            self._out.append((packet, peer))
            self._sent = block
            self._deadline = now + self.timeout
            return
        first = self._acked + 1
        last = min(self._acked + self.windowsize, self.blocks)
        for block in range(first, last + 1):
            offset = (block - 1) * blksize
            packet = _DATA_HEADER.pack(3, block & 0xFFFF) + data[offset : offset + blksize]
            self._out.append((packet, peer))
        self._sent = last
        self._deadline = now + self.timeout

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if addr != self._to:
            self._stray(data, addr)
            return
        if self.state is TransferState.COMPLETE or self.state is TransferState.FAILED:
            return
        if len(data) == 4 and data[1] == 4 and data[0] == 0:  # an ACK: the common case
            self._on_ack((data[2] << 8) | data[3], now)
            return
        try:
            packet = decode_packet(data)
        except MalformedPacket:
            self.malformed += 1
            return
        if isinstance(packet, ErrorPacket):
            self._fail(TftpRemoteError(packet.code, packet.message))
        else:
            self.duplicates += 1  # DATA, OACK or a request on a transfer port: not for us

    def _on_ack(self, number: int, now: float) -> None:
        if self.state is TransferState.NEGOTIATING:
            if number != 0:
                self.duplicates += 1
                return
            self._set_state(TransferState.TRANSFERRING)
            self._retries = 0
            self._send_window(now)
            return
        delta = (number - self._acked) & 0xFFFF
        if delta == 0 or delta > self._sent - self._acked:
            self.duplicates += 1  # a duplicate or stale ACK: wait for the timer, send nothing
            return
        self._acked += delta
        self._retries = 0
        if self._acked >= self.blocks:
            self._set_state(TransferState.COMPLETE)
        else:
            self._send_window(now)  # RFC 7440: a short ACK restarts the window after it

    def handle_timer(self, now: float) -> None:
        if not self._expire(now):
            return
        if self.state is TransferState.NEGOTIATING and self._oack is not None:
            self._out.append((self._oack, self._to))
            self.retransmits += 1
        else:
            before = len(self._out)
            self._send_window(now)
            self.retransmits += len(self._out) - before


class Receiver(_Machine):
    """Fetches ``filename`` from ``server`` (the client's side of RRQ).

    ``options`` are the RFC 2347 options to request (lower-case names, string values).
    Replies are accepted from any port of the server's host; the first one fixes the
    transfer ID. ``max_size`` bounds what we buffer. Call ``start(now)`` first; when
    ``done``, read ``data`` or ``error``.
    """

    def __init__(
        self,
        server: Address,
        filename: str,
        *,
        mode: str = "octet",
        options: Mapping[str, str] | None = None,
        timeout: float = 1.0,
        retries: int = 5,
        max_size: int = 64 * 1024 * 1024,
        now: float,
    ):
        super().__init__(None, timeout=timeout, retries=retries, now=now)
        self.server = server
        self.filename = filename
        self.mode = mode
        self.requested = dict(options or {})
        self.options = TransferOptions()
        self.max_size = max_size
        self._request = ReadRequest(filename, mode, tuple(self.requested.items())).to_bytes()
        self._chunks: list[bytes] = []
        self._size = 0
        self._expected = 1  # absolute number of the next block we want
        self._in_window = 0
        self._gap_reported = False

    @property
    def data(self) -> bytes:
        body = b"".join(self._chunks)
        return from_netascii(body) if self.mode.lower() == "netascii" else body

    @property
    def size(self) -> int:
        return self._size

    def start(self, now: float) -> None:
        self._out.append((self._request, self.server))
        self._deadline = now + self.timeout

    def _send(self, packet: bytes) -> None:
        self._out.append((packet, self.peer))  # type: ignore[arg-type]

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if self.peer is None:
            if addr[0] != self.server[0]:
                self.unknown_tid += 1  # not even the server's host: ignore it
                return
        elif addr != self.peer:
            self._stray(data, addr)
            return
        if self.done:
            return
        try:
            packet = decode_packet(data)
        except MalformedPacket:
            self.malformed += 1
            return
        if self.peer is None:
            if not isinstance(packet, Data | OptionAck | ErrorPacket):
                self.malformed += 1
                return
            self.peer = addr  # the server's transfer ID
        if isinstance(packet, Data):
            self._on_data(packet, now)
        elif isinstance(packet, OptionAck):
            self._on_oack(packet, now)
        elif isinstance(packet, ErrorPacket):
            self._fail(TftpRemoteError(packet.code, packet.message))
        else:
            self.duplicates += 1

    def _on_oack(self, packet: OptionAck, now: float) -> None:
        if self.state is TransferState.NEGOTIATING:
            try:
                self.options = accept_oack(self.requested, packet.option_map())
            except MalformedPacket as exc:
                self._fail(
                    TftpProtocolError(ErrorCode.OPTION_REFUSED, str(exc)),
                    ErrorPacket(ErrorCode.OPTION_REFUSED, str(exc)),
                )
                return
            if self.options.tsize is not None and self.options.tsize > self.max_size:
                self._too_big(self.options.tsize)
                return
            self._set_state(TransferState.TRANSFERRING)
            self._progress(now)
            self._send(Ack(0).to_bytes())
        elif self._expected == 1:
            self.duplicates += 1
            self._send(Ack(0).to_bytes())  # our ACK 0 was lost: the server resent its OACK
        else:
            self.duplicates += 1

    def _progress(self, now: float) -> None:
        self._retries = 0
        self._deadline = now + self.timeout

    def _too_big(self, size: int) -> None:
        message = f"file of {size} bytes exceeds the limit of {self.max_size}"
        self._fail(
            TftpProtocolError(ErrorCode.DISK_FULL, message),
            ErrorPacket(ErrorCode.DISK_FULL, message),
        )

    def _on_data(self, packet: Data, now: float) -> None:
        if self.state is TransferState.NEGOTIATING:
            if packet.block != 1:
                self.duplicates += 1
                return
            self._set_state(TransferState.TRANSFERRING)  # the server ignored our options
        blksize = self.options.blksize
        if packet.block != self._expected & 0xFFFF:
            self.duplicates += 1
            behind = (self._expected - 1 - packet.block) & 0xFFFF
            if behind < self.options.windowsize:
                self._send(Ack(self._expected - 1).to_bytes())  # our ACK was lost: repeat it
            elif not self._gap_reported:
                self._gap_reported = True  # RFC 7440: ACK the last block received in order
                self._in_window = 0
                self._send(Ack(self._expected - 1).to_bytes())
            return
        payload = packet.payload
        if len(payload) > blksize:
            self.malformed += 1
            return
        self._size += len(payload)
        if self._size > self.max_size:
            self._too_big(self._size)
            return
        self._chunks.append(payload)
        self._expected += 1
        self._in_window += 1
        self._gap_reported = False
        self._progress(now)
        if len(payload) < blksize:
            self._send(Ack(packet.block).to_bytes())
            self._set_state(TransferState.COMPLETE)
        elif self._in_window >= self.options.windowsize:
            self._in_window = 0
            self._send(Ack(packet.block).to_bytes())

    def handle_timer(self, now: float) -> None:
        if not self._expire(now):
            return
        self.retransmits += 1
        self._in_window = 0
        if self.peer is None:
            self._out.append((self._request, self.server))
        else:
            self._send(Ack(self._expected - 1).to_bytes())  # ACK 0 answers an OACK
