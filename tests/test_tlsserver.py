"""The one server TLS adapter (tvs.tlsserver) on its own, on loopback: the Nagle-stall fix
(a session ticket after the handshake, TCP_QUICKACK while waiting for the client's Finished),
client-certificate modes with the verify callback, keys from memory."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

from tvs.certs import Certificate
from tvs.pki import Identity, LabPki, issue_lsc
from tvs.tlsconfig import client_context
from tvs.tlsserver import PeerCertificate, TlsHandshakeError, TlsStream, server_tls


class _RecordingSocket(socket.socket):
    """Records setsockopt calls (the adapter's mechanism, not a timing, is what is tested)."""

    calls: list[tuple[int, int, Any]]

    def setsockopt(self, *args: Any) -> None:  # type: ignore[override]
        self.calls.append(args)
        super().setsockopt(*args)


async def _serve_once(
    tls_args: dict[str, Any], answer: bytes = b"pong"
) -> tuple[int, trio.MemoryReceiveChannel[Any], Any]:
    """A one-connection echo server on TlsStream; returns (port, results channel, runner)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    send, receive = trio.open_memory_channel[Any](1)
    tls = server_tls(**tls_args)

    async def run() -> None:
        try:
            await trio.lowlevel.wait_readable(listener)
            raw, _ = listener.accept()
        finally:
            listener.close()
        sock = _RecordingSocket(fileno=raw.detach())
        sock.calls = []
        stream = TlsStream(sock, tls)
        try:
            try:
                peer = await stream.do_handshake()
            except TlsHandshakeError as exc:
                await send.send(exc)
                await stream.linger_close(1.0)
                return
            data = await stream.receive_some()
            await stream.send_all(answer + data)
            await send.send((peer, sock.calls))
        finally:
            stream.close()

    return int(listener.getsockname()[1]), receive, run


def _node(pki: LabPki) -> Identity:
    return pki.clusters["source"].nodes["ucm105pub"].tvs


async def _client(port: int, ctx: Any) -> tuple[bytes, Any]:
    tls = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), ctx)
    try:
        await tls.send_all(b"ping")  # right after the handshake, as a phone does
        got = await tls.receive_some()
        return got, tls.session
    finally:
        await trio.aclose_forcefully(tls)


async def test_nagle_stall_mechanism_ticket_and_quickack(lab_pki: LabPki) -> None:
    """Issue 12 item 3: a TLS 1.3 client gets a session ticket right after the handshake (so
    the ACK of its Finished is not delayed), and the server asked for quick ACKs while waiting
    for that Finished. Python's ssl server with num_tickets = 0 did neither."""
    node = _node(lab_pki)
    port, results, run = await _serve_once({"cert": node.cert, "key": node.key})
    async with trio.open_nursery() as n:
        n.start_soon(run)
        got, session = await _client(port, client_context())
        peer, calls = await results.receive()
    assert got == b"pongping"
    assert session is not None and session.has_ticket
    assert peer is None  # none asked (client auth none)
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        assert (socket.IPPROTO_TCP, quickack, 1) in calls


@pytest.mark.parametrize("mode", ["optional", "required"])
async def test_unverified_client_certificate(lab_pki: LabPki, mode: str) -> None:
    """optional: accepted, reported unverified with why; required: refused, with whose and why."""
    node = _node(lab_pki)
    stranger = issue_lsc(lab_pki.clusters["destination"].capf, mac="00AABBCCDDEE")
    trusted = lab_pki.clusters["source"].capf.cert
    port, results, run = await _serve_once(
        {"cert": node.cert, "key": node.key, "client_auth": mode, "client_cas": [trusted]}
    )
    ctx = client_context(cert=stranger.cert, key=stranger.key)
    async with trio.open_nursery() as n:
        n.start_soon(run)
        if mode == "optional":
            got, _ = await _client(port, ctx)
            assert got == b"pongping"
        else:
            with pytest.raises(trio.BrokenResourceError):
                await _client(port, ctx)
        outcome = await results.receive()
    if mode == "optional":
        peer: PeerCertificate = outcome[0]
        assert peer.certificate == stranger.cert and not peer.verified
        assert peer.failure_kind == "unknown-ca"
        fields = peer.log_fields()
        assert fields["client_sha256"] == stranger.cert.sha256.hex()
        assert fields["client_serial"] == stranger.cert.serial_hex
    else:
        assert isinstance(outcome, TlsHandshakeError) and outcome.kind == "refused-certificate"
        assert "unable to get local issuer certificate" in outcome.reason
        assert outcome.peer is not None and outcome.peer.certificate == stranger.cert


async def test_verified_client_and_chain_from_memory(lab_pki: LabPki) -> None:
    node = _node(lab_pki)
    phone = next(iter(lab_pki.clusters["source"].phones.values()))
    capf = lab_pki.clusters["source"].capf.cert
    port, results, run = await _serve_once(
        {"cert": [node.cert], "key": node.key, "client_auth": "required", "client_cas": [capf]}
    )
    async with trio.open_nursery() as n:
        n.start_soon(run)
        got, _ = await _client(port, client_context(cert=phone.cert, key=phone.key))
        peer, _ = await results.receive()
    assert got == b"pongping"
    assert isinstance(peer, PeerCertificate) and peer.verified and peer.failure is None
    assert peer.certificate == Certificate.from_der(phone.cert.der)


def test_mismatched_key_is_one_clear_error(lab_pki: LabPki) -> None:
    from tvs.certs import CertificateError

    node = _node(lab_pki)
    other = lab_pki.clusters["destination"].capf
    with pytest.raises(CertificateError, match="unusable TLS certificate/key"):
        server_tls(node.cert, other.key)
