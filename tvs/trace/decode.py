"""What a (possibly cut-short) TVS or CAPF message dump says, as timeline fields and lines.

Owns turning one dump's bytes into :class:`~tvs.trace.model.MessageBytes` and the flat
``fields`` a timeline event carries (type, request id, device, signer, status, roles, TTL).
Decoding itself is :func:`tvs.wire.inspect_message`; nothing here reads wire bytes by hand
except naming the partial elements it reports.
"""

from __future__ import annotations

from typing import Any

from ..capf.describe import CapfInspection, capf_to_dict, format_capf, inspect_capf, is_capf
from ..hexdump import HexDump
from ..roles import role_names
from ..wire import (
    DISCRIMINATOR,
    Tag,
    describe_partial_value,
    format_message,
    inspect_message,
    message_to_dict,
    type_name,
)
from .model import MessageBytes

__all__ = ["message_bytes", "message_fields", "message_lines", "tag_label"]


def message_bytes(dump: HexDump) -> MessageBytes:
    """The dump as a TVS message (0x57), or a CAPF message (0x55); other bytes are kept
    undecoded."""
    data = dump.data
    if is_capf(data):
        return MessageBytes(
            data=data,
            declared_length=dump.declared_length,
            inspection=None,
            capf=inspect_capf(data),
        )
    inspection = inspect_message(data) if data[:1] == bytes([DISCRIMINATOR]) else None
    return MessageBytes(data=data, declared_length=dump.declared_length, inspection=inspection)


def _capf_fields(ci: CapfInspection) -> dict[str, Any]:
    """Flat fields of a CAPF dump: ``protocol``, ``type`` (the command), ``session_id`` and
    the device, reason and certificate when present."""
    out: dict[str, Any] = {"protocol": "capf"}
    if ci.message is None:
        out["note"] = ci.error
        return out
    d = capf_to_dict(ci.message)
    out.update(type=d["command"], session_id=d["session_id"])
    for el in d["elements"]:
        name, value = el["name"], el["value"]
        if name == "device_name":
            out["device"] = value
        elif name == "reason":
            out["reason"] = value["name"]
        elif name == "certificate" and isinstance(value, dict) and "subject" in value:
            out["certificate_subject"] = value["subject"]
    return out


def tag_label(tag: int) -> str:
    try:
        return Tag(tag).name.lower().replace("_", " ")
    except ValueError:
        return f"tag {tag}"


def _element_field(tag: int, value: bytes) -> tuple[str, Any] | None:
    if tag == Tag.DEVICE_NAME:
        return "device", describe_partial_value(tag, value)
    if tag == Tag.SUBJECT:
        return "subject", describe_partial_value(tag, value)
    if tag == Tag.STATUS and len(value) == 1:
        return "status", {0: "VALID", 1: "INVALID"}.get(value[0], str(value[0]))
    if tag == Tag.ROLES:
        return "roles", list(value)
    if tag == Tag.TTL and len(value) == 4:
        return "ttl", int.from_bytes(value, "big")
    if tag == Tag.CERTIFICATE:
        return "certificate_length", len(value)
    return None


def message_fields(mb: MessageBytes) -> dict[str, Any]:
    """Flat fields: ``type``, ``request_id``, ``reserved``, ``length`` (whole message as
    declared by the dump), ``present`` (bytes found), ``truncated`` and every decodable field."""
    out: dict[str, Any] = {
        "present": len(mb.data),
        "truncated": mb.truncated,
    }
    if mb.declared_length is not None:
        out["length"] = mb.declared_length
    if mb.capf is not None:
        return {**out, **_capf_fields(mb.capf)}
    ins = mb.inspection
    if ins is None or ins.header is None:
        if ins is not None and ins.error:
            out["note"] = ins.error
        return out
    h = ins.header
    out.update(type=type_name(h.type), request_id=h.request_id, reserved=h.reserved)
    out["body_length"] = h.length
    if ins.message is not None:
        d = message_to_dict(ins.message)
        for key in ("device", "subject", "issuer", "serial", "ttl"):
            if d.get(key) is not None:
                out[key] = d[key]
        if "status" in d:
            out["status"] = d["status"].upper()
        if "roles" in d:
            out["roles"] = d["roles"]
        cert = d.get("certificate")
        if cert:
            out["certificate_length"] = cert["length"]
            if "subject" in cert:
                out["certificate_subject"] = cert["subject"]
        return out
    for el in ins.elements:
        found = _element_field(el.tag, el.value)
        if found is not None:
            out[found[0]] = found[1]
    if ins.cut_element is not None:
        tag, declared, _present = ins.cut_element
        out["cut_in"] = tag_label(tag)
        if tag == Tag.CERTIFICATE and declared >= 0:
            out["certificate_length"] = declared
    return out


def message_lines(mb: MessageBytes) -> list[str]:
    """Display lines: the decoded message, or the header and the elements before the cut."""
    if mb.capf is not None:
        if mb.capf.message is None:
            return [f"CAPF message, unreadable: {mb.capf.error}"]
        return format_capf(mb.capf.message)
    ins = mb.inspection
    if ins is None:
        if not mb.data:
            return [f"(no bytes in the dump; {mb.declared_length} declared)"]
        return [f"not a TVS message: {mb.data[:16].hex(' ')}..."]
    if ins.message is not None:
        lines = format_message(ins.message)
        return [*lines, f"note:        {ins.error}"] if ins.error else lines
    if ins.header is None:
        return [f"unreadable: {ins.error}"]
    h = ins.header
    lines = [
        f"type:        {type_name(h.type)} ({h.type})",
        f"request id:  {h.request_id}",
        f"reserved:    0x{h.reserved:02x}",
        f"length:      {h.length} (body)",
    ]
    for el in ins.elements:
        value = describe_partial_value(el.tag, el.value)
        if el.tag == Tag.ROLES:
            value = ", ".join(role_names(el.value))
        lines.append(f"{tag_label(el.tag) + ':':<12} {value}")
    if ins.cut_element is not None:
        tag, declared, present = ins.cut_element
        lines.append(
            f"{tag_label(tag) + ':':<12} {describe_partial_value(tag, present)[:64]}... "
            f"(cut: {len(present)} of {declared} bytes)"
        )
    lines.append(f"note:        {ins.error}  [{len(mb.data)} of {mb.declared_length} bytes]")
    return lines
