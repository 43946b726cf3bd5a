"""An emulated cluster's configuration: the CUCM parameters and nodes ``tvs cluster serve`` runs.

Owns :class:`ClusterConfig` and :class:`NodeConfig` (frozen values read from a TOML file or a
dict, checked key by key), the CUCM version as a comparable tuple, and the packaged example
configurations (the seed's lab clusters: ``source`` on 127.0.1.1, ``destination`` on
127.0.2.1). Relative paths (``pki_dir``, ``store_dir``) are taken relative to the working
directory of the process, not to the TOML file, so the packaged examples work from a checkout.
Does not own what the parameters mean for the generated files (``files``) or the servers
(``cluster``).

TOML shape::

    name = "source"
    version = "10.5.2.11900-3"
    security_mode = "mixed"          # or "nonsecure"
    rollback_pre80 = false           # "Prepare Cluster for Rollback to pre 8.0"
    tvs_ttl = 86400
    pki_dir = "lab/pki"              # the lab PKI; this cluster's certificates are pki_dir/<name>
    max_handshakes_per_address = 256 # unfinished TLS handshakes per client address (0: no limit)
    trusted_networks = []            # CIDRs exempt from that limit, e.g. ["10.0.0.0/8"]
    first_bytes_timeout = 3.0        # seconds from accept to a client's first byte
    client_auth = "none"             # phone certificate at the TVS: none, optional, required
    # sip_client_auth = "required"   # unset: follow the phones' security profiles (5061 only
                                     # serves modes 2 and 3, so it requires the certificate)
    tvs_refresh = "restart"          # TVS cache: "restart" (on restart/SIGHUP) or "notify"
    tvs_refresh_delay = 8            # notify: seconds after a store or CTL change
    default_security_profile = "authenticated"   # see tvs.cluster.profiles
    [[security_profiles]]            # optional, see tvs.cluster.profiles
    name = "lab-non-secure"
    device_security_mode = 1
    phones = ["B000B4BA0AF0-B000B4BA0AFF"]
    store_dir = "lab/stores/source"  # the cluster's trust stores (default lab/stores/<name>)
    http = true                      # HTTP file service on TFTP nodes (false: stopped)
    [[nodes]]
    name = "ucm105pub"               # a node of the lab PKI cluster directory
    address = "127.0.1.1"            # what phones are told (an address or a host name)
    listen = "0.0.0.0"               # optional: bind here instead of ``address``
    tftp = true
    tftp_port = 6969                 # 0 = any free port (the generated files carry the bound ports)
    http_port = 6970                 # HTTP file service beside TFTP (newer firmware); 0 = any
    tvs_port = 2445
    sip_port = 5061
    capf = true                      # this node runs CAPF (phones enroll LSCs from it)
    capf_port = 3804
    sip_port = 5061                  # secure SIP (TLS): phones in security modes 2 and 3
    sip_tcp_port = 5060              # SIP over TCP: phones in mode 1 (non-secure)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import attrs

from .. import tomlfile
from ..admission import (
    DEFAULT_FIRST_BYTES_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
    AdmissionLimits,
    parse_networks,
)
from ..store.table import DEFAULT_TTL
from .errors import ClusterConfigError
from .profiles import (
    BUILTIN_PROFILES,
    DeviceModels,
    SecurityProfile,
    default_profile_name,
    find_profile,
    parse_devices,
    parse_profiles,
    select_profile,
)

__all__ = [
    "CLIENT_AUTH_MODES",
    "DEFAULT_CAPF_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_SIP_PORT",
    "DEFAULT_SIP_TCP_PORT",
    "DEFAULT_TFTP_PORT",
    "DEFAULT_TVS_PORT",
    "DEFAULT_VERSION",
    "DIGESTS",
    "EXAMPLES",
    "SECURITY_MODES",
    "SIP_CLIENT_AUTH_DEFAULT",
    "TVS_REFRESH_DELAY",
    "TVS_REFRESH_MODES",
    "ClusterConfig",
    "NodeConfig",
    "parse_version",
]

DEFAULT_TFTP_PORT: Final = 6969
"""Not 69: an unprivileged port, so the lab runs without root (CUCM itself uses 69)."""
DEFAULT_TVS_PORT: Final = 2445
DEFAULT_HTTP_PORT: Final = 6970
"""CUCM's HTTP file service beside TFTP (protocol notes section 10); served on TFTP nodes."""
DEFAULT_SIP_PORT: Final = 5061
DEFAULT_CAPF_PORT: Final = 3804
DEFAULT_SIP_TCP_PORT: Final = 5060
DEFAULT_VERSION: Final = "10.5.2.11900-3"
SECURITY_MODES: Final = ("mixed", "nonsecure")
CLIENT_AUTH_MODES: Final = ("none", "optional", "required")
CLIENT_AUTH_DEFAULT: Final = "none"
"""The TVS does not ask for the phone certificate by default (section 7, Low: no public source
shows TVS verifying it; ``optional``/``required`` stay as options)."""
SIP_CLIENT_AUTH_DEFAULT: Final = None
"""Unset: the secure SIP port follows the security profiles. Only phones in modes 2 and 3 use
5061 and CUCM requires and verifies their certificate there (section 7, Med), so unset means
``required`` against the phone issuing set; set, it overrides for every phone."""
TVS_REFRESH_MODES: Final = ("restart", "notify")
TVS_REFRESH_DELAY: Final = 8.0
"""Seconds after a certificate import before CUCM's TVS cache follows it (section 7, Med)."""
DIGESTS: Final = ("sha1", "sha256", "sha512")
EXAMPLES: Final = ("source", "destination")
"""Names of the packaged example configurations (``tvs/cluster/examples/<name>.toml``)."""

_VERSION_RE = re.compile(r"^\d+(\.\d+)*(-\d+)?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.5.2.11900-3"`` -> ``(10, 5, 2, 11900, 3)``; ValueError for anything else."""
    t = text.strip()
    if not _VERSION_RE.match(t):
        raise ValueError(f"CUCM version {text!r} is not like 10.5.2.11900-3")
    return tuple(int(p) for p in re.split(r"[.-]", t))


# --- checking helpers ---------------------------------------------------------------------------


def _node_tuple(nodes: Iterable[NodeConfig]) -> tuple[NodeConfig, ...]:
    return tuple(nodes)


def _check_keys(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    tomlfile.check_keys(d, allowed, where, error=ClusterConfigError)


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if value is None:
        raise ClusterConfigError(f"{where}: missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise ClusterConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value.strip()


def _bool(d: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise ClusterConfigError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _int(d: Mapping[str, Any], key: str, where: str, default: int, low: int, high: int) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ClusterConfigError(f"{where}.{key}: expected an integer {low}..{high}, got {value!r}")
    return value


def _choice(
    d: Mapping[str, Any], key: str, where: str, default: str, allowed: tuple[str, ...]
) -> str:
    value = _str(d, key, where, default).lower()
    if value not in allowed:
        raise ClusterConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _profiles(profiles: Iterable[SecurityProfile]) -> tuple[SecurityProfile, ...]:
    return tuple(profiles)


def _port(value: int) -> int:
    if isinstance(value, bool) or not 0 <= value <= 65535:
        raise ClusterConfigError(f"port {value!r} outside 0..65535")
    return value


# --- values -------------------------------------------------------------------------------------


@attrs.frozen
class NodeConfig:
    """One CUCM node: where its TFTP (and HTTP 6970), TVS and secure SIP listeners bind and what
    phones are told.

    ``address`` goes into the generated configuration (TVS members, CallManager group) and,
    when it is an IPv4 literal, into the CTL/ITL records; ``listen`` (default: ``address``)
    is where the sockets bind, e.g. ``0.0.0.0`` inside a container.
    """

    name: str
    address: str = "127.0.0.1"
    tftp: bool = True
    tftp_port: int = attrs.field(default=DEFAULT_TFTP_PORT, converter=_port)
    tvs_port: int = attrs.field(default=DEFAULT_TVS_PORT, converter=_port)
    sip_port: int = attrs.field(default=DEFAULT_SIP_PORT, converter=_port)
    http_port: int = attrs.field(default=DEFAULT_HTTP_PORT, converter=_port)
    listen: str | None = None
    capf: bool = True
    capf_port: int = attrs.field(default=DEFAULT_CAPF_PORT, converter=_port)
    sip_tcp_port: int = attrs.field(default=DEFAULT_SIP_TCP_PORT, converter=_port)

    @property
    def bind_address(self) -> str:
        return self.listen or self.address

    @classmethod
    def from_dict(cls, d: object, where: str = "nodes") -> NodeConfig:
        if not isinstance(d, Mapping):
            raise ClusterConfigError(f"{where}: expected a table, got {type(d).__name__}")
        _check_keys(d, {f.name for f in attrs.fields(cls)}, where)
        name = _str(d, "name", where)
        if not _NAME_RE.match(name):
            raise ClusterConfigError(f"{where}.name: {name!r} is not a node name")
        listen = d.get("listen")
        if listen is not None and (not isinstance(listen, str) or not listen.strip()):
            raise ClusterConfigError(f"{where}.listen: expected an address, got {listen!r}")
        return cls(
            name=name,
            address=_str(d, "address", where, "127.0.0.1"),
            tftp=_bool(d, "tftp", where, True),
            tftp_port=_int(d, "tftp_port", where, DEFAULT_TFTP_PORT, 0, 65535),
            tvs_port=_int(d, "tvs_port", where, DEFAULT_TVS_PORT, 0, 65535),
            sip_port=_int(d, "sip_port", where, DEFAULT_SIP_PORT, 0, 65535),
            http_port=_int(d, "http_port", where, DEFAULT_HTTP_PORT, 0, 65535),
            sip_tcp_port=_int(d, "sip_tcp_port", where, DEFAULT_SIP_TCP_PORT, 0, 65535),
            listen=listen.strip() if isinstance(listen, str) else None,
            capf=_bool(d, "capf", where, True),
            capf_port=_int(d, "capf_port", where, DEFAULT_CAPF_PORT, 0, 65535),
        )


@attrs.frozen
class ClusterConfig:
    """One emulated CUCM cluster. Build with :meth:`load`, :meth:`from_dict` or :meth:`example`.

    ``security_mode`` ``mixed`` serves a tokenless CTL; ``nonsecure`` serves none.
    ``rollback_pre80`` blanks the ITL (signed, no records) and leaves the CTL alone.
    ``tvs_ttl`` is the TTL TVS answers carry for the cluster's own and imported certificates.
    ``client_auth`` is the TVS's client-certificate mode (default ``none``); ``sip_client_auth``
    the secure SIP port's (None: follow the profiles, i.e. ``required``). Both verify against
    the phone issuing set (``tvs.store.table.PHONE_ISSUER_STORES``). ``tvs_refresh``:
    ``restart`` (TVS answers change on :meth:`EmulatedCluster.restart_tvs` only, the seed's
    caution) or ``notify`` (the TVS follows store and CTL changes ``tvs_refresh_delay`` s later).
    ``security_profiles``/``default_security_profile``/``devices``: :mod:`.profiles`.
    ``digest`` is the hash the CTL, ITL and ``.sgn`` files are signed with (CUCM: SHA-1 by
    default, SHA-512 optionally). ``http``: serve the HTTP file service (port ``http_port``)
    beside TFTP on every TFTP node (false: the service is stopped, connections are refused).
    ``watch_interval``: seconds between checks of the store for
    changes made by another process (files are then regenerated; 0 disables the check).
    """

    name: str
    nodes: tuple[NodeConfig, ...] = attrs.field(converter=_node_tuple)
    version: str = DEFAULT_VERSION
    security_mode: str = "mixed"
    rollback_pre80: bool = False
    tvs_ttl: int = DEFAULT_TTL
    pki_dir: Path = attrs.field(default=Path("lab/pki"), converter=Path)
    store_dir: Path = attrs.field(
        default=attrs.Factory(lambda self: Path("lab/stores") / self.name, takes_self=True),
        converter=Path,
    )
    legacy_tls: bool = False
    http: bool = True
    client_auth: str = CLIENT_AUTH_DEFAULT
    sip_client_auth: str | None = SIP_CLIENT_AUTH_DEFAULT
    digest: str = "sha1"
    watch_interval: float = 1.0
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    trusted_networks: tuple[str, ...] = ()
    first_bytes_timeout: float = DEFAULT_FIRST_BYTES_TIMEOUT
    tvs_refresh: str = "restart"
    tvs_refresh_delay: float = TVS_REFRESH_DELAY
    security_profiles: tuple[SecurityProfile, ...] = attrs.field(default=(), converter=_profiles)
    default_security_profile: str | None = None
    devices: DeviceModels = attrs.field(factory=DeviceModels)

    def __attrs_post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        where = f"cluster {self.name!r}"
        if not _NAME_RE.match(self.name):
            raise ClusterConfigError(f"{where}: not a cluster name (letters, digits, ._-)")
        try:
            parse_version(self.version)
        except ValueError as exc:
            raise ClusterConfigError(f"{where}.version: {exc}") from None
        for key, allowed in (
            ("security_mode", SECURITY_MODES),
            ("client_auth", CLIENT_AUTH_MODES),
            ("sip_client_auth", CLIENT_AUTH_MODES),
            ("digest", DIGESTS),
            ("tvs_refresh", TVS_REFRESH_MODES),
        ):
            if key == "sip_client_auth" and self.sip_client_auth is None:
                continue  # unset: follow the profiles
            if getattr(self, key) not in allowed:
                raise ClusterConfigError(
                    f"{where}.{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}"
                )
        if not 0 <= self.tvs_ttl <= 0xFFFFFFFF:
            raise ClusterConfigError(f"{where}.tvs_ttl: {self.tvs_ttl} outside 0..4294967295")
        if self.watch_interval < 0:
            raise ClusterConfigError(f"{where}.watch_interval: must not be negative")
        try:
            parse_networks(self.trusted_networks)
        except ValueError as exc:
            raise ClusterConfigError(f"{where}.trusted_networks: {exc}") from None
        if self.first_bytes_timeout <= 0:
            raise ClusterConfigError(f"{where}.first_bytes_timeout: must be positive")
        if self.tvs_refresh_delay < 0:
            raise ClusterConfigError(f"{where}.tvs_refresh_delay: must not be negative")
        if (
            self.default_security_profile is not None
            and find_profile(self.default_security_profile, self.security_profiles) is None
        ):
            known = ", ".join(p.name for p in (*self.security_profiles, *BUILTIN_PROFILES))
            raise ClusterConfigError(
                f"{where}.default_security_profile: no profile "
                f"{self.default_security_profile!r} (known: {known})"
            )
        if not self.nodes:
            raise ClusterConfigError(f"{where}: no nodes")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ClusterConfigError(f"{where}: node names repeat: {', '.join(names)}")
        if not any(n.tftp for n in self.nodes):
            raise ClusterConfigError(f"{where}: no node runs TFTP (set tftp = true on one)")
        seen: dict[tuple[str, str, int], str] = {}
        for n in self.nodes:
            for proto, port in (("udp", n.tftp_port if n.tftp else 0), ("tcp", n.tvs_port)):
                _claim(seen, (proto, n.bind_address, port), f"{n.name} {proto}/{port}", where)
            for port in (n.sip_port, n.sip_tcp_port):
                _claim(seen, ("tcp", n.bind_address, port), f"{n.name} tcp/{port}", where)
            if n.tftp:
                http = ("tcp", n.bind_address, n.http_port)
                _claim(seen, http, f"{n.name} tcp/{n.http_port}", where)
            if n.capf:
                port = n.capf_port
                _claim(seen, ("tcp", n.bind_address, port), f"{n.name} tcp/{port}", where)

    # --- derived --------------------------------------------------------------------------
    @property
    def admission(self) -> AdmissionLimits:
        """The admission limits of every TVS and secure SIP listener of the cluster."""
        return AdmissionLimits(
            max_handshakes_per_address=self.max_handshakes_per_address,
            trusted_networks=parse_networks(self.trusted_networks),
            first_bytes_timeout=self.first_bytes_timeout,
        )

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version)

    @property
    def mixed_mode(self) -> bool:
        return self.security_mode == "mixed"

    @property
    def default_profile(self) -> SecurityProfile:
        """The profile of a phone no configured profile is assigned to."""
        name = self.default_security_profile or default_profile_name(self.mixed_mode)
        found = find_profile(name, self.security_profiles)
        assert found is not None  # checked in _validate
        return found

    def profile_for(self, mac: str) -> SecurityProfile:
        """The security profile of the phone with ``mac`` (see :mod:`.profiles`)."""
        return select_profile(mac, self.security_profiles, self.default_profile, self.devices)

    @property
    def sip_requires_client_certificate(self) -> str:
        """The secure SIP port's client-certificate mode: ``sip_client_auth`` when set, else
        ``required`` (only phones in modes 2 and 3 come to 5061, and CUCM verifies them)."""
        return self.sip_client_auth or "required"

    @property
    def tftp_nodes(self) -> tuple[NodeConfig, ...]:
        return tuple(n for n in self.nodes if n.tftp)

    @property
    def capf_db(self) -> Path:
        """The cluster's CAPF operations database (``store_dir/capf.sqlite3``)."""
        return self.store_dir / "capf.sqlite3"

    @property
    def capf_nodes(self) -> tuple[NodeConfig, ...]:
        return tuple(n for n in self.nodes if n.capf)

    @property
    def cluster_pki_dir(self) -> Path:
        """This cluster's directory in the lab PKI (``pki_dir/<name>``)."""
        return self.pki_dir / self.name

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ClusterConfigError(f"cluster {self.name!r} has no node {name!r}")

    def evolve(self, **changes: Any) -> ClusterConfig:
        """A copy with ``changes`` (checked again)."""
        return attrs.evolve(self, **changes)

    def with_nodes(
        self,
        *,
        listen: str | None = None,
        address: str | None = None,
        port_offset: int | None = None,
        ports: int | None = None,
    ) -> ClusterConfig:
        """A copy whose every node binds ``listen`` / is announced as ``address``; ``ports=0``
        makes every port 0 (tests), ``port_offset`` adds to every non-zero port."""
        nodes = []
        for n in self.nodes:
            changes: dict[str, Any] = {}
            if listen is not None:
                changes["listen"] = listen
            if address is not None:
                changes["address"] = address
            if ports is not None:
                changes.update(
                    tftp_port=ports,
                    tvs_port=ports,
                    sip_port=ports,
                    http_port=ports,
                    capf_port=ports,
                    sip_tcp_port=ports,
                )
            elif port_offset:
                changes.update(
                    {
                        k: getattr(n, k) + port_offset
                        for k in (
                            "tftp_port",
                            "tvs_port",
                            "sip_port",
                            "http_port",
                            "capf_port",
                            "sip_tcp_port",
                        )
                        if getattr(n, k)
                    }
                )
            nodes.append(attrs.evolve(n, **changes))
        return self.evolve(nodes=tuple(nodes))

    # --- reading --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "config") -> ClusterConfig:
        """Build from TOML tables; every fault raises :class:`ClusterConfigError`."""
        if not isinstance(d, Mapping):
            raise ClusterConfigError(f"{source}: expected a table, got {type(d).__name__}")
        allowed = {f.name for f in attrs.fields(cls)}
        _check_keys(d, allowed, source)
        name = _str(d, "name", source)
        where = f"{source}: cluster {name!r}"
        raw_nodes = d.get("nodes")
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise ClusterConfigError(f"{where}: 'nodes' must be a non-empty array of tables")
        nodes = tuple(
            NodeConfig.from_dict(n, f"{where}.nodes[{i}]") for i, n in enumerate(raw_nodes)
        )
        interval = _seconds(d, "watch_interval", where, 1.0)
        delay = _seconds(d, "tvs_refresh_delay", where, TVS_REFRESH_DELAY)
        extra: dict[str, Any] = {}
        if "store_dir" in d:
            extra["store_dir"] = Path(_str(d, "store_dir", where))
        return cls(
            name=name,
            nodes=nodes,
            version=_str(d, "version", where, DEFAULT_VERSION),
            security_mode=_choice(d, "security_mode", where, "mixed", SECURITY_MODES),
            rollback_pre80=_bool(d, "rollback_pre80", where, False),
            tvs_ttl=_int(d, "tvs_ttl", where, DEFAULT_TTL, 0, 0xFFFFFFFF),
            pki_dir=Path(_str(d, "pki_dir", where, "lab/pki")),
            legacy_tls=_bool(d, "legacy_tls", where, False),
            http=_bool(d, "http", where, True),
            client_auth=_choice(d, "client_auth", where, CLIENT_AUTH_DEFAULT, CLIENT_AUTH_MODES),
            sip_client_auth=(
                _choice(d, "sip_client_auth", where, "required", CLIENT_AUTH_MODES)
                if "sip_client_auth" in d
                else None
            ),
            digest=_choice(d, "digest", where, "sha1", DIGESTS),
            watch_interval=float(interval),
            max_handshakes_per_address=_int(
                d,
                "max_handshakes_per_address",
                where,
                DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
                0,
                1 << 30,
            ),
            trusted_networks=_networks(d, where),
            first_bytes_timeout=_seconds(
                d, "first_bytes_timeout", where, DEFAULT_FIRST_BYTES_TIMEOUT
            ),
            tvs_refresh=_choice(d, "tvs_refresh", where, "restart", TVS_REFRESH_MODES),
            tvs_refresh_delay=delay,
            security_profiles=parse_profiles(
                d.get("security_profiles"), f"{where}.security_profiles"
            ),
            default_security_profile=(
                _str(d, "default_security_profile", where)
                if "default_security_profile" in d
                else None
            ),
            devices=parse_devices(d.get("devices"), f"{where}.devices"),
            **extra,
        )

    @classmethod
    def loads(cls, text: str, *, source: str = "config") -> ClusterConfig:
        data = tomlfile.loads(text, source=source, error=ClusterConfigError)
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> ClusterConfig:
        """Read a TOML file; a name in :data:`EXAMPLES` that is not a file reads the example."""
        p = Path(path)
        if not p.exists() and str(path) in EXAMPLES:
            return cls.example(str(path))
        text = tomlfile.read_text(p, what="cluster configuration", error=ClusterConfigError)
        return cls.loads(text, source=str(p))

    @classmethod
    def example(cls, name: str) -> ClusterConfig:
        """One of the packaged examples: ``source`` (127.0.1.1) or ``destination`` (127.0.2.1)."""
        if name not in EXAMPLES:
            raise ClusterConfigError(f"no example {name!r} (one of {', '.join(EXAMPLES)})")
        return cls.loads(example_text(name), source=f"example {name}")


def _networks(d: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = d.get("trusted_networks", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClusterConfigError(f"{where}.trusted_networks: expected a list of CIDR strings")
    return tuple(value)


def _seconds(d: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClusterConfigError(f"{where}.{key}: expected seconds, got {value!r}")
    return float(value)


def example_text(name: str) -> str:
    """The TOML text of a packaged example configuration."""
    return resources.files(__package__).joinpath("examples", f"{name}.toml").read_text("utf-8")


def _claim(
    seen: dict[tuple[str, str, int], str], key: tuple[str, str, int], what: str, where: str
) -> None:
    if key[2] == 0:
        return
    if key in seen:
        raise ClusterConfigError(f"{where}: {what} on {key[1]} is also used by {seen[key]}")
    seen[key] = what
