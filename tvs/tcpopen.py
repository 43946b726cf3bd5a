"""A client's TCP connection (phone, TVS client, HTTP client), made and used cheaply.

Owns :func:`connect`: a connected, non-blocking plain ``socket.socket`` (``TCP_NODELAY`` on),
without ``trio.open_tcp_stream``'s name resolution and "happy eyeballs" machinery when the
host is an IP address (what every lab address is), which halves the CPU of a loopback connect;
a host name goes through ``trio.open_tcp_stream`` as before. A failure is the same as there
(``OSError("all attempts to connect to HOST:PORT failed")`` caused by the socket error).
:func:`send_all` and :func:`receive_some` move bytes on such a socket at once when it is ready
and wait through Trio only when it is not: a fleet's clients make thousands of short
connections, and Trio's socket wrappers cost a trip through the event loop on every call.
Every call is a cancellation point. :func:`open_tcp` wraps the socket in a
``trio.SocketStream`` for callers that want one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import socket

import trio

__all__ = ["connect", "open_tcp", "receive_some", "send_all"]

_BIND_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", None)


@functools.lru_cache(maxsize=1024)
def _ip_family(host: str) -> int | None:
    """The address family of an IP literal, None for a host name (cached: a fleet connects to
    the same few addresses thousands of times)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def connect(host: str, port: int, *, local_address: str | None = None) -> socket.socket:
    """A connected non-blocking socket to ``host:port`` (optionally from ``local_address``);
    the caller closes it. Raises ``OSError`` (see the module docstring)."""
    family = _ip_family(host)
    if family is None:
        stream = await trio.open_tcp_stream(host, port, local_address=local_address)
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        return sock
    sock = socket.socket(family, socket.SOCK_STREAM)
    where = _where(host, port)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if local_address is not None:
            if _BIND_NO_PORT is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, _BIND_NO_PORT, 1)
            sock.bind((local_address, 0))
        await trio.lowlevel.checkpoint_if_cancelled()
        err = sock.connect_ex((host, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError as exc:
        sock.close()
        raise OSError(f"all attempts to connect to {where} failed") from exc
    except BaseException:
        sock.close()
        raise
    if err:
        sock.close()
        cause = OSError(err, os.strerror(err))
        raise OSError(f"all attempts to connect to {where} failed") from cause
    return sock


async def open_tcp(host: str, port: int, *, local_address: str | None = None) -> trio.SocketStream:
    """A TCP stream to ``host:port`` (optionally from ``local_address``)."""
    sock = await connect(host, port, local_address=local_address)
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def send_all(sock: socket.socket, data: bytes | memoryview) -> None:
    """Send all of ``data``. ``OSError`` when the connection broke."""
    await trio.lowlevel.checkpoint_if_cancelled()
    view = memoryview(data)
    sent = 0
    while sent < len(view):
        try:
            sent += sock.send(view[sent:])
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


async def receive_some(sock: socket.socket, max_bytes: int = 65536) -> bytes:
    """Up to ``max_bytes``; ``b""`` at end of stream. ``OSError`` when the connection broke."""
    await trio.lowlevel.checkpoint_if_cancelled()
    while True:
        try:
            return sock.recv(max_bytes)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
