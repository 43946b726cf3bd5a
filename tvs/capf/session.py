"""CAPF session machines, sans-I/O: the server side and the phone (client) side.

Owns who may say what and when (protocol notes section 8 "Sequences"). Messages go in through
``receive``, messages to write come out; state changes only through ``_set_state`` (kept in
``history``); the legal commands per state are the tables ``SERVER_EXPECTS`` and
``CLIENT_EXPECTS``. Decisions that need a database or a CA (which operation is scheduled for a
device, whether its proof holds, issuing the LSC) are asked of a :class:`Policy` the adapter
passes in; key generation on the phone is handed out as :attr:`ClientSession.key_request`
and comes back through :meth:`ClientSession.provide_key`. No sockets, no trio.

Interop (High): the server writes VERSION then AUTH_TYPE; a client answers with the VERSION
the server sent; the server accepts a client VERSION 2 or 3; each side only sends elements
the open-source peers accept.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

import attrs

from .errors import CapfProtocolError
from .messages import (
    AuthType,
    CertificateBlob,
    CertType,
    Command,
    Curve,
    KeyType,
    Message,
    Reason,
    Sha2Signature,
    SudiData,
)

__all__ = [
    "CLIENT_EXPECTS",
    "CLIENT_MAY_SEND",
    "SERVER_EXPECTS",
    "SERVER_MAY_SEND",
    "SUPPORTED_VERSIONS",
    "AuthAttempt",
    "Decision",
    "DeleteCertificate",
    "FetchCertificate",
    "InstallCertificate",
    "KeySpec",
    "NothingPending",
    "Outcome",
    "Policy",
    "Refuse",
    "ServerSession",
    "State",
]

SUPPORTED_VERSIONS: Final = frozenset({2, 3})
SERVER_VERSION: Final = 3

SERVER_MAY_SEND: Final = frozenset({1, 2, 3, 4, 7, 8, 10, 17, 18})
"""Tags the open-source client accepts from a server (section 8 interop traps)."""
CLIENT_MAY_SEND: Final = frozenset({1, 2, 3, 4, 6, 7, 9, 11, 13, 16, 20})
"""Tags the open-source server accepts from a client."""


class State(enum.Enum):
    START = "start"  # nothing sent yet
    AWAIT_AUTH = "await-auth"  # server: AUTH_REQUEST sent; client: waiting for it
    AWAIT_COMMAND = "await-command"  # client: AUTH_RESPONSE sent
    AWAIT_KEY = "await-key"  # server: KEY_GENERATE_REQUEST sent
    GENERATING_KEY = "generating-key"  # client: the adapter makes the key
    AWAIT_STORE = "await-store"  # server: STORE_CERTIFICATE_REQUEST sent
    AWAIT_FETCH = "await-fetch"
    AWAIT_DELETE = "await-delete"
    AWAIT_END = "await-end"  # client: last answer sent
    CLOSED = "closed"  # END_SESSION sent (server) or received (client)


SERVER_EXPECTS: Final[dict[State, frozenset[int]]] = {
    State.AWAIT_AUTH: frozenset({Command.AUTH_RESPONSE}),
    State.AWAIT_KEY: frozenset({Command.REQUEST_IN_PROGRESS, Command.KEY_GENERATE_RESPONSE}),
    State.AWAIT_STORE: frozenset({Command.STORE_CERTIFICATE_RESPONSE}),
    State.AWAIT_FETCH: frozenset({Command.FETCH_CERTIFICATE_RESPONSE}),
    State.AWAIT_DELETE: frozenset({Command.DELETE_CERTIFICATE_RESPONSE}),
}
"""What the server accepts from the phone in each state; anything else ends the session."""

CLIENT_EXPECTS: Final[dict[State, frozenset[int]]] = {
    State.AWAIT_AUTH: frozenset({Command.AUTH_REQUEST, Command.END_SESSION}),
    State.AWAIT_COMMAND: frozenset(
        {
            Command.KEY_GENERATE_REQUEST,
            Command.FETCH_CERTIFICATE_REQUEST,
            Command.DELETE_CERTIFICATE_REQUEST,
            Command.END_SESSION,
        }
    ),
    State.GENERATING_KEY: frozenset({Command.END_SESSION}),
    State.AWAIT_STORE: frozenset({Command.STORE_CERTIFICATE_REQUEST, Command.END_SESSION}),
    State.AWAIT_END: frozenset({Command.END_SESSION}),
}
"""What the phone accepts from the server in each state (END_SESSION may come at any wait)."""


# -- values --------------------------------------------------------------------------------

_CURVES: Final = {"ec-p256": Curve.P256, "ec-p384": Curve.P384, "ec-p521": Curve.P521}
_CURVE_NAMES: Final = {v: k for k, v in _CURVES.items()}


@attrs.frozen
class KeySpec:
    """The key the server asks the phone to make: RSA with a size, or EC with a curve."""

    key_type: KeyType
    key_size: int | None = None
    curve: Curve | None = None

    @classmethod
    def parse(cls, name: str) -> KeySpec:
        """``rsa-2048``, ``rsa-4096``, ``ec-p256``, ``ec-p384``, ``ec-p521``."""
        lowered = name.strip().lower()
        if lowered in _CURVES:
            return cls(KeyType.EC, curve=_CURVES[lowered])
        if lowered.startswith("rsa-") and lowered[4:].isdigit():
            bits = int(lowered[4:])
            if bits in (1024, 2048, 3072, 4096):
                return cls(KeyType.RSA, key_size=bits)
        raise ValueError(f"key {name!r} is not rsa-1024/2048/3072/4096 or ec-p256/p384/p521")

    @property
    def name(self) -> str:
        if self.key_type == KeyType.EC:
            return _CURVE_NAMES[self.curve if self.curve is not None else Curve.P256]
        return f"rsa-{self.key_size or 2048}"

    def request(self, session_id: int) -> Message:
        if self.key_type == KeyType.EC:  # capfd: no KEY_SIZE for EC
            return Message.build(
                Command.KEY_GENERATE_REQUEST, session_id, key_type=self.key_type, curve=self.curve
            )
        return Message.build(
            Command.KEY_GENERATE_REQUEST,
            session_id,
            key_size=self.key_size or 2048,
            key_type=KeyType.RSA,
        )

    @classmethod
    def from_message(cls, msg: Message) -> KeySpec:
        key_type = msg.key_type if msg.key_type is not None else KeyType.RSA
        if key_type == KeyType.EC:
            curve = msg.curve if msg.curve is not None else Curve.P256
            if curve not in set(Curve):
                raise CapfProtocolError(f"unknown curve {curve}", reason="bad-curve")
            return cls(KeyType.EC, curve=Curve(curve))
        if key_type != KeyType.RSA:
            raise CapfProtocolError(f"unknown key type {key_type}", reason="bad-key-type")
        size = msg.key_size if msg.key_size is not None else 2048
        if size < 1024 or size > 8192:
            raise CapfProtocolError(f"RSA key size {size} out of range", reason="bad-key-size")
        return cls(KeyType.RSA, key_size=size)


@attrs.frozen
class AuthAttempt:
    """What the phone said in its AUTH_RESPONSE, for the policy to judge."""

    session_id: int
    device_name: str
    version: int
    password: str | None = None
    certificate: CertificateBlob | None = None
    signed_data: bytes | None = None
    sha2_signed_data: Sha2Signature | None = None
    sudi: SudiData | None = None


@attrs.frozen
class Refuse:
    reason: Reason
    why: str
    operation: str = "none"
    """The operation that was scheduled (for the log line), ``none`` when there was none."""


@attrs.frozen
class NothingPending:
    why: str = "no operation pending"


@attrs.frozen
class InstallCertificate:
    key: KeySpec


@attrs.frozen
class FetchCertificate:
    pass


@attrs.frozen
class DeleteCertificate:
    pass


Decision = Refuse | NothingPending | InstallCertificate | FetchCertificate | DeleteCertificate


@attrs.frozen
class Outcome:
    """How a session ended: ``result`` is installed, fetched, deleted, nothing or refused."""

    device_name: str | None
    operation: str
    result: str
    reason: int
    why: str = ""
    certificate: bytes | None = attrs.field(default=None, repr=False)


class Policy(Protocol):
    """The server's decisions (database, trust, CA); called synchronously by the machine."""

    def authorize(self, attempt: AuthAttempt) -> Decision: ...

    def issue(self, attempt: AuthAttempt, key: KeySpec, public_key_der: bytes) -> bytes:
        """The new LSC's DER; raise :class:`ValueError` to refuse (bad key)."""
        ...

    def completed(self, outcome: Outcome) -> None: ...


# -- the server ----------------------------------------------------------------------------


class ServerSession:
    """One CAPF session, server side: ``start()`` once, then ``receive(msg)`` per message.

    Both return the messages to write (each one whole, in one write). A phone message that is
    illegal in the current state raises :class:`CapfProtocolError` after the session has
    produced its END_SESSION (in :attr:`pending_end`) so the adapter can still say goodbye.
    """

    def __init__(
        self,
        session_id: int,
        policy: Policy,
        *,
        version: int = SERVER_VERSION,
        auth_type: AuthType | None = AuthType.NONE,
    ) -> None:
        self.session_id = session_id
        self.policy = policy
        self.version = version
        self.auth_type = auth_type
        self.state = State.START
        self.history: list[tuple[State, State, str]] = []
        self.attempt: AuthAttempt | None = None
        self.operation = "none"
        self.outcome: Outcome | None = None
        self.pending_end: Message | None = None
        self._key: KeySpec | None = None
        self._issued: bytes | None = None
        self._in_progress_seen = False

    @property
    def done(self) -> bool:
        return self.state is State.CLOSED

    def _set_state(self, new: State, why: str) -> None:
        self.history.append((self.state, new, why))
        self.state = new

    def _msg(self, command: Command, **fields: object) -> Message:
        return Message.build(command, self.session_id, **fields)

    def start(self) -> list[Message]:
        if self.state is not State.START:
            raise CapfProtocolError("session already started", reason="state")
        self._set_state(State.AWAIT_AUTH, "sent AUTH_REQUEST")
        return [self._msg(Command.AUTH_REQUEST, version=self.version, auth_type=self.auth_type)]

    def _end(self, reason: int, result: str, why: str, cert: bytes | None = None) -> list[Message]:
        device = self.attempt.device_name if self.attempt else None
        self.outcome = Outcome(device, self.operation, result, reason, why, cert)
        self._set_state(State.CLOSED, f"END_SESSION {reason}: {why}")
        self.policy.completed(self.outcome)
        return [self._msg(Command.END_SESSION, reason=reason)]

    def abort(self, why: str, reason: Reason = Reason.FAILURE) -> list[Message]:
        """End the session now (a deadline passed, the phone sent garbage)."""
        if self.done:
            return []
        return self._end(reason, "refused", why)

    def receive(self, msg: Message) -> list[Message]:
        if self.done:
            raise CapfProtocolError(f"{msg.name} after END_SESSION", reason="after-end")
        legal = SERVER_EXPECTS.get(self.state, frozenset())
        if msg.session_id != self.session_id or msg.command not in legal:
            what = (
                f"session id {msg.session_id}, expected {self.session_id}"
                if msg.session_id != self.session_id
                else f"{msg.name} in state {self.state.value}"
            )
            out = self.abort(f"unexpected {what}")
            self.pending_end = out[0] if out else None
            raise CapfProtocolError(f"unexpected {what}", reason="unexpected-message")
        unexpected = [t for t in msg.tags if t not in CLIENT_MAY_SEND]
        if unexpected:  # kept, never a crash: we are more lenient than capfd, and say so
            self.history.append((self.state, self.state, f"ignored tags {unexpected}"))
        if msg.command == Command.AUTH_RESPONSE:
            return self._on_auth(msg)
        if msg.command == Command.REQUEST_IN_PROGRESS:
            if self._in_progress_seen:
                self.pending_end = self.abort("second REQUEST_IN_PROGRESS")[0]
                raise CapfProtocolError("second REQUEST_IN_PROGRESS", reason="in-progress-twice")
            self._in_progress_seen = True
            return []
        if msg.command == Command.KEY_GENERATE_RESPONSE:
            return self._on_key(msg)
        if msg.command == Command.STORE_CERTIFICATE_RESPONSE:
            if msg.reason == Reason.SUCCESS:
                return self._end(
                    Reason.SUCCESS, "installed", "LSC stored by the phone", self._issued
                )
            return self._end(Reason.FAILURE, "refused", f"phone could not store: {msg.reason}")
        if msg.command == Command.FETCH_CERTIFICATE_RESPONSE:
            blob = msg.certificate
            if msg.reason == Reason.SUCCESS and blob is not None:
                return self._end(Reason.NO_ACTION, "fetched", "certificate fetched", blob.der)
            return self._end(
                Reason.NO_ACTION, "fetched", f"phone has no certificate ({msg.reason})"
            )
        # DELETE_CERTIFICATE_RESPONSE
        why = "phone deleted its LSC" if msg.reason == Reason.SUCCESS else "phone had no LSC"
        return self._end(Reason.SUCCESS, "deleted", why)

    def _on_auth(self, msg: Message) -> list[Message]:
        device = msg.device_name
        version = msg.version
        if not device:
            return self._end(Reason.FAILURE, "refused", "AUTH_RESPONSE without a device name")
        self.attempt = AuthAttempt(
            session_id=self.session_id,
            device_name=device,
            version=version if version is not None else 0,
            password=msg.password,
            certificate=msg.certificate,
            signed_data=msg.signed_data,
            sha2_signed_data=msg.sha2_signed_data,
            sudi=msg.sudi_data,
        )
        if version not in SUPPORTED_VERSIONS:
            return self._end(Reason.FAILURE, "refused", f"unsupported client version {version}")
        decision = self.policy.authorize(self.attempt)
        if isinstance(decision, Refuse):
            self.operation = decision.operation
            return self._end(decision.reason, "refused", decision.why)
        if isinstance(decision, NothingPending):
            return self._end(Reason.NO_ACTION, "nothing", decision.why)
        if isinstance(decision, InstallCertificate):
            self.operation = "install"
            self._key = decision.key
            self._set_state(State.AWAIT_KEY, f"asked for {decision.key.name}")
            return [decision.key.request(self.session_id)]
        if isinstance(decision, FetchCertificate):
            self.operation = "fetch"
            self._set_state(State.AWAIT_FETCH, "asked for the certificate")
            return [self._msg(Command.FETCH_CERTIFICATE_REQUEST)]
        self.operation = "delete"
        self._set_state(State.AWAIT_DELETE, "asked to delete the certificate")
        return [self._msg(Command.DELETE_CERTIFICATE_REQUEST)]

    def _on_key(self, msg: Message) -> list[Message]:
        assert self.attempt is not None and self._key is not None
        spki = msg.public_key
        if not spki:
            return self._end(Reason.FAILURE, "refused", "KEY_GENERATE_RESPONSE without a key")
        try:
            der = self.policy.issue(self.attempt, self._key, spki)
        except ValueError as exc:
            return self._end(Reason.FAILURE, "refused", f"cannot issue: {exc}")
        self._issued = der
        self._set_state(State.AWAIT_STORE, "sent the new LSC")
        return [
            self._msg(
                Command.STORE_CERTIFICATE_REQUEST,
                certificate_type=CertType.LSC,
                certificate=CertificateBlob(CertType.LSC, der),
            )
        ]
