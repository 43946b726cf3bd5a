"""The client side of the lab's TLS (pyOpenSSL): the one "connect + handshake + pin" sequence of
every client (the TVS client, the phone's secure SIP registration, the CAPF client).

Owns two things:

* :func:`client_tls` gives the shared client context for a set of settings (the pins, legacy
  TLS, the highest version offered, a keylog file), built once per process and reused by every
  connection alike; the identity a client presents (a phone's LSC and key) is set on each
  connection instead (:class:`ClientIdentity`, converted once). A fleet of thousands of phones
  so shares a handful of contexts: building a context per phone was a fifth of a migration's
  CPU (the ``ssl`` module can only load an identity into a context, from a PEM file).
* :func:`open_tls` connects with a deadline, handshakes with a deadline and pins the server
  certificate: byte-for-byte one of ``pinned`` (the phone's rule: a CTL/ITL record). With pins,
  the handshake itself already fails, with an alert to the server, unless the server's chain
  reaches one of them (each a trust anchor, partial chains allowed, validity dates not
  checked), as a phone's ITL check does. Failures are one small hierarchy the callers map to
  their own errors: :class:`ConnectFailed`, :class:`ConnectTimeout` (connect or handshake),
  :class:`HandshakeFailed` (with ``not_pinned``, and the :class:`~tvs.tlsstream.TlsError`
  cause when the peer sent an alert or TLS failed).

Why pyOpenSSL rather than the ``ssl`` module: one context shared by every phone with the
phone's own certificate and key set per connection (``SSL_use_certificate``), which ``ssl``
cannot do. The ``ssl`` module's client contexts (:func:`tvs.tlsconfig.client_context`) remain
what the tests use as an independent client of the servers. What a client offers is what the
``ssl`` client offered: TLS 1.2-1.3 (legacy: from TLS 1.0, the legacy suites), Python's cipher
list, and the classic key-exchange groups (X25519 first; no post-quantum hybrid, which no phone
offers and which the bundled OpenSSL would otherwise put first).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import attrs
import trio
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from .certs import Certificate, PrivateKey
from .tcpopen import connect
from .tlsconfig import (
    LEGACY_CIPHERS,
    LEGACY_ONLY_CIPHERS,
    MODERN_CIPHERS,
    TLS_MAX_VERSIONS,
    certificate_pinned,
)
from .tlsstream import TlsError, TlsHandshakeError, TlsStream, set_keylog, verify_callback

__all__ = [
    "ClientIdentity",
    "ClientTls",
    "ConnectFailed",
    "ConnectTimeout",
    "HandshakeFailed",
    "TlsClientError",
    "TlsSession",
    "client_tls",
    "open_tls",
]

CLIENT_GROUPS = b"X25519:P-256:X448:P-521:P-384:ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192"
"""The key-exchange groups a client offers, in order: what the ``ssl`` module's client (OpenSSL
3.0) offers, and phones: the classic groups, no post-quantum hybrid."""

_K = TypeVar("_K")
_V = TypeVar("_V")

_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (pyOpenSSL names it, older releases not)
_PARTIAL_CHAIN = 0x80000  # X509_V_FLAG_PARTIAL_CHAIN


class TlsClientError(Exception):
    """Opening a pinned TLS session failed."""


class ConnectFailed(TlsClientError):
    """The TCP connection could not be made."""


class ConnectTimeout(TlsClientError):
    """The TCP connect or the TLS handshake took longer than allowed."""


class HandshakeFailed(TlsClientError):
    """The handshake failed (``cause``: the :class:`~tvs.tlsstream.TlsError`, None when the
    peer just closed), or the server certificate is not pinned (``not_pinned``)."""

    def __init__(
        self, message: str, *, cause: TlsError | None = None, not_pinned: bool = False
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.not_pinned = not_pinned


@attrs.frozen
class ClientTls:
    """A client context, shared by every connection with the same settings (build it with
    :func:`client_tls`)."""

    context: SSL.Context = attrs.field(eq=False, repr=False)
    settings: tuple[object, ...]


@attrs.frozen(eq=False)
class ClientIdentity:
    """A certificate and key a client presents, converted once for OpenSSL (a phone's LSC is
    presented on several connections: converting it each time would cost more than the rest
    of setting up the connection)."""

    certificate: Certificate
    key: PrivateKey = attrs.field(repr=False)
    x509: crypto.X509 = attrs.field(repr=False)
    pkey: crypto.PKey = attrs.field(repr=False)

    @classmethod
    def of(cls, certificate: Certificate, key: PrivateKey) -> ClientIdentity:
        """The identity of ``certificate`` and ``key``, converted at most once per process for
        the same two objects. Raises ``ValueError`` when the key is not the certificate's."""
        found = _IDENTITIES.get((id(certificate), id(key)))
        if found is not None and found.certificate is certificate and found.key is key:
            return found
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            if certificate.public_key.public_bytes(*spki) != key.public_key().public_bytes(*spki):
                raise ValueError("the client certificate and its private key do not match")
            x509 = crypto.X509.from_cryptography(certificate.x509)
            cached = _PKEYS.get(id(key))
            if cached is None or cached[0] is not key:
                cached = (key, crypto.PKey.from_cryptography_key(key))
                _remember(_PKEYS, id(key), cached)
        except (TypeError, crypto.Error) as exc:
            raise ValueError(f"unusable client certificate or key: {exc}") from None
        identity = cls(certificate, key, x509, cached[1])
        _remember(_IDENTITIES, (id(certificate), id(key)), identity)
        return identity


# conversions by object identity; each entry keeps its objects alive, so an id is never reused
# while its entry exists
_IDENTITIES: dict[tuple[int, int], ClientIdentity] = {}
_PKEYS: dict[int, tuple[PrivateKey, crypto.PKey]] = {}
_MAX_CACHED = 1 << 17


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _MAX_CACHED:
        cache.clear()  # a bound, not an LRU: the values are cheap to convert again
    cache[key] = value


_CONTEXTS: dict[tuple[object, ...], ClientTls] = {}


def client_tls(
    *,
    pinned: Iterable[Certificate] | None = None,
    legacy: bool = False,
    tls_max: str | None = None,
    keylog: str | Path | None = None,
) -> ClientTls:
    """The shared client context for these settings. ``pinned`` (possibly empty): the
    handshake fails unless the server's chain reaches one of them (see the module docstring);
    None: nothing is verified in OpenSSL. ``legacy`` also allows TLS 1.0/1.1 and the legacy
    suites; ``tls_max`` caps the version offered (``1.0`` is old firmware's offer: TLS 1.0 with
    ``AES256-SHA`` only; ``1.1``: TLS 1.0-1.1 with the legacy suites; ``1.2``, ``1.3``: only
    the maximum)."""
    anchors = None if pinned is None else tuple({c.der: c for c in pinned}.values())
    settings: tuple[object, ...] = (
        None if anchors is None else tuple(c.der for c in anchors),
        legacy,
        tls_max,
        None if keylog is None else str(keylog),
    )
    found = _CONTEXTS.get(settings)
    if found is not None:
        return found
    if tls_max is not None and tls_max not in TLS_MAX_VERSIONS:
        raise ValueError(f"TLS version {tls_max!r}: one of {', '.join(TLS_MAX_VERSIONS)}")
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    _set_groups(ctx)
    if tls_max == "1.0":
        ctx.set_cipher_list(LEGACY_ONLY_CIPHERS.encode())
        ctx.set_min_proto_version(SSL.TLS1_VERSION)
        ctx.set_max_proto_version(SSL.TLS1_VERSION)
    elif legacy or tls_max == "1.1":
        ctx.set_cipher_list(LEGACY_CIPHERS.encode())
        ctx.set_min_proto_version(SSL.TLS1_VERSION)
    else:
        ctx.set_cipher_list(MODERN_CIPHERS.encode())
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if tls_max in ("1.1", "1.2", "1.3"):
        ctx.set_max_proto_version(
            {"1.1": SSL.TLS1_1_VERSION, "1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}[
                tls_max
            ]
        )
    if anchors is not None:
        store = ctx.get_cert_store()
        assert store is not None
        for anchor in anchors:
            store.add_cert(crypto.X509.from_cryptography(anchor.x509))
        store.set_flags(_PARTIAL_CHAIN | _NO_CHECK_TIME)
        ctx.set_verify(SSL.VERIFY_PEER, verify_callback(optional=False))
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    set_keylog(ctx, keylog)
    tls = ClientTls(ctx, settings)
    if len(_CONTEXTS) >= 256:
        _CONTEXTS.clear()
    _CONTEXTS[settings] = tls
    return tls


def _set_groups(ctx: SSL.Context) -> None:
    """Offer :data:`CLIENT_GROUPS`. pyOpenSSL has no call for it: this uses the binding it is
    built on (``SSL_CTX_set1_curves_list``, cryptography's), falling back to P-256 only."""
    try:
        from cryptography.hazmat.bindings.openssl.binding import Binding

        ok = Binding.lib.SSL_CTX_set1_curves_list(ctx._context, CLIENT_GROUPS)
    except (AttributeError, ImportError, TypeError):
        ok = 0
    if ok != 1:
        ctx.set_tmp_ecdh(crypto.get_elliptic_curve("prime256v1"))


@attrs.frozen
class TlsSession:
    """An open, pinned session; the caller closes ``stream``."""

    stream: TlsStream
    server_der: bytes | None
    server_certificate: Certificate | None
    cipher: str | None
    version: str | None


async def open_tls(
    host: str,
    port: int,
    tls: ClientTls,
    *,
    identity: ClientIdentity | None = None,
    pinned: Iterable[Certificate] | None,
    connect_timeout: float,
    handshake_timeout: float,
    not_pinned: str = "server certificate not pinned",
) -> TlsSession:
    """Connect, handshake (presenting ``identity``, if any) and pin (``pinned`` None: no
    pinning; give the same pins as to :func:`client_tls`). ``not_pinned`` starts the message of
    a pinning failure. Raises a :class:`TlsClientError` subclass."""
    where = f"{host}:{port}"
    try:
        with trio.fail_after(connect_timeout):
            sock = await connect(host, port)
    except trio.TooSlowError:
        raise ConnectTimeout(f"connect to {where} timed out") from None
    except OSError as exc:
        raise ConnectFailed(f"connect to {where}: {exc.strerror or exc}") from None
    ident = None if identity is None else (identity.x509, identity.pkey)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # converted once: on purpose
            stream = TlsStream.client(sock, tls.context, ident)
    except (SSL.Error, ValueError) as exc:
        sock.close()
        raise HandshakeFailed(f"cannot present the client certificate: {exc}") from None
    except BaseException:
        sock.close()
        raise
    try:
        try:
            with trio.fail_after(handshake_timeout):
                await stream.do_handshake()
        except trio.TooSlowError:
            raise ConnectTimeout(f"TLS handshake with {where} timed out") from None
        except TlsHandshakeError as exc:
            if exc.kind == "untrusted-peer":
                raise HandshakeFailed(f"{not_pinned} ({exc.reason})", not_pinned=True) from None
            raise HandshakeFailed(
                f"TLS handshake with {where} failed: "
                + (exc.error.reason if exc.error is not None else exc.reason),
                cause=exc.error,
            ) from None
        peer = stream.peer
        cert = peer.certificate if peer is not None else None
        der = cert.der if cert is not None else None
        if pinned is not None and not certificate_pinned(der, pinned):
            who = cert.subject if cert is not None else "no certificate"
            raise HandshakeFailed(f"{not_pinned}: {who}", not_pinned=True)
        return TlsSession(stream, der, cert, stream.cipher(), stream.version())
    except BaseException:
        stream.close()
        raise
