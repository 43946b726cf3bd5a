"""The values of a boot: the actions the machine asks for, the results the driver hands
back, and what a boot produced (:class:`Step`, :class:`Attempt`, :class:`BootResult`).

Owns the outcome, state and failure vocabularies and the JSON shape of a result. No logic
beyond presentation: the decisions live in :mod:`phone_emu.phone.boot`.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from tvs.certs import Certificate, PrivateKey
from tvs.roles import role_names
from tvs.wire import Message, QueryCertRequest, QueryTags

from .config import CapfServer, PhoneConfig, TvsMember
from .identity import PhoneIdentity
from .trust import DEFAULT_TVS_TTL, FileKind, TrustState

__all__ = [
    "FIRST_REQUEST_ID",
    "MAX_TRUST_LIST_SIZE",
    "Action",
    "Attempt",
    "BootDone",
    "BootOptions",
    "BootResult",
    "BootState",
    "CapfEnded",
    "CapfFailed",
    "CapfIssued",
    "ConnectSip",
    "FetchFailed",
    "FetchFile",
    "Fetched",
    "FileFetched",
    "FileMissing",
    "Outcome",
    "QueryTvs",
    "Result",
    "RunCapf",
    "SipConnected",
    "SipFailed",
    "SipRejected",
    "Step",
    "TransportFailure",
    "TvsAnswered",
    "TvsFailed",
]

MAX_TRUST_LIST_SIZE: Final = 64 * 1024
"""A phone fails to load a CTL/ITL over 64 KB (about 39 certificates; protocol notes
section 2, High)."""

CAPF_ATTEMPTS: Final = 3
"""A phone tries CAPF up to three times (protocol notes section 8, High)."""
CAPF_INTERVAL: Final = 0.2
"""Seconds between CAPF attempts in the lab; a real phone waits 30 s (a lab option)."""

FIRST_REQUEST_ID: Final = 1001
"""Request id of a boot's first TVS query (the seed's phone used 1001)."""


class Outcome(enum.Enum):
    OK = "ok"
    ABSENT = "absent"  # the file is not on the server (a non-secure cluster has no CTL)
    SKIPPED = "skipped"
    REJECTED = "rejected"  # the phone refused a file or a peer
    ERROR = "error"  # transport: the phone could not reach a server


class BootState(enum.Enum):
    REGISTERED = "registered"  # every step passed, secure SIP REGISTER answered 200 included
    CONFIGURED = "configured"  # trust and configuration fine; registration skipped
    REJECTED = "rejected"  # the phone refused something and kept its old trust/config
    ERROR = "error"  # a server could not be reached


class TransportFailure(enum.Enum):
    CONNECT = "connect-failed"
    TIMEOUT = "timeout"
    HANDSHAKE = "handshake-failed"
    PROTOCOL = "protocol-error"


# --- actions (machine -> driver) ---------------------------------------------------------------
@attrs.frozen
class FetchFile:
    filename: str
    kind: FileKind


@attrs.frozen
class QueryTvs:
    """Send ``data`` (``request`` as encoded by the machine, byte for byte) to ``member``."""

    member: TvsMember
    request: QueryCertRequest
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    pinned: tuple[Certificate, ...] = ()


@attrs.frozen
class ConnectSip:
    host: str
    port: int
    pinned: tuple[Certificate, ...]
    secure: bool = True
    """False: SIP over TCP (security mode 1), no TLS, no certificates."""


@attrs.frozen
class RunCapf:
    """One CAPF session (TLS to ``server``, trusted through ``pinned``: the CAPF records of the
    CTL/ITL) after waiting ``delay`` seconds. ``auth_mode`` is the configuration's
    ``capfAuthMode``; the driver proves the phone with its LSC/MIC for 3 and 4, sends
    ``auth_string`` (or the empty null string) otherwise, and makes the key the server asks for."""

    server: CapfServer
    device_name: str
    auth_mode: int
    pinned: tuple[Certificate, ...]
    auth_string: str | None = None
    delay: float = 0.0


Action = FetchFile | QueryTvs | ConnectSip | RunCapf


# --- results (driver -> machine), each stamped with the clock when it finished ------------------
@attrs.frozen
class FileFetched:
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    now: float
    server: str = ""
    transport: str = ""  # "http" or "tftp": what delivered it
    fallback: str = ""  # why HTTP did not deliver it, when TFTP did (e.g. "HTTP 404 Not Found")


@attrs.frozen
class FileMissing:
    now: float
    detail: str = "file not found"


@attrs.frozen
class FetchFailed:
    now: float
    detail: str
    failure: str = "fetch-failed"  # the reason's suffix: fetch-failed, too-large, timeout


@attrs.frozen
class TvsAnswered:
    response: Message
    now: float
    detail: str = ""  # e.g. the TLS version and cipher


@attrs.frozen
class TvsFailed:
    failure: TransportFailure
    detail: str
    now: float


@attrs.frozen
class SipConnected:
    """The CallManager answered the phone's REGISTER with ``200``."""

    now: float
    detail: str = ""  # e.g. the TLS version and cipher; the status line


@attrs.frozen
class SipFailed:
    """No answer to the REGISTER: connect, TLS (a refused phone certificate too), timeout,
    or bytes that are not a SIP response."""

    failure: TransportFailure
    detail: str
    now: float


@attrs.frozen
class SipRejected:
    """The CallManager answered the REGISTER with a status other than ``200``."""

    status: str  # the status line, e.g. ``SIP/2.0 403 Forbidden``
    detail: str
    now: float


@attrs.frozen
class CapfIssued:
    """The server stored a new LSC on the phone: the certificate and the key the phone made."""

    certificate: Certificate
    key: PrivateKey = attrs.field(repr=False)
    now: float
    detail: str = ""


@attrs.frozen
class CapfEnded:
    """The session ended without a new LSC: ``result`` nothing / fetched / deleted / refused,
    ``reason`` the server's END_SESSION reason code (0 none, 1 success, 7 failure, 9 unknown
    device)."""

    result: str
    reason: int
    detail: str
    now: float


@attrs.frozen
class CapfFailed:
    """No session: connect, TLS (a server certificate not in the CTL/ITL), timeout, garbage."""

    failure: TransportFailure
    detail: str
    now: float


Result = (
    FileFetched
    | FileMissing
    | FetchFailed
    | TvsAnswered
    | TvsFailed
    | SipConnected
    | SipFailed
    | SipRejected
    | CapfIssued
    | CapfEnded
    | CapfFailed
)
_EXPECTS: Final[dict[type, tuple[type, ...]]] = {
    FetchFile: (FileFetched, FileMissing, FetchFailed),
    QueryTvs: (TvsAnswered, TvsFailed),
    ConnectSip: (SipConnected, SipFailed, SipRejected),
    RunCapf: (CapfIssued, CapfEnded, CapfFailed),
}


# --- the result ----------------------------------------------------------------------------------
@attrs.frozen
class Attempt:
    """One TVS query or SIP handshake towards one server."""

    target: str
    reason: str
    started: float
    finished: float
    detail: str = ""
    request_len: int = 0
    response_len: int = 0
    roles: tuple[int, ...] = ()
    ttl: int | None = None
    request: bytes | None = attrs.field(default=None, repr=False)
    response: bytes | None = attrs.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "target": self.target,
            "reason": self.reason,
            "elapsed": round(self.finished - self.started, 6),
        }
        if self.detail:
            d["detail"] = self.detail
        if self.request_len:
            d.update(request_len=self.request_len, response_len=self.response_len)
        if self.roles:
            d["roles"] = list(self.roles)
            d["role_names"] = role_names(self.roles)
        if self.ttl is not None:
            d["ttl"] = self.ttl
        return d


@attrs.frozen
class Fetched:
    """One file a step received: its name, the transport that delivered it (``http`` or
    ``tftp``), and why HTTP did not when TFTP did."""

    file: str
    transport: str
    fallback: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"file": self.file, "transport": self.transport}
        if self.fallback:
            d["fallback"] = self.fallback
        return d


@attrs.frozen
class Step:
    """One boot step (``ctl``, ``itl``, ``config``, ``register``) and how it ended."""

    name: str
    outcome: Outcome
    reason: str
    started: float
    finished: float
    detail: str = ""
    files: tuple[str, ...] = ()  # names asked for, in order
    fetched_at: float | None = None
    size: int | None = None
    signer: str | None = None
    source: str | None = None  # what vouched: first-use, ctl, itl, tvs-cache, tvs, unchanged
    attempts: tuple[Attempt, ...] = ()
    fetched: tuple[Fetched, ...] = ()  # each file delivered in this step and by what

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "step": self.name,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "started": self.started,
            "elapsed": round(self.elapsed, 6),
        }
        for key in ("detail", "signer", "source", "size"):
            value = getattr(self, key)
            if value not in (None, ""):
                d[key] = value
        if self.files:
            d["files"] = list(self.files)
        if self.attempts:
            d["attempts"] = [a.to_dict() for a in self.attempts]
        if self.fetched:
            d["fetched"] = [f.to_dict() for f in self.fetched]
        return d


@attrs.frozen
class BootResult:
    device_name: str
    state: BootState
    steps: tuple[Step, ...]
    status_lines: tuple[str, ...]
    started: float
    finished: float
    trust: TrustState = attrs.field(repr=False)
    config: PhoneConfig | None = attrs.field(repr=False)
    tvs_queries: int = 0
    identity: PhoneIdentity | None = attrs.field(default=None, repr=False)
    """The phone's identity after the boot (a new LSC when CAPF installed one), else None."""

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    @property
    def ok(self) -> bool:
        return self.state in (BootState.REGISTERED, BootState.CONFIGURED)

    @property
    def exit_code(self) -> int:
        """0 every step passed, 1 the phone rejected something, 2 a server was unreachable."""
        return {BootState.ERROR: 2, BootState.REJECTED: 1}.get(self.state, 0)

    def has_step(self, name: str) -> bool:
        return any(s.name == name for s in self.steps)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(s.reason for s in self.steps)

    @property
    def registration(self) -> str:
        """``passed``, ``skipped`` or ``failed``: a skipped handshake is never a pass."""
        reg = self.step("register")
        if reg.outcome is Outcome.OK:
            return "passed"
        return "skipped" if reg.outcome is Outcome.SKIPPED else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device_name,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "registration": self.registration,
            "started": self.started,
            "elapsed": round(self.elapsed, 6),
            "tvs_queries": self.tvs_queries,
            "status": list(self.status_lines),
            "steps": [s.to_dict() for s in self.steps],
        }


@attrs.frozen
class BootOptions:
    register: bool = True
    default_ttl: int = DEFAULT_TVS_TTL
    keep_bytes: bool = False  # keep TVS request/response bytes (console byte dumps)
    query_tags: QueryTags = QueryTags.TAGS_4_5  # the one setting: QueryTvs.data is sent as is
    max_trust_list: int = MAX_TRUST_LIST_SIZE
    capf: bool = True  # run CAPF when the configuration asks for it
    capf_attempts: int = CAPF_ATTEMPTS
    capf_interval: float = CAPF_INTERVAL
    capf_auth_string: str | None = None  # what a user would type on the phone (mode 1)


@attrs.frozen
class BootDone:
    result: BootResult
