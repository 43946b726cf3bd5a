"""Errors of the CAPF codec and sessions: one hierarchy, one class per fault.

Every error raised while decoding bytes from the network is a :class:`CapfDecodeError` with a
short stable ``reason`` (logged and counted by the servers). Session machines raise
:class:`CapfProtocolError` for a well-formed message that is not legal in the current state.
Signature checks raise :class:`CapfSignatureError`. Nothing here does I/O.
"""

from __future__ import annotations

__all__ = [
    "BadCertificateElement",
    "BadMagic",
    "BadString",
    "BadSubElement",
    "BadValue",
    "CapfDbError",
    "CapfDecodeError",
    "CapfEncodeError",
    "CapfError",
    "CapfProtocolError",
    "CapfSignatureError",
    "ElementOverrun",
    "ElementSizeError",
    "MessageTooLarge",
    "TrailingData",
    "TruncatedMessage",
]


class CapfError(Exception):
    """Base of every CAPF codec, signing and session error. ``reason`` is a stable code."""

    reason = "capf-error"


class CapfEncodeError(CapfError, ValueError):
    """A value cannot be put on the wire (it does not fit its element)."""

    reason = "encode"


class CapfDecodeError(CapfError, ValueError):
    """Bytes from the peer are not a valid CAPF message."""

    reason = "malformed"


class BadMagic(CapfDecodeError):
    reason = "bad-magic"


class MessageTooLarge(CapfDecodeError):
    reason = "too-large"


class TruncatedMessage(CapfDecodeError):
    reason = "truncated"


class TrailingData(CapfDecodeError):
    reason = "trailing-data"


class ElementOverrun(CapfDecodeError):
    reason = "element-overrun"


class ElementSizeError(CapfDecodeError):
    reason = "element-size"


class BadValue(CapfDecodeError):
    reason = "bad-value"


class BadString(CapfDecodeError):
    reason = "bad-string"


class BadCertificateElement(CapfDecodeError):
    reason = "bad-certificate-element"


class BadSubElement(CapfDecodeError):
    reason = "bad-sub-element"


class CapfProtocolError(CapfError):
    """A well-formed message the session cannot accept now (wrong command or element)."""

    reason = "protocol"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class CapfSignatureError(CapfError, ValueError):
    """A signed-data proof does not verify (or cannot be checked with that key)."""

    reason = "bad-signature"


class CapfDbError(CapfError):
    """The operations database cannot be opened, read or written (the message names it)."""

    reason = "db"
