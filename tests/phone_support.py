"""Helpers for the phone tests: cluster files (CTL, ITL, configuration) from the lab PKI, and a
fake network that drives the sans-I/O boot machine. Not a test module."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

import attrs
import trio

from phone_emu.phone.boot import (
    BootDone,
    BootMachine,
    BootResult,
    ConnectSip,
    FetchFile,
    FileFetched,
    FileMissing,
    QueryTvs,
    Result,
    RunCapf,
    SipConnected,
    SipFailed,
    TransportFailure,
    TvsAnswered,
)
from tvs.certs import Certificate
from tvs.cluster.sip import SipListener
from tvs.pki import ClusterPki
from tvs.pki.issue import Identity
from tvs.roles import Role
from tvs.server import NullObserver, TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tftp import CallableProvider, serve_tftp
from tvs.tlsconfig import ClientAuth
from tvs.tlv import build_trust_list, sign_file
from tvs.wire import QueryCertResponse, Status

MAC = "B000B4BA0AEE"
T0 = 1_800_000_000.0


def ctl_records(c: ClusterPki) -> list[tuple[Role, Certificate]]:
    """A 12.0-style tokenless CTL: ITLRecovery and CallManager SAST, CCM+TFTP per node, CAPF."""
    out: list[tuple[Role, Certificate]] = [(Role.SAST, c.itlrecovery.cert)]
    for n in c.nodes.values():
        out += [(Role.SAST, n.callmanager.cert), (Role.CCM_TFTP, n.callmanager.cert)]
    out.append((Role.CAPF, c.capf.cert))
    return out


def itl_records(c: ClusterPki, *, tvs: bool = True) -> list[tuple[Role, Certificate]]:
    """ITLRecovery SAST, the TFTP node's CallManager (CCM+TFTP), every TVS, CAPF."""
    out: list[tuple[Role, Certificate]] = [(Role.SAST, c.itlrecovery.cert)]
    pub = c.publisher
    out.append((Role.CCM_TFTP, pub.callmanager.cert))
    if tvs:
        out += [(Role.TVS, n.tvs.cert) for n in c.nodes.values()]
    out.append((Role.CAPF, c.capf.cert))
    return out


def make_ctl(c: ClusterPki, *, signer: Identity | None = None, records=None) -> bytes:
    s = signer or c.itlrecovery
    return build_trust_list(records or ctl_records(c), signer=s.cert, key=s.key)


def make_itl(c: ClusterPki, *, signer: Identity | None = None, records=None, tvs=True) -> bytes:
    s = signer or c.itlrecovery
    recs = records if records is not None else itl_records(c, tvs=tvs)
    return build_trust_list(recs, signer=s.cert, key=s.key, filename="ITLFile.tlv")


def config_xml(
    tvs: Sequence[tuple[str, int]] = (("127.0.0.1", 2445),),
    cms: Sequence[tuple[str, int | None]] = (("127.0.0.1", 5061),),
) -> bytes:
    members = "".join(
        f'<member priority="{i}"><port>{port}</port><address>{host}</address></member>'
        for i, (host, port) in enumerate(tvs)
    )
    cm = "".join(
        f'<member priority="{i}"><callManager><name>{host}</name><ports>'
        f"<ethernetPhonePort>2000</ethernetPhonePort><sipPort>5060</sipPort>"
        + (f"<securedSipPort>{port}</securedSipPort>" if port is not None else "")
        + f"</ports><processNodeName>{host}</processNodeName></callManager></member>"
        for i, (host, port) in enumerate(cms)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><device xsi:type="axl:XIPPhone" ctiid="1">'
        "<fullConfig>true</fullConfig><deviceProtocol>SIP</deviceProtocol>"
        f"<devicePool><name>Default</name><callManagerGroup><name>Default</name>"
        f"<tftpDefault>true</tftpDefault><members>{cm}</members></callManagerGroup></devicePool>"
        f"<TVS><members>{members}</members></TVS><loadInformation>sip88xx.12-8-1</loadInformation>"
        "</device>"
    ).encode()


def make_config(c: ClusterPki, xml: bytes, *, signer: Identity | None = None) -> bytes:
    s = signer or c.publisher.callmanager
    return sign_file(xml, filename=f"SEP{MAC}.cnf.xml.sgn", signer=s.cert, key=s.key)


def cluster_files(c: ClusterPki, xml: bytes | None = None) -> dict[str, bytes]:
    """The TFTP directory a secure cluster serves to the default phone."""
    xml = xml if xml is not None else config_xml()
    return {
        f"CTLSEP{MAC}.tlv": make_ctl(c),
        "ITLFile.tlv": make_itl(c),
        f"SEP{MAC}.cnf.xml.sgn": make_config(c, xml),
        f"SEP{MAC}.cnf.xml": xml,
    }


@attrs.define
class FakeTvs:
    """Answers QUERY_CERT_REQ from a table of (certificate, roles); counts queries."""

    known: list[tuple[Certificate, tuple[int, ...]]] = attrs.Factory(list)
    ttl: int = 86400
    queries: list[QueryTvs] = attrs.Factory(list)
    fail: dict[str, TransportFailure] = attrs.Factory(dict)  # member "host:port" -> failure

    def __call__(self, action: QueryTvs, now: float) -> Result:
        from phone_emu.phone.boot import TvsFailed

        self.queries.append(action)
        failure = self.fail.get(str(action.member))
        if failure is not None:
            return TvsFailed(failure, f"fake {failure.value}", now)
        req = action.request
        for cert, roles in self.known:
            if cert.serial == req.serial:
                return TvsAnswered(
                    QueryCertResponse(Status.VALID, cert.der, roles, self.ttl, req.request_id),
                    now,
                )
        return TvsAnswered(QueryCertResponse(Status.INVALID, request_id=req.request_id), now)


def drive(
    machine: BootMachine,
    files: dict[str, bytes],
    *,
    tvs: Callable[[QueryTvs, float], Result] | None = None,
    sip: Callable[[ConnectSip, float], Result] | None = None,
    clock: Callable[[], float] | None = None,
    capf: Callable[[RunCapf, float], Result] | None = None,
) -> BootResult:
    """Run a boot machine against in-memory files and fake servers (``files`` is read at each
    fetch, so a fake CAPF may change it)."""
    now = clock or (lambda: machine.now)
    tvs = tvs or FakeTvs()
    action = machine.start()
    while not isinstance(action, BootDone):
        if isinstance(action, FetchFile):
            data = files.get(action.filename)
            result: Result = FileFetched(data, now()) if data is not None else FileMissing(now())
        elif isinstance(action, QueryTvs):
            result = tvs(action, now())
        elif isinstance(action, RunCapf):
            assert capf is not None, f"unexpected {action!r}"
            result = capf(action, now())
        else:
            result = (sip or _sip_ok)(action, now())
        action = machine.send(result)
    return action.result


def _sip_ok(action: ConnectSip, now: float) -> Result:
    if not action.pinned:
        return SipFailed(TransportFailure.HANDSHAKE, "no pins", now)
    return SipConnected(now)


# --- loopback servers ---------------------------------------------------------------------
class Clock:
    """An injected Unix clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counter(NullObserver):
    """Counts what the TVS server answered."""

    def __init__(self) -> None:
        self.served: list[str] = []

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        self.served.append(status)


async def sip_listener(cert, key, *, task_status=trio.TASK_STATUS_IGNORED):
    """The cluster's secure SIP listener with a CallManager certificate (no client
    certificate asked; REGISTER answered 200 OK); reports the bound port."""
    listener = SipListener(cert, key, client_auth=ClientAuth.NONE)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(listener.serve, "127.0.0.1", 0)
        task_status.started(port)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@attrs.define
class Lab:
    """Source-cluster servers on loopback; ``files`` is what TFTP serves (tests change it)."""

    pki: object
    nursery: trio.Nursery
    tmp: object
    files: dict[str, bytes] = attrs.Factory(dict)
    fetched: list[str] = attrs.Factory(list)
    tftp: tuple[str, int] = ("127.0.0.1", 0)
    tvs: TvsServer | None = None
    tvs_port: int = 0
    observer: Counter = attrs.Factory(Counter)
    sip_ports: dict[str, int] = attrs.Factory(dict)

    @property
    def src(self):
        return self.pki.clusters["source"]

    @property
    def dst(self):
        return self.pki.clusters["destination"]

    async def start_tvs(self, *, legacy=False, observer=None):
        node = self.src.publisher.tvs
        cfg = TvsServerConfig(
            store=self.tmp / "store", cert=node.cert, key=node.key, port=0, legacy_tls=legacy
        )
        server = TvsServer(cfg, observer=observer or self.observer)
        _, port = await self.nursery.start(server.serve)
        return server, port

    def config(self, cluster: str = "source", *, tvs_ports=None) -> bytes:
        ports = tvs_ports or [self.tvs_port]
        return config_xml(
            tvs=[("127.0.0.1", p) for p in ports], cms=[("127.0.0.1", self.sip_ports[cluster])]
        )

    def serve_cluster(self, cluster: str, **kw) -> None:
        c = self.pki.clusters[cluster]
        self.files.clear()
        self.files.update(
            {
                f"CTLSEP{MAC}.tlv": make_ctl(c),
                "ITLFile.tlv": make_itl(c),
                f"SEP{MAC}.cnf.xml.sgn": make_config(c, self.config(cluster, **kw)),
            }
        )

    def vouch_for_destination(self) -> None:
        """Manual migration: import the destination certificates at the source, restart TVS."""
        store = TrustStore.open(self.tmp / "store")
        certs = [self.dst.itlrecovery.cert, self.dst.publisher.callmanager.cert]
        store.import_certificates("Phone-SAST-trust", certs, ttl=3600)
        store.import_certificates("CallManager-trust", certs, ttl=3600)
        assert self.tvs is not None
        self.tvs.reload()


async def start_lab(nursery, lab_pki, lab_pki_dir, tmp_path):
    lab = Lab(lab_pki, nursery, tmp_path)
    TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    lab.tvs, lab.tvs_port = await lab.start_tvs()
    for name in ("source", "destination"):
        cm = lab_pki.clusters[name].publisher.callmanager
        lab.sip_ports[name] = await nursery.start(sip_listener, cm.cert, cm.key)

    def provide(name, client):
        lab.fetched.append(name)
        return lab.files.get(name)

    lab.tftp = await nursery.start(serve_tftp, CallableProvider(provide), "127.0.0.1", 0)
    lab.serve_cluster("source")
    return lab
