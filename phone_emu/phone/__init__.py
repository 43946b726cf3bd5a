"""The emulated phone: identity, trust state, configuration, boot state machine (pure),
persistence, console rendering, and the Trio driver that performs the boot's actions.

The fleet runner's entry points are :class:`Phone` and :func:`boot_phone`.
"""

from .boot import (
    Attempt,
    BootDone,
    BootMachine,
    BootOptions,
    BootResult,
    BootState,
    ConnectSip,
    FetchFailed,
    FetchFile,
    FileFetched,
    FileMissing,
    Outcome,
    QueryTvs,
    SipConnected,
    SipFailed,
    SipRejected,
    Step,
    TransportFailure,
    TvsAnswered,
    TvsFailed,
)
from .config import CallManager, ConfigError, PhoneConfig, TvsMember, parse_config
from .console import console_lines
from .driver import NetworkOptions, Phone, boot_phone
from .identity import IdentityError, PhoneIdentity
from .persist import LoadedState, StateError, StateProblem, StateStore
from .trust import (
    SIGNING_ROLES,
    FileKind,
    TrustList,
    TrustListCache,
    TrustState,
    TvsCacheEntry,
)

__all__ = [
    "SIGNING_ROLES",
    "Attempt",
    "BootDone",
    "BootMachine",
    "BootOptions",
    "BootResult",
    "BootState",
    "CallManager",
    "ConfigError",
    "ConnectSip",
    "FetchFailed",
    "FetchFile",
    "FileFetched",
    "FileKind",
    "FileMissing",
    "IdentityError",
    "LoadedState",
    "NetworkOptions",
    "Outcome",
    "Phone",
    "PhoneConfig",
    "PhoneIdentity",
    "QueryTvs",
    "SipConnected",
    "SipFailed",
    "SipRejected",
    "StateError",
    "StateProblem",
    "StateStore",
    "Step",
    "TransportFailure",
    "TrustList",
    "TrustListCache",
    "TrustState",
    "TvsAnswered",
    "TvsCacheEntry",
    "TvsFailed",
    "TvsMember",
    "boot_phone",
    "console_lines",
    "parse_config",
]
