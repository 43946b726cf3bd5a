"""``tvs trace CAPTURE --keylog KEYS`` (issue 12 item 16): packet captures as timeline input.

The pure part (segments -> events) is fed TVS messages whole, byte by byte and with trailing
bytes. The tshark part reads a real capture: a real TLS session between our TVS server and the
``phone-emu query`` client, recorded by a relay on loopback (the TCP payload of each
direction as it passed) and written as a pcap with the relay's bytes inside synthetic
Ethernet/IPv4/TCP headers, so no capture privilege is needed; the server's key log decrypts it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tvs.cli import main
from tvs.trace.capture import Segment, capture_events, is_capture
from tvs.trace.model import Kind
from tvs.wire import QueryCertRequest, QueryCertResponse, Status, encode_message

REQUEST = encode_message(
    QueryCertRequest(
        device="CP-8861-SEPB000B4BA0AEE", subject="CN=ucm11pub", issuer="CN=CA", serial=b"\x01",
        request_id=1001,
    )
)  # fmt: skip
RESPONSE = encode_message(
    QueryCertResponse(status=Status.VALID, roles=(0, 3), ttl=86400, request_id=1001)
)
CLIENT, SERVER = "127.0.0.1:40000", "127.0.0.1:2445"


def _segments(chunks: list[tuple[bool, bytes]]) -> list[Segment]:
    out = [Segment(time=1.0, stream=0, src=CLIENT, dst=SERVER, syn=True)]
    out.append(Segment(time=1.1, stream=0, src=SERVER, dst=CLIENT, handshake=(2, 20)))
    for i, (to_server, data) in enumerate(chunks):
        src, dst = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
        out.append(Segment(time=2.0 + i, stream=0, src=src, dst=dst, data=data))
    return out


@pytest.mark.parametrize("how", ["whole", "byte-by-byte", "trailing"])
def test_messages_are_reassembled_per_direction(how: str) -> None:
    if how == "whole":
        chunks = [(True, REQUEST), (False, RESPONSE)]
    elif how == "byte-by-byte":
        chunks = [(True, REQUEST[i : i + 1]) for i in range(len(REQUEST))]
        chunks += [(False, RESPONSE[i : i + 1]) for i in range(len(RESPONSE))]
    else:
        chunks = [(True, REQUEST + b"\xff\x00"), (False, RESPONSE)]
    events = capture_events(_segments(chunks))
    kinds = [e.kind for e in events]
    assert kinds[:3] == [Kind.CONNECTION, Kind.HANDSHAKE, Kind.REQUEST]
    request = next(e for e in events if e.kind == Kind.REQUEST)
    response = next(e for e in events if e.kind == Kind.RESPONSE)
    assert request.fields["type"] == "QUERY_CERT_REQ" and request.fields["request_id"] == 1001
    assert request.fields["device"] == "CP-8861-SEPB000B4BA0AEE"
    assert response.fields["status"] == "VALID" and response.fields["roles"] == [0, 3]
    assert events[0].fields["peer"] == CLIENT
    if how == "trailing":  # the bytes after the request are kept as one undecodable message
        assert sum(e.kind == Kind.REQUEST for e in events) == 2


def test_an_alert_before_any_data_is_a_failed_handshake() -> None:
    segs = [
        Segment(time=1.0, stream=3, src=CLIENT, dst=SERVER, syn=True),
        Segment(time=1.1, stream=3, src=CLIENT, dst=SERVER, alert="unknown_ca"),
    ]
    events = capture_events(segs)
    assert [e.kind for e in events] == [Kind.CONNECTION, Kind.HANDSHAKE_FAILED]
    assert events[1].fields["reason"] == "unknown_ca"


def test_capture_magic() -> None:
    assert is_capture(b"\x0a\x0d\x0d\x0a") and is_capture(b"\xd4\xc3\xb2\xa1")
    assert not is_capture(b"2026") and not is_capture(b"")


# --- a real TLS session, recorded and written as a pcap -------------------------------------------


def _pcap(conns: list[tuple[list[tuple[bool, bytes]], int, int]]) -> bytes:
    """An Ethernet/IPv4/TCP pcap: per connection (records, client port, server port), a
    handshake then the records (direction, payload)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = [1_700_000_000.0]
    for records, cport, sport in conns:
        _connection(out, t, records, cport, sport)
    return b"".join(out)


def _connection(
    out: list[bytes], t: list[float], records: list[tuple[bool, bytes]], cport: int, sport: int
) -> None:
    seq = {True: 1000, False: 5000}

    def packet(to_server: bool, flags: int, payload: bytes = b"") -> None:
        src, dst = (cport, sport) if to_server else (sport, cport)
        ack = seq[not to_server]
        tcp = struct.pack("!HHIIBBHHH", src, dst, seq[to_server], ack, 5 << 4, flags, 65535, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        )  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload
        t[0] += 0.001
        sec, usec = int(t[0]), int((t[0] % 1) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        seq[to_server] += len(payload) + (1 if flags & 0x02 else 0)

    packet(True, 0x02)
    packet(False, 0x12)
    packet(True, 0x10)
    for to_server, data in records:
        for i in range(0, len(data), 1400):
            packet(to_server, 0x18, data[i : i + 1400])


async def _relay(
    listener: trio.SocketListener, target: tuple[str, int], records: list[tuple[bool, bytes]]
) -> None:
    async with listener:
        client = await listener.accept()
    server = await trio.open_tcp_stream(*target)

    async def pump(a: trio.SocketStream, b: trio.SocketStream, to_server: bool) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await a.receive_some(65536):
                records.append((to_server, data))
                await b.send_all(data)
            await b.send_eof()

    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(pump, client, server, True)
        nursery.start_soon(pump, server, client, False)


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
async def test_tshark_decrypts_a_real_tvs_exchange(
    lab_pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tvs.server import TvsServer, TvsServerConfig

    node = lab_pki.clusters["source"].nodes["ucm105pub"]
    keys = tmp_path / "keys.log"
    server = TvsServer(
        TvsServerConfig(
            store=tmp_path / "store", cert=node.tvs.cert_path, key=node.tvs.key_path,
            host="127.0.0.1", port=0, keylog=keys,
        )
    )  # fmt: skip
    records: list[tuple[bool, bytes]] = []
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(server.serve)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        relay_port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(_relay, listeners[0], ("127.0.0.1", port), records)
        cmd = [sys.executable, "-c", "import sys; from phone_emu.cli import main; sys.exit(main())"]
        cmd += ["query", "--tvs", f"127.0.0.1:{relay_port}", "--insecure"]
        cmd += ["--cert", str(node.callmanager.cert_path)]
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode in (0, 1), done.stderr
        with trio.fail_after(10):
            while not any(not to_server for to_server, _ in records[1:]):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    capture = tmp_path / "tvs.pcap"
    download = [
        (True, b"GET /CTLSEPB000B4BA0AEE.tlv HTTP/1.1\r\nHost: 127.0.1.1:6970\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
    ]
    capture.write_bytes(_pcap([(download, 40001, 6970), (records, 40000, 2445)]))
    capsys.readouterr()

    code = main(["trace", str(capture), "--keylog", str(keys), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    events = json.loads(out)["events"]
    kinds = [e["kind"] for e in events]
    assert "request" in kinds and "response" in kinds, kinds
    request = next(e for e in events if e["kind"] == "request")
    assert request["fields"]["type"] == "VERIFY_REQUEST"
    assert kinds[:2] == ["file-request", "file-done"]  # the HTTP provisioning download
    assert events[0]["fields"]["file"] == "CTLSEPB000B4BA0AEE.tlv"
    assert events[1]["fields"]["status"] == 200

    # without the key log nothing decrypts, and the command says why
    assert main(["trace", str(capture)]) in (0, 1)
    assert "--keylog" in capsys.readouterr().err


def test_without_tshark_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    capture = tmp_path / "x.pcapng"
    capture.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\x00" * 28)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["trace", str(capture)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tshark" in err and str(capture) in err


def test_tshark_is_the_one_installed_here() -> None:
    """CI installs tshark; the capture test above must not be silently skipped there."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    assert subprocess.run(["tshark", "--version"], capture_output=True, check=False).returncode == 0
