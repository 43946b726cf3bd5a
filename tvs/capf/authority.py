"""The CAPF server's decisions: which operation a device has, whether its proof holds, the LSC.

Owns the policy the server session asks (:class:`~tvs.capf.session.Policy`): look the device up
in the operations database (read per session, so a new schedule needs no restart), check the
authentication the device's mode asks for, issue the LSC (signed by the CAPF certificate, the
seed's subject shape, via :func:`tvs.pki.issue.issue_lsc_certificate`) and keep the result.

Refusals (END_SESSION reason): unknown device (9); wrong auth string, no certificate, a
certificate not issued by a trusted CAPF (for an LSC) or manufacturing root (for a MIC), a
certificate for another device, an expired one, a bad signature (7). Nothing is stored for a
refusal but the result line of the device. Certificate authentication accepts an LSC or a MIC
in both modes; the mode only says which one the phone tries first (CUCM's "precedence").
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import device
from ..certs import Certificate, CertificateError
from ..pki.issue import Identity, issue_lsc_certificate
from .db import CapfDb, DeviceOperation
from .errors import CapfSignatureError
from .messages import CertType, KeyType, Reason
from .session import (
    AuthAttempt,
    Decision,
    DeleteCertificate,
    FetchCertificate,
    InstallCertificate,
    KeySpec,
    NothingPending,
    Outcome,
    Refuse,
)
from .signing import verify_auth, verify_sudi

__all__ = ["CapfAuthority"]

_CURVE_NAMES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1", "ec-p521": "secp521r1"}


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@attrs.define
class CapfAuthority:
    """Decisions of one CAPF server (see the module docstring).

    ``lsc_issuers``: certificates trusted to have issued LSCs (CAPF-trust and the server's own
    CAPF, which is always added). ``mic_issuers``: manufacturing roots trusted for MICs.
    """

    db: CapfDb
    capf: Identity
    lsc_issuers: Sequence[Certificate] = ()
    mic_issuers: Sequence[Certificate] = ()
    clock: Callable[[], _dt.datetime] = _utcnow
    default_model: str = "8861"
    on_outcome: Callable[[Outcome], None] | None = None

    def authorize(self, attempt: AuthAttempt) -> Decision:
        op = self.db.get(attempt.device_name)
        if op is None:
            return Refuse(Reason.UNKNOWN_DEVICE, f"unknown device {attempt.device_name}")
        if op.operation == "none":
            return NothingPending("no operation pending")
        if op.expired(self.clock()):
            return NothingPending(f"operation {op.operation} expired at {op.deadline}")
        refusal = self._check_auth(op, attempt)
        if refusal is not None:
            return attrs.evolve(refusal, operation=op.operation)
        if op.operation == "install":
            return InstallCertificate(KeySpec.parse(op.key))
        if op.operation == "fetch":
            return FetchCertificate()
        return DeleteCertificate()

    def _check_auth(self, op: DeviceOperation, attempt: AuthAttempt) -> Refuse | None:
        if op.auth_mode == "null":
            return None
        if op.auth_mode == "string":
            if attempt.password != op.auth_string:
                return Refuse(Reason.FAILURE, "wrong auth string")
            return None
        return self._check_certificate(attempt)

    def _check_certificate(self, attempt: AuthAttempt) -> Refuse | None:
        blob = attempt.certificate
        if blob is None:
            return Refuse(Reason.FAILURE, "certificate authentication without a certificate")
        try:
            cert = Certificate.from_der(blob.der)
        except CertificateError:
            return Refuse(Reason.FAILURE, "the offered certificate does not parse")
        kind = "MIC" if blob.cert_type == CertType.MIC else "LSC"
        issuers = list(self.mic_issuers) if kind == "MIC" else [*self.lsc_issuers, self.capf.cert]
        if not any(cert.is_issued_by(i) for i in issuers):
            what = "a trusted manufacturing root" if kind == "MIC" else "a trusted CAPF"
            return Refuse(Reason.FAILURE, f"{kind} {cert.subject!r} not issued by {what}")
        now = self.clock()
        if not cert.not_valid_before <= now <= cert.not_valid_after:
            return Refuse(Reason.FAILURE, f"{kind} is not valid now (until {cert.not_valid_after})")
        if attempt.device_name.upper() not in cert.subject.upper():
            return Refuse(Reason.FAILURE, f"{kind} {cert.subject!r} is another device's")
        try:
            verify_auth(
                cert.public_key,
                attempt.device_name,
                blob.der,
                attempt.signed_data,
                attempt.sha2_signed_data,
            )
            if attempt.sudi is not None:
                sudi_cert = Certificate.from_der(attempt.sudi.certificate)
                verify_sudi(sudi_cert.public_key, attempt.session_id, attempt.sudi)
        except CapfSignatureError as exc:
            return Refuse(Reason.FAILURE, f"bad signature: {exc}")
        except CertificateError:
            return Refuse(Reason.FAILURE, "the SUDI certificate does not parse")
        return None

    def _model_of(self, attempt: AuthAttempt) -> str:
        """The phone model for the LSC's subject: from the certificate it proved itself with."""
        if attempt.certificate is not None:
            try:
                model = device.model_in(Certificate.from_der(attempt.certificate.der).common_name)
            except CertificateError:
                model = None
            if model:
                return model
        return self.default_model

    def issue(self, attempt: AuthAttempt, key: KeySpec, public_key_der: bytes) -> bytes:
        try:
            public = serialization.load_der_public_key(public_key_der)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"public key does not parse: {exc}") from None
        if key.key_type == KeyType.RSA:
            if not isinstance(public, rsa.RSAPublicKey) or public.key_size != key.key_size:
                raise ValueError(f"asked for {key.name}, got {_describe(public)}")
        elif (
            not isinstance(public, ec.EllipticCurvePublicKey)
            or public.curve.name != _CURVE_NAMES[key.name]
        ):
            raise ValueError(f"asked for {key.name}, got {_describe(public)}")
        assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        cert = issue_lsc_certificate(
            self.capf,
            public,
            mac=attempt.device_name[3:],
            model=self._model_of(attempt),
            now=self.clock(),
        )
        return cert.der

    def completed(self, outcome: Outcome) -> None:
        self.db.record(outcome, now=self.clock())
        if self.on_outcome is not None:
            self.on_outcome(outcome)


def _describe(public: object) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    return type(public).__name__
