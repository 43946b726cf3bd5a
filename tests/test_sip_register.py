"""The phone's secure SIP registration is honest: after the TLS handshake it sends a REGISTER
and only a ``200`` counts. A listener that refuses the phone's LSC is noticed under TLS 1.3
(where the refusal arrives after the phone's own handshake ended), TLS 1.2 and the legacy
TLS 1.0; a non-200 answer is ``register.rejected``; the SIP port trusts CallManager-trust
(where bulk import puts a remote CAPF) while the TVS does not. Real clusters on loopback."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import tvs.cluster.sip as sip_module
from phone_emu.lab.config import LabConfig
from phone_emu.lab.migrate import RunOptions, run_scenario
from phone_emu.lab.scenarios import builtin_scenarios
from phone_emu.phone.boot import BootResult, BootState
from phone_emu.phone.console import console_lines
from phone_emu.phone.driver import NetworkOptions, Phone, boot_phone
from phone_emu.phone.fetch import FetchOptions
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.cluster import ClusterConfig, ClusterConfigError, EmulatedCluster
from tvs.pki import Identity, LabPki, issue_lsc
from tvs.sip import (
    SipResponseError,
    register_request,
    response_status,
    sip_response,
    split_message,
)
from tvs.tlsconfig import client_context
from tvs.tlsserver import ServerTls, server_tls
from tvs.wire import QueryCertRequest, Status

MAC = "B000B4BA0AEE"
DEVICE = f"SEP{MAC}"


def _options(legacy: bool = False) -> NetworkOptions:
    tvs = TvsClientConfig(
        timeout=5, connect_timeout=5, legacy_tls=legacy, tls_max="1.0" if legacy else None
    )  # old firmware: TLS 1.0 with AES256-SHA only
    fetch = FetchOptions(mode="tftp")  # never HTTP 6970 on a shared loopback address
    return NetworkOptions(tvs=tvs, tftp_timeout=0.5, sip_timeout=5, fetch=fetch)


def _cluster(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, **changes: object
) -> EmulatedCluster:
    config = (
        ClusterConfig.example("source")
        .evolve(pki_dir=lab_pki_dir, store_dir=tmp_path / "source", watch_interval=0, **changes)
        .with_nodes(ports=0)
    )
    return EmulatedCluster(config, pki=lab_pki)


def _phone(lsc: Identity, where: Path | None) -> Phone:
    return Phone.open(PhoneIdentity.from_lsc(lsc.cert, lsc.key), where)


async def _boot(phone: Phone, cluster: EmulatedCluster, legacy: bool = False) -> BootResult:
    with trio.fail_after(30):
        return await boot_phone(phone, tftp=cluster.tftp_address, options=_options(legacy))


def _cap_tls12(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listeners started after this speak at most TLS 1.2 (the client certificate is then
    checked inside the phone's handshake)."""
    from OpenSSL import SSL

    def capped(*args: object, **kwargs: object) -> ServerTls:
        tls = server_tls(*args, **kwargs)  # type: ignore[arg-type]
        tls.context.set_max_proto_version(SSL.TLS1_2_VERSION)
        return tls

    monkeypatch.setattr(sip_module, "server_tls", capped)


# --- the REGISTER and its answer (pure) ----------------------------------------------------------


def _request() -> bytes:
    return register_request(
        "127.0.1.1", DEVICE, local=("127.0.0.1", 40000), call_id="c1@127.0.0.1", tag="t", branch="b"
    )


def test_register_request_frames_and_the_cluster_answers_it() -> None:
    request = _request()
    assert request.startswith(b"REGISTER sip:127.0.1.1 SIP/2.0\r\n")
    assert split_message(request) == (request, b"")
    assert split_message(request + b"OPTIONS") == (request, b"OPTIONS")
    for i in range(len(request)):
        assert split_message(request[:i]) is None
    head = request.decode().split("\r\n")
    for needed in ("Via: SIP/2.0/TLS ", "From: ", "To: ", "Call-ID: c1@", "CSeq: 101 REGISTER"):
        assert any(line.startswith(needed) for line in head), needed
    assert f"Contact: <sip:{DEVICE}@127.0.0.1:40000;transport=tls>" in head
    assert "Expires: 3600" in head and "Content-Length: 0" in head
    reply = sip_response(request)
    assert response_status(reply).ok and response_status(reply).line == "SIP/2.0 200 OK"
    assert f"Contact: <sip:{DEVICE}@127.0.0.1:40000;transport=tls>".encode() in reply


def test_response_status() -> None:
    s = response_status(b"SIP/2.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert (s.code, s.line, s.ok) == (403, "SIP/2.0 403 Forbidden", False)
    assert response_status(b"SIP/2.0 200\r\n\r\n").ok
    for bad in (b"REGISTER sip:x SIP/2.0\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"\xff\r\n\r\n"):
        with pytest.raises(SipResponseError):
            response_status(bad)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_status_or_sip_response_error(data: bytes) -> None:
    try:
        status = response_status(data)
    except SipResponseError:
        return
    assert 100 <= status.code <= 699


def test_sip_client_auth_is_its_own_setting() -> None:
    base = {"name": "c", "nodes": [{"name": "n"}]}
    default = ClusterConfig.from_dict(base)
    # unset: follow the profiles (5061 serves modes 2 and 3 only: the certificate is required)
    assert default.sip_client_auth is None
    assert default.sip_requires_client_certificate == "required"
    assert default.client_auth == "none"  # the TVS does not ask (section 7, Low)
    c = ClusterConfig.from_dict({**base, "sip_client_auth": "None", "client_auth": "optional"})
    assert (c.sip_client_auth, c.client_auth) == ("none", "optional")
    assert c.sip_requires_client_certificate == "none"
    assert ClusterConfig.example("destination").sip_client_auth is None
    with pytest.raises(ClusterConfigError, match="sip_client_auth"):
        ClusterConfig.from_dict({**base, "sip_client_auth": "maybe"})


# --- refused, trusted, rejected (loopback) ------------------------------------------------------


@pytest.mark.parametrize("tls", ["1.3", "1.2", "legacy"])
async def test_refused_lsc_fails_register_and_a_trusted_one_registers(
    tls: str,
    lab_pki: LabPki,
    lab_pki_dir: Path,
    tmp_path: Path,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if tls == "1.2":
        _cap_tls12(monkeypatch)
    legacy = tls == "legacy"
    cluster = _cluster(
        lab_pki, lab_pki_dir, tmp_path, sip_client_auth="required", legacy_tls=legacy
    )
    source = await nursery.start(cluster.serve)
    stranger = issue_lsc(lab_pki.clusters["destination"].capf, mac=MAC)  # an untrusted CAPF
    refused = await _boot(_phone(stranger, tmp_path / "refused"), source, legacy)
    reg = refused.step("register")
    assert refused.state is BootState.REJECTED and refused.exit_code == 1, refused.to_dict()
    assert refused.reasons[:3] == ("ctl.installed", "itl.installed", "config.applied")
    assert reg.reason == "register.handshake-failed"
    assert "the server refused the phone's certificate" in reg.attempts[0].detail
    stats = source.statistics().sip
    assert sum(s.handshake_failures for s in stats.values()) == 1
    assert sum(s.requests for s in stats.values()) == 0  # the REGISTER never reached SIP
    text = "\n".join(console_lines(refused, _phone(stranger, None).identity))
    assert "not established [register.handshake-failed]" in text
    assert "REGISTER to" not in text

    own = lab_pki.clusters["source"].phones[MAC]
    trusted = await _boot(_phone(own, tmp_path / "trusted"), source, legacy)
    assert trusted.state is BootState.REGISTERED, trusted.to_dict()
    attempt = trusted.step("register").attempts[0]
    assert attempt.reason == "register.passed"
    version = {"1.3": "TLSv1.3", "1.2": "TLSv1.2", "legacy": "TLSv1 "}[tls]
    assert attempt.detail.startswith(version), attempt.detail
    assert attempt.detail.endswith("; SIP/2.0 200 OK")
    assert sum(s.requests for s in source.statistics().sip.values()) == 1
    text = "\n".join(console_lines(trusted, _phone(own, None).identity))
    assert "SIPCC-REGISTER to" in text and "accepted: SIP/2.0 200 OK" in text


async def test_non_200_answer_is_register_rejected(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    source = await nursery.start(_cluster(lab_pki, lab_pki_dir, tmp_path).serve)
    forbidden = b"SIP/2.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    for listener in source.sip_listeners.values():
        listener.responder = lambda message: forbidden
    own = lab_pki.clusters["source"].phones[MAC]
    r = await _boot(_phone(own, tmp_path / "phone"), source)
    reg = r.step("register")
    assert r.state is BootState.REJECTED and r.exit_code == 1
    assert (reg.reason, reg.detail) == ("register.rejected", "SIP/2.0 403 Forbidden")
    assert [a.reason for a in reg.attempts] == ["register.rejected"]  # no failover on a no
    text = "\n".join(console_lines(r, _phone(own, None).identity))
    assert "established (TLSv1.3" in text
    assert "rejected [register.rejected]: SIP/2.0 403 Forbidden" in text


async def test_garbage_answer_is_a_protocol_error(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    source = await nursery.start(_cluster(lab_pki, lab_pki_dir, tmp_path).serve)
    for listener in source.sip_listeners.values():
        listener.responder = lambda message: b"HTTP/1.1 200 OK\r\n\r\n"
    own = lab_pki.clusters["source"].phones[MAC]
    r = await _boot(_phone(own, tmp_path / "phone"), source)
    assert r.step("register").attempts[0].reason == "register.protocol-error"
    assert r.state is not BootState.REGISTERED


async def _refused_after_handshake(host: str, port: int, ctx: ssl.SSLContext, hello: bytes) -> bool:
    """True when the server refuses the client after the (TLS 1.3) handshake: an alert or EOF."""
    stream = await trio.open_tcp_stream(host, port)
    tls = trio.SSLStream(stream, ctx, server_side=False)
    try:
        with trio.fail_after(10):
            await tls.do_handshake()
            await tls.send_all(hello)
            return await tls.receive_some(4096) == b""
    except trio.BrokenResourceError:
        return True
    finally:
        await trio.aclose_forcefully(tls)


async def test_callmanager_trust_capf_verifies_at_sip_and_at_a_verifying_tvs(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """One phone issuing set for every server: a remote CAPF in CallManager-trust (bulk import)
    verifies the phone at the SIP port and at a TVS asked to check client certificates."""
    cluster = _cluster(lab_pki, lab_pki_dir, tmp_path, client_auth="required")
    source = await nursery.start(cluster.serve)
    remote_capf = lab_pki.clusters["destination"].capf
    lsc = issue_lsc(remote_capf, mac=MAC)
    ctx = client_context(cert=lsc.cert, key=lsc.key)
    (sip_host, sip_port), (tvs_host, tvs_port) = source.sip_addresses[0], source.tvs_addresses[0]
    options = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n"
    assert await _refused_after_handshake(sip_host, sip_port, ctx, options)
    assert await _refused_after_handshake(tvs_host, tvs_port, ctx, b"\x00" * 10)

    source.import_certificates("CallManager-trust", [remote_capf.cert])  # what bulk import does
    await source.restart_tvs()
    assert remote_capf.cert in source.store.phone_issuer_certificates()
    assert not await _refused_after_handshake(sip_host, sip_port, ctx, options)
    cm = lab_pki.clusters["source"].publisher.callmanager.cert
    query = QueryCertRequest(f"CP-8861-SEP{MAC}", cm.subject, cm.issuer, cm.serial)
    pinned = [n.tvs.cert for n in lab_pki.clusters["source"].nodes.values()]
    with trio.fail_after(10):
        answer = await tvs_request(
            tvs_host, tvs_port, query, TvsClientConfig(pinned=pinned, lsc=lsc.cert, key=lsc.key)
        )
    assert answer.status is Status.VALID  # the TVS verified the same LSC against the same set

    r = await _boot(_phone(lsc, tmp_path / "phone"), source)
    assert r.state is BootState.REGISTERED, r.to_dict()


async def test_optional_sip_port_registers_an_unverified_lsc_and_says_whose(
    lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Issue 10 item 5: ``optional`` asks for the certificate, lets a phone whose LSC does not
    verify register, and logs whose certificate it was and why it did not verify."""
    from structlog.testing import capture_logs

    cluster = _cluster(lab_pki, lab_pki_dir, tmp_path, sip_client_auth="optional")
    source = await nursery.start(cluster.serve)
    stranger = issue_lsc(lab_pki.clusters["destination"].capf, mac=MAC)  # an untrusted CAPF
    with capture_logs() as logs:
        result = await _boot(_phone(stranger, tmp_path / "stranger"), source)
    assert result.state is BootState.REGISTERED, result.to_dict()
    (line,) = [e for e in logs if e["event"] == "sip.client_unverified"]
    assert line["client"] == stranger.cert.subject
    assert line["client_issuer"] == stranger.cert.issuer
    assert line["client_serial"] == stranger.cert.serial_hex
    assert line["client_sha256"] == stranger.cert.sha256.hex()
    assert "unable to get local issuer certificate" in line["client_unverified"]
    assert sum(s.unverified for s in source.statistics().sip.values()) == 1


# --- the migrations, with the SIP port verifying -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["optional", "required"])
@pytest.mark.parametrize(
    ("method", "migrates"), [("bulk", True), ("manual", True), ("manual-without-capf", False)]
)
async def test_migration_with_a_verifying_sip_port(
    mode: str, method: str, migrates: bool, lab_pki_dir: Path, tmp_path: Path
) -> None:
    """Bulk import carries the source CAPF into the destination's CallManager-trust and the
    manual method uploads it into CAPF-trust (``upload_capf``), so the migrated phones' LSCs
    verify at the destination's SIP port; without the upload ``required`` refuses the phones'
    LSCs and ``optional`` logs them as unverified and lets the phones register."""
    verifying = {"sip_client_auth": mode}
    scenario = attrs.evolve(
        next(s for s in builtin_scenarios() if s.name == method),
        clusters={"source": verifying, "destination": verifying},
    )
    report = await run_scenario(
        LabConfig.default(), scenario, RunOptions(phones=2, workdir=tmp_path, pki_dir=lab_pki_dir)
    )
    phones = report["phones"]
    assert len(phones) == 2
    if migrates or mode == "optional":
        # manual-without-capf expects a refusal that ``optional`` does not make
        assert report["passed"] is migrates
        assert {p["outcome"] for p in phones} == {"migrated"}
    else:
        assert report["passed"] is True  # manual-without-capf expects the refusal
        assert {(p["outcome"], p["step"], p["reason"]) for p in phones} == {
            ("failed", "register", "register.handshake-failed")
        }


def test_importing_the_phone_loads_no_server_side() -> None:
    """The phone and the cluster share tvs.sip; the phone loads no cluster, server, store, PKI."""
    code = (
        "import sys, phone_emu.phone; "
        "print(' '.join(m for m in sys.modules if m.split('.')[:2] in "
        "(['tvs', 'cluster'], ['tvs', 'server'], ['tvs', 'store'], ['tvs', 'pki'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert (
        "tvs.sip"
        in subprocess.run(
            [sys.executable, "-c", "import sys, phone_emu.phone; print(*sys.modules)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )


def test_register_over_plain_tcp_says_so() -> None:
    request = register_request(
        "127.0.0.1",
        "SEPB000B4BA0AEE",
        local=("127.0.0.9", 5000),
        call_id="c",
        tag="t",
        branch="b",
        transport="tcp",
    )
    assert b"Via: SIP/2.0/TCP 127.0.0.9:5000;" in request
    assert b";transport=tcp>" in request
    assert split_message(request) == (request, b"")
    assert response_status(sip_response(request)).ok
