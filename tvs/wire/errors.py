"""Errors of the TVS message codec: one hierarchy, one class per fault.

Every error raised while decoding bytes from the network is a :class:`DecodeError`; a server
catches that one class, logs ``str(exc)`` and closes the connection.
"""

from __future__ import annotations

__all__ = [
    "BadDeviceName",
    "BadDiscriminator",
    "BadName",
    "BadValue",
    "DecodeError",
    "ElementOverrun",
    "ElementSizeError",
    "EncodeError",
    "MessageTooLarge",
    "MissingElement",
    "TrailingData",
    "TruncatedMessage",
    "UnsupportedVersion",
    "WireError",
]


class WireError(Exception):
    """Base of every TVS message codec error."""


class EncodeError(WireError, ValueError):
    """A message value cannot be put on the wire (a field does not fit its element)."""


class DecodeError(WireError, ValueError):
    """Bytes from the peer are not a valid TVS message. ``reason`` is a short stable code."""

    reason = "malformed"


class BadDiscriminator(DecodeError):
    reason = "bad-discriminator"


class UnsupportedVersion(DecodeError):
    reason = "unsupported-version"


class MessageTooLarge(DecodeError):
    reason = "too-large"


class TruncatedMessage(DecodeError):
    reason = "truncated"


class ElementOverrun(DecodeError):
    reason = "element-overrun"


class ElementSizeError(DecodeError):
    reason = "element-size"


class BadDeviceName(DecodeError):
    reason = "bad-device-name"


class BadName(DecodeError):
    reason = "bad-name"


class TrailingData(DecodeError):
    reason = "trailing-data"


class MissingElement(DecodeError):
    reason = "missing-element"


class BadValue(DecodeError):
    reason = "bad-value"
