"""CAPF messages for people: a JSON-able dict and display lines (``tvs decode``, ``tvs trace``).

Owns the presentation of one decoded :class:`~tvs.capf.messages.Message` (command by name,
session id, every element by name with typed values: reason and auth type by name, the nested
certificate's type and subject, key sizes, curves, SUDI parts) and :func:`inspect_capf`,
which decodes one whole message or says why it cannot. Decoding is :mod:`.decoder`'s.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from ..certs import Certificate, CertificateError
from .decoder import decode_message
from .errors import CapfError
from .messages import (
    MAGIC,
    AuthType,
    CertificateBlob,
    CertType,
    Curve,
    KeyType,
    Message,
    Reason,
    Sha2Signature,
    SudiData,
    command_name,
    decode_value,
    field_name,
)

__all__ = ["CapfInspection", "capf_to_dict", "format_capf", "inspect_capf", "is_capf"]

_HASHES: Final = {1: "sha1", 2: "sha256", 3: "sha512"}


def is_capf(data: bytes) -> bool:
    """Whether ``data`` starts like a CAPF message (discriminator 0x55; TVS is 0x57)."""
    return data[:1] == bytes([MAGIC])


@attrs.frozen
class CapfInspection:
    """One dump read as CAPF: the message when whole and valid, else why not."""

    message: Message | None
    length: int
    error: str | None = None


def inspect_capf(data: bytes) -> CapfInspection:
    try:
        return CapfInspection(decode_message(data), len(data))
    except CapfError as exc:
        return CapfInspection(None, len(data), f"{type(exc).__name__}: {exc}")


def _name(enum_type: Any, value: int) -> str:
    try:
        return str(enum_type(value).name.lower().replace("_", "-"))
    except ValueError:
        return str(value)


def _certificate(blob: CertificateBlob) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _name(CertType, blob.cert_type), "length": len(blob.der)}
    try:
        cert = Certificate.from_der(blob.der)
    except (CertificateError, ValueError):
        return out
    out.update(subject=cert.subject, issuer=cert.issuer, serial=cert.serial_hex)
    return out


def _value(tag: int, raw: bytes) -> Any:
    try:
        value = decode_value(tag, raw)
    except CapfError:
        return raw.hex()
    name = field_name(tag)
    if isinstance(value, CertificateBlob):
        return _certificate(value)
    if isinstance(value, SudiData):
        return {
            "mic": _certificate(CertificateBlob(CertType.MIC, value.certificate)),
            "sha1_signature_length": len(value.sha1_signature),
            "sha512_signature_length": len(value.sha512_signature or b""),
        }
    if isinstance(value, Sha2Signature):
        return {"hash": _HASHES.get(value.hash_id, value.hash_id), "length": len(value.signature)}
    if isinstance(value, bytes):
        return {"length": len(value), "hex": value.hex()}
    if name == "reason":
        return {"code": value, "name": _name(Reason, value)}
    if name == "auth_type":
        return {"code": value, "name": _name(AuthType, value)}
    if name in ("key_type", "certificate_type", "curve"):
        kind = {"key_type": KeyType, "certificate_type": CertType, "curve": Curve}[name]
        return {"code": value, "name": _name(kind, value)}
    return value


def capf_to_dict(msg: Message) -> dict[str, Any]:
    """``{"protocol": "capf", "command", "command_code", "session_id", "elements": [...]}``;
    every element ``{"tag", "name", "length", "value"}``."""
    return {
        "protocol": "capf",
        "command": command_name(msg.command),
        "command_code": msg.command,
        "session_id": msg.session_id,
        "elements": [
            {
                "tag": el.tag,
                "name": field_name(el.tag),
                "length": len(el.value),
                "value": _value(el.tag, el.value),
            }
            for el in msg.elements
        ],
    }


def _short(value: Any) -> str:
    if isinstance(value, dict):
        if "name" in value and "code" in value:
            return f"{value['name']} ({value['code']})"
        if "subject" in value:
            return f"{value['type']} {value['subject']} ({value['length']} bytes)"
        if "mic" in value:
            return f"MIC {value['mic'].get('subject', '?')}, signatures"
        if "hash" in value:
            return f"{value['hash']} signature, {value['length']} bytes"
        if "hex" in value:
            return f"{value['length']} bytes"
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if value == "":
        return '"" (empty)'
    return str(value)


def format_capf(msg: Message) -> list[str]:
    """Display lines in the style of ``tvs decode`` for TVS."""
    d = capf_to_dict(msg)
    lines = [
        "protocol:    CAPF",
        f"command:     {d['command']} ({d['command_code']})",
        f"session id:  {d['session_id']}",
    ]
    for el in d["elements"]:
        label = el["name"].replace("_", " ") + ":"
        lines.append(f"{label:<12} {_short(el['value'])}")
    return lines
