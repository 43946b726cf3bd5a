"""The CAPF server on Trio: TLS on TCP 3804, the server speaks first, one session per connection.

A thin adapter around :class:`tvs.capf.session.ServerSession` and
:class:`tvs.capf.authority.CapfAuthority`, built like every listener (docs/ARCHITECTURE.md):
slots from :mod:`tvs.admission` (first-bytes deadline, unfinished handshakes per address,
total limit shedding the oldest idle connection), TLS from :mod:`tvs.tlsserver`. Accepting
never waits on a client: each connection has its own task, a handshake deadline, a deadline
per message from the phone and one for the whole session, so a client that connects and says
nothing delays nobody else (the open-source capfd handshakes inside its accept loop and stalls
everyone). Every session that gets past the handshake ends with END_SESSION (also after a
timeout or garbage), then one log line with the result; a refusal (at admission, at the
handshake, or by the CAPF) is one line at warning level, event ``capf.refused``. The database
is read at each session, so a new ``tvs capf schedule`` is seen without a restart.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import structlog
import trio

from ..admission import Admission, AdmissionLimits, AdmissionRefused, Slot
from ..certs import Certificate, PrivateKey
from ..pki.issue import Identity
from ..tlsserver import ServerTls, TlsHandshakeError, TlsStream, server_tls
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
    admission: AdmissionLimits = attrs.field(factory=AdmissionLimits)
    """Total connections, unfinished handshakes per address, trusted networks, first bytes."""
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
        self.tls: ServerTls = server_tls(
            list(config.chain), config.key, legacy=config.legacy_tls, keylog=config.keylog
        )
        self.admission = Admission(config.admission)
        self.address: tuple[str, int] | None = None
        self.counts: Counter[str] = Counter()
        self._ids = itertools.count(1)

    @property
    def active(self) -> int:
        """Connections holding a slot (sessions and handshakes in progress)."""
        return self.admission.active

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
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        peer = f"{peer_addr[0]}:{peer_addr[1]}"
        try:
            slot = self.admission.admit(str(peer_addr[0]))
        except AdmissionRefused as exc:
            self._refused(peer, exc.kind, exc.reason)
            await trio.aclose_forcefully(stream)
            return
        try:
            with slot:
                await self._connection_in_slot(stream, slot, peer)
            if slot.shed:
                self._refused(peer, "shed", "idle handshake, listener full")
        except Exception as exc:  # one bad phone never takes the server down
            self.counts["error"] += 1
            log.error("capf.error", peer=peer, error=f"{type(exc).__name__}: {exc}")

    def _refused(self, peer: str, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        log.warning("capf.refused", peer=peer, reason=kind, detail=detail)

    async def _connection_in_slot(self, stream: trio.SocketStream, slot: Slot, peer: str) -> None:
        try:
            tls = TlsStream.from_trio(stream, self.tls)
        except OSError:  # the peer already went away
            return
        try:
            if not await self.admission.first_bytes(tls.socket, slot):
                self._refused(peer, "first-bytes-timeout", "no ClientHello in time")
                return
            try:
                with trio.fail_after(self.config.handshake_timeout):
                    await tls.do_handshake()
            except trio.TooSlowError:
                self._refused(peer, "handshake-timeout", "TLS handshake not finished in time")
                return
            except TlsHandshakeError as exc:
                self._refused(peer, "handshake-failed", exc.reason)
                await tls.linger_close(1.0)
                return
            slot.established()
            await self._run(tls, ServerSession(next(self._ids), self.authority), peer)
        finally:
            tls.close()

    async def _run(self, tls: TlsStream, session: ServerSession, peer: str) -> None:
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
        except OSError:
            problem = "connection-broken"
            session.abort("connection broken")
        self._log(session, peer, problem)

    async def _receive(self, tls: TlsStream, decoder: Decoder) -> Message | None:
        while True:
            msg = decoder.next_message()
            if isinstance(msg, Message):
                return msg
            if msg is not NEED_DATA:
                return None
            decoder.receive_data(bytes(await tls.receive_some(65536)))

    async def _send(self, tls: TlsStream, messages: list[Message]) -> None:
        for m in messages:
            await tls.send_all(m.encode())  # header and body in one write (phones need it)

    async def _goodbye(self, tls: TlsStream, messages: list[Message]) -> None:
        with trio.move_on_after(2):
            with contextlib.suppress(OSError):
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
