"""The plain-TCP SIP port (security mode 1) defends like every listener, over real sockets on
loopback: a connection that sends nothing is closed at the first-bytes deadline, a request that
starts and never ends is closed at the request deadline (on TLS too), and a good REGISTER from
another client is answered all the while."""

from __future__ import annotations

import trio

from tvs.admission import AdmissionLimits
from tvs.cluster.sip import SipListener
from tvs.sip import register_request, response_status, split_message


def _listener(tls: bool = False) -> SipListener:
    # a TCP listener needs no certificate; the values are never used
    return SipListener(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        tls=tls,
        idle_timeout=30.0,
        request_timeout=0.3,
        admission=AdmissionLimits(first_bytes_timeout=0.2),
    )


async def _until_closed(stream: trio.SocketStream, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes (a test failure if it never does)."""
    got = b""
    with trio.fail_after(limit):
        while data := await stream.receive_some(4096):
            got += data
    return got


async def _register(host: str, port: int) -> str:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        local = stream.socket.getsockname()
        await stream.send_all(
            register_request(
                host,
                "SEP001122334455",
                transport="tcp",
                local=local[:2],
                call_id="1@test",
                tag="a1",
                branch="b1",
            )
        )
        buffer = b""
        with trio.fail_after(10):
            while (whole := split_message(buffer)) is None:
                buffer += await stream.receive_some(4096)
        return response_status(whole[0]).line


async def test_silent_and_slow_tcp_clients_are_closed_good_ones_answered() -> None:
    listener = _listener()
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(listener.serve, "127.0.0.1", 0)
        silent = await trio.open_tcp_stream(host, port)
        slow = await trio.open_tcp_stream(host, port)
        await slow.send_all(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP")  # never ends
        async with silent, slow:
            assert "200" in await _register(host, port)
            assert await _until_closed(silent) == b""
            assert await _until_closed(slow) == b""
        stats = listener.statistics()
        assert stats.requests == 1
        assert stats.bad_requests == 2  # one per refusal, each with its log line
        assert stats.active == 0
        nursery.cancel_scope.cancel()
