"""Whatever bytes a client sends inside TLS, the server logs one bad request (or answers a valid
one) and keeps serving. The server runs in a background thread; clients use blocking sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvs.pki import LabPki
from tvs.server import NullObserver, TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tlsconfig import client_context
from tvs.wire import QueryCertRequest, encode_message


class Counter(NullObserver):
    """Outcomes (bad or served) and ended connections, with a condition to wait on: the server
    reports a connection's outcome before it reports the connection closed."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.bad = 0
        self.served = 0
        self.closed = 0

    def bad_request(self, reason: str) -> None:
        with self.changed:
            self.bad += 1
            self.changed.notify_all()

    def request_served(self, message_type: str, status: str, seconds: float) -> None:
        with self.changed:
            self.served += 1
            self.changed.notify_all()

    def connection_closed(self) -> None:
        with self.changed:
            self.closed += 1
            self.changed.notify_all()

    def total(self) -> int:
        with self.changed:
            return self.bad + self.served


@pytest.fixture(scope="module")
def background(
    tmp_path_factory: pytest.TempPathFactory, lab_pki_dir: Path, lab_pki: LabPki
) -> Iterator[tuple[tuple[str, int], Counter, LabPki]]:
    store = TrustStore.init_from_pki(
        tmp_path_factory.mktemp("fuzz") / "store", lab_pki_dir / "source"
    )
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs
    config = TvsServerConfig(
        store=store.root, cert=tvs.cert_path, key=tvs.key_path, port=0,
        handshake_timeout=5, request_timeout=2,
    )  # fmt: skip
    counter = Counter()
    server = TvsServer(config, observer=counter)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["token"] = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as n:
            box["address"] = await n.start(server.serve)
            ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(60)
    yield box["address"], counter, lab_pki
    trio.from_thread.run_sync(server.request_shutdown, trio_token=box["token"])
    thread.join(60)
    assert not thread.is_alive()


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    ctx = client_context()
    got = b""
    with socket.create_connection(address, timeout=20) as raw, ctx.wrap_socket(raw) as tls:
        try:
            tls.sendall(data)
            tls.unwrap()  # close_notify: "that was everything"
        except (OSError, ValueError):
            return got
        try:
            while chunk := raw.recv(65536):
                got += chunk
        except OSError:
            pass
    return got


def _wait_closed(counter: Counter, count: int) -> None:
    """Wait (on the observer's condition, no polling) until ``count`` connections ended."""
    with counter.changed:
        ended = counter.changed.wait_for(lambda: counter.closed >= count, timeout=20)
    assert ended, "the server did not finish the connection"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=200).map(lambda b: b"\x57\x01" + b),  # past the discriminator check
        st.binary(max_size=200).map(lambda b: b"\x57\x01\x03\x00\x00\x00\x00\x01" + b),
    )
)
def test_any_bytes_end_in_exactly_one_outcome(
    background: tuple[tuple[str, int], Counter, LabPki], data: bytes
) -> None:
    address, counter, pki = background
    before, closed = counter.total(), counter.closed
    _exchange(address, data)
    _wait_closed(counter, closed + 1)  # the connection is over: no outcome can follow
    assert counter.total() == before + 1
    # and a real phone is still served
    capf = pki.clusters["source"].capf.cert
    good = encode_message(QueryCertRequest("CP-8861-SEP0", capf.subject, capf.issuer, capf.serial))
    served = counter.served
    answer_ctx = client_context()
    with socket.create_connection(address, timeout=20) as raw, answer_ctx.wrap_socket(raw) as tls:
        tls.sendall(good)
        assert tls.recv(10)[:1] == b"\x57"
    _wait_closed(counter, closed + 2)
    assert counter.served == served + 1
