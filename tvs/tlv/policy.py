"""Trust policy for signed files: who may sign what, and checking a file against trust anchors.

Owns the phone's signing-role table (:data:`SIGNING_ROLES`: a CTL or ITL is signed by a SAST
record, a configuration file by a TFTP or CCM+TFTP one; the phone and ``tvs tlv verify
--trust-list`` both read it) and :func:`check_file`, the verification report behind ``tvs tlv
verify`` / ``tvs sgn verify``:

- with trusted certificates, a file is valid only if its signer IS one of them (same serial and
  issuer, and the signature verifies with that certificate's key);
- with a trust list, only if its signer is a record of that list whose role may sign this kind
  of file (the phone's rule), and the signature verifies with that record's certificate;
- with neither, only self-consistency is checked (the signature verifies with the signer
  record the file carries), and the report says so.

A file that is merely self-consistent when a trust anchor was given is invalid, and the report
says it is self-consistent. Pure: no I/O. Does not own signature arithmetic (:mod:`.verify`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ..certs import Certificate
from ..roles import Role, role_label, role_names
from .errors import SignerNotFoundError, TlvError
from .model import TrustFile
from .verify import matches_signer, verify_with_certificate

__all__ = [
    "SIGNING_ROLES",
    "FileKind",
    "Verification",
    "check_file",
    "file_kind",
]


class FileKind(enum.Enum):
    CTL = "ctl"
    ITL = "itl"
    CONFIG = "config"


SIGNING_ROLES: Final[Mapping[FileKind, frozenset[int]]] = {
    FileKind.CTL: frozenset({Role.SAST}),
    FileKind.ITL: frozenset({Role.SAST}),
    FileKind.CONFIG: frozenset({Role.TFTP, Role.CCM_TFTP}),
}
"""Roles a signer must hold (in a held trust list or a TVS answer) to sign each file."""


def file_kind(f: TrustFile) -> FileKind:
    """What ``f`` is to a phone: a signed (``.sgn``) file is configuration; a ``.tlv`` whose
    header names an ITL is an ITL; any other ``.tlv`` a CTL."""
    if f.kind == "sgn":
        return FileKind.CONFIG
    return FileKind.ITL if f.header.filename.upper().startswith("ITL") else FileKind.CTL


@attrs.frozen
class Verification:
    """The outcome of :func:`check_file`; :meth:`to_dict` is ``tvs tlv verify --json``."""

    file_kind: FileKind
    filename: str
    signer: Mapping[str, str]
    hash_algorithm: str
    trust: str
    """``"none"`` (self-consistency only), ``"certificates"``, ``"trust-list"`` or both
    joined by ``+``."""
    valid: bool
    self_consistent: bool | None
    """The signature verifies with the file's own signer record (None: not checked)."""
    verified_by: Certificate | None = None
    source: str | None = None
    """Where ``verified_by`` came from: ``trusted``, ``trust-list`` or ``record``."""
    role: int | None = None
    """The trust-list record's role that allowed the signer (``--trust-list``)."""
    error: str | None = None
    error_type: str | None = None

    @property
    def anchored(self) -> bool:
        return self.trust != "none"

    def to_dict(self) -> dict[str, Any]:
        cert = self.verified_by
        return {
            "file_kind": self.file_kind.value,
            "filename": self.filename,
            "signer": dict(self.signer),
            "hash_algorithm": self.hash_algorithm,
            "trust": self.trust,
            "valid": self.valid,
            "self_consistent": self.self_consistent,
            "verified_by": None
            if cert is None
            else {
                "subject": cert.subject,
                "issuer": cert.issuer,
                "serial": cert.serial_hex,
                "source": self.source,
                "sha256": cert.sha256.hex(),
                "not_after": cert.not_valid_after.isoformat(),
            },
            "role": self.role,
            "role_name": None if self.role is None else role_label(self.role),
            "error": self.error,
            "error_type": self.error_type,
        }

    def summary(self) -> str:
        """One line for a terminal: the verdict and what it rests on."""
        if self.valid and self.verified_by is not None:
            cert = self.verified_by
            who = f"{cert.subject} (serial {cert.serial_hex})"
            if self.source == "trusted":
                return f"valid, signed by trusted certificate {who}"
            if self.source == "trust-list":
                return (
                    f"valid, signed by {who}, a {role_label(self.role or 0)} record of the "
                    f"trust list"
                )
            return (
                f"self-consistent: the signature verifies with the file's own signer record "
                f"{who}; only self-consistency was checked (no --trust or --trust-list)"
            )
        text = f"INVALID: {self.error_type}: {self.error}"
        if self.anchored and self.self_consistent:
            text += " (the file is self-consistent: its own signer record verifies it)"
        return text


def _signer(f: TrustFile) -> dict[str, str]:
    s = f.header.signer
    return {"name": s.name, "serial": s.serial.hex().upper(), "issuer": s.issuer}


def _first_that_verifies(
    f: TrustFile, candidates: Sequence[Certificate]
) -> tuple[Certificate | None, TlvError | None]:
    error: TlvError | None = None
    for cert in candidates:
        try:
            verify_with_certificate(f, cert)
        except TlvError as exc:
            error = exc
            continue
        return cert, None
    return None, error


def _self_consistency(f: TrustFile) -> tuple[Certificate | None, TlvError | None]:
    rec = f.signer_record()
    signer = f.header.signer
    if rec is None:
        return None, SignerNotFoundError(
            f"signer {signer.name!r} (serial {signer.serial.hex().upper()}, issuer "
            f"{signer.issuer!r}) is not among the file's {len(f.records)} records"
        )
    if rec.cert is None:
        return None, SignerNotFoundError(
            f"the signer record of {signer.name!r} carries no readable certificate"
        )
    return _first_that_verifies(f, [rec.cert])


def check_file(
    f: TrustFile,
    *,
    trusted: Sequence[Certificate] = (),
    trust_list: TrustFile | None = None,
) -> Verification:
    """Check ``f`` against the trust anchors given (see the module docstring)."""
    kind = file_kind(f)
    base: dict[str, Any] = {
        "file_kind": kind,
        "filename": f.header.filename,
        "signer": _signer(f),
        "hash_algorithm": f.header.hash_algorithm.hash_name,
    }
    own, own_error = _self_consistency(f)
    anchors = [n for n, given in (("certificates", trusted), ("trust-list", trust_list)) if given]
    if not anchors:
        if own is not None:
            return Verification(
                **base, trust="none", valid=True, self_consistent=True, verified_by=own,
                source="record",
            )  # fmt: skip
        return Verification(
            **base, trust="none", valid=False, self_consistent=False,
            error=str(own_error), error_type=type(own_error).__name__,
        )  # fmt: skip
    trust = "+".join(anchors)
    reasons: list[TlvError] = []
    if trusted:
        matching = [c for c in trusted if matches_signer(f, c)]
        cert, error = _first_that_verifies(f, matching)
        if cert is not None:
            return Verification(
                **base, trust=trust, valid=True, self_consistent=own is not None,
                verified_by=cert, source="trusted",
            )  # fmt: skip
        signer = f.header.signer
        reasons.append(
            error
            or SignerNotFoundError(
                f"signer {signer.name!r} (serial {signer.serial.hex().upper()}, issuer "
                f"{signer.issuer!r}) is none of the {len(trusted)} trusted certificate(s)"
            )
        )
    if trust_list is not None:
        found = _trust_list_signer(f, kind, trust_list)
        if isinstance(found, tuple):
            cert, role = found
            return Verification(
                **base, trust=trust, valid=True, self_consistent=own is not None,
                verified_by=cert, source="trust-list", role=role,
            )  # fmt: skip
        reasons.append(found)
    first = reasons[0]
    return Verification(
        **base, trust=trust, valid=False, self_consistent=own is not None,
        error="; ".join(str(r) for r in reasons), error_type=type(first).__name__,
    )  # fmt: skip


def _trust_list_signer(
    f: TrustFile, kind: FileKind, trust_list: TrustFile
) -> tuple[Certificate, int] | TlvError:
    """The trust-list record (certificate, role) that may sign ``f`` and verifies it."""
    allowed = SIGNING_ROLES[kind]
    records = [r for r in trust_list.records if r.cert is not None and matches_signer(f, r.cert)]
    signer = f.header.signer
    if not records:
        return SignerNotFoundError(
            f"signer {signer.name!r} (serial {signer.serial.hex().upper()}) is not a record of "
            f"the trust list {trust_list.header.filename!r}"
        )
    permitted = [r for r in records if r.role in allowed]
    if not permitted:
        held = sorted({role_label(r.role) for r in records})
        return SignerNotFoundError(
            f"signer {signer.name!r} is in the trust list as {', '.join(held)}, which may not "
            f"sign a {kind.value} file (allowed: {', '.join(sorted(role_names(allowed)))})"
        )
    error: TlvError | None = None
    for rec in permitted:
        assert rec.cert is not None
        cert, error = _first_that_verifies(f, [rec.cert])
        if cert is not None:
            return cert, rec.role
    assert error is not None
    return error
