"""A fault-injecting UDP proxy for tests: drops, duplicates and reorders datagrams (seeded).

It mirrors the TFTP port dance without parsing TFTP: a client's datagrams to the proxy go to
the target from an upstream socket of that client's own; each new source port the target
answers from (a transfer ID) gets a downstream socket of its own towards the client, so the
client sees a distinct TID just as it would without the proxy. Faults apply in both
directions. Loopback only; everything stops when the proxy's task is cancelled.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import trio

Address = tuple[Any, ...]


@attrs.define
class ProxyStats:
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0


class UdpProxy:
    """Forward to ``target``; ``loss`` / ``duplicate`` / ``reorder`` are shares in 0..1."""

    def __init__(
        self,
        target: Address,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
        reorder_delay: float = 0.02,
    ):
        self.target = target
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self.reorder_delay = reorder_delay
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._upstream: dict[Address, trio.socket.SocketType] = {}
        self._downstream: dict[tuple[Address, Address], trio.socket.SocketType] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED):
        front = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await front.bind(("127.0.0.1", 0))
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(front.getsockname())
                while True:
                    data, client = await front.recvfrom(65536)
                    upstream = await self._upstream_for(client)
                    await self._emit(upstream, data, self.target)
        finally:
            front.close()
            for sock in [*self._upstream.values(), *self._downstream.values()]:
                sock.close()

    async def _new_socket(self) -> trio.socket.SocketType:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        return sock

    async def _upstream_for(self, client: Address) -> trio.socket.SocketType:
        sock = self._upstream.get(client)
        if sock is None:
            sock = self._upstream[client] = await self._new_socket()
            assert self._nursery is not None
            self._nursery.start_soon(self._pump_up, sock, client)
        return sock

    async def _pump_up(self, upstream: trio.socket.SocketType, client: Address) -> None:
        """Target -> client, each target port through its own downstream socket."""
        while True:
            data, server = await upstream.recvfrom(65536)
            key = (client, server)
            down = self._downstream.get(key)
            if down is None:
                down = self._downstream[key] = await self._new_socket()
                assert self._nursery is not None
                self._nursery.start_soon(self._pump_down, down, upstream, client, server)
            await self._emit(down, data, client)

    async def _pump_down(
        self,
        down: trio.socket.SocketType,
        upstream: trio.socket.SocketType,
        client: Address,
        server: Address,
    ) -> None:
        """Client -> that target port; datagrams from anyone else are ignored."""
        while True:
            data, source = await down.recvfrom(65536)
            if source == client:
                await self._emit(upstream, data, server)

    async def _emit(self, sock: trio.socket.SocketType, data: bytes, addr: Address) -> None:
        rng = self._rng
        if rng.random() < self.loss:
            self.stats.dropped += 1
            return
        copies = 1
        if rng.random() < self.duplicate:
            copies = 2
            self.stats.duplicated += 1
        if rng.random() < self.reorder:
            self.stats.reordered += 1
            delay = self.reorder_delay * (0.5 + rng.random())
            assert self._nursery is not None
            self._nursery.start_soon(self._send_later, sock, data, addr, copies, delay)
            return
        for _ in range(copies):
            self.stats.forwarded += 1
            await sock.sendto(data, addr)

    async def _send_later(
        self, sock: trio.socket.SocketType, data: bytes, addr: Address, copies: int, delay: float
    ) -> None:
        await trio.sleep(delay)
        for _ in range(copies):
            self.stats.forwarded += 1
            try:
                await sock.sendto(data, addr)
            except OSError:
                return
