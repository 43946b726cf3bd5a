"""Helpers for the phone tests: cluster files (CTL, ITL, configuration) from the lab PKI, and a
fake network that drives the sans-I/O boot machine. Not a test module."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

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
    SipConnected,
    SipFailed,
    TransportFailure,
    TvsAnswered,
)
from tvs.certs import Certificate
from tvs.pki import ClusterPki
from tvs.pki.issue import Identity
from tvs.roles import Role
from tvs.tlv import build_trust_list, sign_file
from tvs.wire import QueryCertResponse, Status

MAC = "B000B4BA0AEE"


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
) -> BootResult:
    """Run a boot machine against in-memory files and fake servers."""
    now = clock or (lambda: machine.now)
    tvs = tvs or FakeTvs()
    action = machine.start()
    while not isinstance(action, BootDone):
        if isinstance(action, FetchFile):
            data = files.get(action.filename)
            result: Result = FileFetched(data, now()) if data is not None else FileMissing(now())
        elif isinstance(action, QueryTvs):
            result = tvs(action, now())
        else:
            result = (sip or _sip_ok)(action, now())
        action = machine.send(result)
    return action.result


def _sip_ok(action: ConnectSip, now: float) -> Result:
    if not action.pinned:
        return SipFailed(TransportFailure.HANDSHAKE, "no pins", now)
    return SipConnected(now)
