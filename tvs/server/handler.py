"""TVS request handling, pure: a decoded message and the certificate cache in, the response and
the facts worth logging out. No sockets, no clocks, no logging.

Lookup order (protocol notes section 7, TAC 212051, High): the trust-store cache first and,
on a miss, the records of the cluster's current CTL with their CTL roles (the cache's
fallback, :meth:`CertificateCache.with_fallback`); :attr:`Lookup.source` says which answered.
QUERY_CERT_REQ: look up serial + issuer (issuer by parsed attributes); found: status VALID,
the certificate, its roles, its TTL; not found: status INVALID alone (Low: the exact
not-found shape of CUCM is unknown). VERIFY_REQUEST: look up the SHA-256 of the presented
certificate; found: VALID, roles, TTL; not found: INVALID alone. Both echo the request id.
Anything else (a response type, an unknown type) is not answered.
"""

from __future__ import annotations

import hashlib

import attrs

from ..store.cache import CacheEntry, CertificateCache
from ..wire import (
    Message,
    MessageType,
    QueryCertRequest,
    QueryCertResponse,
    Status,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["HandlerResult", "Lookup", "handle_request"]


@attrs.frozen
class Lookup:
    """One cache lookup: CUCM's ``Unique MAP ID`` (serial hex + issuer) or a SHA-256 hex."""

    kind: str  # "serial+issuer" | "sha256"
    key: str
    entry: CacheEntry | None

    @property
    def source(self) -> str | None:
        """``cache`` (trust stores), ``ctl`` (the current CTL), or None (not found)."""
        return self.entry.source if self.entry is not None else None


@attrs.frozen
class HandlerResult:
    response: QueryCertResponse | VerifyResponse | None
    lookup: Lookup | None = None
    error: str | None = None
    """Why the request is not answered (``response`` is None then)."""

    @property
    def status(self) -> Status | None:
        return self.response.status if self.response is not None else None


def _query(msg: QueryCertRequest, cache: CertificateCache) -> HandlerResult:
    entry = cache.find_by_serial_issuer(msg.serial, msg.issuer)
    lookup = Lookup("serial+issuer", msg.cache_key, entry)
    if entry is None:
        return HandlerResult(QueryCertResponse(Status.INVALID, request_id=msg.request_id), lookup)
    resp = QueryCertResponse(
        Status.VALID,
        certificate=entry.certificate.der,
        roles=entry.roles,
        ttl=entry.ttl,
        request_id=msg.request_id,
    )
    return HandlerResult(resp, lookup)


def _verify(msg: VerifyRequest, cache: CertificateCache) -> HandlerResult:
    digest = hashlib.sha256(msg.certificate).digest()
    entry = cache.find_by_sha256(digest)
    lookup = Lookup("sha256", digest.hex(), entry)
    if entry is None:
        return HandlerResult(VerifyResponse(Status.INVALID, request_id=msg.request_id), lookup)
    resp = VerifyResponse(Status.VALID, roles=entry.roles, ttl=entry.ttl, request_id=msg.request_id)
    return HandlerResult(resp, lookup)


def handle_request(msg: Message, cache: CertificateCache) -> HandlerResult:
    """The answer to one request message."""
    if isinstance(msg, QueryCertRequest):
        return _query(msg, cache)
    if isinstance(msg, VerifyRequest):
        return _verify(msg, cache)
    t = int(msg.type)
    name = MessageType(t).name if t in MessageType._value2member_map_ else f"unknown type {t}"
    return HandlerResult(None, error=f"unexpected message {name} (not a request)")
