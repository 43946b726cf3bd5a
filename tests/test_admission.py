"""Admission control (tvs.admission): per-address limits on unfinished handshakes, trusted
networks, shedding the oldest idle connection, and the first-bytes deadline, on the real TVS
server: an attacker holding idle connections does not lock a good client out."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from tvs.admission import (
    Admission,
    AdmissionLimits,
    AdmissionRefused,
    parse_networks,
    serve_sockets,
)
from tvs.pki import LabPki
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tlsconfig import client_context
from tvs.wire import Decoder, Frame, QueryCertRequest, QueryCertResponse, Status, encode_message

ATTACKER = "127.0.0.2"
GOOD = "127.0.0.3"


# --- the bookkeeping (pure) ----------------------------------------------------------------------


def test_per_address_limit_counts_unfinished_only() -> None:
    adm = Admission(AdmissionLimits(max_connections=100, max_handshakes_per_address=2))
    a, b = adm.admit("10.0.0.1"), adm.admit("10.0.0.1")
    with pytest.raises(AdmissionRefused) as refused:
        adm.admit("10.0.0.1")
    assert refused.value.kind == "per-address"
    other = adm.admit("10.0.0.2")  # another address is not affected
    a.established()  # a finished handshake no longer counts against its address
    c = adm.admit("10.0.0.1")
    assert adm.unfinished("10.0.0.1") == 2 and adm.active == 4
    for s in (a, b, c, other):
        s.release()
    assert adm.active == 0 and adm.unfinished("10.0.0.1") == 0


def test_trusted_networks_are_exempt() -> None:
    adm = Admission(
        AdmissionLimits(max_handshakes_per_address=1, trusted_networks=["10.1.0.0/16", "::1"])
    )
    slots = [adm.admit("10.1.2.3") for _ in range(5)]
    slots += [adm.admit("::1") for _ in range(3)]
    slots.append(adm.admit("::ffff:10.1.9.9"))  # IPv4-mapped: the IPv4 rule applies
    adm.admit("10.2.0.1")
    with pytest.raises(AdmissionRefused):
        adm.admit("10.2.0.1")
    assert adm.active == 10
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks(["not-a-net"])


def test_full_sheds_oldest_idle_then_handshaking_never_established() -> None:
    adm = Admission(AdmissionLimits(max_connections=3, max_handshakes_per_address=0))
    busy, talking, idle = adm.admit("a"), adm.admit("b"), adm.admit("c")
    busy.established()
    talking.active()
    first = adm.admit("d")  # sheds the idle one
    assert idle.shed and idle.cancel_scope.cancel_called and not talking.shed
    first.active()
    second = adm.admit("e")  # nothing idle left: the oldest still in its handshake
    assert talking.shed and not first.shed
    second.established()
    first.established()
    with pytest.raises(AdmissionRefused) as refused:  # all established: refuse
        adm.admit("f")
    assert refused.value.kind == "max-connections"
    assert adm.shed_total == 2 and adm.active == 3 and not busy.shed


# --- on the real server --------------------------------------------------------------------------


@pytest.fixture
def open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _server(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, **kw: Any
) -> TvsServer:
    TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs
    cfg = TvsServerConfig(
        store=tmp_path / "store", cert=tvs.cert_path, key=tvs.key_path, port=0, **kw
    )
    server = TvsServer(cfg)
    await nursery.start(server.serve)
    return server


async def _good_query(server: TvsServer, lab_pki: LabPki, source: str = GOOD) -> Status:
    """One TLS query from ``source`` (a loopback address of its own)."""
    assert server.address is not None
    cert = lab_pki.clusters["source"].capf.cert
    req = QueryCertRequest("CP-8861-SEP00AA00BB00CC", cert.subject, cert.issuer, cert.serial)
    with trio.fail_after(20):
        tcp = await trio.open_tcp_stream(*server.address, local_address=source)
        tls = trio.SSLStream(tcp, client_context())
        try:
            await tls.send_all(encode_message(req))
            dec = Decoder()
            while not isinstance(frame := dec.next_frame(), Frame):
                dec.receive_data(await tls.receive_some(65536))
            msg = frame.message
        finally:
            await trio.aclose_forcefully(tls)
    assert isinstance(msg, QueryCertResponse)
    return msg.status


async def _hold(server: TvsServer, n: int, source: str = ATTACKER) -> list[trio.SocketStream]:
    """``n`` connections from ``source`` that never send a byte."""
    assert server.address is not None
    return [await trio.open_tcp_stream(*server.address, local_address=source) for _ in range(n)]


async def _close_all(streams: list[trio.SocketStream]) -> None:
    for s in streams:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await s.aclose()


async def test_an_attacker_address_cannot_lock_out_a_good_client(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, open_files: None
) -> None:
    """Issue 12 item 2: idle connections from one address are capped per address (default
    256); a good client from another address is answered while the attacker holds them."""
    server = await _server(
        nursery, tmp_path, lab_pki_dir, lab_pki, handshake_timeout=60, first_bytes_timeout=60
    )
    with capture_logs() as logs:
        held = await _hold(server, 300)
    try:
        with capture_logs() as more:
            with trio.fail_after(30):
                while server.attempted < 300:
                    await trio.sleep(0.01)
            assert server.admission.unfinished(ATTACKER) == 256
            assert server.rejected == 300 - 256
            for _ in range(5):
                assert await _good_query(server, lab_pki) == Status.VALID
    finally:
        await _close_all(held)
    refusals = [e for e in [*logs, *more] if e["event"] == "connection rejected"]
    assert (
        len(refusals) == 44 and "256 unfinished handshakes from 127.0.0.2" in refusals[0]["reason"]
    )
    server.request_shutdown()


async def test_when_full_the_oldest_idle_connection_is_shed(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, open_files: None
) -> None:
    """With every slot held by idle connections (trusted, so not capped per address), a
    good client still gets through: the oldest idle connection makes room."""
    server = await _server(
        nursery,
        tmp_path,
        lab_pki_dir,
        lab_pki,
        max_connections=64,
        trusted_networks=[f"{ATTACKER}/32"],
        handshake_timeout=60,
        first_bytes_timeout=60,
    )
    held = await _hold(server, 64)
    try:
        with trio.fail_after(30):
            while server.active < 64:
                await trio.sleep(0.01)
        for _ in range(3):
            assert await _good_query(server, lab_pki) == Status.VALID
        assert server.admission.shed_total == 1 and server.rejected == 0  # then a slot was free
        with trio.fail_after(20):  # the shed one was closed: the oldest reads EOF
            with contextlib.suppress(trio.BrokenResourceError):
                assert await held[0].receive_some() == b""
    finally:
        await _close_all(held)
    server.request_shutdown()


async def test_silent_connections_are_dropped_at_the_first_bytes_deadline(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki
) -> None:
    server = await _server(
        nursery, tmp_path, lab_pki_dir, lab_pki, first_bytes_timeout=0.2, handshake_timeout=60
    )
    with capture_logs() as logs:
        (silent,) = await _hold(server, 1)
        with trio.fail_after(20), contextlib.suppress(trio.BrokenResourceError):
            assert await silent.receive_some() == b""
    assert any("no ClientHello within 0.2s" in e.get("reason", "") for e in logs)
    await silent.aclose()
    assert await _good_query(server, lab_pki) == Status.VALID
    server.request_shutdown()


# --- the shared accept loop ----------------------------------------------------------------------


async def test_serve_sockets_hands_over_plain_sockets_like_a_socket_stream() -> None:
    """Each connection reaches the handler as a non-blocking socket with TCP_NODELAY and its
    peer address; a burst of connections is accepted (several per wake-up) and all served."""
    seen: list[tuple[bool, int, str]] = []

    async def handler(sock: socket.socket, peer: Any) -> None:
        with sock:
            nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen.append((sock.getblocking(), nodelay, str(peer[0])))
            await trio.lowlevel.wait_readable(sock)
            sock.send(sock.recv(100).upper())

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await nursery.start(serve_sockets, handler, listeners)
        clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(100)]
        with trio.fail_after(10):
            for i, client in enumerate(clients):
                await client.send_all(b"ping %d" % i)
                assert await client.receive_some(100) == b"PING %d" % i
                await client.aclose()
        nursery.cancel_scope.cancel()
    assert len(seen) == 100 and set(seen) == {(False, 1, "127.0.0.1")}
