"""SIP messages, sans I/O: framing, the phone's REGISTER, the emulated CUCM's answer, status lines.

Owns the little SIP the lab speaks, for both sides: :func:`split_message` frames one whole
message (head and ``Content-Length`` body, bounded by :data:`MAX_SIP_HEAD` and
:data:`MAX_SIP_BODY`); :func:`register_request` builds a phone's minimal ``REGISTER`` (Via,
From, To, Call-ID, CSeq, Contact naming the device ``SEP<MAC>``, Expires, ``Content-Length:
0``) over TLS or TCP; :func:`sip_response` is the emulated CUCM's answer to one request
(``REGISTER`` and ``OPTIONS`` get ``200 OK``, others ``501 Not Implemented``; no dialogs, no
calls); :func:`response_status` reads the status line of one whole response. Garbage raises
:class:`SipError` (:class:`SipRequestError` / :class:`SipResponseError`). Imports neither trio
nor ssl: the phone's driver and the cluster's listener (``tvs.cluster.sip``) do the transport,
TLS and deadlines.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import attrs

__all__ = [
    "MAX_SIP_BODY",
    "MAX_SIP_HEAD",
    "REGISTER_EXPIRES",
    "SipError",
    "SipRequestError",
    "SipResponseError",
    "SipStatus",
    "register_request",
    "response_status",
    "sip_response",
    "split_message",
]

MAX_SIP_HEAD: Final = 16 * 1024
"""A head (start line and headers) over this size is refused."""
MAX_SIP_BODY: Final = 64 * 1024
"""A ``Content-Length`` over this size is refused."""
REGISTER_EXPIRES: Final = 3600

_CONTENT_LENGTH = re.compile(
    rb"^(?:content-length|l)\s*:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE
)
_STATUS_RE = re.compile(r"^SIP/2\.0 ([1-6]\d\d)(?: (.*))?$")
_ECHOED = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "contact", "m", "expires")


class SipError(ValueError):
    """Bytes that are not a SIP message this lab can use."""


class SipRequestError(SipError):
    """Bytes that are not a SIP request the emulated CUCM can answer."""


class SipResponseError(SipError):
    """Bytes that are not a SIP response."""


@attrs.frozen
class SipStatus:
    code: int
    line: str  # the whole status line, e.g. ``SIP/2.0 200 OK``

    @property
    def ok(self) -> bool:
        return self.code == 200


def split_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """``(message, rest)`` when ``buffer`` starts with a whole message (head and body), else
    None; raises SipError when the head or body is over the limits."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_SIP_HEAD:
            raise SipError(f"no end of headers within {MAX_SIP_HEAD} bytes")
        return None
    head_len = end + 4
    if head_len > MAX_SIP_HEAD:
        raise SipError(f"headers of {head_len} bytes over {MAX_SIP_HEAD}")
    m = _CONTENT_LENGTH.search(buffer[:end])
    body_len = int(m.group(1)) if m else 0
    if body_len > MAX_SIP_BODY:
        raise SipError(f"body of {body_len} bytes over {MAX_SIP_BODY}")
    if len(buffer) < head_len + body_len:
        return None
    return buffer[: head_len + body_len], buffer[head_len + body_len :]


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
    transport: Literal["tls", "tcp"] = "tls",
) -> bytes:
    """One ``REGISTER sip:<host> SIP/2.0`` from ``device_name`` (``SEP<MAC>``) at ``local``,
    over ``transport`` (``tls`` to 5061, ``tcp`` to 5060: the Via and Contact say which)."""
    aor = f"<sip:{device_name}@{host}>"
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local[0]}:{local[1]};branch=z9hG4bK{branch}",
        f"From: {aor};tag={tag}",
        f"To: {aor}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{device_name}@{local[0]}:{local[1]};transport={transport}>",
        f"Expires: {expires}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def sip_response(message: bytes) -> bytes:
    """The emulated CUCM's response to one whole SIP request (see :func:`split_message`);
    SipRequestError if it is not a request."""
    head = message.split(b"\r\n\r\n", 1)[0]
    try:
        lines = head.decode("utf-8").split("\r\n")
    except UnicodeDecodeError:
        raise SipRequestError("request head is not UTF-8") from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[0].isalpha():
        raise SipRequestError(f"not a SIP request line: {lines[0][:80]!r}")
    method = parts[0].upper()
    echoed: list[str] = []
    for line in lines[1:]:
        name, sep, _ = line.partition(":")
        if sep and name.strip().lower() in _ECHOED:
            if method != "REGISTER" and name.strip().lower() in ("contact", "m", "expires"):
                continue
            echoed.append(line)
    status = "200 OK" if method in ("REGISTER", "OPTIONS") else "501 Not Implemented"
    out = [f"SIP/2.0 {status}", *echoed, "Server: tvs-lab emulated CUCM", "Content-Length: 0"]
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")


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
