"""`tvs decode` / `tvs encode` and the trace hex-dump extractor on the seed's trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tvs.cli import main
from tvs.hexdump import extract_hex_dumps, parse_hex

VECTORS = Path(__file__).parent / "vectors"
SEED_QUERY = [
    "encode", "query", "--device", "CP-8861-SEPB000B4BA0AEE",
    "--subject", "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU",
    "--issuer", "CN=stormin-WIN2012-CA", "--serial", "24000000179479B8F124AC3F3B000000000017",
]


def test_extracts_the_seed_dumps() -> None:
    dumps = extract_hex_dumps((VECTORS / "seed_tvs_trace.txt").read_text())
    labels = [(d.label, d.declared_length, len(d.data)) for d in dumps]
    assert labels == [
        ("8:UNKNOWN:Incoming Phone Msg", 153, 50),
        ("Cert Type : 0", 1451, 50),
        ("PublicKey", 4, 4),
        ("Sending TLS Msg", 1480, 50),
    ]
    assert dumps[0].data == parse_hex((VECTORS / "seed_query_cert_req.first50.hex").read_text())
    assert dumps[3].data == parse_hex((VECTORS / "seed_query_cert_res.first50.hex").read_text())
    assert all(d.truncated for d in (dumps[0], dumps[1], dumps[3])) and not dumps[2].truncated


def test_decode_seed_trace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((VECTORS / "seed_tvs_trace.txt").read_text()))
    assert main(["decode", "-"]) == 0
    out = capsys.readouterr().out
    assert "QUERY_CERT_REQ (3)" in out and "request id:  1001" in out
    assert "CP-8861-SEPB000B4BA0AEE" in out and "CN=ucm11pu" in out
    assert "QUERY_CERT_RES (4)" in out and "reserved:    0xf7" in out


def test_encode_then_decode_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SEED_QUERY) == 0
    hexline = capsys.readouterr().out.strip()
    assert hexline == hexline.lower() and " " not in hexline and len(hexline) == 306
    assert hexline.startswith(
        parse_hex((VECTORS / "seed_query_cert_req.first50.hex").read_text()).hex()
    )
    assert main(["decode", hexline, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["complete"] and d["message"]["issuer"] == "CN=stormin-WIN2012-CA"
    assert d["message"]["serial"] == "24000000179479B8F124AC3F3B000000000017"


def test_encode_5_6_tags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SEED_QUERY, "--query-tags", "5,6", "--id", "7"]) == 0
    data = bytes.fromhex(capsys.readouterr().out.strip())
    assert data[4:8] == (7).to_bytes(4, "big") and b"\x06\x00\x13" in data


@pytest.mark.parametrize(("arg", "code"), [("zz", 2), ("", 2), ("5702", 1), ("58010300", 1)])
def test_decode_bad_input(arg: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", arg]) == code


def test_encode_verify_reads_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import trustme

    ca = trustme.CA()
    pem = tmp_path / "c.pem"
    pem.write_bytes(ca.cert_pem.bytes())
    device = "CP-8861-SEPB000B4BA0AEE"
    assert main(["encode", "verify", "--device", device, "--cert", str(pem)]) == 0
    assert main(["decode", capsys.readouterr().out.strip()]) == 0
    assert "VERIFY_REQUEST (1)" in capsys.readouterr().out
    assert main(["encode", "verify", "--device", "d", "--cert", str(tmp_path / "none")]) == 2
