"""The one Trio loop that drives a transfer machine over one UDP socket (server and client).

Uses a plain non-blocking socket with ``trio.lowlevel.wait_readable``: a datagram that is
already queued is read without a trip through the scheduler, which matters when thousands
of transfers share one event loop. Every few datagrams the loop yields to stay fair.
"""

from __future__ import annotations

import math
import socket

import trio

from .transfer import Address, Receiver, Sender

__all__ = ["drive", "open_udp_socket"]

_RECV_SIZE = 65536 + 4
_YIELD_EVERY = 8


def open_udp_socket(host: str, port: int = 0, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port); the family follows ``host``.

    ``reuse_port`` sets SO_REUSEPORT, so several worker processes can share one port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def send_all(sock: socket.socket, datagrams: list[tuple[bytes, Address]]) -> None:
    for data, addr in datagrams:
        while True:
            try:
                sock.sendto(data, addr)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)


async def drive(sock: socket.socket, machine: Sender | Receiver) -> None:
    """Run ``machine`` (already started) until it is done; OSError from the socket escapes."""
    clock = trio.current_time
    await send_all(sock, machine.datagrams_to_send())
    handled = 0
    while not machine.done:
        try:
            data, addr = sock.recvfrom(_RECV_SIZE)
        except BlockingIOError:
            deadline = machine.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await trio.lowlevel.wait_readable(sock)
                continue
            machine.handle_timer(clock())
        else:
            machine.receive_datagram(data, addr, clock())
            handled += 1
            if handled % _YIELD_EVERY == 0:
                await trio.lowlevel.checkpoint()
        out = machine.datagrams_to_send()
        if out:
            await send_all(sock, out)
    await send_all(sock, machine.datagrams_to_send())
