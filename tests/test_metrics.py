"""Prometheus metrics: the observer's counters, and a scrape of a running server's endpoint."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry

from phone_emu.tvs_client import TvsClientConfig, TvsHandshakeError, tvs_request
from tvs.metrics import MetricsServer, PrometheusObserver
from tvs.pki import LabPki
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.wire import QueryCertRequest, QueryCertResponse, Status, VerifyRequest

DEVICE = "CP-8861-SEPB000B4BA0AEE"
MAC = "B000B4BA0AEE"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{([^}]*)\})? (\S+)", line)
        if m and m.group(1) == name:
            got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
    return 0.0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


def test_observer_counts_into_its_own_registry() -> None:
    a, b = PrometheusObserver(), PrometheusObserver(CollectorRegistry())
    a.request_served("QUERY_CERT_REQ", "VALID", 0.002)
    a.handshake_failed("tls")
    a.connection_opened()
    a.cache_reloaded(7)
    get = a.registry.get_sample_value
    assert get("tvs_requests_total", {"type": "QUERY_CERT_REQ", "status": "VALID"}) == 1
    assert get("tvs_request_duration_seconds_count", {"type": "QUERY_CERT_REQ"}) == 1
    assert (
        get("tvs_request_duration_seconds_bucket", {"type": "QUERY_CERT_REQ", "le": "0.001"}) == 0
    )
    assert (
        get("tvs_request_duration_seconds_bucket", {"type": "QUERY_CERT_REQ", "le": "0.005"}) == 1
    )
    assert get("tvs_handshake_failures_total", {"reason": "tls"}) == 1
    assert get("tvs_connections_in_use") == 1 and get("tvs_cache_entries") == 7
    a.connection_closed()
    assert get("tvs_connections_in_use") == 0
    assert b.registry.get_sample_value("tvs_connections_total") == 0


async def test_scrape_during_a_run(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki
) -> None:
    store = tmp_path / "store"
    TrustStore.init_from_pki(store, lab_pki_dir / "source")
    dest_cm = lab_pki.clusters["destination"].publisher.callmanager.cert
    TrustStore.open(store).import_certificates("Phone-SAST-trust", [dest_cm], ttl=600)
    src = lab_pki.clusters["source"]
    tvs = src.publisher.tvs
    observer = PrometheusObserver()
    server = TvsServer(
        TvsServerConfig(store=store, cert=tvs.cert_path, key=tvs.key_path, port=0),
        observer=observer,
    )
    host, port = await nursery.start(server.serve)
    with MetricsServer(observer.registry, "127.0.0.1", 0) as metrics:
        assert metrics.address[0] == "127.0.0.1" and metrics.address[1] > 0
        before = await trio.to_thread.run_sync(scrape, metrics.url)
        assert sample(before, "tvs_cache_entries") > 0
        assert sample(before, "tvs_requests_total", type="QUERY_CERT_REQ", status="VALID") == 0

        phone = src.phones[MAC]
        client = TvsClientConfig(lsc=phone.cert, key=phone.key, pinned=(tvs.cert,))
        known = QueryCertRequest(DEVICE, dest_cm.subject, dest_cm.issuer, dest_cm.serial, 1001)
        unknown = QueryCertRequest(DEVICE, "CN=nobody", "CN=nobody", b"\x01", 1002)
        for _ in range(3):
            res = await tvs_request(host, port, known, client)
            assert isinstance(res, QueryCertResponse) and res.status == Status.VALID
        res = await tvs_request(host, port, unknown, client)
        assert res.status == Status.INVALID  # type: ignore[union-attr]
        await tvs_request(host, port, VerifyRequest(DEVICE, dest_cm.der, 7), client)
        # a client pinning another certificate gives up the handshake
        wrong = TvsClientConfig(lsc=phone.cert, key=phone.key, pinned=(dest_cm,))
        with pytest.raises(TvsHandshakeError):
            await tvs_request(host, port, known, wrong)
        # a client that connects and sends garbage instead of a TLS hello
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        await stream.aclose()

        with trio.fail_after(10):  # the server finishes the failed handshakes
            while observer.registry.get_sample_value("tvs_connections_in_use") != 0:
                await trio.sleep(0.01)
        text = await trio.to_thread.run_sync(scrape, metrics.url)
    server.request_shutdown()

    assert sample(text, "tvs_requests_total", type="QUERY_CERT_REQ", status="VALID") == 3
    assert sample(text, "tvs_requests_total", type="QUERY_CERT_REQ", status="INVALID") == 1
    assert sample(text, "tvs_requests_total", type="VERIFY_REQUEST", status="VALID") == 1
    assert sample(text, "tvs_request_duration_seconds_count", type="QUERY_CERT_REQ") == 4
    assert (
        sample(text, "tvs_request_duration_seconds_bucket", type="QUERY_CERT_REQ", le="+Inf") == 4
    )
    assert sample(text, "tvs_request_duration_seconds_sum", type="QUERY_CERT_REQ") > 0
    assert sample(text, "tvs_handshake_failures_total", reason="tls") >= 1  # the HTTP request
    # the pinning client hangs up after the server's side of a TLS 1.3 handshake is done: the
    # server counts that one as a handshake failure or as a request that never came
    failures = sum(
        sample(text, "tvs_handshake_failures_total", reason=r) for r in ("tls", "eof", "timeout")
    ) + sum(sample(text, "tvs_bad_requests_total", reason=r) for r in ("truncated", "timeout"))
    assert failures == 2
    assert sample(text, "tvs_connections_total") == 7
    assert sample(text, "tvs_connections_in_use") == 0
    assert sample(text, "tvs_cache_entries") == sample(before, "tvs_cache_entries")
    assert sample(text, "tvs_cache_reloads_total") == 1


TVS_MAIN = "import sys; from tvs.cli import main; sys.exit(main())"


def _serve(
    args: list[str], log: Path, ready: str
) -> tuple[subprocess.Popen[bytes], str, tuple[str, int]]:
    """Start ``tvs serve`` on free ports, logging to ``log``; return the process, the metrics
    URL and the TVS address (both read from its log)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", TVS_MAIN, "serve", "--listen", "127.0.0.1:0", *args],
            stderr=out,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        url = re.search(r"metrics listening.*url=(\S+)", text)
        address = re.search(ready + r".*address=(\S+):(\d+)", text)
        if url and address:
            return proc, url.group(1), (address.group(1), int(address.group(2)))
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"tvs serve did not start: {log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_tvs_serve_metrics_flag(
    tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, workers: int
) -> None:
    store = tmp_path / "store"
    TrustStore.init_from_pki(store, lab_pki_dir / "source")
    src = lab_pki.clusters["source"]
    tvs = src.publisher.tvs
    args = ["--cert", str(tvs.cert_path), "--key", str(tvs.key_path), "--store", str(store)]
    args += ["--metrics", "127.0.0.1:0", "--workers", str(workers)]
    proc, url, (host, port) = _serve(
        args, tmp_path / "serve.log", "workers listening" if workers > 1 else "server listening"
    )
    try:
        phone = src.phones[MAC]
        client = TvsClientConfig(lsc=phone.cert, key=phone.key, pinned=(tvs.cert,))
        cm = src.publisher.callmanager.cert
        query = QueryCertRequest(DEVICE, cm.subject, cm.issuer, cm.serial, 1001)

        async def queries() -> None:
            for _ in range(4):
                res = await tvs_request(host, port, query, client)
                assert res.status == Status.VALID  # type: ignore[union-attr]

        trio.run(queries)
        # the server counts a request after sending the answer: wait for the last one
        deadline = time.monotonic() + 10
        text = scrape(url)
        while sample(text, "tvs_connections_in_use") and time.monotonic() < deadline:
            time.sleep(0.05)
            text = scrape(url)
        assert sample(text, "tvs_requests_total", type="QUERY_CERT_REQ", status="VALID") == 4
        assert sample(text, "tvs_request_duration_seconds_count", type="QUERY_CERT_REQ") == 4
        assert sample(text, "tvs_cache_entries") > 0
        assert sample(text, "tvs_connections_total") == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError((tmp_path / "serve.log").read_text()) from None
    assert status == 0
