"""``tvs serve`` as a real process: SIGHUP / ``tvs reload``, SIGTERM during a request, workers,
and an independent TLS client (``openssl s_client``) with a client certificate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.certs import Certificate
from tvs.pki import LabPki
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tlsconfig import client_context
from tvs.wire import QueryCertRequest, Status, decode_message, encode_message

BIN = Path(sys.executable).parent
MAC = "B000B4BA0AEE"


class LogReader:
    """Reads a process's JSON log lines (stderr) until an event shows up."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stderr is not None
        self.stream = proc.stderr
        self.buf = b""
        self.events: list[dict[str, Any]] = []

    async def wait_for(self, event: str, count: int = 1) -> dict[str, Any]:
        with trio.fail_after(60):
            while True:
                hits = [e for e in self.events if e.get("event") == event]
                if len(hits) >= count:
                    return hits[count - 1]
                chunk = await self.stream.receive_some()
                if not chunk:
                    raise AssertionError(f"process ended before {event!r}: {self.events}")
                self.buf += chunk
                *lines, self.buf = self.buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.events.append(json.loads(line))


def _serve_cmd(store: Path, pki: LabPki, *extra: str) -> list[str]:
    tvs = pki.clusters["source"].nodes["ucm105pub"].tvs
    return [
        str(BIN / "tvs"), "serve", "--listen", "127.0.0.1:0", "--store", str(store),
        "--cert", str(tvs.cert_path), "--key", str(tvs.key_path), "--log-format", "json", *extra,
    ]  # fmt: skip


def _client(pki: LabPki) -> TvsClientConfig:
    phone = pki.clusters["source"].phones[MAC]
    tvs = pki.clusters["source"].nodes["ucm105pub"].tvs
    return TvsClientConfig(lsc=phone.cert, key=phone.key, pinned=(tvs.cert,))


def _query(cert: Certificate) -> QueryCertRequest:
    return QueryCertRequest(
        "CP-8861-SEPB000B4BA0AEE", cert.subject, cert.issuer, cert.serial, request_id=77
    )


def _port(event: dict[str, Any]) -> int:
    return int(str(event["address"]).rsplit(":", 1)[1])


@pytest.fixture
def store_dir(tmp_path: Path, lab_pki_dir: Path) -> Path:
    TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    return tmp_path / "store"


@pytest.mark.slow
async def test_reload_by_pidfile_and_sigterm_during_a_request(
    store_dir: Path, lab_pki: LabPki, lab_pki_dir: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "tvs.pid"
    cert = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    proc = await trio.lowlevel.open_process(
        _serve_cmd(store_dir, lab_pki, "--pidfile", str(pidfile)), stderr=subprocess.PIPE
    )
    try:
        log = LogReader(proc)
        port = _port(await log.wait_for("server listening"))
        assert int(pidfile.read_text()) == proc.pid
        before = await tvs_request("127.0.0.1", port, _query(cert), _client(lab_pki))
        assert before.status == Status.INVALID

        cm_pem = lab_pki_dir / "destination" / "nodes" / "ucm11pub" / "callmanager.pem"
        for store_name in ("Phone-SAST-trust", "CallManager-trust"):
            done = await trio.run_process(
                [str(BIN / "tvs"), "store", "import", "--store", str(store_dir),
                 "--trust", store_name, str(cm_pem)],
                capture_stdout=True,
            )  # fmt: skip
            assert done.returncode == 0
        stale = await tvs_request("127.0.0.1", port, _query(cert), _client(lab_pki))
        assert stale.status == Status.INVALID  # imported, TVS not restarted

        reload = await trio.run_process(
            [str(BIN / "tvs"), "reload", "--pidfile", str(pidfile)], capture_stdout=True
        )
        assert reload.returncode == 0
        assert (await log.wait_for("cache reloaded", 2))["entries"] == 5
        fresh = await tvs_request("127.0.0.1", port, _query(cert), _client(lab_pki))
        assert fresh.status == Status.VALID and fresh.roles == (0, 3)

        # SIGTERM while a request is half sent: it is still answered, then exit 0
        request = encode_message(_query(cert))
        tls = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), client_context())
        try:
            await tls.do_handshake()
            await tls.send_all(request[:30])
            proc.send_signal(signal.SIGTERM)
            await log.wait_for("server stopping")
            await tls.send_all(request[30:])
            data = b""
            with trio.fail_after(30):
                while chunk := await tls.receive_some():
                    data += chunk
        finally:
            await trio.aclose_forcefully(tls)
        answer = decode_message(data)
        assert answer.status == Status.VALID and answer.request_id == 77
        with trio.fail_after(30):
            assert await proc.wait() == 0
        assert not pidfile.exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if proc.stderr is not None:
            await proc.stderr.aclose()


@pytest.mark.slow
async def test_two_workers_share_the_port(store_dir: Path, lab_pki: LabPki) -> None:
    proc = await trio.lowlevel.open_process(
        _serve_cmd(store_dir, lab_pki, "--workers", "2"), stderr=subprocess.PIPE
    )
    try:
        log = LogReader(proc)
        port = _port(await log.wait_for("workers listening"))
        cert = lab_pki.clusters["source"].capf.cert
        results = []

        async def one() -> None:
            results.append(await tvs_request("127.0.0.1", port, _query(cert), _client(lab_pki)))

        async with trio.open_nursery() as n:
            for _ in range(40):
                n.start_soon(one)
        assert [r.status for r in results] == [Status.VALID] * 40
        proc.send_signal(signal.SIGHUP)
        await log.wait_for("cache reloaded", 4)  # each worker reloaded once more
        workers = {e.get("worker") for e in log.events if e.get("event") == "cache reloaded"}
        assert workers == {0, 1}
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if proc.stderr is not None:
            await proc.stderr.aclose()


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_s_client_with_a_client_certificate(
    nursery: trio.Nursery, store_dir: Path, lab_pki: LabPki
) -> None:
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs
    phone = lab_pki.clusters["source"].phones[MAC]
    config = TvsServerConfig(
        store=store_dir, cert=tvs.cert_path, key=tvs.key_path, port=0, client_auth="required"
    )
    server = TvsServer(config)
    host, port = await nursery.start(server.serve)
    with capture_logs() as logs:
        done = await trio.run_process(
            ["openssl", "s_client", "-connect", f"{host}:{port}", "-cert", str(phone.cert_path),
             "-key", str(phone.key_path), "-CAfile", str(tvs.cert_path), "-verify_return_error",
             "-no_ign_eof"],
            stdin=b"", capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        with trio.fail_after(20):
            while not any(e["event"] in ("bad request", "request") for e in logs):
                await trio.sleep(0.01)
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out
    shook = [e for e in logs if e["event"] == "handshake done"]
    assert len(shook) == 1
    assert "CN=CP-8861-SEPB000B4BA0AEE" in shook[0]["client_subject"]
    server.request_shutdown()


def test_reload_without_a_process_fails_cleanly(tmp_path: Path) -> None:
    missing = tmp_path / "none.pid"
    done = subprocess.run(
        [str(BIN / "tvs"), "reload", "--pidfile", str(missing)], capture_output=True, check=False
    )
    assert done.returncode == 2 and b"error" in done.stderr and str(missing).encode() in done.stderr
    assert os.path.exists(BIN / "tvs")
