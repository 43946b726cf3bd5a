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

from collections.abc import Iterable
from pathlib import Path

import attrs
import trio
from OpenSSL import SSL

from tvs.certs import Certificate, PrivateKey
from tvs.tlsclient import (
    ClientIdentity,
    ClientTls,
    ConnectFailed,
    ConnectTimeout,
    TlsClientError,
    client_tls,
    open_tls,
)
from tvs.tlsstream import TlsError, TlsStream
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
    see :func:`tvs.tlsclient.client_tls`."""
    connect_timeout: float = 5.0
    timeout: float = 10.0
    """Seconds for the handshake, and again for sending the request and reading the answer."""
    keylog: Path | None = None
    query_tags: QueryTags = QueryTags.TAGS_4_5
    """How a message value's issuer/serial are tagged (bytes given to :func:`tvs_exchange` are
    sent as they are)."""
    max_message: int = DEFAULT_MAX_MESSAGE
    _tls: dict[str, tuple[ClientTls, ClientIdentity | None]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False, hash=False
    )

    def client_tls(self) -> tuple[ClientTls, ClientIdentity | None]:
        """The shared client context for these settings and the identity presented (each
        built once per config value; the context is shared with every config alike)."""
        found = self._tls.get("tls")
        if found is None:
            try:
                tls = client_tls(
                    pinned=None if self.insecure else self.pinned,
                    legacy=self.legacy_tls,
                    tls_max=self.tls_max,
                    keylog=self.keylog,
                )
                identity = None
                if self.lsc is not None:
                    if self.key is None:
                        raise ValueError("a client certificate needs its private key")
                    identity = ClientIdentity.of(self.lsc, self.key)
            except (SSL.Error, ValueError, OSError) as exc:
                raise TvsHandshakeError(f"cannot use the client certificate: {exc}") from None
            found = self._tls["tls"] = (tls, identity)
        return found


@attrs.frozen
class TvsExchange:
    """One completed exchange: the response and what the TLS session showed."""

    response: Message
    server_certificate: Certificate | None
    cipher: str | None
    tls_version: str | None


async def _receive(tls: TlsStream, config: TvsClientConfig) -> Message:
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
        context, identity = config.client_tls()
        session = await open_tls(
            host,
            port,
            context,
            identity=identity,
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
        except TlsError as exc:
            if exc.alert:
                raise TvsHandshakeError(f"server refused the session: {exc.reason}") from None
            raise TvsProtocolError(f"connection broken: {exc.reason}") from None
        except (OSError, trio.ClosedResourceError) as exc:
            raise TvsProtocolError(f"connection broken: {exc}") from None
        return TvsExchange(response, session.server_certificate, session.cipher, session.version)
    finally:
        tls.close()


async def tvs_request(
    host: str, port: int, message: Message | bytes, config: TvsClientConfig
) -> Message:
    """Send ``message`` to the TVS at ``host:port`` over a new TLS connection and return the
    decoded response. Raises a :class:`TvsClientError` subclass on any failure."""
    return (await tvs_exchange(host, port, message, config)).response
