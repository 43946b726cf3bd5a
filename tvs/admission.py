"""Admission control for any listener (TLS or plain TCP): who gets a connection slot, and who
loses one when the listener is full.

Owns the defence against clients that open connections and never finish a handshake (or never
send a request), as production TLS servers do it:

* a short deadline for the **first bytes** (:meth:`Admission.first_bytes`; a ClientHello, or
  an HTTP/TFTP request line): a silent connection is dropped long before the handshake timeout;
* at most ``max_handshakes_per_address`` **unfinished** connections per client address (a
  connection is unfinished from accept until the listener calls :meth:`Slot.established`,
  i.e. after its TLS handshake or first request); addresses in ``trusted_networks`` are exempt;
* when all ``max_connections`` slots are taken, the **oldest idle** unfinished connection is
  shed (cancelled) to make room: first those that sent nothing yet, then those still in their
  handshake. Established connections are never shed; if there is nothing to shed, the new
  connection is refused.

So a good client from another address gets through while an attacker holds connections.
Usage, for every accepted socket (one log line per refusal is the caller's)::

    try:
        slot = admission.admit(peer_ip)
    except AdmissionRefused as exc:            # exc.kind: "max-connections" | "per-address"
        log.warning("connection rejected", reason=exc.reason); sock.close(); continue
    nursery.start_soon(serve, sock, slot)

    async def serve(sock, slot):
        with slot:                              # releases the slot; cancelled when shed
            if not await admission.first_bytes(sock, slot): ...   # timed out: log, close
            ...handshake...; slot.established()
            ...request...
        if slot.shed: log.warning("connection shed", ...)

Pure bookkeeping plus one Trio wait; single-threaded (one Trio run per listener process).
:func:`serve_sockets` is the accept loop the listeners share (``trio.serve_listeners`` handing
over plain sockets, several per wake-up).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import attrs
import trio

__all__ = [
    "DEFAULT_FIRST_BYTES_TIMEOUT",
    "DEFAULT_MAX_HANDSHAKES_PER_ADDRESS",
    "Admission",
    "AdmissionLimits",
    "AdmissionRefused",
    "Network",
    "Slot",
    "add_admission_arguments",
    "limits_from_args",
    "parse_networks",
    "serve_sockets",
]

DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 256
"""Well above one lab fleet process's boot-storm concurrency (64 by default, split over its
workers), so a fleet and its clusters on one machine are never throttled."""
DEFAULT_FIRST_BYTES_TIMEOUT = 3.0
"""Seconds from accept to the first byte of the client (a phone sends its ClientHello at once)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    """CIDR strings (or a bare address) to networks; ``ValueError`` names the bad one."""
    out: list[Network] = []
    for v in values:
        if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
            out.append(v)
            continue
        try:
            out.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR): {v!r}") from None
    return tuple(out)


@attrs.frozen(kw_only=True)
class AdmissionLimits:
    max_connections: int = 1024
    """Connections served at once (established or not)."""
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    """Unfinished connections per client address (0: no per-address limit)."""
    trusted_networks: tuple[Network, ...] = attrs.field(default=(), converter=parse_networks)
    """Client networks exempt from the per-address limit (a NAT, a load balancer, a lab)."""
    first_bytes_timeout: float = DEFAULT_FIRST_BYTES_TIMEOUT


class AdmissionRefused(Exception):
    """A connection refused at accept; ``kind`` is a metrics label."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Slot:
    """One admitted connection. Use as a context manager around the connection's work: the
    slot is released on exit, and the work is cancelled if the slot is shed."""

    def __init__(self, admission: Admission, address: str, counted: bool) -> None:
        self._admission = admission
        self.address = address
        self.cancel_scope = trio.CancelScope()
        self.shed = False
        self.idle = True
        self.unfinished = True
        self.released = False
        self._counted = counted  # against the per-address limit

    def __enter__(self) -> Slot:
        self.cancel_scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.release()
        return bool(self.cancel_scope.__exit__(exc_type, exc, tb))

    def active(self) -> None:
        """The client sent its first bytes: no longer idle (shed after idle ones)."""
        if self.idle and not self.released:
            self.idle = False
            self._admission._progress(self)

    def established(self) -> None:
        """Handshake (or first request) done: no longer counted as unfinished, never shed."""
        if self.unfinished and not self.released:
            self._admission._finish(self)

    def release(self) -> None:
        if not self.released:
            self._admission._release(self)


def _ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Admission:
    """The slots of one listener (see the module docstring)."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits or AdmissionLimits()
        self.active = 0
        self.shed_total = 0
        self.refused_total = 0
        self._per_address: dict[str, int] = {}
        self._idle: OrderedDict[Slot, None] = OrderedDict()
        self._handshaking: OrderedDict[Slot, None] = OrderedDict()
        self._trusted_cache: dict[str, bool] = {}

    def trusted(self, address: str) -> bool:
        cached = self._trusted_cache.get(address)
        if cached is None:
            ip = _ip_of(address)
            cached = ip is not None and any(
                ip.version == n.version and ip in n for n in self.limits.trusted_networks
            )
            if len(self._trusted_cache) > 4096:
                self._trusted_cache.clear()
            self._trusted_cache[address] = cached
        return cached

    def unfinished(self, address: str) -> int:
        """Unfinished connections counted against ``address``."""
        return self._per_address.get(address, 0)

    def admit(self, address: str) -> Slot:
        """A slot for a new connection from ``address`` (an IP, no port); raises
        :class:`AdmissionRefused`. May shed the oldest idle connection to make room."""
        lim = self.limits
        counted = lim.max_handshakes_per_address > 0 and not self.trusted(address)
        if counted and self._per_address.get(address, 0) >= lim.max_handshakes_per_address:
            self.refused_total += 1
            raise AdmissionRefused(
                "per-address",
                f"{lim.max_handshakes_per_address} unfinished handshakes from {address}",
            )
        if self.active >= lim.max_connections and not self._shed_one():
            self.refused_total += 1
            raise AdmissionRefused("max-connections", f"max connections ({lim.max_connections})")
        slot = Slot(self, address, counted)
        self.active += 1
        if counted:
            self._per_address[address] = self._per_address.get(address, 0) + 1
        self._idle[slot] = None
        return slot

    def _shed_one(self) -> bool:
        for queue in (self._idle, self._handshaking):
            if queue:
                victim, _ = queue.popitem(last=False)
                victim.shed = True
                self.shed_total += 1
                victim.cancel_scope.cancel()
                self._release(victim)
                return True
        return False

    def _progress(self, slot: Slot) -> None:
        if slot in self._idle:
            del self._idle[slot]
            self._handshaking[slot] = None

    def _finish(self, slot: Slot) -> None:
        slot.unfinished = False
        self._idle.pop(slot, None)
        self._handshaking.pop(slot, None)
        if slot._counted:
            left = self._per_address[slot.address] - 1
            if left:
                self._per_address[slot.address] = left
            else:
                del self._per_address[slot.address]

    def _release(self, slot: Slot) -> None:
        if slot.unfinished:
            self._finish(slot)
        slot.released = True
        self.active -= 1

    async def first_bytes(self, sock: socket.socket | trio.socket.SocketType, slot: Slot) -> bool:
        """Wait (at most ``first_bytes_timeout``) until ``sock`` has something to read (data or
        EOF). False on timeout. Marks the slot active. A client whose first bytes are already
        here (the usual case) passes without a trip through the event loop."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if isinstance(sock, socket.socket) and _readable_now(sock):
            slot.active()
            return True
        with trio.move_on_after(self.limits.first_bytes_timeout):
            await trio.lowlevel.wait_readable(sock)
            slot.active()
            return True
        return False


def _readable_now(sock: socket.socket) -> bool:
    """Whether a read would not block (data, end of stream or an error), without reading."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset: readable, the reader finds out
    return True


def add_admission_arguments(parser: Any) -> None:
    """The admission options every listener command shares: ``--max-handshakes-per-address``,
    ``--trusted-networks``, ``--first-bytes-timeout`` (read back with :func:`limits_from_args`)."""
    parser.add_argument(
        "--max-handshakes-per-address",
        type=int,
        default=DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
        metavar="N",
        help="unfinished handshakes per client address; 0: no limit "
        f"({DEFAULT_MAX_HANDSHAKES_PER_ADDRESS})",
    )
    parser.add_argument(
        "--trusted-networks",
        nargs="+",
        type=_network_arg,
        default=[],
        metavar="CIDR",
        help="client networks exempt from the per-address limit",
    )
    parser.add_argument(
        "--first-bytes-timeout",
        type=float,
        default=DEFAULT_FIRST_BYTES_TIMEOUT,
        metavar="S",
        help=f"seconds from accept to the client's first byte ({DEFAULT_FIRST_BYTES_TIMEOUT})",
    )


def limits_from_args(args: Any, *, max_connections: int = 1024) -> AdmissionLimits:
    return AdmissionLimits(
        max_connections=max_connections,
        max_handshakes_per_address=args.max_handshakes_per_address,
        trusted_networks=tuple(args.trusted_networks),
        first_bytes_timeout=args.first_bytes_timeout,
    )


def _network_arg(text: str) -> Network:
    import argparse

    try:
        return parse_networks([text])[0]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_ACCEPT_BATCH = 64
"""Connections accepted per wake-up of a listener."""
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY = 0.1
_ACCEPT_IGNORED_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
        "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET",
    )
    if hasattr(errno, name)
)  # fmt: skip
"""What ``trio.SocketListener.accept`` ignores (the client gave up before we accepted)."""
_TRIO_LOG = logging.getLogger("trio.serve_listeners")

SocketHandler = Callable[[socket.socket, Any], Awaitable[None]]


async def serve_sockets(
    handler: SocketHandler,
    listeners: Sequence[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``trio.serve_listeners`` for listeners that work on the socket itself: each accepted
    connection is handed to ``handler(sock, peer_address)`` in its own task as a non-blocking
    socket with the options a ``trio.SocketStream`` sets (``TCP_NODELAY``, ``TCP_NOTSENT_LOWAT``
    16 KiB); the handler owns and closes it. Up to 64 connections are accepted per wake-up of a
    listener (one trip through the scheduler per batch, not per connection). Errors as trio:
    a full descriptor table is logged and retried after 100 ms, a client gone before the
    accept is skipped. Takes the listeners over; runs until cancelled."""
    socks = [socket.socket(fileno=listener.socket.detach()) for listener in listeners]
    try:
        async with trio.open_nursery() as nursery:
            for sock in socks:
                nursery.start_soon(_accept_loop, sock, handler, nursery)
            task_status.started()
    finally:
        for sock in socks:
            sock.close()


async def _accept_loop(
    listener: socket.socket, handler: SocketHandler, nursery: trio.Nursery
) -> None:
    while True:
        await trio.lowlevel.wait_readable(listener)
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _ACCEPT_IGNORED_ERRNOS:
                    continue
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                _TRIO_LOG.error(
                    "accept returned %s (%s); retrying in %s seconds",
                    errno.errorcode[exc.errno], os.strerror(exc.errno), _ACCEPT_RETRY,
                    exc_info=True,
                )  # fmt: skip
                await trio.sleep(_ACCEPT_RETRY)
                break
            _stream_options(sock)
            nursery.start_soon(handler, sock, address)


def _stream_options(sock: socket.socket) -> None:
    """What ``trio.SocketStream`` does to a new TCP socket (options it cannot set are left)."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_NOTSENT_LOWAT"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 2**14)
