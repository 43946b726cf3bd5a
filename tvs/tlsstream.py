"""The one TLS stream (pyOpenSSL) of every TLS connection in the lab, both sides: the servers'
accepted connections (TVS, SIP, CAPF, HTTPS) and the clients' (the phone's TVS query and secure
SIP, the CAPF client, ``tvs query``).

Owns :class:`TlsStream`: one non-blocking TCP socket wrapped in TLS, driven by Trio's readiness
waits. OpenSSL reads and writes the socket itself (no memory BIOs, no copies in Python); alerts
of a failed handshake reach the peer because OpenSSL writes them directly. It has
``receive_some`` / ``send_all`` like a Trio stream. Every wait is a Trio checkpoint. Also the
verify callback both sides share: it records, per connection, why a certificate did not verify
(``expired``, ``not-yet-valid``, ``unknown-ca``, ...), so a server can log whose certificate it
was (:class:`PeerCertificate`: subject, issuer, serial, SHA-256) even when it refused it, and a
client can say why the server's was not pinned.

The Nagle stall (notes section 6): in TLS 1.3 the client's Finished is the last handshake
flight; a client with Nagle on holds its request until that Finished is acknowledged, and a
server with nothing to send would delay that ACK by ~40 ms (Python's ``ssl`` server with
``num_tickets = 0`` did). Here OpenSSL sends its TLS 1.3 session tickets right after the
handshake (stateful ones, a few dozen bytes; the session cache is off, so they never resume
anything), which carry the ACK at once; and a server stream sets ``TCP_QUICKACK`` each time it
waits for the peer during the handshake, so the ACK goes out even without them.

Errors after the handshake are :class:`TlsError` (an ``OSError``) with OpenSSL's reason in the
``ssl`` module's spelling (``TLSV1_ALERT_UNKNOWN_CA``), so callers tell an alert from a reset.
Contexts are built by :mod:`tvs.tlsserver` (servers) and :mod:`tvs.tlsclient` (clients); this
module knows nothing about accepting, connecting, admission limits or protocols.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs
import trio
from OpenSSL import SSL, crypto

from .certs import Certificate, CertificateError
from .tlsconfig import ClientAuth

__all__ = [
    "PeerCertificate",
    "ServerTls",
    "TlsError",
    "TlsHandshakeError",
    "TlsStream",
    "error_reason",
    "set_keylog",
    "verify_callback",
    "verify_failure_kind",
]

T = TypeVar("T")

_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

# X509_V_ERR_* codes the lab meets, with a short kind for metrics labels
_VERIFY_KINDS: dict[int, tuple[str, str]] = {
    2: ("unknown-ca", "unable to get issuer certificate"),
    7: ("bad-signature", "certificate signature failure"),
    9: ("not-yet-valid", "certificate is not yet valid"),
    10: ("expired", "certificate has expired"),
    18: ("unknown-ca", "self-signed certificate"),
    19: ("unknown-ca", "self-signed certificate in certificate chain"),
    20: ("unknown-ca", "unable to get local issuer certificate"),
    21: ("unknown-ca", "unable to verify the first certificate"),
    23: ("revoked", "certificate revoked"),
    24: ("bad-ca", "invalid CA certificate"),
    26: ("bad-purpose", "unsupported certificate purpose"),
}


def verify_failure_kind(errnum: int) -> tuple[str, str]:
    """``(kind, text)`` for an OpenSSL X509_V_ERR code (kind is a short metrics label)."""
    return _VERIFY_KINDS.get(errnum, ("other", f"verify error {errnum}"))


@attrs.frozen
class PeerCertificate:
    """The client certificate a peer presented, whether or not it verified."""

    certificate: Certificate
    verified: bool
    failure: str | None = None
    """Why it did not verify (``certificate has expired (depth 0)``); None when verified."""
    failure_kind: str | None = None
    """Short label for metrics: ``expired``, ``not-yet-valid``, ``unknown-ca``, ..."""

    @property
    def subject(self) -> str:
        return self.certificate.subject

    def log_fields(self) -> dict[str, object]:
        """subject, issuer, serial, sha256 (and why it did not verify) for a log line."""
        c = self.certificate
        fields: dict[str, object] = {
            "client": c.subject,
            "client_issuer": c.issuer,
            "client_serial": c.serial_hex,
            "client_sha256": c.sha256.hex(),
            "client_verified": self.verified,
        }
        if self.failure is not None:
            fields["client_unverified"] = self.failure
        return fields


class TlsError(OSError):
    """A TLS session broke after its handshake. ``reason`` is OpenSSL's, spelled as the ``ssl``
    module spells it (``TLSV1_ALERT_UNKNOWN_CA``, ``SSLV3_ALERT_BAD_CERTIFICATE``...); ``alert``
    says the peer sent an alert (a refusal), rather than the session just breaking."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"TLS: {reason}")
        self.reason = reason.upper().replace(" ", "_")
        self.alert = "_ALERT_" in self.reason


class TlsHandshakeError(Exception):
    """A handshake that failed; ``kind`` is ``tls``, ``eof``, ``refused-certificate`` (a
    server refused the client's; then ``peer`` is the refused certificate when one was
    presented) or ``untrusted-peer`` (a client found the server's certificate outside its
    pins). ``error`` (kind ``tls``): the OpenSSL error as a :class:`TlsError`."""

    def __init__(
        self,
        kind: str,
        reason: str,
        peer: PeerCertificate | None = None,
        *,
        error: TlsError | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.peer = peer
        self.error = error


@attrs.define
class _VerifyState:
    """Per connection: the first verification failure the callback saw."""

    errnum: int = 0
    depth: int = 0
    failed: bool = False
    cert: crypto.X509 | None = None
    """The certificate that failed (the leaf at depth 0): kept for the log of a refusal."""


@attrs.frozen
class ServerTls:
    """A server TLS context and its client-certificate policy (build with :func:`server_tls`).
    Immutable; a reload builds a new one, connections already open keep theirs."""

    context: SSL.Context
    client_auth: ClientAuth


def verify_callback(optional: bool) -> Callable[..., bool]:
    def callback(conn: SSL.Connection, x509: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
        if not ok:
            state = conn.get_app_data()
            if isinstance(state, _VerifyState) and not state.failed:
                state.failed, state.errnum, state.depth = True, errnum, depth
                state.cert = x509
        return True if optional else bool(ok)

    return callback


def set_keylog(context: SSL.Context, keylog: str | Path | None) -> None:
    """Append the session secrets of ``context``'s connections to ``keylog`` (SSLKEYLOGFILE
    format, for Wireshark); None: nothing."""
    if keylog is None:
        return
    path = Path(keylog)

    def write_keylog(_conn: SSL.Connection, line: bytes) -> None:
        with contextlib.suppress(OSError), path.open("ab") as f:
            f.write(line + b"\n")

    context.set_keylog_callback(write_keylog)


def error_reason(exc: SSL.Error) -> str:
    """OpenSSL's reason strings of an ``SSL.Error`` (``tlsv1 alert unknown ca``...)."""
    parts = []
    for item in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(exc) or type(exc).__name__


class TlsStream:
    """One TCP connection wrapped in TLS, on Trio readiness waits: an accepted one (server
    side, ``TlsStream(sock, server_tls)``) or one we opened (:meth:`client`)."""

    def __init__(self, sock: socket.socket, tls: ServerTls) -> None:
        self._setup(sock, tls.context, server_side=True)
        self.client_auth = tls.client_auth

    @classmethod
    def client(
        cls,
        sock: socket.socket,
        context: SSL.Context,
        identity: tuple[crypto.X509, crypto.PKey] | None = None,
    ) -> TlsStream:
        """The client side of a connected socket: ``context`` is shared (by every phone alike:
        :func:`tvs.tlsclient.client_tls`), ``identity`` (certificate, key: already converted,
        see :mod:`tvs.tlsclient`) is this connection's own."""
        self = cls.__new__(cls)
        self._setup(sock, context, server_side=False)
        self.client_auth = ClientAuth.NONE
        if identity is not None:
            self.conn.use_certificate(identity[0])
            self.conn.use_privatekey(identity[1])
        return self

    def _setup(self, sock: socket.socket, context: SSL.Context, *, server_side: bool) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock
        self.server_side = server_side
        self._verify = _VerifyState()
        self.conn = SSL.Connection(context, sock)
        self.conn.set_app_data(self._verify)
        if server_side:
            self.conn.set_accept_state()
        else:
            self.conn.set_connect_state()
        self.handshake_done = False
        self.peer: PeerCertificate | None = None
        self._closed = False

    @classmethod
    def from_trio(cls, stream: trio.SocketStream, tls: ServerTls) -> TlsStream:
        """Take over the socket of a ``trio.SocketStream`` (from ``trio.serve_tcp``/
        ``open_tcp_listeners``); the stream must not be used afterwards. Raises ``OSError``
        when the peer already went away."""
        return cls(socket.socket(fileno=stream.socket.detach()), tls)

    async def _io(self, fn: Callable[..., T], *args: object, handshake: bool = False) -> T:
        while True:
            try:
                return fn(*args)
            except SSL.WantReadError:
                if handshake and _TCP_QUICKACK is not None:
                    # acknowledge the client's next flight (its Finished) at once: a client
                    # with Nagle on holds its request until then (module docstring)
                    with contextlib.suppress(OSError):
                        self.socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
                await trio.lowlevel.wait_readable(self.socket)
            except SSL.WantWriteError:
                await trio.lowlevel.wait_writable(self.socket)

    def _peer(self) -> PeerCertificate | None:
        v = self._verify
        x509 = self.conn.get_peer_certificate()
        if x509 is None:  # refused: only the callback saw it
            x509 = v.cert
        if x509 is None:
            return None
        # one DER encoding, parsed once (the cryptography form would encode it twice more)
        cert = Certificate.from_der(crypto.dump_certificate(crypto.FILETYPE_ASN1, x509))
        if v.failed:
            kind, text = verify_failure_kind(v.errnum)
            return PeerCertificate(cert, False, f"{text} (depth {v.depth})", kind)
        return PeerCertificate(cert, True)

    async def do_handshake(self) -> PeerCertificate | None:
        """The handshake; returns the peer's certificate: on a server, the client certificate
        presented (verified or, under ``optional``, not), None when none was; on a client, the
        server's. Raises :class:`TlsHandshakeError`: on a client, kind ``untrusted-peer`` when
        the server certificate failed the context's pins (the reason is the verify error)."""
        try:
            await self._io(self.conn.do_handshake, handshake=self.server_side)
        except SSL.SysCallError as exc:
            raise TlsHandshakeError("eof", f"connection closed during handshake ({exc})") from None
        except SSL.ZeroReturnError:
            raise TlsHandshakeError("eof", "connection closed during handshake") from None
        except SSL.Error as exc:
            reason = error_reason(exc)
            peer = None
            with contextlib.suppress(SSL.Error, CertificateError, ValueError):
                peer = self._peer()
            if self._verify.failed:
                _, text = verify_failure_kind(self._verify.errnum)
                if not self.server_side:
                    raise TlsHandshakeError("untrusted-peer", text, peer) from None
                raise TlsHandshakeError(
                    "refused-certificate",
                    f"client certificate refused: {text} (depth {self._verify.depth})",
                    peer,
                ) from None
            if "peer did not return a certificate" in reason:
                raise TlsHandshakeError(
                    "refused-certificate", "client certificate required, none presented"
                ) from None
            raise TlsHandshakeError("tls", f"TLS: {reason}", error=TlsError(reason)) from None
        except OSError as exc:
            raise TlsHandshakeError("eof", f"connection closed during handshake ({exc})") from None
        self.handshake_done = True
        if self.server_side:
            self.peer = self._peer()
        else:  # a server certificate we cannot parse is no certificate to pin against
            with contextlib.suppress(SSL.Error, CertificateError, ValueError):
                self.peer = self._peer()
        return self.peer

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes``; ``b""`` at end of stream (clean or not). Raises
        :class:`TlsError` (an ``OSError``) when the session broke (an alert, a TLS error)."""
        try:
            return await self._io(self.conn.recv, max_bytes)
        except (SSL.ZeroReturnError, SSL.SysCallError):
            return b""
        except SSL.Error as exc:
            raise TlsError(error_reason(exc)) from None

    async def send_all(self, data: bytes) -> None:
        """Raises ``OSError`` when the connection broke (:class:`TlsError`: a TLS error)."""
        view = memoryview(data)
        try:
            while view:
                sent = await self._io(self.conn.send, view)
                view = view[sent:]
        except SSL.SysCallError as exc:
            raise ConnectionResetError(f"connection broken ({exc})") from None
        except SSL.Error as exc:
            raise TlsError(error_reason(exc)) from None

    def cipher(self) -> str | None:
        return self.conn.get_cipher_name()

    def version(self) -> str | None:
        return self.conn.get_protocol_version_name()

    def peer_certificate(self) -> bytes | None:
        """The client certificate (DER) presented, verified or not."""
        return self.peer.certificate.der if self.peer is not None else None

    async def linger_close(self, seconds: float) -> None:
        """After a failed handshake: send FIN behind the alert OpenSSL wrote, then discard what
        the peer still sends (at most ``seconds``), so that closing does not turn into a reset
        that destroys the alert before the peer reads it."""
        try:
            self.socket.shutdown(socket.SHUT_WR)
            with trio.move_on_after(seconds):
                while True:
                    await trio.lowlevel.wait_readable(self.socket)
                    if not self.socket.recv(65536):
                        break
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Send close_notify when the session is up (without waiting for the peer's), then
        close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.handshake_done:
            with contextlib.suppress(SSL.Error, OSError):
                self.conn.shutdown()
        self.socket.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()
