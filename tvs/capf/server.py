"""The CAPF server on Trio: TLS on TCP 3804, the server speaks first, one session per connection.

A thin adapter around :class:`tvs.capf.session.ServerSession` and
:class:`tvs.capf.authority.CapfAuthority`. Accepting never waits on a client: each connection
has its own task, a handshake deadline, a deadline per message from the phone and one for the
whole session, so a client that connects and says nothing delays nobody else (the open-source
capfd handshakes inside its accept loop and stalls everyone). Connections beyond the total or
per-address limits are closed at once with one log line. Every session that gets past the
handshake ends with END_SESSION (also after a timeout or garbage), then one log line with the
result; a refusal is one line at warning level. The database is read at each session, so a new
``tvs capf schedule`` is seen without a restart.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import ssl
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import structlog
import trio

from ..certs import Certificate, PrivateKey
from ..pki.issue import Identity
from ..tlsconfig import ClientAuth, server_context
from .authority import CapfAuthority
from .db import CapfDb
from .decoder import NEED_DATA, Decoder
from .errors import CapfDecodeError, CapfProtocolError
from .messages import Message
from .session import Outcome, ServerSession

__all__ = ["CapfServer", "CapfServerConfig"]

log = structlog.get_logger("tvs.capf")


def _certs(value: Iterable[Certificate]) -> tuple[Certificate, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class CapfServerConfig:
    """Where and how a CAPF listens. ``chain`` is the CAPF certificate (first) and any chain."""

    chain: tuple[Certificate, ...] = attrs.field(converter=_certs)
    key: PrivateKey = attrs.field(repr=False)
    db: Path
    host: str = "127.0.0.1"
    port: int = 3804
    lsc_issuers: tuple[Certificate, ...] = attrs.field(default=(), converter=_certs)
    mic_issuers: tuple[Certificate, ...] = attrs.field(default=(), converter=_certs)
    handshake_timeout: float = 10.0
    message_timeout: float = 60.0
    """Seconds for each phone message (a real phone making an RSA key needs a while)."""
    session_timeout: float = 180.0
    max_connections: int = 1024
    max_per_address: int = 256
    max_message: int = 16 * 1024
    keylog: Path | None = None
    legacy_tls: bool = False


class CapfServer:
    """One CAPF listener. ``await nursery.start(server.serve)`` returns ``(host, port)``."""

    def __init__(
        self,
        config: CapfServerConfig,
        *,
        clock: Callable[[], _dt.datetime] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.config = config
        self.db = CapfDb(config.db)
        identity = Identity(cert=config.chain[0], key=config.key)
        self.authority = CapfAuthority(
            self.db,
            identity,
            lsc_issuers=config.lsc_issuers,
            mic_issuers=config.mic_issuers,
            on_outcome=on_outcome,
        )
        if clock is not None:
            self.authority.clock = clock
        self.ssl_context: ssl.SSLContext = server_context(
            list(config.chain),
            config.key,
            legacy=config.legacy_tls,
            client_auth=ClientAuth.NONE,
            keylog=config.keylog,
        )
        self.address: tuple[str, int] | None = None
        self.counts: Counter[str] = Counter()
        self.active = 0
        self._per_address: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.db.close()

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        sockname = listeners[0].socket.getsockname()
        self.address = (sockname[0], sockname[1])
        log.info("capf.listening", host=self.address[0], port=self.address[1])
        async with trio.open_nursery() as nursery:
            task_status.started(self.address)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            peer_addr = stream.socket.getpeername()
            peer = f"{peer_addr[0]}:{peer_addr[1]}"
            host = str(peer_addr[0])
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        if self.active >= self.config.max_connections:
            return await self._refuse_connection(stream, peer, "too-many-connections")
        if self._per_address[host] >= self.config.max_per_address:
            return await self._refuse_connection(stream, peer, "too-many-from-address")
        self.active += 1
        self._per_address[host] += 1
        try:
            await self._session(stream, peer)
        except Exception as exc:  # one bad phone never takes the server down
            self.counts["error"] += 1
            log.error("capf.error", peer=peer, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.active -= 1
            self._per_address[host] -= 1
            if not self._per_address[host]:
                del self._per_address[host]

    async def _refuse_connection(self, stream: trio.SocketStream, peer: str, why: str) -> None:
        self.counts[why] += 1
        log.warning("capf.refused", peer=peer, reason=why)
        await trio.aclose_forcefully(stream)

    async def _session(self, stream: trio.SocketStream, peer: str) -> None:
        cfg = self.config
        tls = trio.SSLStream(stream, self.ssl_context, server_side=True)
        try:
            try:
                with trio.fail_after(cfg.handshake_timeout):
                    await tls.do_handshake()
            except trio.TooSlowError:
                self.counts["handshake-timeout"] += 1
                log.warning("capf.refused", peer=peer, reason="handshake-timeout")
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.counts["handshake-failed"] += 1
                cause = exc.__cause__
                why = str(getattr(cause, "reason", None) or type(cause or exc).__name__)
                log.warning("capf.refused", peer=peer, reason="handshake-failed", detail=why)
                return
            session = ServerSession(next(self._ids), self.authority)
            await self._run(tls, session, peer)
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await trio.aclose_forcefully(tls)

    async def _run(
        self, tls: trio.SSLStream[trio.SocketStream], session: ServerSession, peer: str
    ) -> None:
        cfg = self.config
        decoder = Decoder(cfg.max_message)
        problem: str | None = None
        try:
            with trio.fail_after(cfg.session_timeout):
                await self._send(tls, session.start())
                while not session.done:
                    with trio.fail_after(cfg.message_timeout):
                        msg = await self._receive(tls, decoder)
                    if msg is None:
                        problem = "closed-mid-session"
                        session.abort("the phone closed the connection mid-session")
                        break
                    await self._send(tls, session.receive(msg))
        except trio.TooSlowError:
            problem = "timeout"
            await self._goodbye(tls, session.abort(f"no message within the deadline ({peer})"))
        except CapfDecodeError as exc:
            problem = exc.reason
            await self._goodbye(tls, session.abort(f"bad message: {exc}"))
        except CapfProtocolError as exc:
            problem = exc.reason
            await self._goodbye(tls, [session.pending_end] if session.pending_end else [])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            problem = "connection-broken"
            session.abort("connection broken")
        self._log(session, peer, problem)

    async def _receive(
        self, tls: trio.SSLStream[trio.SocketStream], decoder: Decoder
    ) -> Message | None:
        while True:
            msg = decoder.next_message()
            if isinstance(msg, Message):
                return msg
            if msg is not NEED_DATA:
                return None
            decoder.receive_data(bytes(await tls.receive_some(65536)))

    async def _send(self, tls: trio.SSLStream[trio.SocketStream], messages: list[Message]) -> None:
        for m in messages:
            await tls.send_all(m.encode())  # header and body in one write (phones need it)

    async def _goodbye(
        self, tls: trio.SSLStream[trio.SocketStream], messages: list[Message]
    ) -> None:
        with trio.move_on_after(2):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._send(tls, messages)

    def _log(self, session: ServerSession, peer: str, problem: str | None) -> None:
        out = session.outcome
        if out is None:  # pragma: no cover - every path above ends the session
            return
        self.counts[out.result] += 1
        fields = {
            "peer": peer,
            "session": session.session_id,
            "device": out.device_name,
            "operation": out.operation,
            "result": out.result,
            "reason": int(out.reason),
            "why": out.why,
        }
        if problem:
            fields["problem"] = problem
        if out.result == "refused":
            log.warning("capf.refused", **fields)
        else:
            log.info("capf.session", **fields)
