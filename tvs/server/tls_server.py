"""The TVS server on Trio: TLS on 2445, one request and one response per connection.

A thin adapter around :func:`tvs.server.handler.handle_request`. Accepting never waits on a
client: each connection gets its own task with a handshake deadline and a request deadline;
beyond ``max_connections`` connections are closed at accept and counted. The decoder is fed
incrementally. Any bad input ends in one log line with the reason and a closed connection.

The certificate cache and the TLS context are snapshots, rebuilt only by :meth:`TvsServer.reload`
(``SIGHUP``, ``tvs reload``, or ``watch``), like CUCM's TVS cache.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket as _socket
import ssl
import time
from pathlib import Path
from typing import Any

import structlog
import trio

from ..certs import Certificate, CertificateError, load_certificates
from ..store import CertificateCache, StoreError, TrustStore
from ..tlsconfig import server_context
from ..wire import (
    HEADER_SIZE,
    DecodeError,
    Decoder,
    QueryCertRequest,
    VerifyRequest,
    encode_message,
)
from .config import TvsServerConfig
from .handler import HandlerResult, handle_request
from .observer import NullObserver, ServerObserver
from .tlsio import TlsConnection

__all__ = ["TvsServer", "serve_tvs", "serve_until_signalled"]

log = structlog.get_logger("tvs.server")

_LINGER = 1.0
"""Seconds a connection whose handshake failed is kept half-closed so the alert arrives."""
_MEMO_SIZE = 4096
_ACCEPT_BATCH = 64
"""Connections accepted per wake-up before letting other tasks run."""


class _BadRequest(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class TvsServer:
    """One TVS listener. ``await nursery.start(server.serve)`` returns ``(host, port)``."""

    def __init__(self, config: TvsServerConfig, *, observer: ServerObserver | None = None) -> None:
        self.config = config
        self.observer: ServerObserver = observer or NullObserver()
        self.store = TrustStore.open(config.store, create=True)
        self.cache = CertificateCache.empty()
        self.address: tuple[str, int] | None = None
        self.attempted = 0
        self.accepted = 0
        self.rejected = 0
        self.active = 0
        self._ssl: ssl.SSLContext | None = None
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._accept_scope: trio.CancelScope | None = None
        self._stop_requested = False
        self._subjects: dict[bytes, str] = {}

    # --- cache ----------------------------------------------------------------------------
    def reload(self) -> int:
        """Re-read the store: new cache and TLS context for new connections. Returns the
        number of cache entries. On error the old cache stays and the error is raised."""
        signature = self.store.signature()
        cache = self.store.load_cache()
        for problem in self.store.problems:
            log.warning("store file skipped", reason=problem)
        cas = self.store.client_ca_certificates()
        if self.config.mic_ca is not None:
            cas += _read_pem_certs(self.config.mic_ca)
        self._ssl = server_context(
            self.config.cert,
            self.config.key,
            legacy=self.config.legacy_tls,
            client_auth=self.config.client_auth,
            client_cas=cas,
            keylog=self.config.keylog,
        )
        self.cache, self._signature = cache, signature
        log.info("cache reloaded", entries=len(cache), client_cas=len(cas))
        self.observer.cache_reloaded(len(cache))
        return len(cache)

    async def _watch_loop(self) -> None:
        while True:
            await trio.sleep(self.config.watch_interval)
            try:
                if self.store.signature() != self._signature:
                    self.reload()
            except (OSError, StoreError, CertificateError, ssl.SSLError) as exc:
                log.error("reload failed", reason=str(exc))

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
                        if self.config.watch:
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
                if self.active >= self.config.max_connections:
                    self.rejected += 1
                    log.warning(
                        "connection rejected",
                        peer=peer,
                        reason=f"max connections ({self.config.max_connections}) reached",
                    )
                    self.observer.connection_rejected("max-connections")
                    sock.close()
                    continue
                self.accepted += 1
                self.active += 1
                conns.start_soon(self._connection, sock, peer, self.accepted)
            await trio.lowlevel.checkpoint()

    async def _connection(self, sock: _socket.socket, peer: str, conn_no: int) -> None:
        clog = log.bind(conn=conn_no, peer=peer)  # one real logger per connection
        self.observer.connection_opened()
        try:
            assert self._ssl is not None
            tls = TlsConnection(sock, self._ssl)
        except (OSError, ValueError) as exc:  # the peer already went away
            sock.close()
            self.active -= 1
            clog.warning("handshake failed", reason=f"socket: {exc}")
            self.observer.connection_closed()
            return
        cache = self.cache
        try:
            clog.debug("connection accepted", attempted=self.attempted, accepted=self.accepted)
            client_subject = await self._handshake(tls, clog)
            if client_subject is not None:
                await self._exchange(tls, cache, client_subject, clog)
        finally:
            tls.close()
            self.active -= 1
            self.observer.connection_closed()

    async def _handshake(self, tls: TlsConnection, clog: Any) -> str | None:
        """Handshake with a deadline; returns the client certificate subject ("" if none);
        None when the handshake failed (already logged)."""
        try:
            with trio.fail_after(self.config.handshake_timeout):
                await tls.do_handshake()
        except trio.TooSlowError:
            clog.warning(
                "handshake failed", reason=f"timeout after {self.config.handshake_timeout}s"
            )
            self.observer.handshake_failed("timeout")
            return None
        except ssl.SSLError as exc:
            clog.warning("handshake failed", reason=f"TLS: {exc.reason or exc.strerror or exc}")
            self.observer.handshake_failed("tls")
            await tls.linger_close(_LINGER)
            return None
        except OSError as exc:
            clog.warning("handshake failed", reason=f"connection closed during handshake ({exc})")
            self.observer.handshake_failed("eof")
            return None
        der = tls.peer_certificate()
        subject = self._subject_of(der) if der else ""
        clog.debug(
            "handshake done",
            cipher=tls.cipher(),
            tls_version=tls.version(),
            client_subject=subject or None,
        )
        return subject

    async def _read_request(self, tls: TlsConnection) -> tuple[object, bytes]:
        decoder = Decoder(max_size=self.config.max_message)
        raw = bytearray()
        try:
            with trio.fail_after(self.config.request_timeout):
                while True:
                    msg = decoder.next_message()
                    if msg is not None:
                        length = HEADER_SIZE + int.from_bytes(raw[8:10], "big")
                        return msg, bytes(raw[:length])
                    data = await tls.receive_some(65536)
                    if not data:
                        what = (
                            "before sending a request"
                            if not raw
                            else f"mid-message after {len(raw)} bytes"
                        )
                        raise _BadRequest("truncated", f"connection closed {what}")
                    raw += data
                    decoder.receive_data(bytes(data))
        except trio.TooSlowError:
            got = f"{len(raw)} bytes" if raw else "nothing"
            raise _BadRequest(
                "timeout", f"request timeout after {self.config.request_timeout}s (got {got})"
            ) from None
        except DecodeError as exc:
            raise _BadRequest("malformed", f"{type(exc).__name__}: {exc}") from None
        except ssl.SSLError as exc:
            raise _BadRequest("truncated", f"connection broken: TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise _BadRequest("truncated", f"connection broken: {exc}") from None

    async def _exchange(
        self,
        tls: TlsConnection,
        cache: CertificateCache,
        client_subject: str,
        clog: Any,
    ) -> None:
        started = time.perf_counter()
        try:
            msg, raw = await self._read_request(tls)
        except _BadRequest as exc:
            clog.warning("bad request", reason=str(exc))
            self.observer.bad_request(exc.kind)
            return
        clog.debug("message received", _raw=raw, _message=msg)
        result: HandlerResult = handle_request(msg, cache)  # type: ignore[arg-type]
        if result.lookup is not None:
            entry = result.lookup.entry
            clog.debug(
                "cache lookup",
                kind=result.lookup.kind,
                key=result.lookup.key,
                roles=list(entry.roles) if entry is not None else None,
            )
        if result.response is None:
            clog.warning("bad request", reason=result.error)
            self.observer.bad_request("unexpected")
            return
        out = encode_message(result.response)
        try:
            with trio.fail_after(self.config.request_timeout):
                await tls.send_all(out)
        except (trio.TooSlowError, OSError) as exc:
            clog.warning("response not delivered", reason=type(exc).__name__)
            self.observer.bad_request("send-failed")
            return
        seconds = time.perf_counter() - started
        clog.debug("response sent", _raw=out, _message=result.response)
        type_name = msg.type.name  # type: ignore[attr-defined]
        status = result.response.status.name
        details = _request_details(msg)
        clog.info(
            "request",
            type=type_name,
            request_id=msg.request_id,  # type: ignore[attr-defined]
            status=status,
            roles=list(result.response.roles),
            client=client_subject or None,
            **details,
        )
        self.observer.request_served(type_name, status, seconds)


def _request_details(msg: object) -> dict[str, object]:
    if isinstance(msg, QueryCertRequest):
        return {
            "device": msg.device,
            "subject": msg.subject,
            "issuer": msg.issuer,
            "serial": msg.serial_hex,
        }
    if isinstance(msg, VerifyRequest):
        subject = ""
        with contextlib.suppress(CertificateError):
            subject = Certificate.from_der(msg.certificate).subject
        return {"device": msg.device, "subject": subject}
    return {}


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
                    except (OSError, StoreError, CertificateError, ssl.SSLError) as exc:
                        log.error("reload failed", reason=str(exc))
                    continue
                log.info("signal received", signal=signal.Signals(signum).name)
                server.request_shutdown()
                break
