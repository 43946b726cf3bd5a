"""TFTP (RFC 1350 with options): packet codec and transfer machines (pure), Trio server and
client, and the file providers (the one contract the TFTP and HTTP servers read from)."""

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
from .providers import CallableProvider, DirectoryProvider, FileProvider, FileVersion, check_name
from .server import TftpServer, TftpServerStats, serve_tftp

__all__ = [
    "CallableProvider",
    "DirectoryProvider",
    "ErrorCode",
    "FileProvider",
    "FileRefused",
    "FileVersion",
    "MalformedPacket",
    "TftpError",
    "TftpProtocolError",
    "TftpRemoteError",
    "TftpServer",
    "TftpServerStats",
    "TftpTimeout",
    "check_name",
    "serve_tftp",
    "tftp_get",
]
