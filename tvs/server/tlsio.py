"""A non-blocking standard-library TLS socket driven by Trio's readiness waits.

``trio.SSLStream`` pumps every TLS record through memory BIOs in Python; for a server whose
whole job is one handshake and two small records per connection that is most of its CPU. Here
OpenSSL reads and writes the socket itself and Python only waits (``wait_readable`` /
``wait_writable``) when OpenSSL asks to. Alerts on a failed handshake reach the peer because
OpenSSL writes them directly. Every wait is a Trio checkpoint, so deadlines and cancellation
work as usual. Used by the TVS server only.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

import trio

__all__ = ["TlsConnection"]

T = TypeVar("T")


class TlsConnection:
    """One accepted TCP connection wrapped in TLS (server side)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.handshake_done = False

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        while True:
            try:
                return fn(*args)
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(self.tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(self.tls)

    async def do_handshake(self) -> None:
        """Raises ``ssl.SSLError`` / ``OSError`` when the handshake fails."""
        await self._io(self.tls.do_handshake)
        self.handshake_done = True

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes``; ``b""`` at end of stream (clean or not)."""
        return await self._io(self.tls.recv, max_bytes)

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = await self._io(self.tls.send, view)
            view = view[sent:]

    def cipher(self) -> str | None:
        c = self.tls.cipher()
        return c[0] if c else None

    def version(self) -> str | None:
        return self.tls.version()

    def peer_certificate(self) -> bytes | None:
        return self.tls.getpeercert(binary_form=True)

    async def linger_close(self, seconds: float) -> None:
        """After a failed handshake: send FIN behind the alert OpenSSL wrote, then discard what
        the peer still sends (at most ``seconds``), so that closing does not turn into a reset
        that destroys the alert before the peer reads it."""
        try:
            self.tls.shutdown(socket.SHUT_WR)
            with trio.move_on_after(seconds):
                while True:
                    await trio.lowlevel.wait_readable(self.tls)
                    if not self.tls.recv(65536):
                        break
        except OSError:
            pass
        self.tls.close()

    def close(self) -> None:
        """Send close_notify when the session is up (without waiting for the peer's), then
        close the socket."""
        if self.handshake_done:
            with contextlib.suppress(OSError, ValueError):
                self.tls.unwrap()
        self.tls.close()
