"""The CAPF server and the phone's CAPF client over real TLS on loopback: every sequence of
section 8, refusals with one log line, a silent client that delays nobody, restarts that keep
the schedule and the issued certificates, and a schedule seen without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from phone_emu.capf_client import (
    CapfClientConfig,
    CapfHandshakeError,
    Credential,
    capf_enroll,
    trust_from_file,
)
from tests.capf_support import VECTORS, capf_identity, manufacturing_ca, mic_for
from tvs.admission import AdmissionLimits
from tvs.capf import CertType, Reason
from tvs.capf.db import CapfDb, issued_certificate
from tvs.capf.server import CapfServer, CapfServerConfig
from tvs.pki.issue import issue_lsc

DEVICE = "SEP001122334455"
CAPF = capf_identity()
MFG = manufacturing_ca()


def make_server(db: Path, **kw: object) -> CapfServer:
    config = CapfServerConfig(
        chain=(CAPF.cert,), key=CAPF.key, db=db, port=0, mic_issuers=(MFG.cert,), **kw
    )  # type: ignore[arg-type]
    return CapfServer(config)


def client(**kw: object) -> CapfClientConfig:
    kw.setdefault("device_name", DEVICE)
    kw.setdefault("trust", (CAPF.cert,))
    return CapfClientConfig(**kw)  # type: ignore[arg-type]


async def test_every_sequence_over_tls(tmp_path: Path) -> None:
    db_path = tmp_path / "capf.sqlite3"
    server = make_server(db_path)
    with CapfDb(db_path) as db:
        db.schedule(["SEP000000000001"], operation="install", auth_mode="null", key="ec-p256")
        db.schedule(["SEP000000000002"], operation="install", auth_mode="null", key="rsa-2048")
        db.schedule(
            ["SEP000000000003"], operation="install", auth_mode="string", auth_string="123456"
        )
        db.schedule(["SEP000000000004"], operation="install", auth_mode="lsc", key="ec-p384")
        db.schedule(["SEP000000000005"], operation="install", auth_mode="mic", key="ec-p256")
        db.schedule(["SEP000000000006"], operation="fetch")
        db.schedule(["SEP000000000007"], operation="delete")
        db.schedule(["SEP000000000008"], operation="none")
    old_lsc = issue_lsc(CAPF, mac="000000000004")
    mic = mic_for(MFG, "000000000005")
    lsc6 = issue_lsc(CAPF, mac="000000000006")
    lsc7 = issue_lsc(CAPF, mac="000000000007")
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve)
        r1 = await capf_enroll(host, port, client(device_name="SEP000000000001"))
        r2 = await capf_enroll(host, port, client(device_name="SEP000000000002"))
        wrong = await capf_enroll(
            host, port, client(device_name="SEP000000000003", password="654321")
        )
        right = await capf_enroll(
            host, port, client(device_name="SEP000000000003", password="123456")
        )
        r4 = await capf_enroll(
            host,
            port,
            client(
                device_name="SEP000000000004",
                credential=Credential(CertType.LSC, old_lsc.cert.der, old_lsc.key),
            ),
        )
        mic_cred = Credential(CertType.MIC, mic.cert.der, mic.key)
        r5 = await capf_enroll(
            host, port, client(device_name="SEP000000000005", credential=mic_cred, sudi=mic_cred)
        )
        r6 = await capf_enroll(
            host, port, client(device_name="SEP000000000006", current_lsc=lsc6.cert)
        )
        r7 = await capf_enroll(
            host, port, client(device_name="SEP000000000007", current_lsc=lsc7.cert)
        )
        r8 = await capf_enroll(host, port, client(device_name="SEP000000000008"))
        with capture_logs() as logs:
            r9 = await capf_enroll(host, port, client(device_name="SEP0000000000FF"))
        nursery.cancel_scope.cancel()
    server.close()
    for r in (r1, r2, right, r4, r5):
        assert r.result == "installed", r
        assert r.certificate is not None and r.key is not None
        assert r.certificate.is_issued_by(CAPF.cert)
        assert r.pem().startswith(b"-----BEGIN CERTIFICATE-----")
        assert r.server_certificate == CAPF.cert
        stored = issued_certificate(db_path, r.device_name)
        assert stored is not None and stored.der == r.certificate.der
    assert isinstance(r1.key, ec.EllipticCurvePrivateKey)
    assert isinstance(r2.key, rsa.RSAPrivateKey) and r2.key.key_size == 2048
    assert wrong.result == "refused" and wrong.reason_code == "capf.auth-failed"
    assert r6.result == "fetched" and r6.certificate == lsc6.cert
    assert r7.result == "deleted"
    assert r8.result == "nothing" and r8.reason == Reason.NO_ACTION
    assert r9.result == "refused" and r9.reason_code == "capf.unknown-device"
    refusals = [e for e in logs if e["event"] == "capf.refused"]
    assert len(refusals) == 1 and refusals[0]["device"] == "SEP0000000000FF"
    assert [f"{d} {m.name}" for d, m in r1.messages[:2]] == [
        "S>C AUTH_REQUEST",
        "C>S AUTH_RESPONSE",
    ]
    assert server.counts["installed"] == 5 and server.counts["refused"] == 2


async def test_client_refuses_an_untrusted_capf(tmp_path: Path) -> None:
    server = make_server(tmp_path / "capf.sqlite3")
    other = issue_lsc(MFG, mac="001122334455").cert
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve)
        with pytest.raises(CapfHandshakeError) as info:
            await capf_enroll(host, port, client(trust=(other,)))
        assert info.value.reason_code == "capf.server-untrusted"
        insecure = await capf_enroll(host, port, client(insecure=True))
        assert insecure.result == "refused" and insecure.reason == Reason.UNKNOWN_DEVICE
        nursery.cancel_scope.cancel()
    server.close()


async def test_silent_client_delays_nobody(tmp_path: Path) -> None:
    db_path = tmp_path / "capf.sqlite3"
    with CapfDb(db_path) as db:
        db.schedule([DEVICE], operation="install", key="ec-p256")
    server = make_server(
        db_path,
        handshake_timeout=3600.0,
        admission=AdmissionLimits(first_bytes_timeout=3600.0),
    )
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve)
        silent = await trio.open_tcp_stream(host, port)  # connects, never says a word
        half = await trio.open_tcp_stream(host, port)
        await half.send_all(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        result = await capf_enroll(host, port, client())
        assert result.result == "installed"
        assert server.active >= 2  # the two mute connections are still waiting, alone
        assert not server.counts["handshake-timeout"]
        await silent.aclose()
        await half.aclose()
        nursery.cancel_scope.cancel()
    server.close()


async def test_handshake_and_message_deadlines(tmp_path: Path) -> None:
    db_path = tmp_path / "capf.sqlite3"
    with CapfDb(db_path) as db:
        db.schedule([DEVICE], operation="install", key="ec-p256")
    server = make_server(
        db_path,
        handshake_timeout=0.2,
        message_timeout=0.2,
        admission=AdmissionLimits(first_bytes_timeout=0.2),
    )
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve)
        with capture_logs() as logs:
            silent = await trio.open_tcp_stream(host, port)
            assert await silent.receive_some(10) == b""  # the server gave up on us
            await silent.aclose()
            half = await trio.open_tcp_stream(host, port)
            await half.send_all(b"\x16\x03\x01")  # a ClientHello that never ends
            assert await half.receive_some(10) == b""
            await half.aclose()
            # a phone whose key takes longer than the deadline: END_SESSION 7, then close
            slow = await capf_enroll(host, port, client(keygen=_slow_keygen))
            assert slow.result == "refused" and slow.reason == Reason.FAILURE
        nursery.cancel_scope.cancel()
    server.close()
    reasons = [e.get("reason") for e in logs if e["event"] == "capf.refused"]
    assert "first-bytes-timeout" in reasons and "handshake-timeout" in reasons
    timeouts = [e for e in logs if e.get("problem") == "timeout"]
    assert len(timeouts) == 1 and timeouts[0]["device"] == DEVICE
    with CapfDb(db_path) as db:
        op = db.get(DEVICE)
        assert op is not None and op.operation == "install" and op.last_result == "refused"
        assert db.certificate(DEVICE) is None


def _slow_keygen(spec: object) -> object:
    import time

    from tvs.capf.client import generate_key

    time.sleep(1.0)
    return generate_key(spec)  # type: ignore[arg-type]


async def test_restart_keeps_schedule_and_certificates(tmp_path: Path) -> None:
    db_path = tmp_path / "capf.sqlite3"
    with CapfDb(db_path) as db:
        db.schedule([DEVICE, "SEP001122334466"], operation="install", key="ec-p256")
    first = make_server(db_path)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(first.serve)
        done = await capf_enroll(host, port, client())
        # a schedule made while the server runs is seen at the next session
        with CapfDb(db_path) as db:
            db.schedule(["SEP0011223344AA"], operation="install", key="ec-p256")
        late = await capf_enroll(host, port, client(device_name="SEP0011223344AA"))
        assert late.result == "installed"
        nursery.cancel_scope.cancel()
    first.close()
    second = make_server(db_path)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(second.serve)
        again = await capf_enroll(host, port, client())
        pending = await capf_enroll(host, port, client(device_name="SEP001122334466"))
        nursery.cancel_scope.cancel()
    second.close()
    assert done.result == "installed" and again.result == "nothing"
    assert pending.result == "installed"
    stored = issued_certificate(db_path, DEVICE)
    assert stored is not None and done.certificate is not None
    assert stored.der == done.certificate.der


def test_trust_from_file(tmp_path: Path) -> None:
    assert trust_from_file(VECTORS / "capf-issuer.pem")[0] == CAPF.cert
    with pytest.raises(ValueError, match="nothing"):
        trust_from_file(tmp_path / "nothing.pem")
