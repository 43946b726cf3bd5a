"""The Trio TFTP client: ``tftp_get`` fetches one file over its own UDP socket.

A thin adapter around ``transfer.Receiver``: it resolves the server, binds a socket, drives
the machine, and turns its outcome into bytes or a ``TftpError``. The whole wait is bounded
by ``timeout * (retries + 1)`` of silence from the server.
"""

from __future__ import annotations

import ipaddress
import socket

import trio

from ._io import drive, open_udp_socket
from .protocol import MAX_BLKSIZE, MIN_BLKSIZE
from .transfer import Receiver

__all__ = ["tftp_get"]


async def _resolve(host: str, port: int) -> tuple[str, int]:
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        sockaddr = infos[0][4]
        return str(sockaddr[0]), int(sockaddr[1])


def _default_bind(server_ip: str) -> str:
    ip = ipaddress.ip_address(server_ip)
    if ip.version == 6:
        return "::1" if ip.is_loopback else "::"
    return "127.0.0.1" if ip.is_loopback else "0.0.0.0"


async def tftp_get(
    host: str,
    port: int,
    filename: str,
    *,
    blksize: int | None = None,
    timeout: float = 1.0,
    retries: int = 5,
    windowsize: int | None = None,
    tsize: bool = False,
    mode: str = "octet",
    max_size: int = 64 * 1024 * 1024,
    bind: str | None = None,
) -> bytes:
    """Fetch ``filename`` from the TFTP server at (host, port) and return its bytes.

    ``blksize`` / ``windowsize`` / ``tsize`` request RFC 2348 / 7440 / 2349 options (a server
    may ignore them). ``bind`` is the local address to send from (default: loopback when the
    server is on loopback), so a fleet can present many client addresses.
    Raises ``TftpTimeout`` when the server stays silent for ``retries`` retransmissions,
    ``TftpRemoteError`` (``code`` 1: file not found) when it answers with an error, and
    ``TftpProtocolError`` when its answer breaks the rules.
    """
    options: dict[str, str] = {}
    if blksize is not None:
        if not MIN_BLKSIZE <= blksize <= MAX_BLKSIZE:
            raise ValueError(f"blksize {blksize} outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
        options["blksize"] = str(blksize)
    if tsize:
        options["tsize"] = "0"
    if windowsize is not None:
        if not 1 <= windowsize <= 65535:
            raise ValueError(f"windowsize {windowsize} outside 1..65535")
        options["windowsize"] = str(windowsize)
    server = await _resolve(host, port)
    sock = open_udp_socket(bind or _default_bind(server[0]), 0)
    with sock:
        machine = Receiver(
            server,
            filename,
            mode=mode,
            options=options,
            timeout=timeout,
            retries=retries,
            max_size=max_size,
            now=trio.current_time(),
        )
        machine.start(trio.current_time())
        await drive(sock, machine)
    if machine.error is not None:
        raise machine.error
    return machine.data
