"""How the phone reports a secure SIP port that fails (issue 12 item 9): a peer that closes
during or after the handshake without a TLS alert is a transport error (``connect-failed``);
only an alert refusing the certificate says the server refused the phone's certificate."""

from __future__ import annotations

import socket
import time

import trio

from phone_emu.phone.driver import NetworkOptions, _Performer
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.phone.values import ConnectSip, SipFailed, TransportFailure
from tvs.pki import LabPki, issue_lsc
from tvs.tlsserver import TlsHandshakeError, TlsStream, server_tls


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    return sock


async def _accept(listener: socket.socket) -> socket.socket:
    await trio.lowlevel.wait_readable(listener)
    conn, _ = listener.accept()
    conn.setblocking(False)
    return conn


async def _register(lab_pki: LabPki, port: int, *, stranger: bool = False) -> SipFailed:
    lsc = (
        issue_lsc(lab_pki.clusters["destination"].capf, mac="00AABBCCDDEE")
        if stranger
        else next(iter(lab_pki.clusters["source"].phones.values()))
    )
    node = lab_pki.clusters["source"].nodes["ucm105pub"]
    performer = _Performer(
        PhoneIdentity.from_lsc(lsc.cert, lsc.key),
        ("127.0.0.1", 69),
        time.time,
        NetworkOptions(sip_timeout=10),
    )
    result = await performer.perform(ConnectSip("127.0.0.1", port, (node.callmanager.cert,)))
    assert isinstance(result, SipFailed), result
    return result


async def test_peer_closing_mid_handshake_is_a_transport_error(lab_pki: LabPki) -> None:
    listener = _listener()
    port = listener.getsockname()[1]

    async def peer() -> None:
        conn = await _accept(listener)
        await trio.lowlevel.wait_readable(conn)
        conn.recv(65536)  # the ClientHello, then gone
        conn.close()

    async with trio.open_nursery() as n:
        n.start_soon(peer)
        result = await _register(lab_pki, port)
    listener.close()
    assert result.failure is TransportFailure.CONNECT
    assert "refused" not in result.detail and "transport error" in result.detail


async def test_peer_closing_after_the_handshake_is_a_transport_error(lab_pki: LabPki) -> None:
    node = lab_pki.clusters["source"].nodes["ucm105pub"].callmanager
    tls = server_tls(node.cert, node.key)
    listener = _listener()
    port = listener.getsockname()[1]

    async def peer() -> None:
        stream = TlsStream(await _accept(listener), tls)
        await stream.do_handshake()
        stream.socket.close()  # no answer, no alert

    async with trio.open_nursery() as n:
        n.start_soon(peer)
        result = await _register(lab_pki, port)
    listener.close()
    assert result.failure is TransportFailure.CONNECT
    assert "refused" not in result.detail


async def test_an_alert_refusing_the_certificate_is_a_refusal(lab_pki: LabPki) -> None:
    node = lab_pki.clusters["source"].nodes["ucm105pub"].callmanager
    capf = lab_pki.clusters["source"].capf.cert
    tls = server_tls(node.cert, node.key, client_auth="required", client_cas=[capf])
    listener = _listener()
    port = listener.getsockname()[1]

    async def peer() -> None:
        stream = TlsStream(await _accept(listener), tls)
        try:
            await stream.do_handshake()
        except TlsHandshakeError:
            await stream.linger_close(5.0)

    async with trio.open_nursery() as n:
        n.start_soon(peer)
        result = await _register(lab_pki, port, stranger=True)
    listener.close()
    assert result.failure is TransportFailure.HANDSHAKE
    assert "refused the phone's certificate" in result.detail
