"""The Wireshark dissector's CAPF part (dissector/tvs.lua, TCP 3804): a real enrollment between
our CAPF server and the phone's client on loopback, captured and decrypted by tshark with the
server's key log; and the independent capfd/capfc transcript replayed as plain TCP."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import trio
from test_dissector import _capture, _find, _frame, _pcap

from phone_emu.capf_client import CapfClientConfig, capf_enroll
from tvs.capf.server import CapfServer, CapfServerConfig
from tvs.capf.transcript import parse_transcript
from tvs.pki import LabPki

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

LUA = Path(__file__).parents[1] / "dissector" / "tvs.lua"
VECTORS = Path(__file__).parent / "vectors" / "capf"
DEVICE = "SEPB000B4BA0AEE"


def _capf_layers(packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in packets:
        layer = p["_source"]["layers"].get("capf")
        if layer is None:
            continue
        out += layer if isinstance(layer, list) else [layer]
    return out


async def _tshark(*args: str, home: Path) -> str:
    result = await trio.run_process(
        ["tshark", "-n", "-X", f"lua_script:{LUA}", *args],
        capture_stdout=True,
        capture_stderr=True,
        env={**os.environ, "HOME": str(home)},  # no personal Wireshark preferences
    )
    return result.stdout.decode()


async def test_tshark_dissects_a_decrypted_enrollment(
    nursery: trio.Nursery, tmp_path: Path, lab_pki: LabPki
) -> None:
    capf = lab_pki.clusters["source"].capf
    keylog = tmp_path / "keys.log"
    server = CapfServer(
        CapfServerConfig(
            chain=[capf.cert], key=capf.key, db=tmp_path / "capf.db", port=0, keylog=keylog
        )
    )
    server.db.schedule([DEVICE], operation="install", auth_mode="null", key="rsa-2048")
    host, port = await nursery.start(server.serve)
    pcap = tmp_path / "capf.pcapng"
    capture = await _capture(host, port, pcap, nursery)
    result = await capf_enroll(host, port, CapfClientConfig(device_name=DEVICE, trust=[capf.cert]))
    assert result.result == "installed" and result.certificate is not None
    await trio.sleep(0.5)
    capture.send_signal(signal.SIGINT)
    with trio.fail_after(30):
        await capture.wait()
    server.close()

    tls = ["-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-o", f"capf.ports:{port}"]
    out = await _tshark(*tls, "-Y", "capf", "-T", "json", "--no-duplicate-keys", home=tmp_path)
    layers = _capf_layers(json.loads(out))
    commands = [int(layer["capf.command"]) for layer in layers]
    assert commands == [1, 2, 3, 17, 4, 9, 10, 15]  # the null-string install of section 8
    assert all(layer["capf.discriminator"] == "0x55" for layer in layers)
    auth = layers[1]
    assert _find(auth, "capf.device") == [DEVICE] and _find(auth, "capf.version") == ["3"]
    keygen = layers[2]
    assert _find(keygen, "capf.key_size") == ["2048"] and _find(keygen, "capf.key_type") == ["0"]
    store = layers[5]
    assert _find(store, "capf.cert_type") == ["1", "1"]  # element 3 and the nested type
    der = bytes.fromhex(_find(store, "capf.certificate")[0].replace(":", ""))
    assert der == result.certificate.der
    assert "CP-8861-" in json.dumps(store) or DEVICE in json.dumps(store)  # X.509 subject
    assert _find(layers[-1], "capf.reason") == ["1"]

    text = await _tshark(*tls, "-Y", "capf", home=tmp_path)
    assert f"AUTH_RESPONSE sid=1 device={DEVICE} version=3" in text
    assert "KEY_GENERATE_REQUEST sid=1 key=RSA-2048" in text
    assert "END_SESSION sid=1 reason=success" in text


async def test_independent_transcript_as_plain_tcp(tmp_path: Path) -> None:
    """capfd/capfc's certificate-authenticated install (certauth.hex) as a hand-built capture:
    header and body in separate segments, nested certificate, signed data, SUDI, SHA-2."""
    exchanges = parse_transcript((VECTORS / "certauth.hex").read_text())
    c, s = 40000, 3804
    frames = [_frame(c, s, 100, 0, 0x02), _frame(s, c, 500, 101, 0x12)]
    cseq, sseq = 101, 501
    for ex in exchanges:
        for chunk in ex.writes:
            if ex.direction == "C>S":
                frames.append(_frame(c, s, cseq, sseq, 0x18, chunk))
                cseq += len(chunk)
            else:
                frames.append(_frame(s, c, sseq, cseq, 0x18, chunk))
                sseq += len(chunk)
    pcap = tmp_path / "certauth.pcap"
    pcap.write_bytes(_pcap(frames))
    base = ["-r", str(pcap), "-d", f"tcp.port=={s},capf"]
    summary = await _tshark(*base, home=tmp_path)
    assert "Dissector bug" not in summary and "Malformed" not in summary
    detail = await _tshark(*base, "-V", home=tmp_path)
    assert "Command: AUTH_RESPONSE (2)" in detail
    assert "Certificate type: LSC (1)" in detail and "SUDI part: MIC (DER) (0)" in detail
    assert "SUDI part: SHA-512 signature (3)" in detail and "Hash: SHA-512 (3)" in detail
    assert "Device name: SEP001122334455" in detail
    assert "Nested value does not match" not in detail
    assert "Key size (bits): 2048" in detail and "Reason: success (1)" in detail
    fields = await _tshark(*base, "-Y", "capf", "-T", "fields", "-e", "capf.command", home=tmp_path)
    got = [int(x) for line in fields.splitlines() for x in line.split(",") if x]
    assert got == [ex.message.command for ex in exchanges]
