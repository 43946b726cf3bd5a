"""Human and JSON views of TVS message values (for the CLI, logs and trace tools).

Owns presentation only: names for tags, roles and types; certificates summarised by subject,
issuer and serial when they parse. No wire logic here.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from ..names import cucm_name
from ..roles import role_names
from .messages import (
    Element,
    Message,
    MessageType,
    QueryCertRequest,
    QueryCertResponse,
    Status,
    Tag,
    UnknownMessage,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["format_message", "message_to_dict", "type_name"]


def type_name(msg_type: int) -> str:
    try:
        return MessageType(msg_type).name
    except ValueError:
        return f"unknown type {msg_type}"


def _cert_summary(der: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {"length": len(der)}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        info["error"] = "not a parsable X.509 certificate"
        return info
    serial = cert.serial_number
    info.update(
        subject=cucm_name(cert.subject),
        issuer=cucm_name(cert.issuer),
        serial=serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex().upper(),
        not_after=cert.not_valid_after_utc.isoformat(),
    )
    return info


def _element_dict(el: Element) -> dict[str, Any]:
    try:
        name = Tag(el.tag).name.lower()
    except ValueError:
        name = f"tag-{el.tag}"
    return {"tag": el.tag, "name": name, "length": len(el.value), "hex": el.value.hex()}


def message_to_dict(msg: Message) -> dict[str, Any]:
    """A JSON-able description: type, request id, reserved byte and every field."""
    out: dict[str, Any] = {
        "type": type_name(int(msg.type)),
        "type_code": int(msg.type),
        "request_id": msg.request_id,
        "reserved": msg.reserved,
    }
    if isinstance(msg, QueryCertRequest):
        out.update(device=msg.device, subject=msg.subject, issuer=msg.issuer, serial=msg.serial_hex)
    elif isinstance(msg, VerifyRequest):
        out.update(device=msg.device, certificate=_cert_summary(msg.certificate))
    elif isinstance(msg, QueryCertResponse | VerifyResponse):
        out["status"] = Status(msg.status).name.lower()
        if isinstance(msg, QueryCertResponse) and msg.certificate is not None:
            out["certificate"] = _cert_summary(msg.certificate)
        out["roles"] = list(msg.roles)
        out["role_names"] = role_names(msg.roles)
        out["ttl"] = msg.ttl
    elements = msg.elements if isinstance(msg, UnknownMessage) else msg.extra
    if elements:
        out["elements" if isinstance(msg, UnknownMessage) else "extra"] = [
            _element_dict(e) for e in elements
        ]
    return out


def format_message(msg: Message) -> list[str]:
    """Human-readable lines, one field a line."""
    d = message_to_dict(msg)
    lines = [
        f"type:        {d['type']} ({d['type_code']})",
        f"request id:  {d['request_id']}",
        f"reserved:    0x{d['reserved']:02x}",
    ]
    for key in ("device", "subject", "issuer", "serial", "status"):
        if key in d:
            lines.append(f"{key + ':':<12} {d[key]}")
    cert = d.get("certificate")
    if cert:
        if "subject" in cert:
            lines.append(f"certificate: {cert['length']} bytes, subject {cert['subject']}")
            lines.append(f"             issuer {cert['issuer']}, serial {cert['serial']}")
        else:
            lines.append(f"certificate: {cert['length']} bytes ({cert.get('error', '')})")
    if "roles" in d:
        roles = ", ".join(f"{n} ({c})" for n, c in zip(d["role_names"], d["roles"], strict=True))
        lines.append(f"roles:       {roles or '-'}")
        lines.append(f"ttl:         {d['ttl'] if d['ttl'] is not None else '-'}")
    for key in ("elements", "extra"):
        for el in d.get(key, []):
            lines.append(
                f"element:     {el['name']} ({el['tag']}), {el['length']} bytes: {el['hex']}"
            )
    return lines
