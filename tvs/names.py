"""Distinguished names the way CUCM writes them, and matching names written any way.

CUCM writes names most-specific first, joined by ``;`` with no escaping
(``CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU``); other tools write
``,``-joined RFC 4514 strings or OpenSSL's ``/C=AU/O=...`` form. Producing names is
:func:`cucm_name`; comparing them is :func:`name_key` / :func:`names_match`, which compare the
parsed attributes, never raw strings (protocol notes section 4). A name read from the wire or a
file may not parse: :func:`match_key` / :func:`same_name` are the one place that decides how
such names compare (raw), used by the TVS cache, the trust lists and the phone's trust.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = [
    "NameKey",
    "cucm_name",
    "match_key",
    "name_key",
    "names_match",
    "parse_name",
    "same_name",
]

# short names CUCM and OpenSSL print; anything else falls back to the dotted OID
_SHORT = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.USER_ID: "UID",
}
# aliases accepted when parsing, folded to one canonical upper-case key
_ALIASES = {
    "COMMONNAME": "CN",
    "ORGANIZATIONALUNITNAME": "OU",
    "ORGANIZATIONNAME": "O",
    "LOCALITYNAME": "L",
    "STATEORPROVINCENAME": "ST",
    "S": "ST",
    "COUNTRYNAME": "C",
    "SERIALNUMBER": "SERIALNUMBER",
    "2.5.4.5": "SERIALNUMBER",
    "EMAIL": "EMAILADDRESS",
    "E": "EMAILADDRESS",
    "1.2.840.113549.1.9.1": "EMAILADDRESS",
    "2.5.4.3": "CN",
    "2.5.4.11": "OU",
    "2.5.4.10": "O",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.6": "C",
}

NameKey = tuple[tuple[str, str], ...]
"""A name reduced for comparison: sorted (TYPE, folded value) pairs."""


def _attr_short(attr: x509.NameAttribute[str | bytes]) -> str:
    return _SHORT.get(attr.oid, attr.oid.dotted_string)


def cucm_name(name: x509.Name) -> str:
    """Render ``name`` CUCM style: most specific first, ``TYPE=value`` joined by ``;``."""
    parts: list[str] = []
    for rdn in reversed(name.rdns):
        for attr in rdn:
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            parts.append(f"{_attr_short(attr)}={value}")
    return ";".join(parts)


def _split(text: str, separators: str) -> list[str]:
    """Split on any separator not escaped by a backslash; unescape the pieces."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            i += 2
            continue
        if ch in separators:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def parse_name(text: str) -> list[tuple[str, str]]:
    """Parse a name in CUCM (``;``), RFC 4514 (``,``/``+``) or OpenSSL (``/A=B/C=D``) style.

    Returns ``(TYPE, value)`` pairs in the order written, TYPE upper-cased and de-aliased.
    Raises ValueError for a component without ``=``.
    """
    s = text.strip().rstrip("\x00")
    if not s:
        return []
    if s.startswith("/"):
        pieces = _split(s[1:], "/")
    elif ";" in s:
        pieces = _split(s, ";")
    else:
        pieces = _split(s, ",+")
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if "=" not in piece:
            # a value containing the separator (e.g. "O=Foo, Inc"): glue it to the previous one
            if pairs:
                k, v = pairs[-1]
                pairs[-1] = (k, f"{v},{piece}")
                continue
            raise ValueError(f"name component without '=': {piece!r}")
        key, _, value = piece.partition("=")
        k = key.strip().upper()
        pairs.append((_ALIASES.get(k, k), value.strip()))
    return pairs


def name_key(name: str | x509.Name) -> NameKey:
    """Reduce a name to a key that is equal for equal names however they were written."""
    pairs = parse_name(cucm_name(name)) if isinstance(name, x509.Name) else parse_name(name)
    return tuple(sorted((k, " ".join(v.split()).casefold()) for k, v in pairs))


def names_match(a: str | x509.Name, b: str | x509.Name) -> bool:
    """True when two names hold the same attributes, whatever their style and order."""
    return name_key(a) == name_key(b)


@functools.lru_cache(maxsize=4096)
def match_key(name: str) -> NameKey | str:
    """The comparison key of a name string (an issuer from a TVS request, a trust-list record):
    its parsed attributes, or the raw string when it does not parse, so that such a name only
    matches itself. Memoised: a boot storm repeats a handful of issuers."""
    try:
        return name_key(name)
    except ValueError:
        return name


def same_name(a: str, b: str) -> bool:
    """``names_match`` for strings that may not parse (those compare raw)."""
    return match_key(a) == match_key(b)
