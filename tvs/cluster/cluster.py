"""The emulated cluster on Trio: per node a TVS, a TFTP server (with the HTTP 6970 file service
beside it, serving the same provider), a secure-SIP TLS listener and a CAPF
(``tvs.capf.server``, operations in ``store_dir/capf.sqlite3``).

A thin adapter. Owns the cluster's trust-store directory (its own certificates refreshed from
the lab PKI at start), the servers' lifetimes, and CUCM's update rules (protocol notes
section 7): imported certificates change the ITL and configuration at once
(:meth:`EmulatedCluster.regenerate_files`, also run when another process changes the store)
but not the CTL, which only :meth:`EmulatedCluster.ctl_update` rebuilds (``utils ctl update
CTLFile``); TVS answers change after :meth:`EmulatedCluster.restart_tvs` (``tvs_refresh =
"restart"``) or by themselves ``tvs_refresh_delay`` seconds later (``"notify"``), and on a
cache miss the TVS answers from the CTL the cluster serves. File contents come from
:mod:`.files`, the TVS from :mod:`tvs.server`, TFTP from :mod:`tvs.tftp`,
stores from :mod:`tvs.store`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import structlog
import trio

from .. import device
from ..capf.db import CapfDb, capf_auth_mode
from ..capf.server import CapfServer, CapfServerConfig
from ..certs import Certificate, CertificateError
from ..excgroup import first_error
from ..http import HttpObserver, HttpServer, HttpServerStats
from ..pki import ClusterPki, LabPki, PkiError
from ..server import NullObserver, ServerObserver, TvsServer, TvsServerConfig
from ..store import (
    BulkImportResult,
    StoreError,
    TrustStore,
    bulk_export,
    bulk_import,
    read_certificate_file,
)
from ..tftp import CallableProvider, TftpServer, TftpServerStats
from .config import ClusterConfig, NodeConfig
from .errors import ClusterError
from .files import ClusterFiles, FileInputs, NodeEndpoint, endpoints_from_config
from .sip import SipListener, SipStats

__all__ = ["ClusterStats", "EmulatedCluster"]

_NOTIFY_POLL = 0.25
"""Seconds between a notify-mode TVS's checks of the store and the CTL (in-process: cheap)."""

log = structlog.get_logger("tvs.cluster")


@attrs.frozen
class ClusterStats:
    """Counters since the cluster started; ``tftp``/``sip`` are per node."""

    tftp: Mapping[str, TftpServerStats]
    sip: Mapping[str, SipStats]
    tvs_requests: Mapping[str, int]
    """Answered TVS requests by status (``VALID``, ``INVALID``)."""
    tvs_handshake_failures: int
    files_generation: int
    """How many times the generated files were rebuilt."""
    http: Mapping[str, HttpServerStats] = attrs.field(factory=dict)

    @property
    def tftp_transfers(self) -> int:
        return sum(s.transfers_completed for s in self.tftp.values())

    @property
    def sip_handshakes(self) -> int:
        return sum(s.handshakes for s in self.sip.values())


class _TvsCounter(NullObserver):
    """Counts for :meth:`EmulatedCluster.statistics`, passing every event on to ``inner``
    (e.g. :class:`tvs.metrics.PrometheusObserver` for ``tvs cluster serve --metrics``)."""

    def __init__(self, inner: ServerObserver | None = None) -> None:
        self.by_status: dict[str, int] = {}
        self.handshake_failures = 0
        self.inner: ServerObserver = inner if inner is not None else NullObserver()

    def connection_opened(self) -> None:
        self.inner.connection_opened()

    def connection_closed(self) -> None:
        self.inner.connection_closed()

    def connection_rejected(self, reason: str) -> None:
        self.inner.connection_rejected(reason)

    def client_unverified(self, reason: str) -> None:
        self.inner.client_unverified(reason)

    def bad_request(self, reason: str) -> None:
        self.inner.bad_request(reason)

    def cache_reloaded(self, size: int) -> None:
        self.inner.cache_reloaded(size)

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.inner.request_served(message_type, status, seconds)

    def handshake_failed(self, reason: str) -> None:
        self.handshake_failures += 1
        self.inner.handshake_failed(reason)


class _NodeFiles:
    """The TFTP file function of one node (waits until the bound ports are known)."""

    def __init__(self, cluster: EmulatedCluster, node: str) -> None:
        self.cluster, self.node = cluster, node

    def __repr__(self) -> str:
        return f"generated files of {self.cluster.config.name}/{self.node}"

    async def __call__(self, name: str, client: tuple[str, int]) -> bytes | None:
        if not self.cluster._ready.is_set():  # no trip through the event loop once ready
            await self.cluster._ready.wait()
        return self.cluster.files.get(name, self.node)


async def _start(
    nursery: trio.Nursery,
    what: str,
    node: NodeConfig,
    port: int,
    serve: Callable[..., Any],
    *args: object,
) -> Any:
    """``nursery.start(serve, *args)``; a listener that cannot bind is a ClusterError naming
    it (``cannot listen on TVS of ucm105pub at 127.0.1.1:2445: Address already in use``)."""
    try:
        return await nursery.start(serve, *args)
    except (OSError, BaseExceptionGroup) as exc:
        found = first_error(exc, (OSError,))
        if not isinstance(found, OSError):
            raise
        why = found.strerror or str(found)
        raise ClusterError(
            f"cannot listen on {what} at {node.bind_address}:{port}: {why}"
        ) from None


class EmulatedCluster:
    """One CUCM cluster. ``await nursery.start(cluster.serve)`` binds everything and returns
    the cluster; cancel the nursery to stop it. Files and stores work before ``serve`` too."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        pki: LabPki | None = None,
        clock: Callable[[], float] = time.time,
        http_observer: HttpObserver | None = None,
        tvs_observer: ServerObserver | None = None,
        keylog: Path | None = None,
    ) -> None:
        self.config = config
        self._keylog = keylog  # TLS secrets of every listener (SSLKEYLOGFILE format)
        self._clock = clock
        self._log = log.bind(cluster=config.name)
        try:
            lab = pki if pki is not None else LabPki.load(config.pki_dir)
            self.pki: ClusterPki = lab.cluster(config.name)
            mfg = lab.manufacturing_ca
            self._manufacturing_ca = mfg.cert if mfg is not None else None
        except PkiError as exc:
            raise ClusterError(str(exc)) from None
        self._store = TrustStore.open(config.store_dir, create=True)
        self._refresh_own_certificates()
        self._capf_db = CapfDb(config.capf_db)
        self._files = ClusterFiles(
            FileInputs(
                config,
                self.pki,
                endpoints_from_config(config),
                sast_trust=self._sast_trust(),
                timestamp=self._now(),
            ),
            capf_mode=self._capf_mode,
            known_certificate=self.known_phone_certificate,
        )
        self._signature = self._store.signature()
        self._observer = _TvsCounter(tvs_observer)
        self._tvs: dict[str, TvsServer] = {}
        self._tftp: dict[str, TftpServer] = {}
        self._sip: dict[str, SipListener] = {}
        self._http: dict[str, HttpServer] = {}
        self._http_observer = http_observer  # e.g. tvs.metrics.HttpPrometheusObserver
        self._http_ports: dict[str, int] = {}
        self._closed_ports: list[socket.socket] = []
        self._capf: dict[str, CapfServer] = {}
        self._sip_tcp: dict[str, SipListener] = {}
        self._ready = trio.Event()

    # --- stores ---------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock())

    def _refresh_own_certificates(self) -> None:
        """Write the cluster's own certificates (from the lab PKI) into its store."""
        store, ttl = self._store, self.config.tvs_ttl
        store.set_cluster(self.config.name, [n.name for n in self.config.nodes])
        for n in self.config.nodes:
            node = self.pki.nodes.get(n.name)
            if node is None:
                raise ClusterError(
                    f"cluster {self.config.name!r}: node {n.name!r} is not in the lab PKI "
                    f"(it has {', '.join(self.pki.nodes) or 'none'})"
                )
            store.put_own("CallManager", n.name, node.callmanager.cert, ttl=ttl)
            store.put_own("TVS", n.name, node.tvs.cert, ttl=ttl)
        store.put_own("ITLRecovery", self.config.name, self.pki.itlrecovery.cert, ttl=ttl)
        store.put_own("CAPF", self.config.name, self.pki.capf.cert, ttl=ttl)
        if self._manufacturing_ca is not None:  # trusted as CUCM trusts Cisco's MIC roots
            store.import_certificates("CAPF-trust", [self._manufacturing_ca], ttl=ttl)

    def _sast_trust(self) -> tuple[Certificate, ...]:
        return tuple(e.certificate for e in self._store.list(["Phone-SAST-trust"]))

    @property
    def store(self) -> TrustStore:
        return self._store

    # --- CAPF -----------------------------------------------------------------------------
    @property
    def capf_db(self) -> CapfDb:
        """The cluster's CAPF operations (``tvs capf schedule --config`` writes the same file)."""
        return self._capf_db

    def _capf_mode(self, device_name: str) -> int:
        return capf_auth_mode(self._capf_db.get(device_name))

    def known_phone_certificate(self, device_name: str) -> Certificate | None:
        """The phone certificate this cluster knows (encrypted configuration's certHash and
        key): the LSC its CAPF issued, else, for the lab's pre-provisioned phones, their LSC
        from the lab PKI (as if installed by this CAPF before the lab started). None: unknown."""
        issued = self._capf_db.certificate(device_name)
        if issued is not None:
            try:
                return Certificate.from_der(issued.der)
            except CertificateError:
                return None
        mac = device.mac_in(device_name)
        phone = self.pki.phones.get(mac) if mac is not None else None
        return phone.cert if phone is not None else None

    def _capf_issuers(self) -> tuple[Certificate, ...]:
        """Issuers of LSCs and MICs a phone may prove itself with: CAPF-trust (where the MIC
        roots and other clusters' CAPFs are) and the own CAPF."""
        return tuple(self._store.phone_issuer_certificates())

    @property
    def capf_addresses(self) -> list[tuple[str, int]]:
        return [(e.address, e.capf_port) for e in self.endpoints if e.capf_port is not None]

    @property
    def capf_servers(self) -> Mapping[str, CapfServer]:
        return MappingProxyType(self._capf)

    def regenerate_files(self) -> None:
        """Rebuild the ITL and configuration from the stores now, as CUCM does after a change.
        The CTL keeps its bytes: only :meth:`ctl_update` rebuilds it (section 7, High)."""
        self._signature = self._store.signature()
        self._files.update(sast_trust=self._sast_trust(), timestamp=self._now())
        cas = self._store.phone_issuer_certificates()
        for sip in self._sip.values():
            sip.set_client_cas(cas)
        self._log.info(
            "cluster.files_regenerated",
            generation=self._files.generation,
            sast_trust=len(self._files.inputs.sast_trust),
        )

    def import_certificates(self, trust: str, certs: Iterable[Certificate | str | Path]) -> None:
        """Import into trust store ``trust`` (certificates or certificate files) and regenerate
        the files; TVS answers change only after :meth:`restart_tvs`, as on CUCM."""
        todo: list[Certificate] = []
        for c in certs:
            todo.extend([c] if isinstance(c, Certificate) else read_certificate_file(c))
        entries = self._store.import_certificates(trust, todo, ttl=self.config.tvs_ttl)
        self._log.info("cluster.imported", store=trust, count=len(entries))
        self.regenerate_files()

    def bulk_export(self, shared_dir: str | Path) -> list[Path]:
        """Bulk certificate export: one PKCS#12 per node into ``shared_dir``."""
        return bulk_export(self._store, shared_dir)

    def bulk_import(self, shared_dir: str | Path) -> BulkImportResult:
        """Bulk certificate import from ``shared_dir``, then regenerate the files."""
        result = bulk_import(self._store, shared_dir)
        self._log.info(
            "cluster.bulk_imported", imported=len(result.imported), skipped=len(result.skipped)
        )
        self.regenerate_files()
        return result

    def ctl_update(self) -> None:
        """``utils ctl update CTLFile``: rebuild the CTL from the current stores (Phone-SAST-trust).
        A TVS in ``notify`` refresh mode follows the new CTL by itself; in ``restart`` mode it
        reads it at its next restart."""
        self._files.update(sast_trust=self._sast_trust(), timestamp=self._now())
        self._files.ctl_update()
        ctl = self._files.ctl()
        self._log.info(
            "cluster.ctl_updated",
            generation=self._files.generation,
            sast_trust=len(self._files.inputs.sast_trust),
            size=len(ctl) if ctl else 0,
        )

    def _current_ctl(self) -> bytes | None:
        """What the TVS falls back to on a cache miss: the CTL the cluster serves now."""
        return self._files.ctl()

    async def restart_tvs(self) -> None:
        """ "Restart TVS on all nodes": every TVS re-reads its cache from the store."""
        for name, server in self._tvs.items():
            entries = server.reload()
            self._log.info("cluster.tvs_restarted", node=name, entries=entries)
        await trio.lowlevel.checkpoint()

    def set_rollback_pre80(self, value: bool) -> None:
        """Enterprise parameter "Prepare Cluster for Rollback to pre 8.0" (blank ITL)."""
        self.config = self.config.evolve(rollback_pre80=value)
        self._files.update(config=self.config, timestamp=self._now())
        self._log.info("cluster.rollback_pre80", value=value)

    # --- files ----------------------------------------------------------------------------
    @property
    def files(self) -> ClusterFiles:
        return self._files

    def files_for(self, mac: str) -> dict[str, bytes]:
        """The files the first TFTP node serves a phone, by the names the phone asks for."""
        return self._files.files_for(mac)

    def _provider(self, node: str) -> CallableProvider:
        return CallableProvider(_NodeFiles(self, node))

    # --- addresses ------------------------------------------------------------------------
    @property
    def endpoints(self) -> tuple[NodeEndpoint, ...]:
        """The nodes as phones see them (bound ports once serving)."""
        return self._files.inputs.endpoints

    @property
    def tftp_address(self) -> tuple[str, int]:
        """The first TFTP node: what DHCP option 150 points at."""
        e = next(e for e in self.endpoints if e.tftp)
        return e.address, e.tftp_port

    @property
    def http_addresses(self) -> Mapping[str, tuple[str, int]]:
        """Each TFTP node's HTTP file service, by node name (once serving)."""
        return MappingProxyType(
            {e.name: (e.address, self._http_ports[e.name]) for e in self.endpoints if e.tftp}
        )

    @property
    def http_address(self) -> tuple[str, int]:
        """The first TFTP node's HTTP file service (refused when ``http = false``)."""
        e = next(e for e in self.endpoints if e.tftp)
        return e.address, self._http_ports.get(e.name, self.config.node(e.name).http_port)

    @property
    def tvs_addresses(self) -> list[tuple[str, int]]:
        return [(e.address, e.tvs_port) for e in self.endpoints]

    @property
    def sip_addresses(self) -> list[tuple[str, int]]:
        return [(e.address, e.sip_port) for e in self.endpoints]

    @property
    def sip_listeners(self) -> Mapping[str, SipListener]:
        """Each node's secure SIP listener, by node name (once serving)."""
        return MappingProxyType(self._sip)

    def statistics(self) -> ClusterStats:
        return ClusterStats(
            tftp=MappingProxyType({n: s.statistics() for n, s in self._tftp.items()}),
            sip=MappingProxyType({n: s.statistics() for n, s in self._sip.items()}),
            http=MappingProxyType({n: s.statistics() for n, s in self._http.items()}),
            tvs_requests=MappingProxyType(dict(self._observer.by_status)),
            tvs_handshake_failures=self._observer.handshake_failures,
            files_generation=self._files.generation,
        )

    # --- serving --------------------------------------------------------------------------
    async def serve(
        self, *, task_status: trio.TaskStatus[EmulatedCluster] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind every node's TVS, secure SIP and TFTP listeners, then report ``self``."""
        cfg = self.config
        sip_cas = self._store.phone_issuer_certificates()
        async with trio.open_nursery() as nursery:
            endpoints: list[NodeEndpoint] = []
            for n in cfg.nodes:
                ident = self.pki.nodes[n.name]
                tvs = TvsServer(
                    TvsServerConfig(
                        store=cfg.store_dir,
                        cert=ident.tvs.cert,
                        key=ident.tvs.key,
                        host=n.bind_address,
                        port=n.tvs_port,
                        legacy_tls=cfg.legacy_tls,
                        client_auth=cfg.client_auth,
                        max_handshakes_per_address=cfg.max_handshakes_per_address,
                        trusted_networks=cfg.trusted_networks,
                        first_bytes_timeout=cfg.first_bytes_timeout,
                        keylog=self._keylog,
                        refresh=cfg.tvs_refresh,
                        refresh_delay=cfg.tvs_refresh_delay,
                        watch_interval=_NOTIFY_POLL,
                    ),
                    observer=self._observer,
                    ctl_source=self._current_ctl,
                )
                _, tvs_port = await _start(nursery, f"TVS of {n.name}", n, n.tvs_port, tvs.serve)
                self._tvs[n.name] = tvs
                sip = SipListener(
                    ident.callmanager.cert,
                    ident.callmanager.key,
                    legacy_tls=cfg.legacy_tls,
                    client_auth=cfg.sip_requires_client_certificate,
                    client_cas=sip_cas,
                    admission=cfg.admission,
                    keylog=self._keylog,
                )
                _, sip_port = await _start(
                    nursery, f"secure SIP of {n.name}", n, n.sip_port, sip.serve, n.bind_address,
                    n.sip_port,
                )  # fmt: skip
                self._sip[n.name] = sip
                sip_tcp = SipListener(ident.callmanager.cert, ident.callmanager.key, tls=False)
                _, sip_tcp_port = await _start(
                    nursery, f"SIP (TCP) of {n.name}", n, n.sip_tcp_port, sip_tcp.serve,
                    n.bind_address, n.sip_tcp_port,
                )  # fmt: skip
                self._sip_tcp[n.name] = sip_tcp
                tftp_port = n.tftp_port
                if n.tftp:
                    provider = self._provider(n.name)  # one provider: TFTP and HTTP share it
                    tftp = TftpServer(provider)
                    _, tftp_port = await _start(
                        nursery, f"TFTP of {n.name}", n, n.tftp_port, tftp.serve,
                        n.bind_address, n.tftp_port,
                    )  # fmt: skip
                    self._tftp[n.name] = tftp
                    await self._start_http(nursery, n, provider)
                capf_port = None
                if n.capf:
                    capf = CapfServer(
                        CapfServerConfig(
                            chain=(self.pki.capf.cert,),
                            key=self.pki.capf.key,
                            db=cfg.capf_db,
                            host=n.bind_address,
                            port=n.capf_port,
                            lsc_issuers=self._capf_issuers(),
                            mic_issuers=self._capf_issuers(),
                            legacy_tls=cfg.legacy_tls,
                            admission=cfg.admission,
                            keylog=self._keylog,
                        )
                    )
                    _, capf_port = await _start(
                        nursery, f"CAPF of {n.name}", n, n.capf_port, capf.serve
                    )
                    self._capf[n.name] = capf
                endpoints.append(
                    NodeEndpoint(
                        n.name,
                        n.address,
                        n.tftp,
                        tftp_port,
                        tvs_port,
                        sip_port,
                        capf_port,
                        sip_tcp_port,
                    )
                )
            self._files.update(endpoints=tuple(endpoints), timestamp=self._now())
            self._ready.set()
            if cfg.watch_interval > 0:
                nursery.start_soon(self._watch_store)
            self._log.info(
                "cluster.ready",
                version=cfg.version,
                security_mode=cfg.security_mode,
                tftp=f"{self.tftp_address[0]}:{self.tftp_address[1]}",
                tvs=[f"{h}:{p}" for h, p in self.tvs_addresses],
                http=f"{self.http_address[0]}:{self.http_address[1]}" if cfg.http else "stopped",
                capf=[f"{h}:{p}" for h, p in self.capf_addresses],
            )
            task_status.started(self)

    async def _start_http(
        self, nursery: trio.Nursery, node: NodeConfig, provider: CallableProvider
    ) -> None:
        """The node's HTTP file service; when ``http = false`` the port is only reserved
        (bound, not listening: phones are refused and fall back to TFTP)."""
        if self.config.http:
            http = HttpServer(
                provider, admission=self.config.admission, observer=self._http_observer
            )
            _, port = await _start(
                nursery, f"HTTP of {node.name}", node, node.http_port, http.serve,
                node.bind_address, node.http_port,
            )  # fmt: skip
            self._http[node.name] = http
        elif node.http_port:
            port = node.http_port
        else:
            family = socket.AF_INET6 if ":" in node.bind_address else socket.AF_INET
            closed = socket.socket(family, socket.SOCK_STREAM)
            closed.bind((node.bind_address, 0))
            if not self._closed_ports:
                nursery.start_soon(self._release_ports)
            self._closed_ports.append(closed)
            port = closed.getsockname()[1]
        self._http_ports[node.name] = port

    async def _release_ports(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            for sock in self._closed_ports:
                sock.close()
            self._closed_ports.clear()

    async def _watch_store(self) -> None:
        """Regenerate the files when another process (``tvs store import``) changes the store."""
        while True:
            await trio.sleep(self.config.watch_interval)
            try:
                changed = self._store.signature() != self._signature
                if changed:
                    self.regenerate_files()
            except (OSError, ValueError, StoreError) as exc:  # a half-written file, a bad PEM
                self._log.error("cluster.regenerate_failed", reason=str(exc))
