"""Reading CAPF session transcripts: one line per TLS write, ``S>C``/``C>S`` then hex.

Owns the transcript text format of ``tests/vectors/capf/*.hex`` (made by running the
open-source capfd against capfc) and reassembling messages written in several writes (that
server writes a header and its body apart). Pure: text in, messages out.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

from .decoder import DEFAULT_MAX_MESSAGE, Decoder
from .errors import CapfDecodeError, TruncatedMessage
from .messages import Message

__all__ = ["CLIENT_TO_SERVER", "SERVER_TO_CLIENT", "Exchange", "parse_transcript"]

SERVER_TO_CLIENT: Final = "S>C"
CLIENT_TO_SERVER: Final = "C>S"
Direction = Literal["S>C", "C>S"]


@attrs.frozen
class Exchange:
    """One message of a transcript: its direction, value and the writes that completed it
    (``raw`` equals the message's bytes when writes do not straddle messages, as in capfd's)."""

    direction: Direction
    message: Message
    writes: tuple[bytes, ...]

    @property
    def raw(self) -> bytes:
        return b"".join(self.writes)


def parse_transcript(text: str, *, max_size: int = DEFAULT_MAX_MESSAGE) -> list[Exchange]:
    """Messages in the order their last byte was written; raises :class:`CapfDecodeError`."""
    decoders: dict[str, Decoder] = {
        SERVER_TO_CLIENT: Decoder(max_size),
        CLIENT_TO_SERVER: Decoder(max_size),
    }
    pending: dict[str, list[bytes]] = {SERVER_TO_CLIENT: [], CLIENT_TO_SERVER: []}
    out: list[Exchange] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        direction, _, hexdata = line.partition(" ")
        if direction not in decoders:
            raise CapfDecodeError(f"line {lineno}: direction {direction!r} is not S>C or C>S")
        try:
            data = bytes.fromhex(hexdata)
        except ValueError:
            raise CapfDecodeError(f"line {lineno}: not hex") from None
        decoder = decoders[direction]
        decoder.receive_data(data)
        pending[direction].append(data)
        while isinstance(msg := decoder.next_message(), Message):
            out.append(Exchange(direction, msg, tuple(pending[direction])))  # type: ignore[arg-type]
            pending[direction] = []
    for direction, decoder in decoders.items():
        if decoder.buffered:
            raise TruncatedMessage(f"{direction}: transcript ends inside a message")
    return out
