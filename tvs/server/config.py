"""The TVS server's configuration value (what ``tvs serve`` flags and the emulated cluster set)."""

from __future__ import annotations

from pathlib import Path

import attrs

from ..admission import (
    DEFAULT_FIRST_BYTES_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    AdmissionLimits,
    Network,
    parse_networks,
)
from ..certs import Certificate, PrivateKey
from ..tlsconfig import ClientAuth
from ..wire import DEFAULT_MAX_MESSAGE

__all__ = ["DEFAULT_PORT", "REFRESH_MODES", "TvsServerConfig"]

REFRESH_MODES = ("restart", "notify")

DEFAULT_PORT = 2445


@attrs.frozen(kw_only=True)
class TvsServerConfig:
    """Everything one TVS listener needs. ``cert``/``key`` are files or in-memory values."""

    store: Path = attrs.field(converter=Path)
    cert: Path | Certificate
    key: Path | PrivateKey
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    legacy_tls: bool = False
    client_auth: ClientAuth = attrs.field(default=ClientAuth.NONE, converter=ClientAuth)
    """Phone certificate: not asked by default (section 7, Low: no public source shows TVS
    verifying it); ``optional``/``required`` verify it against the phone issuing set."""
    mic_ca: Path | None = None
    """Manufacturing CA certificate(s) (PEM) that verify phone MICs, besides CAPF-trust."""
    handshake_timeout: float = 10.0
    request_timeout: float = 10.0
    """Seconds a connected client has to send its whole request after the handshake."""
    max_message: int = DEFAULT_MAX_MESSAGE
    max_connections: int = 1024
    """Connections served at once; when full, the oldest idle unfinished handshake is shed,
    or (none left) the new connection is closed at accept and counted."""
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    """Unfinished handshakes per client address (0: unlimited); see :mod:`tvs.admission`."""
    trusted_networks: tuple[Network, ...] = attrs.field(default=(), converter=parse_networks)
    """Client networks exempt from the per-address limit."""
    first_bytes_timeout: float = DEFAULT_FIRST_BYTES_TIMEOUT
    """Seconds from accept to the client's first byte (its ClientHello)."""
    backlog: int = 4096
    reuse_port: bool = False
    """SO_REUSEPORT, so several worker processes can share the port."""
    watch: bool = False
    """Alias of ``refresh="notify"`` with ``refresh_delay=0`` (the older flag)."""
    watch_interval: float = 1.0
    """Seconds between checks of the store and the CTL for changes (notify mode)."""
    refresh: str = attrs.field(default="restart")
    """``restart``: the cache changes only on SIGHUP / ``tvs reload`` / :meth:`TvsServer.reload`
    (the seed's caution, "restart TVS"); ``notify``: it follows store and CTL changes by
    itself ``refresh_delay`` seconds after noticing them (CUCM's change notification, ~8 s;
    section 7, Med)."""
    refresh_delay: float = 8.0
    ctl: Path | None = None
    """The cluster's current CTL (``CTLFile.tlv``): on a cache miss the TVS answers from its
    records with their CTL roles (section 7, High). Read at start and with the cache."""

    @refresh.validator
    def _check_refresh(self, attribute: object, value: str) -> None:
        if value not in REFRESH_MODES:
            raise ValueError(f"refresh must be one of {', '.join(REFRESH_MODES)}, not {value!r}")

    @property
    def notify(self) -> bool:
        """Whether the cache follows changes by itself (``refresh="notify"`` or ``watch``)."""
        return self.refresh == "notify" or self.watch

    @property
    def notify_delay(self) -> float:
        return 0.0 if self.watch and self.refresh != "notify" else self.refresh_delay
    keylog: Path | None = None
    shutdown_grace: float = 15.0
    """At shutdown, seconds in-flight connections get before they are cancelled."""

    @property
    def admission(self) -> AdmissionLimits:
        return AdmissionLimits(
            max_connections=self.max_connections,
            max_handshakes_per_address=self.max_handshakes_per_address,
            trusted_networks=self.trusted_networks,
            first_bytes_timeout=self.first_bytes_timeout,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
