"""The Trio TFTP server: read-only, one ephemeral socket per transfer (RFC 1350).

Only I/O: the listening socket, the call to the file provider, and one task per transfer
that drives a ``transfer.Sender``. What to do with each request and how to set up a transfer
are pure decisions in ``plan.py``; the packet rules live in ``protocol.py`` and
``transfer.py``; where the bytes come from is the provider's business (``providers.py``):
every transfer of one file version holds a reference to the provider's one buffer.

Each transfer socket is bound to the address the server listens on, so many servers on
different loopback addresses (127.0.1.1, 127.0.2.1, ...) can share one process.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import attrs
import structlog
import trio

from ._io import drive, open_udp_socket, send_all
from ._reactor import Reactor
from .errors import FileRefused
from .plan import (
    Accept,
    Drop,
    DropWhy,
    Refuse,
    RefuseWhy,
    ServerCounters,
    ServerLimits,
    admit,
    plan_transfer,
    public_error,
)
from .protocol import MAX_BLKSIZE, ErrorCode, ReadRequest
from .providers import FileProvider
from .transfer import TransferState

__all__ = ["TftpServer", "TftpServerStats", "serve_tftp"]

log = structlog.get_logger("tvs.tftp")

Address = tuple[Any, ...]


@attrs.frozen
class TftpServerStats:
    """Counters since the server started (``TftpServer.statistics()``)."""

    transfers_started: int = 0
    transfers_completed: int = 0
    transfers_failed: int = 0
    active_transfers: int = 0
    requests_refused: int = 0  # answered with an ERROR: not found, denied, WRQ, bad mode
    busy_dropped: int = 0  # requests dropped at the concurrency limit
    duplicate_requests: int = 0  # a retransmitted RRQ for a transfer already running
    malformed_dropped: int = 0
    unknown_tid: int = 0
    retransmits: int = 0
    bytes_sent: int = 0


class TftpServer:
    """A read-only TFTP server over ``provider``; run ``serve`` with ``nursery.start``."""

    def __init__(
        self,
        provider: FileProvider,
        *,
        max_transfers: int = 1024,
        timeout: float = 1.0,
        retries: int = 5,
        max_blksize: int = MAX_BLKSIZE,
        max_windowsize: int = 64,
    ):
        self.provider = provider
        self.limits = ServerLimits(max_transfers, timeout, retries, max_blksize, max_windowsize)
        self.counters = ServerCounters()
        self._active: set[Address] = set()
        self._host = "127.0.0.1"
        self._reactor: Any = None

    @property
    def max_transfers(self) -> int:
        return self.limits.max_transfers

    def statistics(self) -> TftpServerStats:
        return TftpServerStats(**attrs.asdict(self.counters), active_transfers=len(self._active))

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 6969,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on (host, port) until cancelled; ``task_status`` gets the bound address.

        ``reuse_port`` lets several processes serve one port (SO_REUSEPORT: the kernel spreads
        requests over them by client address, so a retransmitted request finds its worker).
        """
        sock = open_udp_socket(host, port, reuse_port=reuse_port)
        reactor = Reactor() if Reactor is not None else None
        try:
            bound = sock.getsockname()
            self._host = bound[0]
            log.info("tftp.listening", host=bound[0], port=bound[1], provider=repr(self.provider))
            async with trio.open_nursery() as nursery:
                if reactor is not None:
                    self._reactor = reactor
                    nursery.start_soon(reactor.run)
                task_status.started((bound[0], bound[1]))
                handled = 0
                while True:
                    try:
                        data, addr = sock.recvfrom(65536)
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(sock)
                        continue
                    except OSError as exc:  # e.g. ICMP errors surfacing on some systems
                        log.debug("tftp.recv_error", error=str(exc))
                        await trio.lowlevel.checkpoint()
                        continue
                    await self._on_request(sock, nursery, data, addr)
                    handled += 1
                    if handled % 16 == 0:  # a flood of requests must not starve the transfers
                        await trio.lowlevel.checkpoint()
        finally:
            sock.close()
            if reactor is not None:
                reactor.close()

    async def _on_request(
        self, sock: socket.socket, nursery: trio.Nursery, data: bytes, addr: Address
    ) -> None:
        decision = admit(
            data, addr, active=self._active, n_active=len(self._active), limits=self.limits
        )
        if isinstance(decision, Accept):
            self._active.add(addr)
            nursery.start_soon(self._transfer, sock, decision.request, addr)
            return
        await self._reject(sock, addr, decision)

    async def _reject(self, sock: socket.socket, addr: Address, decision: Refuse | Drop) -> None:
        self.counters.count(decision)
        client = f"{addr[0]}:{addr[1]}"
        if isinstance(decision, Refuse):
            log.warning(
                "tftp.refused",
                client=client,
                file=decision.filename,
                code=decision.code,
                reason=decision.reason,
            )
            await _answer(sock, addr, decision.reply)
        elif decision.why is DropWhy.MALFORMED:
            log.warning("tftp.malformed", client=client, reason=decision.reason)
            if decision.reply is not None:
                await _answer(sock, addr, decision.reply)
        elif decision.why is DropWhy.BUSY:
            log.warning(
                "tftp.busy", client=client, file=decision.filename, active=len(self._active)
            )

    async def _transfer(self, listen: socket.socket, request: ReadRequest, addr: Address) -> None:
        try:
            await self._run_transfer(listen, request, addr)
        except Exception:  # a bug or a provider crash must not take the server down
            self.counters.transfers_failed += 1
            log.exception(
                "tftp.transfer_crashed", client=f"{addr[0]}:{addr[1]}", file=request.filename
            )
        finally:
            self._active.discard(addr)

    async def _run_transfer(
        self, listen: socket.socket, request: ReadRequest, addr: Address
    ) -> None:
        name = request.filename
        client = f"{addr[0]}:{addr[1]}"
        try:
            version = await self.provider.get(name, (addr[0], addr[1]))
        except FileRefused as exc:
            refusal = public_error(RefuseWhy.DENIED, exc.code, exc.reason, name)
            await self._reject(listen, addr, refusal)
            return
        except Exception as exc:
            self.counters.transfers_failed += 1
            log.exception("tftp.transfer_crashed", client=client, file=name)
            refusal = public_error(
                RefuseWhy.PROVIDER, ErrorCode.NOT_DEFINED, f"provider failed: {exc}", name
            )
            await self._reject(listen, addr, refusal)
            return
        if version is None:
            refusal = public_error(
                RefuseWhy.NOT_FOUND, ErrorCode.FILE_NOT_FOUND, "no such file", name
            )
            await self._reject(listen, addr, refusal)
            return
        try:
            sock = open_udp_socket(self._host, 0)
        except OSError as exc:
            self.counters.busy_dropped += 1
            level = log.warning if exc.errno in (errno.EMFILE, errno.ENFILE) else log.error
            level("tftp.no_socket", client=client, file=name, error=str(exc))
            return
        self.counters.transfers_started += 1
        started = time.monotonic()
        machine = plan_transfer(request, version, addr, self.limits, trio.current_time())
        with sock:
            try:
                if self._reactor is not None:
                    await self._reactor.run_transfer(sock, machine)
                else:
                    await drive(sock, machine)
            except OSError as exc:
                machine.abort(f"socket error: {exc}")
                log.warning("tftp.socket_error", client=client, error=str(exc))
        self.counters.count_transfer(machine)
        ok = machine.state is TransferState.COMPLETE
        log.info(
            "tftp.transfer",
            client=client,
            file=name,
            outcome="complete" if ok else "failed",
            error=None if machine.error is None else str(machine.error),
            bytes=machine.bytes_acked,
            size=machine.size,
            blksize=machine.blksize,
            windowsize=machine.windowsize,
            duration=round(time.monotonic() - started, 4),
            retransmits=machine.retransmits,
        )


async def _answer(sock: socket.socket, addr: Address, packet: bytes) -> None:
    try:
        await send_all(sock, [(packet, addr)])
    except OSError as exc:
        log.debug("tftp.send_error", client=f"{addr[0]}:{addr[1]}", error=str(exc))


async def serve_tftp(
    provider: FileProvider,
    host: str = "127.0.0.1",
    port: int = 6969,
    *,
    max_transfers: int = 1024,
    timeout: float = 1.0,
    retries: int = 5,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``provider`` on (host, port) until cancelled; start it with ``nursery.start``,
    which returns the bound (host, port) (port 0 picks a free one). Use ``TftpServer``
    directly to read ``statistics()``."""
    server = TftpServer(provider, max_transfers=max_transfers, timeout=timeout, retries=retries)
    await server.serve(host, port, task_status=task_status)
