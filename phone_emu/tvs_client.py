"""TVS client over TLS, as a phone talks to its TVS: one connection, one request, one response.

Presents the phone's LSC (or MIC) as a client certificate, pins the TVS server certificate to
a set of certificates (a phone takes them from the TVS records of its ITL; an empty set, as
after "Rollback to pre 8.0", fails every handshake), sends one message (a value, encoded with
the config's ``query_tags``, or bytes already encoded, sent as they are: the phone's boot
machine encodes its own) and decodes the whole response with the shared codec
(``tvs.wire.Decoder``, which owns framing and end of stream). Used by ``phone-emu query``, the
phone emulator and the benchmark. Every wait has a deadline.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path

import attrs
import trio

from tvs.certs import Certificate, PrivateKey
from tvs.tlsclient import (
    ConnectFailed,
    ConnectTimeout,
    TlsClientError,
    open_tls,
    ssl_reason,
)
from tvs.tlsconfig import cap_version, client_context
from tvs.wire import (
    DEFAULT_MAX_MESSAGE,
    DecodeError,
    Decoder,
    Frame,
    Message,
    QueryTags,
    encode_message,
)

__all__ = [
    "TvsClientConfig",
    "TvsClientError",
    "TvsConnectError",
    "TvsExchange",
    "TvsHandshakeError",
    "TvsProtocolError",
    "TvsTimeout",
    "tvs_exchange",
    "tvs_request",
]


class TvsClientError(Exception):
    """Talking to a TVS failed."""


class TvsConnectError(TvsClientError, ConnectionError):
    """The TCP connection could not be made."""


class TvsHandshakeError(TvsClientError):
    """The TLS handshake failed, the server certificate is not pinned, or the server refused
    our client certificate."""


class TvsTimeout(TvsClientError, TimeoutError):
    """Connect, handshake or response took longer than allowed."""


class TvsProtocolError(TvsClientError):
    """The response was malformed, or the connection closed before a whole response."""


def _certificates(value: Iterable[Certificate]) -> tuple[Certificate, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TvsClientConfig:
    """How to reach a TVS. Without ``insecure`` the server certificate must equal (DER) one of
    ``pinned``."""

    lsc: Certificate | None = None
    key: PrivateKey | None = None
    pinned: tuple[Certificate, ...] = attrs.field(default=(), converter=_certificates)
    insecure: bool = False
    legacy_tls: bool = False
    """Also allow TLS 1.0/1.1 and the legacy suites (what a CUCM with old phones accepts)."""
    tls_max: str | None = None
    """Offer at most this TLS version (``1.0`` = old firmware: TLS 1.0 with AES256-SHA only);
    see :func:`tvs.tlsconfig.cap_version`."""
    connect_timeout: float = 5.0
    timeout: float = 10.0
    """Seconds for the handshake, and again for sending the request and reading the answer."""
    keylog: Path | None = None
    query_tags: QueryTags = QueryTags.TAGS_4_5
    """How a message value's issuer/serial are tagged (bytes given to :func:`tvs_exchange` are
    sent as they are)."""
    max_message: int = DEFAULT_MAX_MESSAGE
    _contexts: dict[str, ssl.SSLContext] = attrs.field(
        factory=dict, init=False, eq=False, repr=False, hash=False
    )

    def ssl_context(self) -> ssl.SSLContext:
        """The client TLS context (built once per config value and reused)."""
        ctx = self._contexts.get("ctx")
        if ctx is None:
            try:
                ctx = client_context(
                    cert=self.lsc,
                    key=self.key,
                    legacy=self.legacy_tls,
                    keylog=self.keylog,
                    pinned=None if self.insecure else self.pinned,
                )
                if self.tls_max is not None:
                    cap_version(ctx, self.tls_max)
            except (ssl.SSLError, ValueError, OSError) as exc:
                raise TvsHandshakeError(f"cannot use the client certificate: {exc}") from None
            self._contexts["ctx"] = ctx
        return ctx


@attrs.frozen
class TvsExchange:
    """One completed exchange: the response and what the TLS session showed."""

    response: Message
    server_certificate: Certificate | None
    cipher: str | None
    tls_version: str | None


def _is_alert(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, ssl.SSLError) and "ALERT" in str(cause.reason or "")


async def _receive(tls: trio.SSLStream[trio.SocketStream], config: TvsClientConfig) -> Message:
    decoder = Decoder(max_size=config.max_message)
    while not isinstance(frame := decoder.next_frame(), Frame):
        decoder.receive_data(await tls.receive_some(65536))  # b"": the server closed
    return frame.message


async def tvs_exchange(
    host: str, port: int, message: Message | bytes, config: TvsClientConfig
) -> TvsExchange:
    """Like :func:`tvs_request`, also returning the server certificate and cipher. ``message``
    is a value (encoded with ``config.query_tags``) or the exact bytes to send."""
    if isinstance(message, bytes):
        request = message
    else:
        request = encode_message(message, query_tags=config.query_tags)
    try:
        session = await open_tls(
            host,
            port,
            config.ssl_context(),
            pinned=None if config.insecure else config.pinned,
            connect_timeout=config.connect_timeout,
            handshake_timeout=config.timeout,
        )
    except ConnectTimeout as exc:
        raise TvsTimeout(str(exc)) from None
    except ConnectFailed as exc:
        raise TvsConnectError(str(exc)) from None
    except TlsClientError as exc:
        raise TvsHandshakeError(str(exc)) from None
    tls = session.stream
    try:
        try:
            with trio.fail_after(config.timeout):
                await tls.send_all(request)
                response = await _receive(tls, config)
        except trio.TooSlowError:
            raise TvsTimeout(f"no response from {host}:{port} within {config.timeout}s") from None
        except DecodeError as exc:
            raise TvsProtocolError(f"bad response: {type(exc).__name__}: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if _is_alert(exc):
                raise TvsHandshakeError(f"server refused the session: {ssl_reason(exc)}") from None
            raise TvsProtocolError(f"connection broken: {ssl_reason(exc)}") from None
        return TvsExchange(response, session.server_certificate, session.cipher, session.version)
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await trio.aclose_forcefully(tls)


async def tvs_request(
    host: str, port: int, message: Message | bytes, config: TvsClientConfig
) -> Message:
    """Send ``message`` to the TVS at ``host:port`` over a new TLS connection and return the
    decoded response. Raises a :class:`TvsClientError` subclass on any failure."""
    return (await tvs_exchange(host, port, message, config)).response
