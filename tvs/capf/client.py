"""The phone's side of a CAPF session, sans-I/O.

Owns what a phone answers: AUTH_RESPONSE (null string, auth string, or proof by an existing
LSC/MIC with SIGNED_DATA, SHA2_SIGNED_DATA and SUDI_DATA), REQUEST_IN_PROGRESS then
KEY_GENERATE_RESPONSE (the key itself is made by the adapter: see :attr:`key_request` and
:meth:`ClientSession.provide_key`), STORE/FETCH/DELETE answers, and the result once the server
sends END_SESSION. Element order follows the open-source client (``capfc``), so our bytes can
be compared with its transcripts. No sockets, no trio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import signing
from .errors import CapfProtocolError
from .messages import CertificateBlob, CertType, Command, KeyType, Message, Reason
from .session import CLIENT_EXPECTS, KeySpec, State

__all__ = ["ClientResult", "ClientSession", "Credential", "generate_key"]


@attrs.frozen
class Credential:
    """An existing certificate and its key (an LSC or a MIC) the phone can prove itself with."""

    cert_type: CertType
    der: bytes = attrs.field(repr=False)
    key: Any = attrs.field(repr=False)


@attrs.frozen
class ClientResult:
    """How the session ended for the phone.

    ``result``: installed, fetched, deleted, nothing, or refused; ``reason`` is the server's
    END_SESSION reason code. ``certificate``/``key`` are the new LSC (DER) and its key.
    """

    operation: str
    result: str
    reason: int
    why: str = ""
    certificate: bytes | None = attrs.field(default=None, repr=False)
    key: Any = attrs.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.result != "refused"


_REFUSALS = {
    Reason.FAILURE: "failure (wrong auth string, bad proof, or nothing the server can do)",
    Reason.UNKNOWN_DEVICE: "unknown device",
}


class ClientSession:
    """One CAPF session, phone side: ``receive(msg)`` for each server message, write what it
    returns; when :attr:`key_request` is set, make that key and call :meth:`provide_key`."""

    def __init__(
        self,
        device_name: str,
        *,
        password: str = "",
        credential: Credential | None = None,
        sudi: Credential | None = None,
        current_lsc: bytes | None = None,
        send_in_progress: bool = True,
    ) -> None:
        self.device_name = device_name
        self.password = password
        self.credential = credential
        self.sudi = sudi
        self.current_lsc = current_lsc
        self.send_in_progress = send_in_progress
        self.state = State.AWAIT_AUTH
        self.history: list[tuple[State, State, str]] = []
        self.session_id: int | None = None
        self.version: int | None = None
        self.operation = "none"
        self.key_request: KeySpec | None = None
        self.result: ClientResult | None = None
        self.deleted = False
        self._key: Any = None
        self._certificate: bytes | None = None

    @property
    def done(self) -> bool:
        return self.state is State.CLOSED

    def _set_state(self, new: State, why: str) -> None:
        self.history.append((self.state, new, why))
        self.state = new

    def _msg(self, command: Command, **fields: object) -> Message:
        assert self.session_id is not None
        return Message.build(command, self.session_id, **fields)

    def receive(self, msg: Message) -> list[Message]:
        legal = CLIENT_EXPECTS.get(self.state, frozenset())
        if msg.command not in legal:
            raise CapfProtocolError(
                f"{msg.name} in state {self.state.value}", reason="unexpected-message"
            )
        if self.session_id is not None and msg.session_id != self.session_id:
            raise CapfProtocolError(
                f"session id {msg.session_id}, expected {self.session_id}", reason="session-id"
            )
        self.session_id = msg.session_id
        if msg.command == Command.END_SESSION:
            return self._on_end(msg)
        if msg.command == Command.AUTH_REQUEST:
            return self._on_auth_request(msg)
        if msg.command == Command.KEY_GENERATE_REQUEST:
            self.operation = "install"
            self.key_request = KeySpec.from_message(msg)
            self._set_state(State.GENERATING_KEY, f"server asks for {self.key_request.name}")
            if self.send_in_progress:
                return [self._msg(Command.REQUEST_IN_PROGRESS)]
            return []
        if msg.command == Command.STORE_CERTIFICATE_REQUEST:
            return self._on_store(msg)
        if msg.command == Command.FETCH_CERTIFICATE_REQUEST:
            self.operation = "fetch"
            self._set_state(State.AWAIT_END, "answered the fetch")
            if self.current_lsc is None:
                return [self._msg(Command.FETCH_CERTIFICATE_RESPONSE, reason=Reason.FAILURE)]
            blob = CertificateBlob(CertType.LSC, self.current_lsc)
            return [
                self._msg(
                    Command.FETCH_CERTIFICATE_RESPONSE, reason=Reason.SUCCESS, certificate=blob
                )
            ]
        # DELETE_CERTIFICATE_REQUEST
        self.operation = "delete"
        self._set_state(State.AWAIT_END, "answered the delete")
        had = self.current_lsc is not None
        self.deleted = had
        self.current_lsc = None
        reason = Reason.SUCCESS if had else Reason.FAILURE
        return [self._msg(Command.DELETE_CERTIFICATE_RESPONSE, reason=reason)]

    def _on_auth_request(self, msg: Message) -> list[Message]:
        self.version = msg.version if msg.version is not None else 3
        self._set_state(State.AWAIT_COMMAND, "sent AUTH_RESPONSE")
        fields: dict[str, object] = {"reason": Reason.SUCCESS}
        if self.credential is not None:
            cred = self.credential
            signed, sha2 = signing.sign_auth(cred.key, self.device_name, cred.der)
            fields["certificate"] = CertificateBlob(cred.cert_type, cred.der)
            fields["signed_data"] = signed
        fields["version"] = self.version
        fields["password"] = self.password
        fields["device_name"] = self.device_name
        if self.credential is not None:
            if self.sudi is not None:
                assert self.session_id is not None
                fields["sudi_data"] = signing.make_sudi(
                    self.sudi.key, self.session_id, self.sudi.der
                )
            fields["sha2_signed_data"] = sha2
        return [self._msg(Command.AUTH_RESPONSE, **fields)]

    def provide_key(self, key: Any) -> list[Message]:
        """The key the adapter made for :attr:`key_request`: send its public half."""
        if self.state is not State.GENERATING_KEY:
            raise CapfProtocolError("no key was asked for", reason="state")
        self._key = key
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._set_state(State.AWAIT_STORE, "sent the public key")
        self.key_request = None
        return [self._msg(Command.KEY_GENERATE_RESPONSE, public_key=spki)]

    def _on_store(self, msg: Message) -> list[Message]:
        blob = msg.certificate
        reason = Reason.FAILURE
        if blob is not None and self._key is not None:
            try:
                cert = x509.load_der_x509_certificate(blob.der)
                mine = self._key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                theirs = cert.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                if mine == theirs:
                    self._certificate = blob.der
                    reason = Reason.SUCCESS
            except ValueError:
                pass
        self._set_state(State.AWAIT_END, f"stored the new LSC: {reason == Reason.SUCCESS}")
        return [self._msg(Command.STORE_CERTIFICATE_RESPONSE, reason=reason)]

    def _on_end(self, msg: Message) -> list[Message]:
        reason = msg.reason if msg.reason is not None else Reason.FAILURE
        info = msg.reason_info  # a server may explain (capfd and CUCM were not seen to)
        self._set_state(State.CLOSED, f"END_SESSION {reason}")
        if reason in _REFUSALS:
            why = info or _REFUSALS[Reason(reason)]
            self.result = ClientResult(self.operation, "refused", reason, why)
        elif self.operation == "install":
            if self._certificate is None:
                why = "the session ended before a certificate was stored"
                self.result = ClientResult(self.operation, "refused", reason, why)
            else:
                self.result = ClientResult(
                    "install", "installed", reason, "", self._certificate, self._key
                )
                self.current_lsc = self._certificate
        elif self.operation == "fetch":
            self.result = ClientResult("fetch", "fetched", reason, "", self.current_lsc)
        elif self.operation == "delete":
            self.result = ClientResult("delete", "deleted", reason)
        elif reason in (Reason.NO_ACTION, Reason.SUCCESS):
            self.result = ClientResult("none", "nothing", reason, "no operation pending")
        else:
            self.result = ClientResult(self.operation, "refused", reason, f"reason {reason}")
        return []


_EC_CURVES: dict[int, Callable[[], ec.EllipticCurve]] = {
    0: ec.SECP256R1,
    1: ec.SECP384R1,
    2: ec.SECP521R1,
}


def generate_key(spec: KeySpec) -> Any:
    """A new private key as the server asked: RSA of ``key_size`` bits or EC on ``curve``."""
    if spec.key_type == KeyType.EC:
        curve = _EC_CURVES[int(spec.curve if spec.curve is not None else 0)]
        return ec.generate_private_key(curve())
    return rsa.generate_private_key(public_exponent=65537, key_size=spec.key_size or 2048)
