"""The TVS server on Trio: TLS on 2445, one request and one response per connection.

A thin adapter around :func:`tvs.server.handler.handle_request`, on the shared server TLS
adapter (:mod:`tvs.tlsserver`) and admission control (:mod:`tvs.admission`). Accepting never
waits on a client: each connection gets its own task with deadlines for its first bytes, its
handshake and its request; unfinished handshakes are limited per client address, and when
``max_connections`` are in use the oldest idle handshake is shed (or, none left, the new
connection is closed at accept and counted). The decoder is fed incrementally. Any bad input
ends in one log line with the reason and a closed connection.

The certificate cache (with the current CTL's records behind it, ``ctl_source``) and the TLS
context are snapshots, rebuilt only by :meth:`TvsServer.reload`: ``SIGHUP``/``tvs reload`` in
``refresh="restart"`` mode, like CUCM's TVS cache; in ``"notify"`` mode (or ``watch``) also by
itself ``refresh_delay`` seconds after the store or the CTL changed.
"""

from __future__ import annotations

import errno
import hashlib
import signal
import socket as _socket
from collections.abc import Callable
from pathlib import Path

import structlog
import trio
from OpenSSL import SSL

from ..admission import Admission, AdmissionRefused, Slot
from ..certs import Certificate, CertificateError, load_certificates
from ..store import CertificateCache, StoreError, TrustStore
from ..tlsserver import ServerTls, TlsStream, server_tls
from ..tlv import TlvError, parse_file
from .config import TvsServerConfig
from .connection import Connection, Limits
from .observer import NullObserver, ServerObserver

__all__ = ["TvsServer", "serve_tvs", "serve_until_signalled"]

log = structlog.get_logger("tvs.server")

_MEMO_SIZE = 4096
_ACCEPT_BATCH = 64
"""Connections accepted per wake-up before letting other tasks run."""


class TvsServer:
    """One TVS listener. ``await nursery.start(server.serve)`` returns ``(host, port)``."""

    def __init__(
        self,
        config: TvsServerConfig,
        *,
        observer: ServerObserver | None = None,
        ctl_source: Callable[[], bytes | None] | None = None,
    ) -> None:
        self.config = config
        self._ctl_source = ctl_source or (_file_reader(config.ctl) if config.ctl else None)
        """Where the current CTL comes from (the emulated cluster's files, or ``--ctl FILE``)."""
        self._ctl_digest = b""
        self.observer: ServerObserver = observer or NullObserver()
        self.store = TrustStore.open(config.store, create=True)
        self.cache = CertificateCache.empty()
        self.address: tuple[str, int] | None = None
        self.attempted = 0
        self.accepted = 0
        self.rejected = 0
        self.admission = Admission(config.admission)
        self._tls: ServerTls | None = None
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._accept_scope: trio.CancelScope | None = None
        self._stop_requested = False
        self._subjects: dict[bytes, str] = {}
        self._limits = Limits(config.handshake_timeout, config.request_timeout, config.max_message)

    # --- cache ----------------------------------------------------------------------------
    def reload(self) -> int:
        """Re-read the store: new cache and TLS context for new connections. Returns the
        number of cache entries. On error the old cache stays and the error is raised."""
        signature = self.store.signature()
        cache = self.store.load_cache()
        for problem in self.store.problems:
            log.warning("store file skipped", reason=problem)
        ctl, self._ctl_digest = self._ctl_cache()
        cache = cache.with_fallback(ctl)
        cas = self.store.client_ca_certificates()
        if self.config.mic_ca is not None:
            cas += _read_pem_certs(self.config.mic_ca)
        self._tls = server_tls(
            self.config.cert,
            self.config.key,
            legacy=self.config.legacy_tls,
            client_auth=self.config.client_auth,
            client_cas=cas,
            keylog=self.config.keylog,
        )
        self.cache, self._signature = cache, signature
        log.info(
            "cache reloaded",
            entries=len(cache),
            ctl_entries=len(ctl) if ctl is not None else None,
            client_cas=len(cas),
        )
        self.observer.cache_reloaded(len(cache))
        return len(cache)

    def _ctl_cache(self) -> tuple[CertificateCache | None, bytes]:
        """The current CTL's records as a fallback cache, and the CTL's digest (b"": none)."""
        if self._ctl_source is None:
            return None, b""
        data = self._ctl_source()
        if not data:
            return None, b""
        digest = hashlib.sha256(data).digest()
        try:
            records = parse_file(data).records
        except TlvError as exc:
            log.error("CTL unreadable, not used", reason=str(exc))
            return None, digest
        pairs = [(r.role, r.cert) for r in records if r.cert is not None]
        return CertificateCache.from_trust_list(pairs), digest

    def _changed(self) -> bool:
        if self.store.signature() != self._signature:
            return True
        if self._ctl_source is None:
            return False
        data = self._ctl_source()
        return (hashlib.sha256(data).digest() if data else b"") != self._ctl_digest

    async def _watch_loop(self) -> None:
        """Notify mode: follow store and CTL changes ``notify_delay`` seconds after noticing."""
        delay = self.config.notify_delay
        while True:
            await trio.sleep(self.config.watch_interval)
            try:
                if not self._changed():
                    continue
                if delay > 0:
                    log.info("change notified", refresh_in=delay)
                    await trio.sleep(delay)
                self.reload()
            except (OSError, StoreError, CertificateError, SSL.Error, ValueError) as exc:
                log.error("reload failed", reason=str(exc))

    @property
    def active(self) -> int:
        """Connections being served."""
        return self.admission.active

    def _subject_of(self, der: bytes) -> str:
        """A client certificate's subject, CUCM style (memoised: phones come back)."""
        subject = self._subjects.get(der)
        if subject is None:
            try:
                subject = Certificate.from_der(der).subject
            except CertificateError:
                subject = "<unreadable certificate>"
            if len(self._subjects) >= _MEMO_SIZE:
                self._subjects.clear()
            self._subjects[der] = subject
        return subject

    # --- serving --------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Stop accepting; connections in flight finish (bounded by their deadlines)."""
        self._stop_requested = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()

    async def _listen(self) -> _socket.socket:
        cfg = self.config
        infos = await trio.socket.getaddrinfo(
            cfg.host, cfg.port, type=_socket.SOCK_STREAM, flags=_socket.AI_PASSIVE
        )
        family, type_, proto, _, sockaddr = infos[0]
        sock = _socket.socket(family, type_, proto)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            if cfg.reuse_port:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
            sock.listen(cfg.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until :meth:`request_shutdown` (then drain) or cancellation."""
        self.reload()
        listener = await self._listen()
        sockname = listener.getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        try:
            async with trio.open_nursery() as conns:
                with trio.CancelScope() as accept_scope:
                    self._accept_scope = accept_scope
                    if self._stop_requested:
                        accept_scope.cancel()
                    async with trio.open_nursery() as aux:
                        aux.start_soon(self._accept_loop, listener, conns)
                        if self.config.notify:
                            aux.start_soon(self._watch_loop)
                        log.info(
                            "server listening",
                            address=f"{self.address[0]}:{self.address[1]}",
                            client_auth=str(self.config.client_auth),
                            legacy_tls=self.config.legacy_tls,
                        )
                        task_status.started(self.address)
                listener.close()
                log.info("server stopping", in_flight=self.active)
                conns.cancel_scope.deadline = trio.current_time() + self.config.shutdown_grace
        finally:
            listener.close()
        log.info("server stopped", attempted=self.attempted, rejected=self.rejected)

    async def _accept_loop(self, listener: _socket.socket, conns: trio.Nursery) -> None:
        """Accept in this one task, never waiting on a client: each connection gets its task."""
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(_ACCEPT_BATCH):
                try:
                    sock, addr = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        log.error("accept failed", reason=exc.strerror)
                        await trio.sleep(0.1)
                        break
                    if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                        continue
                    raise
                self.attempted += 1
                peer = f"{addr[0]}:{addr[1]}"
                shed_before = self.admission.shed_total
                try:
                    slot = self.admission.admit(str(addr[0]))
                except AdmissionRefused as exc:
                    self.rejected += 1
                    log.warning("connection rejected", peer=peer, reason=exc.reason)
                    self.observer.connection_rejected(exc.kind)
                    sock.close()
                    continue
                if self.admission.shed_total != shed_before:
                    self.observer.connection_rejected("shed")
                self.accepted += 1
                conns.start_soon(self._connection, sock, peer, self.accepted, slot)
            await trio.lowlevel.checkpoint()

    async def _connection(self, sock: _socket.socket, peer: str, conn_no: int, slot: Slot) -> None:
        clog = log.bind(conn=conn_no, peer=peer)  # one real logger per connection
        self.observer.connection_opened()
        try:
            with slot:
                assert self._tls is not None
                try:
                    tls = TlsStream(sock, self._tls)
                except (OSError, ValueError, SSL.Error) as exc:  # the peer already went away
                    sock.close()
                    clog.warning("handshake failed", reason=f"socket: {exc}")
                    return
                handler = Connection(
                    self._limits, self.cache, self.observer, clog, self._subject_of
                )
                try:
                    clog.debug(
                        "connection accepted", attempted=self.attempted, accepted=self.accepted
                    )
                    await handler.run(tls, self.admission, slot)
                finally:
                    tls.close()
            if slot.shed:
                clog.warning("connection shed", reason="idle handshake, listener full")
        finally:
            self.observer.connection_closed()


def _file_reader(path: Path) -> Callable[[], bytes | None]:
    """Read ``path`` each time (a CTL another process may replace); None when missing."""

    def read() -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    return read


def _read_pem_certs(path: Path) -> list[Certificate]:
    return load_certificates(Path(path).read_bytes(), source=str(path))


async def serve_tvs(
    config: TvsServerConfig,
    *,
    observer: ServerObserver | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one TVS server; ``await nursery.start(serve_tvs, config)`` gives ``(host, port)``.
    Use :class:`TvsServer` directly when you also need ``reload()`` or ``request_shutdown()``."""
    await TvsServer(config, observer=observer).serve(task_status=task_status)


async def serve_until_signalled(
    server: TvsServer,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve; SIGHUP reloads, SIGTERM/SIGINT stop accepting and drain (main thread only)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            task_status.started(address)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        server.reload()
                    except (OSError, StoreError, CertificateError, SSL.Error, ValueError) as exc:
                        log.error("reload failed", reason=str(exc))
                    continue
                log.info("signal received", signal=signal.Signals(signum).name)
                server.request_shutdown()
                break
