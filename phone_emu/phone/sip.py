"""The phone's side of a secure SIP registration, sans I/O: the REGISTER it sends and the
status line it reads back.

Owns :func:`register_request` (a minimal ``REGISTER`` with Via, From, To, Call-ID, CSeq,
Contact naming the device ``SEP<MAC>``, Expires and ``Content-Length: 0``) and
:func:`response_status` (the status of one whole response, framed by
:func:`tvs.cluster.sip.split_message`). Garbage gives :class:`SipResponseError`. The driver
does the TLS and the deadlines.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

__all__ = [
    "REGISTER_EXPIRES",
    "SipResponseError",
    "SipStatus",
    "register_request",
    "response_status",
]

REGISTER_EXPIRES: Final = 3600
_STATUS_RE = re.compile(r"^SIP/2\.0 ([1-6]\d\d)(?: (.*))?$")


class SipResponseError(ValueError):
    """Bytes that are not a SIP response."""


@attrs.frozen
class SipStatus:
    code: int
    line: str  # the whole status line, e.g. ``SIP/2.0 200 OK``

    @property
    def ok(self) -> bool:
        return self.code == 200


def register_request(
    host: str,
    device_name: str,
    *,
    local: tuple[str, int],
    call_id: str,
    tag: str,
    branch: str,
    cseq: int = 101,
    expires: int = REGISTER_EXPIRES,
) -> bytes:
    """One ``REGISTER sip:<host> SIP/2.0`` from ``device_name`` (``SEP<MAC>``) at ``local``."""
    aor = f"<sip:{device_name}@{host}>"
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        f"Via: SIP/2.0/TLS {local[0]}:{local[1]};branch=z9hG4bK{branch}",
        f"From: {aor};tag={tag}",
        f"To: {aor}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{device_name}@{local[0]}:{local[1]};transport=tls>",
        f"Expires: {expires}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def response_status(message: bytes) -> SipStatus:
    """The status of one whole response; SipResponseError when it is not one."""
    first = message.split(b"\r\n", 1)[0]
    try:
        line = first.decode("utf-8")
    except UnicodeDecodeError:
        raise SipResponseError("status line is not UTF-8") from None
    m = _STATUS_RE.match(line)
    if m is None:
        raise SipResponseError(f"not a SIP status line: {line[:80]!r}")
    return SipStatus(int(m.group(1)), line)
