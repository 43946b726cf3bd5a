"""The Wireshark dissector: our server and client on loopback, captured and decrypted by tshark
(with the server's --keylog secrets), dissected with dissector/tvs.lua."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.pki import LabPki
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.wire import (
    Element,
    QueryCertRequest,
    QueryCertResponse,
    Status,
    UnknownMessage,
    VerifyRequest,
    VerifyResponse,
    encode_message,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

LUA = Path(__file__).parents[1] / "dissector" / "tvs.lua"
DEVICE = "CP-8861-SEPB000B4BA0AEE"
MAC = "B000B4BA0AEE"


async def _capture(host: str, port: int, out: Path, nursery: trio.Nursery) -> trio.Process:
    """tshark capturing loopback TCP ``port`` into ``out``; returns once packets to that port
    are seen (its "Capturing on" comes before the capture really starts, so plain TCP probe
    connections are made until tshark prints one)."""
    proc = await trio.lowlevel.open_process(
        ["tshark", "-i", "lo", "-f", f"tcp port {port}", "-w", str(out), "-P", "-l", "-n"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    printed = trio.Event()

    async def drain() -> None:
        assert proc.stdout is not None
        while await proc.stdout.receive_some(4096):
            printed.set()

    nursery.start_soon(drain)
    with trio.fail_after(60):
        while not printed.is_set():
            probe = await trio.open_tcp_stream(host, port)
            await probe.aclose()
            with trio.move_on_after(0.5):
                await printed.wait()
    return proc


def _layers(packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``tvs`` layer of the JSON packets (a segment may carry several messages)."""
    out: list[dict[str, Any]] = []
    for p in packets:
        layer = p["_source"]["layers"].get("tvs")
        if layer is None:
            continue
        out += layer if isinstance(layer, list) else [layer]
    return out


def _find(tree: Any, key: str) -> list[Any]:
    """All values of ``key`` anywhere in a JSON tree."""
    found: list[Any] = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k == key:
                found += v if isinstance(v, list) else [v]
            found += _find(v, key)
    elif isinstance(tree, list):
        for v in tree:
            found += _find(v, key)
    return found


@pytest.mark.parametrize("keylog_side", ["server", "client"])
async def test_tshark_dissects_decrypted_tvs(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, keylog_side: str
) -> None:
    store = tmp_path / "store"
    TrustStore.init_from_pki(store, lab_pki_dir / "source")
    dest_cm = lab_pki.clusters["destination"].publisher.callmanager.cert
    for trust in ("Phone-SAST-trust", "CallManager-trust"):  # SAST and TFTP, as in the seed
        TrustStore.open(store).import_certificates(trust, [dest_cm], ttl=86400)
    src = lab_pki.clusters["source"]
    tvs = src.publisher.tvs
    keylog = tmp_path / "keys.log"
    server = TvsServer(
        TvsServerConfig(
            store=store,
            cert=tvs.cert_path,
            key=tvs.key_path,
            port=0,
            keylog=keylog if keylog_side == "server" else None,
        )
    )
    host, port = await nursery.start(server.serve)
    pcap = tmp_path / "tvs.pcapng"
    capture = await _capture(host, port, pcap, nursery)

    phone = src.phones[MAC]
    client = TvsClientConfig(
        lsc=phone.cert,
        key=phone.key,
        pinned=(tvs.cert,),
        keylog=keylog if keylog_side == "client" else None,
    )
    query = QueryCertRequest(DEVICE, dest_cm.subject, dest_cm.issuer, dest_cm.serial, 1001)
    answer = await tvs_request(host, port, query, client)
    assert isinstance(answer, QueryCertResponse) and answer.status == Status.VALID
    assert answer.roles == (0, 3)
    unknown = QueryCertRequest(DEVICE, "CN=nobody", "CN=nobody", b"\x01\x02", 1002)
    invalid = await tvs_request(host, port, unknown, client)
    assert invalid.status == Status.INVALID  # type: ignore[union-attr]
    verified = await tvs_request(host, port, VerifyRequest(DEVICE, dest_cm.der, 7), client)
    assert isinstance(verified, VerifyResponse) and verified.status == Status.VALID
    with trio.fail_after(10):  # let the server finish before stopping the capture
        while server.active:
            await trio.sleep(0.01)
    await trio.sleep(0.5)
    capture.send_signal(signal.SIGINT)
    with trio.fail_after(30):
        await capture.wait()
    server.request_shutdown()
    assert pcap.stat().st_size > 0 and keylog.stat().st_size > 0

    result = await trio.run_process(
        [
            "tshark", "-r", str(pcap), "-n",
            "-o", f"tls.keylog_file:{keylog}",
            "-X", f"lua_script:{LUA}",
            "-o", f"tvs.ports:{port}",
            "-Y", "tvs", "-T", "json", "--no-duplicate-keys",
        ],
        capture_stdout=True,
        capture_stderr=True,
        env={**os.environ, "HOME": str(tmp_path)},  # no personal Wireshark preferences
    )  # fmt: skip
    layers = _layers(json.loads(result.stdout))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        by_type.setdefault(layer["tvs.type"], []).append(layer)
    assert sorted(by_type) == ["1", "2", "3", "4"], result.stderr.decode()
    assert len(by_type["3"]) == 2 and len(by_type["4"]) == 2

    req = next(x for x in by_type["3"] if x["tvs.request_id"] == "1001")
    assert req["tvs.discriminator"] == "0x57" and req["tvs.version"] == "1"
    assert req["tvs.reserved"] == "0x00"
    assert req["tvs.length"] == str(len(encode_message(query)) - 10)
    assert _find(req, "tvs.device") == [DEVICE]
    assert _find(req, "tvs.subject") == [dest_cm.subject]
    assert _find(req, "tvs.issuer") == [dest_cm.issuer]
    assert [s.replace(":", "").upper() for s in _find(req, "tvs.serial")] == [dest_cm.serial_hex]
    assert _find(req, "tvs.element.tag") == ["1", "3", "4", "5"]

    res = next(x for x in by_type["4"] if x["tvs.request_id"] == "1001")
    assert res["tvs.reserved"] == "0xf7"
    assert _find(res, "tvs.status") == ["0"]
    assert sorted(_find(res, "tvs.role")) == sorted(str(r) for r in answer.roles)
    assert _find(res, "tvs.ttl") == ["86400"]
    cert_hex = _find(res, "tvs.certificate")[0].replace(":", "")
    assert bytes.fromhex(cert_hex) == dest_cm.der
    # the certificate is handed to Wireshark's X.509 dissector
    assert _find(res, "x509af.serialNumber") or _find(res, "x509af.signedCertificate_element")
    assert "ucm11pub.stormin.local" in json.dumps(res)

    miss = next(x for x in by_type["4"] if x["tvs.request_id"] == "1002")
    assert _find(miss, "tvs.status") == ["1"] and _find(miss, "tvs.certificate") == []
    assert _find(by_type["2"][0], "tvs.status") == ["0"]
    assert by_type["1"][0]["tvs.request_id"] == "7"
    assert _find(by_type["1"][0], "tvs.device") == [DEVICE]

    # the text view names types, roles and the TTL
    text = await trio.run_process(
        [
            "tshark", "-r", str(pcap), "-n",
            "-o", f"tls.keylog_file:{keylog}",
            "-X", f"lua_script:{LUA}",
            "-o", f"tvs.ports:{port}",
            "-Y", "tvs.type == 4", "-V",
        ],
        capture_stdout=True,
        capture_stderr=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    out = text.stdout.decode()
    assert "Message type: QUERY_CERT_RES (4)" in out
    assert "Status: valid (0)" in out and "Status: invalid (1)" in out
    role_lines = {line.strip() for line in out.splitlines() if line.strip().startswith("Role:")}
    assert role_lines == {"Role: SAST (0)", "Role: TFTP (3)"}
    assert "QUERY_CERT_RES id=1001 valid roles=SAST,TFTP ttl=86400" in out
    assert "TTL (seconds): 86400" in out

    # Decode As works too, instead of the port preference
    decode_as = await trio.run_process(
        [
            "tshark", "-r", str(pcap), "-n",
            "-o", f"tls.keylog_file:{keylog}",
            "-X", f"lua_script:{LUA}",
            "-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},tvs",
            "-Y", "tvs", "-T", "fields", "-e", "tvs.type", "-e", "tvs.request_id",
        ],
        capture_stdout=True,
        capture_stderr=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    rows = sorted(tuple(line.split("\t")) for line in decode_as.stdout.decode().splitlines())
    assert rows == [
        ("1", "7"),
        ("2", "7"),
        ("3", "1001"),
        ("3", "1002"),
        ("4", "1001"),
        ("4", "1002"),
    ]


def _frame(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """Ethernet + IPv4 + TCP (checksums left 0: tshark does not check them by default)."""
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    loop = bytes([127, 0, 0, 1])
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0, loop, loop)
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload


def _pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1, i * 1000, len(f), len(f)) + f
    return out


async def test_segments_several_messages_and_malformed_input(tmp_path: Path) -> None:
    """A hand-built capture of TVS over plain TCP (Decode As): a request split over two
    segments, two messages in one segment, an unknown type and tag, an element overrunning
    its message, and bytes that are not TVS at all."""
    req = encode_message(QueryCertRequest(DEVICE, "CN=a;O=b", "CN=ca", b"\x01\x02", 1001))
    unknown = encode_message(UnknownMessage(9, (Element(0x42, b"zz"),), request_id=5))
    res = encode_message(QueryCertResponse(Status.VALID, None, (0, 3), 86400, request_id=1001))
    overrun = bytes.fromhex("57010200000000010004") + bytes([7, 0, 9, 0])
    c, s = 40000, 40001
    frames = [
        _frame(c, s, 100, 0, 0x02),
        _frame(s, c, 500, 101, 0x12),
        _frame(c, s, 101, 501, 0x10),
    ]
    cseq, sseq = 101, 501
    for p in (req[:7], req[7:] + unknown):
        frames.append(_frame(c, s, cseq, sseq, 0x18, p))
        cseq += len(p)
    for p in (res, overrun, b"GET / HTTP/1.0\r\n\r\n"):
        frames.append(_frame(s, c, sseq, cseq, 0x18, p))
        sseq += len(p)
    pcap = tmp_path / "plain.pcap"
    pcap.write_bytes(_pcap(frames))
    base = ["tshark", "-r", str(pcap), "-n", "-X", f"lua_script:{LUA}", "-d", f"tcp.port=={s},tvs"]
    env = {**os.environ, "HOME": str(tmp_path)}
    summary = await trio.run_process(base, capture_stdout=True, capture_stderr=True, env=env)
    lines = summary.stdout.decode().splitlines()
    assert "Dissector bug" not in summary.stdout.decode()
    assert "reassembled PDU" in lines[3]  # the first 7 bytes wait for the rest
    assert "QUERY_CERT_REQ id=1001 subject=CN=a;O=b; unknown type 9 id=5" in lines[4]
    assert "QUERY_CERT_RES id=1001 valid roles=SAST,TFTP ttl=86400" in lines[5]
    assert "TVS" in lines[7] and "not a TVS message" in lines[7]
    detail = await trio.run_process(
        [*base, "-V"], capture_stdout=True, capture_stderr=True, env=env
    )
    out = detail.stdout.decode()
    assert "Device name: CP-8861-SEPB000B4BA0AEE" in out and "Serial number: 0102" in out
    assert "Issuer name: CN=ca" in out
    assert "Message type: Unknown (9)" in out and "Unknown element tag" in out
    assert "Element runs past the end of the message" in out
    assert "Not a TVS message (discriminator is not 0x57)" in out
