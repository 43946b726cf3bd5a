"""Drive many transfer machines, each on its own UDP socket, from one Trio task.

RFC 1350 wants one socket per transfer. Waking one Trio task per datagram costs more than
the protocol work itself, so the server registers its transfer sockets in a private epoll
set, waits for that set with ``trio.lowlevel.wait_readable`` and handles every ready socket
in one pass; timers sit in one heap. Where ``select.epoll`` is missing, ``Reactor`` is None
and the server falls back to one task per transfer (``_io.drive``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import select
import socket
from typing import Any

import trio

from .transfer import Sender

__all__ = ["Reactor"]

_RECV_SIZE = 65536 + 4
_BUSY_PASSES = 4  # passes over ready sockets before yielding to other tasks


class _Entry:
    __slots__ = ("done", "heap_at", "machine", "sock")

    def __init__(self, sock: socket.socket, machine: Sender):
        self.sock = sock
        self.machine = machine
        self.done = trio.Event()
        self.heap_at = math.inf


class _EpollReactor:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._entries: dict[int, _Entry] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._wait_scope: trio.CancelScope | None = None
        self.send_dropped = 0

    def close(self) -> None:
        self._epoll.close()

    async def run_transfer(self, sock: socket.socket, machine: Sender) -> None:
        """Drive ``machine`` (already started) over ``sock`` until it is done."""
        entry = _Entry(sock, machine)
        fd = sock.fileno()
        self._entries[fd] = entry
        self._epoll.register(fd, select.EPOLLIN)
        try:
            self._flush(entry)
            if machine.done:
                return
            self._schedule(entry)
            await entry.done.wait()
        finally:
            entry.done.set()  # a stale heap entry must not touch the socket any more
            if self._entries.pop(fd, None) is not None:
                self._epoll.unregister(fd)

    def _flush(self, entry: _Entry) -> None:
        sock = entry.sock
        for data, addr in entry.machine.datagrams_to_send():
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                self.send_dropped += 1  # like a lost datagram: the timer will resend
            except OSError:
                self.send_dropped += 1

    def _schedule(self, entry: _Entry) -> None:
        at = entry.machine.get_timer()
        if at is None or at >= entry.heap_at:
            return  # the heap already holds an earlier (or equal) wake-up for it
        entry.heap_at = at
        heapq.heappush(self._heap, (at, next(self._seq), entry))
        scope = self._wait_scope
        if scope is not None and at < scope.deadline:
            scope.deadline = at

    def _finish(self, entry: _Entry) -> None:
        fd = entry.sock.fileno()
        if self._entries.pop(fd, None) is not None:
            self._epoll.unregister(fd)
        entry.done.set()

    def _on_readable(self, entry: _Entry, now: float) -> None:
        # one datagram per readiness report: epoll is level-triggered, so a second queued
        # datagram is reported on the next pass (and lockstep peers rarely queue two)
        machine, sock = entry.machine, entry.sock
        try:
            data, addr = sock.recvfrom(_RECV_SIZE)
        except OSError:  # BlockingIOError included: a spurious report
            return
        machine.receive_datagram(data, addr, now)
        for packet, to in machine.datagrams_to_send():  # _flush, inlined on the hot path
            try:
                sock.sendto(packet, to)
            except OSError:
                self.send_dropped += 1
        if machine.done:
            self._finish(entry)

    def _on_timers(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, entry = heapq.heappop(heap)
            entry.heap_at = math.inf
            machine = entry.machine
            if entry.done.is_set():
                continue
            at = machine.get_timer()
            if at is not None and at <= now:
                machine.handle_timer(now)
                self._flush(entry)
                if machine.done:
                    self._finish(entry)
                    continue
            self._schedule(entry)

    async def run(self) -> None:
        """The reactor; run it in the server's nursery until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer_loop)
            await self._io_loop()

    async def _io_loop(self) -> None:
        # The hot path: no cancel scope per wait (timers have their own task), and a busy
        # loop yields every few passes instead of after each one.
        epoll, entries = self._epoll, self._entries
        clock = trio.current_time
        busy = 0
        while True:
            events = epoll.poll(0)
            if not events:
                busy = 0
                await trio.lowlevel.wait_readable(epoll.fileno())
                continue
            now = clock()
            for fd, _ in events:
                entry = entries.get(fd)
                if entry is not None:
                    self._on_readable(entry, now)
            busy += 1
            if busy >= _BUSY_PASSES:
                busy = 0
                await trio.lowlevel.checkpoint()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._wait_scope = scope
                await trio.sleep_forever()
            self._wait_scope = None
            self._on_timers(trio.current_time())


Reactor: Any = _EpollReactor if hasattr(select, "epoll") else None
