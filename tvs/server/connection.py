"""One TVS connection on Trio: a deadline for the client's first bytes, the TLS handshake with a
deadline, one request read incrementally with a deadline, the answer from
:func:`handle_request`, one log line.

The decoder (``tvs.wire.Decoder``) frames the request and judges the end of stream; this
adapter keeps no buffer. Every failure (silence, handshake, refused client certificate,
timeout, malformed or truncated request, a response type sent to the server) ends in one
warning with the reason and an observer call; a decode fault's stable ``reason``
(``truncated``, ``bad-discriminator``, ``too-large``, ...) is the warning's ``fault`` and the
metric label. A client certificate accepted without verifying (``optional``) is logged with
whose it was and why. The caller closes the connection. Knows nothing about accepting,
connection-count limits (:mod:`tvs.admission`) or reloads.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..admission import Admission, Slot
from ..certs import Certificate, CertificateError
from ..store import CertificateCache
from ..tlsserver import TlsHandshakeError, TlsStream
from ..wire import (
    DecodeError,
    Decoder,
    Frame,
    MessageType,
    QueryCertRequest,
    VerifyRequest,
    encode_message,
)
from .handler import HandlerResult, handle_request
from .logsetup import log_enabled
from .observer import ServerObserver

__all__ = ["Connection", "Limits"]

LINGER = 1.0
"""Seconds a connection whose handshake failed is kept half-closed so the alert arrives."""


@attrs.frozen
class Limits:
    handshake_timeout: float
    request_timeout: float
    max_message: int


class _BadRequest(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@attrs.define
class Connection:
    """Serves one accepted connection: ``await Connection(...).run(tls)``."""

    limits: Limits
    cache: CertificateCache
    observer: ServerObserver
    log: Any
    subject_of: Callable[[bytes], str]
    unverified: str | None = None
    """Why the client certificate did not verify, when it was accepted anyway (optional)."""

    async def run(self, tls: TlsStream, admission: Admission, slot: Slot) -> None:
        if not await admission.first_bytes(tls.socket, slot):
            timeout = admission.limits.first_bytes_timeout
            self.log.warning("handshake failed", reason=f"no ClientHello within {timeout}s")
            self.observer.handshake_failed("first-bytes-timeout")
            return
        client_subject = await self._handshake(tls)
        slot.established()
        if client_subject is not None:
            await self._exchange(tls, client_subject)

    async def _handshake(self, tls: TlsStream) -> str | None:
        """Handshake with a deadline; returns the client certificate subject ("" if none);
        None when the handshake failed (already logged)."""
        try:
            with trio.fail_after(self.limits.handshake_timeout):
                peer = await tls.do_handshake()
        except trio.TooSlowError:
            self.log.warning(
                "handshake failed", reason=f"timeout after {self.limits.handshake_timeout}s"
            )
            self.observer.handshake_failed("timeout")
            return None
        except TlsHandshakeError as exc:
            fields = exc.peer.log_fields() if exc.peer is not None else {}
            self.log.warning("handshake failed", reason=exc.reason, **fields)
            self.observer.handshake_failed(exc.kind)
            if exc.kind != "eof":
                await tls.linger_close(LINGER)
            return None
        subject = self.subject_of(peer.certificate.der) if peer is not None else ""
        if peer is not None and not peer.verified:
            self.log.warning("client certificate not verified, accepted", **peer.log_fields())
            self.observer.client_unverified(peer.failure_kind or "other")
            self.unverified = peer.failure
        if log_enabled(self.log, logging.DEBUG):
            self.log.debug(
                "handshake done",
                cipher=tls.cipher(),
                tls_version=tls.version(),
                client_subject=subject or None,
            )
        return subject

    async def _read_request(self, tls: TlsStream) -> Frame:
        """The request and its bytes; the decoder frames it and judges the end of stream."""
        decoder = Decoder(max_size=self.limits.max_message)
        try:
            with trio.fail_after(self.limits.request_timeout):
                while not isinstance(frame := decoder.next_frame(), Frame):
                    decoder.receive_data(await tls.receive_some(65536))  # b"": peer closed
                return frame
        except trio.TooSlowError:
            got = f"{decoder.buffered} bytes" if decoder.buffered else "nothing"
            raise _BadRequest(
                "timeout", f"request timeout after {self.limits.request_timeout}s (got {got})"
            ) from None
        except DecodeError as exc:  # the fault's stable reason is the metric label
            raise _BadRequest(exc.reason, f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise _BadRequest("truncated", f"connection broken: {exc}") from None

    async def _exchange(self, tls: TlsStream, client_subject: str) -> None:
        started = time.perf_counter()
        try:
            frame = await self._read_request(tls)
        except _BadRequest as exc:
            self.log.warning("bad request", reason=str(exc), fault=exc.kind)
            self.observer.bad_request(exc.kind)
            return
        msg, raw = frame.message, frame.data
        debug = log_enabled(self.log, logging.DEBUG)
        if debug:
            self.log.debug("message received", _raw=raw, _message=msg)
        result: HandlerResult = handle_request(msg, self.cache)
        if debug and result.lookup is not None:
            entry = result.lookup.entry
            self.log.debug(
                "cache lookup",
                kind=result.lookup.kind,
                key=result.lookup.key,
                roles=list(entry.roles) if entry is not None else None,
                source=entry.source if entry is not None else None,
            )
        if result.response is None:
            self.log.warning("bad request", reason=result.error, fault="unexpected")
            self.observer.bad_request("unexpected")
            return
        out = encode_message(result.response)
        try:
            with trio.fail_after(self.limits.request_timeout):
                await tls.send_all(out)
        except (trio.TooSlowError, OSError) as exc:
            self.log.warning("response not delivered", reason=type(exc).__name__)
            self.observer.bad_request("send-failed")
            return
        seconds = time.perf_counter() - started
        if debug:
            self.log.debug("response sent", _raw=out, _message=result.response)
        type_name = MessageType(msg.type).name
        status = result.response.status.name
        if log_enabled(self.log, logging.INFO):
            details = _request_details(msg)
            if self.unverified is not None:
                details["client_unverified"] = self.unverified
            self.log.info(
                "request",
                type=type_name,
                request_id=msg.request_id,
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
