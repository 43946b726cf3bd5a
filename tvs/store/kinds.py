"""What a certificate in a bulk export is (CallManager, ITLRecovery, CAPF, tomcat, TVS), as data.

Bulk import must know each certificate's kind to pick its trust stores (``BULK_IMPORT_MAP``).
Our own bundles say it in the friendly name ``KIND|CLUSTER|NODE``; a real CUCM export or a
PKCS#12 made with ``openssl pkcs12 -export`` may not. :func:`recognise` reads, in order, the
rows of :data:`RULES`: the friendly name, the subject, then names that CUCM and administrators
give bundles and entries (friendly name, then file name). A CallManager, TVS and tomcat
certificate look alike (CN = the node's name, TLS server and client key usage), so without a
name saying which, the kind stays unknown and the user says it (``--kind``): a wrong guess
would put a web server's certificate in Phone-SAST-trust, where it may sign trust lists.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import attrs

from ..certs import Certificate

__all__ = ["KINDS", "RULES", "KindRule", "Recognised", "recognise"]

KINDS: Final = ("CallManager", "ITLRecovery", "CAPF", "tomcat", "TVS")
"""Kinds a bulk export holds (CUCM's names, as in ``BULK_IMPORT_MAP``)."""

_BY_FOLD = {k.casefold(): k for k in KINDS}


@attrs.frozen
class Recognised:
    kind: str
    why: str  # the rule that decided, for the import's output


@attrs.frozen
class KindRule:
    """One way to tell a kind; ``confidence`` as in the protocol notes (High, Med, Low)."""

    what: str
    confidence: str
    test: Callable[[Certificate, str, str], str | None]


def _our_label(_cert: Certificate, friendly: str, _file: str) -> str | None:
    parts = friendly.split("|")
    if len(parts) == 3:
        return _BY_FOLD.get(parts[0].casefold())
    return None


def _cn_prefix(prefix: str, kind: str) -> Callable[[Certificate, str, str], str | None]:
    def test(cert: Certificate, _friendly: str, _file: str) -> str | None:
        return kind if cert.common_name.upper().startswith(prefix) else None

    return test


# CUCM's and administrators' names for entries and files; the first match in a name wins.
# ``ipsec`` and ``-EC`` variants are not bulk-exported kinds; ``ccm``/``tftp`` name CallManager.
_NAME_TOKENS: Final = (
    (re.compile(r"itl[_-]?recovery", re.IGNORECASE), "ITLRecovery"),
    (re.compile(r"(?<![a-z])capf(?![a-z])", re.IGNORECASE), "CAPF"),
    (re.compile(r"tomcat", re.IGNORECASE), "tomcat"),
    (re.compile(r"(?<![a-z])tvs(?![a-z])", re.IGNORECASE), "TVS"),
    (
        re.compile(r"call[_-]?manager|(?<![a-z])ccm(?![a-z])|(?<![a-z])tftp(?![a-z])", re.I),
        "CallManager",
    ),
)


def _token(text: str) -> str | None:
    for pattern, kind in _NAME_TOKENS:
        if pattern.search(text):
            return kind
    return None


def _friendly_token(_cert: Certificate, friendly: str, _file: str) -> str | None:
    return _token(friendly) if friendly else None


def _file_token(_cert: Certificate, _friendly: str, file: str) -> str | None:
    return _token(file) if file else None


RULES: Final = (
    KindRule("friendly name KIND|CLUSTER|NODE (our bundles)", "High", _our_label),
    KindRule(
        "subject CN=ITLRECOVERY_<node> (CUCM's ITLRecovery)",
        "High",
        _cn_prefix("ITLRECOVERY_", "ITLRecovery"),
    ),
    KindRule("subject CN=CAPF-<8 hex> (CUCM's CAPF)", "High", _cn_prefix("CAPF-", "CAPF")),
    KindRule("friendly name naming a kind (tomcat, CallManager, ...)", "Low", _friendly_token),
    KindRule("file name naming a kind (one certificate in the file)", "Low", _file_token),
)
"""Rules in the order they are tried; the first that answers decides."""


def recognise(cert: Certificate, friendly_name: str = "", file_name: str = "") -> Recognised | None:
    """The kind of ``cert`` from its friendly name, subject, or the name of its file (give
    ``file_name`` only when the file holds this one certificate); None when it cannot be told."""
    for rule in RULES:
        kind = rule.test(cert, friendly_name, file_name)
        if kind is not None:
            return Recognised(kind, f"{rule.what} ({rule.confidence})")
    return None
