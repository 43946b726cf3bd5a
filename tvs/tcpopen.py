"""Opening a TCP connection from a client (phone, TVS client, HTTP client) cheaply.

Owns :func:`open_tcp`: ``trio.open_tcp_stream`` without its name resolution and "happy
eyeballs" machinery when the host is an IP address (what every lab address is), which halves
the CPU of a loopback connect; a host name goes through ``trio.open_tcp_stream`` as before.
The connection is the same (a ``trio.SocketStream``, ``TCP_NODELAY`` on), and so is a failure
(``OSError("all attempts to connect to HOST:PORT failed")`` caused by the socket error).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket

import trio

__all__ = ["open_tcp"]


@functools.lru_cache(maxsize=1024)
def _ip_family(host: str) -> int | None:
    """The address family of an IP literal, None for a host name (cached: a fleet connects to
    the same few addresses thousands of times)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def open_tcp(host: str, port: int, *, local_address: str | None = None) -> trio.SocketStream:
    """A TCP stream to ``host:port`` (optionally from ``local_address``)."""
    family = _ip_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port, local_address=local_address)
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        if local_address is not None:
            bind_no_port = getattr(trio.socket, "IP_BIND_ADDRESS_NO_PORT", None)
            if bind_no_port is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(trio.socket.IPPROTO_IP, bind_no_port, 1)
            await sock.bind((local_address, 0))
        await sock.connect((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise OSError(f"all attempts to connect to {where} failed") from exc
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)
