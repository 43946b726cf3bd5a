"""The TFTP error hierarchy, shared by the codec, the transfer machines and the adapters.

``TftpError`` is the root. The codec raises ``MalformedPacket`` for bytes that are not a
TFTP packet; the client raises ``TftpTimeout`` when the peer stays silent past the retry
bound and ``TftpRemoteError`` when the peer answers with an ERROR packet; file providers
raise ``FileRefused`` to have the server answer with an error code instead of the file.
"""

from __future__ import annotations

__all__ = [
    "FileRefused",
    "MalformedPacket",
    "TftpError",
    "TftpProtocolError",
    "TftpRemoteError",
    "TftpTimeout",
]


class TftpError(Exception):
    """Base class of every TFTP failure."""


class MalformedPacket(TftpError, ValueError):
    """The datagram is not a well-formed TFTP packet."""


class TftpTimeout(TftpError, TimeoutError):
    """The peer did not answer within the retransmission bound."""


class TftpRemoteError(TftpError):
    """The peer sent an ERROR packet (``code`` is the TFTP error code, 1 = file not found)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"TFTP error {code}: {message}")
        self.code = code
        self.message = message


class TftpProtocolError(TftpError):
    """The peer broke the protocol (bad option acknowledgement, oversized file, ...).

    ``code`` is the TFTP error code we answered with.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FileRefused(TftpError, PermissionError):
    """A file provider refuses a name; the server answers with ``code`` (1 or 2)."""

    def __init__(self, reason: str, code: int = 2) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
