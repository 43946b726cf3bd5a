"""The trace reader on the seed's CUCM TVS trace and phone console excerpts, and `tvs trace`."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvs.cli import main
from tvs.hexdump import parse_hex
from tvs.trace import Kind, Source, Timeline, build_timeline, read_timeline
from tvs.wire import Header, QueryCertRequest, QueryCertResponse, Status, encode_message

VECTORS = Path(__file__).parent / "vectors"
SEED = Path(__file__).parents[2] / "shared" / "seeds" / "000_bfaedc240fd442fc.txt"
TVS_TEXT = (VECTORS / "seed_tvs_trace.txt").read_text()
PHONE_TEXT = (VECTORS / "seed_phone_console.txt").read_text()
HANDSHAKE_TEXT = (VECTORS / "seed_tvs_handshake.txt").read_text()
REQ50 = parse_hex((VECTORS / "seed_query_cert_req.first50.hex").read_text())
RES50 = parse_hex((VECTORS / "seed_query_cert_res.first50.hex").read_text())
SUBJECT = "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU"
SERIAL = "24000000179479B8F124AC3F3B000000000017"
_PREFIX = re.compile(
    r" (?=\d{2}:\d{2}:\d{2}\.\d{3} \|)|"
    r" (?=\d{4} (?:DEB|INF|NOT|WRN|ERR) [A-Z][a-z]{2} )"
)


def with_line_breaks(text: str) -> str:
    """The same log with a line break before every record, as CUCM and the phone write it."""
    return _PREFIX.sub("\n", text)


def kinds(t: Timeline, source: Source | None = None) -> list[str]:
    return [e.kind.value for e in t.events if source is None or e.source == source]


def the(t: Timeline, kind: Kind, source: Source) -> object:
    found = [e for e in t.events if e.kind == kind and e.source == source]
    assert len(found) == 1, (kind, source, kinds(t))
    return found[0]


# --- the seed's TVS trace (steps 5, 6) ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [TVS_TEXT, with_line_breaks(TVS_TEXT), TVS_TEXT + " trailing words 57 01", "\r\n" + TVS_TEXT],
    ids=["as-in-seed", "line-breaks", "trailing", "crlf"],
)
def test_tvs_trace_request_and_response(text: str) -> None:
    t = read_timeline(text, "tvs.log")
    assert kinds(t) == ["request", "lookup", "response"]
    req, lookup, res = t.events
    # the request: its known bytes exactly, cut short, and the signer from the decoded lines
    assert req.message is not None and req.message.data == REQ50
    assert req.message.declared_length == 153 and req.message.truncated
    assert req.fields["type"] == "QUERY_CERT_REQ" and req.fields["request_id"] == 1001
    assert req.fields["device"] == "CP-8861-SEPB000B4BA0AEE"
    assert req.fields["subject"] == SUBJECT
    assert req.fields["issuer"] == "CN=stormin-WIN2012-CA" and req.fields["serial"] == SERIAL
    assert req.fields["cut_in"] == "subject" and req.fields["cucm_type"] == "TVS_MSG_QUERY_CERT_REQ"
    # the lookup and the response: header exactly, roles from the lookup, TTL from its dump
    assert lookup.fields["found"] is True and lookup.fields["roles"] == [0, 3]
    assert lookup.fields["key"] == SERIAL + "CN=stormin-WIN2012-CA"
    assert res.message is not None and res.message.data == RES50
    assert Header.decode(res.message.data[:10]) == Header(0x57, 1, 4, 0xF7, 1001, 1470)
    assert res.fields["status"] == "VALID" and res.fields["roles"] == [0, 3]
    assert (
        res.fields["role_names"] == ["SAST", "TFTP"] and res.fields["roles_from"] == "cache lookup"
    )
    assert res.fields["ttl"] == 86400 and res.fields["certificate_length"] == 1451
    assert "SAST, TFTP" in res.summary and "TTL 86400" in res.summary
    assert len(t.messages) == 2 and all(e.message.truncated for e in t.messages)  # type: ignore[union-attr]


def test_tvs_handshake_excerpt() -> None:
    t = read_timeline(HANDSHAKE_TEXT)
    assert kinds(t) == ["connection", "handshake"]
    assert t.events[0].fields == {"fd": 8, "peer": "192.168.11.100"}
    assert t.events[1].fields["cipher"] == "AES256-SHA"
    assert t.events[0].time == "18:01:05.333"


# --- the seed's phone console (steps 1, 2, 4, 7, 8, 9) --------------------------------------

PHONE_KINDS = [
    "file-request",
    "tvs-connect",
    "tvs-cert-check",
    "error",
    "handshake",
    "request",
    "response",
    "tvs-cache",
    "trust-list",
    "file-request",
    "file-done",
    "trust-list",
]


@pytest.mark.parametrize("text", [PHONE_TEXT, with_line_breaks(PHONE_TEXT)], ids=["seed", "lines"])
def test_phone_console(text: str) -> None:
    t = read_timeline(text)
    assert kinds(t) == PHONE_KINDS
    ev = t.events
    assert ev[0].fields == {"file": "CTLSEPB000B4BA0AEE.tlv", "dest": "/tmp/CTLFile.tlv"}
    assert ev[0].time == "Nov 29 06:33:59.033132"
    assert ev[1].fields == {"address": "192.168.11.32", "port": 2445}
    assert ev[2].fields == {"role": 21, "valid": True}
    assert ev[5].fields["length"] == 153 and ev[5].fields["operation"] == "Query Certificate"
    assert ev[5].message is not None and ev[5].message.data == b"" and ev[5].message.truncated
    assert ev[6].fields["length"] == 1480
    assert ev[7].fields == {"ttl": 86400}
    assert ev[8].fields["file"] == "CTLSEPB000B4BA0AEE.tlv" and ev[8].fields["ok"] is True
    assert ev[8].fields["verified"] and ev[8].fields["parse"] == "CTL_SUCCESS"
    assert ev[9].fields["file"] == "ITLSEPB000B4BA0AEE.tlv"
    assert ev[10].fields["server"] == "192.168.11.51" and ev[10].fields["status"] == 100
    assert ev[11].fields["file"] == "ITLSEPB000B4BA0AEE.tlv" and ev[11].fields["updated"]
    assert t.messages == ()  # the console prints lengths, not bytes
    assert t.stopped().startswith("ended at step 12")


def test_phone_and_tvs_interleave_by_protocol_step() -> None:
    """Clocks differ (06:33 vs 18:01), so the order comes from the exchange itself."""
    t = build_timeline(
        [("phone.log", PHONE_TEXT), ("tvs-3.log", HANDSHAKE_TEXT), ("tvs.log", TVS_TEXT)]
    )
    order = [(e.source.value, e.kind.value) for e in t.events]
    pos = {k: order.index(k) for k in order}
    assert pos[("phone", "tvs-connect")] < pos[("tvs", "connection")]
    assert pos[("tvs", "handshake")] < pos[("phone", "handshake")]
    assert pos[("phone", "request")] < pos[("tvs", "request")] < pos[("tvs", "lookup")]
    assert pos[("tvs", "response")] < pos[("phone", "response")] < pos[("phone", "tvs-cache")]
    assert next(e.file for e in t.events if e.source == Source.TVS) == "tvs-3.log"
    assert t.files == ("phone.log", "tvs-3.log", "tvs.log")
    assert len(t.events) == len(PHONE_KINDS) + 5


def test_where_the_sequence_stopped() -> None:
    cut = TVS_TEXT[: TVS_TEXT.index("Sending QUERY_CERT_RES")]
    t = read_timeline(cut)
    assert kinds(t) == ["request", "lookup"]
    assert "stopped after step 1" in t.stopped() and "no response" in t.stopped()
    failed = read_timeline(
        "10:00:00.001 | debug 1:UNKNOWN:handshake failed reason=TLS: SSLV3_ALERT_BAD_CERTIFICATE"
    )
    assert kinds(failed) == ["handshake-failed"]
    assert failed.stopped() == (
        "failed at step 1: tvs: TLS handshake failed: TLS: SSLV3_ALERT_BAD_CERTIFICATE"
    )
    assert read_timeline("nothing here").stopped() == "no events recognised"


def test_not_found_lookup_and_status_lines() -> None:
    text = (
        "12:00:00.000 | debug CertificateDBCache::getCertificateInformation - Looking up the "
        "certificate cache using Unique MAP ID : 01CN=x "
        "12:00:00.000 | debug CertificateDBCache::getCertificateInformation - Entry not found "
        "4 NOT Jan  2 10:00:00.000001 SECUREAPP-Trust List update failed"
    )
    t = read_timeline(text)
    assert kinds(t) == ["lookup", "status"]
    assert t.events[0].fields == {"by": "serial+issuer", "key": "01CN=x", "found": False}
    assert t.events[1].fields == {"text": "Trust List update failed", "ok": False}
    assert t.stopped().startswith("failed at step")


def _render(event: str, **fields: object) -> str:
    from tvs.server.cucmlog import CucmRenderer

    clock = dt.datetime(2026, 1, 1, 18, 1, 6, 345000)
    return CucmRenderer(lambda: clock)(None, "debug", {"event": event, **fields})


def test_reads_the_servers_cucm_log_with_whole_dumps(lab_pki: object) -> None:
    """Our server's ``--log-format cucm`` prints whole dumps: the reader decodes them fully."""
    cert = lab_pki.clusters["destination"].publisher.callmanager.cert  # type: ignore[attr-defined]
    req = QueryCertRequest(
        device="CP-8861-SEPB000B4BA0AEE",
        subject=cert.subject,
        issuer=cert.issuer,
        serial=cert.serial,
        request_id=1001,
    )
    res = QueryCertResponse(
        status=Status.VALID, certificate=cert.der, roles=(0, 3), ttl=86400, request_id=1001
    )
    raw_req, raw_res = encode_message(req), encode_message(res)
    peer = "127.0.0.1:40000"
    text = "\n".join(
        [
            _render("connection accepted", conn=8, peer=peer, attempted=1, accepted=1),
            _render("handshake done", conn=8, peer=peer, cipher="AES256-SHA"),
            _render("message received", conn=8, peer=peer, _raw=raw_req, _message=req),
            _render("cache lookup", conn=8, kind="serial+issuer", key=req.cache_key, roles=[0, 3]),
            _render("response sent", conn=8, peer=peer, _raw=raw_res, _message=res),
        ]
    )
    t = read_timeline(text)
    assert kinds(t) == ["connection", "handshake", "request", "lookup", "response"]
    request, response = t.events[2], t.events[4]
    assert request.message is not None and request.message.data == raw_req
    assert not request.message.truncated and request.message.inspection is not None
    assert request.message.inspection.message == req
    assert request.fields["issuer"] == cert.issuer and request.fields["serial"] == req.serial_hex
    assert response.message is not None and response.message.inspection is not None
    assert response.message.inspection.message == res
    assert response.fields["roles"] == [0, 3] and "roles_from" not in response.fields
    assert response.fields["certificate_subject"] == cert.subject


# --- robustness ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("0123456789abcdef :|.-=[]{}\nDEBNOTINFdebug")), max_size=400
    )
)
def test_any_text_gives_a_timeline(text: str) -> None:
    t = read_timeline(text)
    assert isinstance(t.stopped(), str)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(TVS_TEXT)), st.integers(0, len(PHONE_TEXT)))
def test_any_cut_of_the_seed_excerpts_reads(a: int, b: int) -> None:
    t = build_timeline([("tvs", TVS_TEXT[:a]), ("phone", PHONE_TEXT[:b])])
    for ev in t.events:
        if ev.message is not None and ev.message.data:
            # text cut inside a row prefix ("... 42 18" of "18:01:06.345") ends in what reads
            # as one more byte: all bytes but the last are the seed's
            known = ev.message.data[:-1]
            assert REQ50.startswith(known) or RES50.startswith(known)
            assert ev.message.truncated


# --- the command --------------------------------------------------------------------------


def test_cli_trace_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "phone.log").write_text(PHONE_TEXT)
    (tmp_path / "tvs.log").write_text(TVS_TEXT)
    assert main(["trace", str(tmp_path / "phone.log"), str(tmp_path / "tvs.log")]) == 0
    out = capsys.readouterr().out
    assert "phone requests CTLSEPB000B4BA0AEE.tlv" in out
    assert f"signer {SUBJECT}" in out and "VALID, roles SAST, TFTP, TTL 86400 s" in out
    assert "cut: 10 of 66 bytes" in out  # the request dump ends inside the subject
    assert out.rstrip().splitlines()[-1].startswith("ended at step")
    # a directory reads every file in it, together
    assert main(["trace", str(tmp_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["messages"] == 2 and len(d["events"]) == len(PHONE_KINDS) + 3


def test_cli_trace_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "diff"  # a file named like the subcommand is read as ./diff
    path.write_text(TVS_TEXT)
    assert main(["trace", "--json", str(path)]) == 0
    d = json.loads(capsys.readouterr().out)
    req = d["events"][0]
    assert req["message"]["hex"] == REQ50.hex() and req["message"]["declared_length"] == 153
    assert req["message"]["header"]["request_id"] == 1001
    assert d["events"][2]["message"]["header"]["reserved"] == 0xF7
    (tmp_path / "empty.txt").write_text("no trace here\n")
    assert main(["trace", str(tmp_path / "empty.txt")]) == 1
    assert main(["trace", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err


@pytest.mark.skipif(not SEED.exists(), reason="the shared seed file is not here")
def test_cli_trace_the_seed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(SEED), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    messages = [e for e in d["events"] if e.get("message", {}).get("present")]
    assert [(m["source"], m["kind"]) for m in messages] == [("tvs", "request"), ("tvs", "response")]
    assert messages[0]["message"]["hex"] == REQ50.hex()
    assert messages[1]["message"]["hex"] == RES50.hex()
    assert d["messages"] == 2 and d["stopped"].startswith("ended at step")


def test_cli_trace_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(with_line_breaks(PHONE_TEXT)))
    assert main(["trace", "-", "--brief"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<stdin>: 12 events, 0 messages")
    assert "phone caches the TVS answer for 24 h" in out and "cut:" not in out
    assert main(["trace"]) == 2
    assert "give FILE" in capsys.readouterr().err
