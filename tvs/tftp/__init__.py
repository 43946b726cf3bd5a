"""TFTP (RFC 1350 with options): packet codec and transfer machines (pure), Trio server and
client, and the file providers the server reads from."""

from .client import tftp_get
from .errors import (
    FileRefused,
    MalformedPacket,
    TftpError,
    TftpProtocolError,
    TftpRemoteError,
    TftpTimeout,
)
from .protocol import ErrorCode
from .providers import CallableProvider, DirectoryProvider, FileProvider
from .server import TftpServer, TftpServerStats, serve_tftp

__all__ = [
    "CallableProvider",
    "DirectoryProvider",
    "ErrorCode",
    "FileProvider",
    "FileRefused",
    "MalformedPacket",
    "TftpError",
    "TftpProtocolError",
    "TftpRemoteError",
    "TftpServer",
    "TftpServerStats",
    "TftpTimeout",
    "serve_tftp",
    "tftp_get",
]
