"""The server side of the lab's TLS (pyOpenSSL), for every TLS listener: TVS, SIP, CAPF, HTTPS.

Owns :func:`server_tls`, which builds a :class:`~tvs.tlsstream.ServerTls` (an
``OpenSSL.SSL.Context`` plus the client certificate policy) from certificates and keys **in
memory** (or files, read into memory): TLS 1.2+ (or legacy: TLS 1.0+ with ``AES256-SHA``, the
settings of :mod:`tvs.tlsconfig`), client certificates ``none`` (not asked), ``optional``
(asked; one that does not verify is *accepted* and reported as unverified, with the reason) or
``required`` (asked; missing or unverified refuses the handshake, and the reason is kept for
the log line). The stream an accepted socket becomes, and the names listeners use with it
(:class:`TlsStream`, :class:`TlsHandshakeError`, :class:`PeerCertificate`), are
:mod:`tvs.tlsstream`'s, re-exported here.

Why pyOpenSSL rather than the ``ssl`` module: a server must accept, and log, a client
certificate that does not verify (``optional``), which needs a verify callback, and keys are
loaded from memory.

Usage (any listener)::

    tls = server_tls(cert, key, client_auth="optional", client_cas=cas)
    stream = TlsStream(accepted_socket, tls)
    try:
        peer = await stream.do_handshake()       # PeerCertificate | None
    except TlsHandshakeError as exc:             # exc.kind: "tls" | "eof" | "refused-certificate"
        ...log exc.reason...; await stream.linger_close(1.0)
    data = await stream.receive_some(); await stream.send_all(b"...")
    stream.close()

Knows nothing about accepting, admission limits (:mod:`tvs.admission`) or protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from OpenSSL import SSL, crypto

from .certs import Certificate, CertificateError, PrivateKey, load_certificates, load_private_key
from .tlsconfig import LEGACY_CIPHERS, MODERN_CIPHERS, ClientAuth
from .tlsstream import (
    PeerCertificate,
    ServerTls,
    TlsHandshakeError,
    TlsStream,
    error_reason,
    set_keylog,
    verify_callback,
    verify_failure_kind,
)

__all__ = [
    "PeerCertificate",
    "ServerTls",
    "TlsHandshakeError",
    "TlsStream",
    "server_tls",
    "verify_failure_kind",
]


def _load_chain(cert: Certificate | Sequence[Certificate] | str | Path) -> list[Certificate]:
    if isinstance(cert, str | Path):
        chain = load_certificates(Path(cert).read_bytes(), source=str(cert))
        if not chain:
            raise CertificateError(f"{cert}: no certificate found")
        return chain
    return [cert] if isinstance(cert, Certificate) else list(cert)


def server_tls(
    cert: Certificate | Sequence[Certificate] | str | Path,
    key: PrivateKey | str | Path,
    *,
    legacy: bool = False,
    client_auth: ClientAuth | str = ClientAuth.NONE,
    client_cas: Iterable[Certificate] = (),
    keylog: str | Path | None = None,
) -> ServerTls:
    """A server context; ``cert`` (leaf first, then chain) and ``key`` in memory or as files;
    ``client_cas`` are the trust anchors for client certificates."""
    chain = _load_chain(cert)
    pkey = load_private_key(key) if isinstance(key, str | Path) else key
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    if legacy:
        ctx.set_min_proto_version(SSL.TLS1_VERSION)
        ctx.set_cipher_list(LEGACY_CIPHERS.encode())
    else:
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_cipher_list(MODERN_CIPHERS.encode())
    ctx.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_NO_TICKET
        | SSL.OP_SINGLE_ECDH_USE
    )
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)  # no resumption: phones never resume
    try:
        ctx.use_certificate(chain[0].x509)
        for extra in chain[1:]:
            ctx.add_extra_chain_cert(extra.x509)
        ctx.use_privatekey(pkey)
        ctx.check_privatekey()
    except (SSL.Error, crypto.Error, ValueError, TypeError) as exc:
        where = f"{cert} / {key}" if isinstance(cert, str | Path) else "server identity"
        why = error_reason(exc) if isinstance(exc, SSL.Error) else str(exc)
        raise CertificateError(f"{where}: unusable TLS certificate/key: {why}") from None
    mode = ClientAuth(client_auth)
    store = ctx.get_cert_store()
    assert store is not None
    for ca in {c.der: c for c in client_cas}.values():
        store.add_cert(crypto.X509.from_cryptography(ca.x509))
    if mode is ClientAuth.OPTIONAL:
        ctx.set_verify(SSL.VERIFY_PEER, verify_callback(optional=True))
    elif mode is ClientAuth.REQUIRED:
        ctx.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback(optional=False)
        )
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    set_keylog(ctx, keylog)
    return ServerTls(ctx, mode)
