"""``tvs decode`` and ``tvs trace`` recognise CAPF messages (discriminator 0x55; TVS is 0x57):
every message of the capfd/capfc transcripts, as hex and as phone-console byte dumps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tvs.capf.transcript import parse_transcript
from tvs.cli import main

VECTORS = Path(__file__).parent / "vectors" / "capf"
TRANSCRIPTS = sorted(p.name for p in VECTORS.glob("*.hex"))


def console_dump(label: str, data: bytes, number: int = 3232) -> str:
    """The phone console's ``byte dump`` shape (what ``tvs.hexdump`` reads)."""
    lines = [
        f"{number:04d} DEB Nov 30 03:40:00.000000 SECUREAPP-==== {label} byte dump ====, "
        f"len = {len(data)}"
    ]
    for i in range(0, len(data), 16):
        row = " ".join(f"{b:02x}" for b in data[i : i + 16])
        lines.append(f"{number + 1 + i // 16:04d} DEB Nov 30 03:40:00.000000 SECUREAPP-{row}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_transcript_message_decodes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    for ex in parse_transcript((VECTORS / name).read_text()):
        assert main(["decode", "--json", ex.raw.hex()]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["complete"] and d["message"]["protocol"] == "capf"
        assert d["message"]["command_code"] == ex.message.command
        assert [e["tag"] for e in d["message"]["elements"]] == list(ex.message.tags)


def test_text_view_names_command_and_elements(capsys: pytest.CaptureFixture[str]) -> None:
    auth = parse_transcript((VECTORS / "certauth.hex").read_text())[1]
    assert main(["decode", auth.raw.hex()]) == 0
    out = capsys.readouterr().out
    assert "command:     AUTH_RESPONSE (2)" in out and "device name: SEP001122334455" in out
    assert "certificate: lsc C=NZ;OU=VTG;O=Lab;CN=SEP001122334455" in out
    assert "sha2 signed data: sha512 signature, 256 bytes" in out


def test_cut_short_capf_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "5501000000010008"]) == 1
    out = capsys.readouterr().out
    assert "protocol:    CAPF" in out and "TruncatedMessage" in out


def test_dumps_of_both_protocols_in_one_paste(capsys, tmp_path: Path, monkeypatch) -> None:
    capf = parse_transcript((VECTORS / "none.hex").read_text())
    tvs = bytes.fromhex("570102000000000a0000")  # a TVS header, cut short
    text = console_dump("CAPF request", capf[0].raw) + console_dump("TVS request", tvs, 4000)
    path = tmp_path / "console.txt"
    path.write_text(text)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["decode", "--json", "-"]) == 1  # the TVS one is cut short
    found = json.loads(capsys.readouterr().out)
    assert found[0]["message"]["command"] == "AUTH_REQUEST"
    assert "header" in found[1]
    assert main(["trace", "--json", str(path)]) == 0
    timeline = json.loads(capsys.readouterr().out)
    events = json.dumps(timeline)
    assert '"protocol": "capf"' in events and "AUTH_REQUEST" in events
