"""The pure parts of the server: request handling and the ``cucm`` trace renderer (seed vectors)."""

from __future__ import annotations

import datetime as _dt

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from tvs.pki import LabPki
from tvs.server import CucmRenderer, handle_request
from tvs.server.cucmlog import hex_rows
from tvs.store import CertificateCache, TrustStore
from tvs.wire import (
    QueryCertRequest,
    QueryCertResponse,
    Status,
    UnknownMessage,
    VerifyRequest,
    VerifyResponse,
    encode_message,
)

# The seed's QUERY_CERT_REQ (TAC note "migrate phones between secure clusters", step 5).
SEED_REQUEST = QueryCertRequest(
    device="CP-8861-SEPB000B4BA0AEE",
    subject="CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU",
    issuer="CN=stormin-WIN2012-CA",
    serial=bytes.fromhex("24000000179479B8F124AC3F3B000000000017"),
    request_id=1001,
)
# The seed's TVS trace lines for it, as printed (first 50 bytes of the dump, then decoding).
SEED_TRACE = """\
18:01:06.345 | debug 8:UNKNOWN:Incoming Phone Msg: HEX_DUMP: Len = 153:
18:01:06.345 | debug 57 01 03 00 00 00 03 e9
18:01:06.345 | debug 00 8f 01 00 18 01 43 50
18:01:06.345 | debug 2d 38 38 36 31 2d 53 45
18:01:06.345 | debug 50 42 30 30 30 42 34 42
18:01:06.345 | debug 41 30 41 45 45 03 00 42
18:01:06.345 | debug 43 4e 3d 75 63 6d 31 31
18:01:06.345 | debug 70 75"""
SEED_DECODE = """\
18:01:06.345 | debug tvsPhoneDecodeMsg - Decoded Phone Msg:
18:01:06.345 | debug Protocol Discriminator: 57
18:01:06.345 | debug MsgType : TVS_MSG_QUERY_CERT_REQ
18:01:06.345 | debug Session Id : 0
18:01:06.345 | debug Length : 143
18:01:06.345 | debug 8:UNKNOWN:TVS CORE: Rcvd Event: TVS_EV_QUERY_CERT_REQ in State: TVS_STATE_AWAIT_REQ
18:01:06.345 | debug tvsHandleQueryCertReq
18:01:06.345 | debug tvsHandleQueryCertReq : Subject Name is: CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU
18:01:06.345 | debug tvsHandleQueryCertReq : Issuer Name is: CN=stormin-WIN2012-CA
18:01:06.345 | debug tvsHandleQueryCertReq : Serial Number is: 24000000179479B8F124AC3F3B000000000017"""  # noqa: E501
SEED_LOOKUP = """\
18:01:06.345 | debug CertificateDBCache::getCertificateInformation - Looking up the certificate cache using Unique MAP ID : 24000000179479B8F124AC3F3B000000000017CN=stormin-WIN2012-CA
18:01:06.345 | debug CertificateDBCache::getCertificateInformation - Found entry {rolecount : 2}
18:01:06.345 | debug CertificateDBCache::getCertificateInformation - {role : 0}
18:01:06.345 | debug CertificateDBCache::getCertificateInformation - {role : 3}"""  # noqa: E501


def _render(event: str, **kw: object) -> str:
    clock = lambda: _dt.datetime(2016, 11, 29, 18, 1, 6, 345_000)  # noqa: E731
    return CucmRenderer(clock)(None, "debug", {"event": event, "conn": 8, **kw})


def test_cucm_rendering_matches_the_seed_trace() -> None:
    raw = encode_message(SEED_REQUEST)
    assert len(raw) == 153
    text = _render("message received", peer="192.168.11.100:51234", _raw=raw, _message=SEED_REQUEST)
    assert text.startswith(SEED_TRACE)  # the seed shows 50 of the 153 bytes; we print all
    assert SEED_DECODE in text
    lookup = _render("cache lookup", kind="serial+issuer", key=SEED_REQUEST.cache_key, roles=[0, 3])
    assert lookup == SEED_LOOKUP


def test_cucm_rendering_of_connection_and_response() -> None:
    accepted = _render("connection accepted", peer="192.168.11.100:4000", attempted=7, accepted=7)
    assert accepted.splitlines()[:2] == [
        "18:01:06.345 | debug Accepted TCP connection from socket 0x00000008, fd = 8",
        "18:01:06.345 | debug Total Session attempted = 7 accepted = 7",
    ]
    shake = _render("handshake done", peer="192.168.11.100:4000", cipher="AES256-SHA")
    assert (
        "18:01:06.345 | debug 192.168.11.100: tvsSSLHandShake Session ciphers - AES256-SHA" in shake
    )
    resp = QueryCertResponse(
        Status.VALID, certificate=b"\x30" * 1451, roles=(0, 3), ttl=86400, request_id=1001
    )
    raw = encode_message(resp)
    sent = _render(
        "response sent", peer="192.168.11.100:4000", _raw=raw, _message=resp
    ).splitlines()
    assert sent[0] == "18:01:06.345 | debug 8:UNKNOWN:Sending QUERY_CERT_RES msg"
    assert "18:01:06.345 | debug Length : 1470" in sent
    assert "18:01:06.345 | debug PublicKey : HEX_DUMP: Len = 4:" in sent
    assert "18:01:06.345 | debug 00 01 51 80" in sent  # the TTL, labelled as CUCM does
    i = sent.index("18:01:06.345 | debug Sending TLS Msg .. HEX_DUMP: Len = 1480:")
    assert sent[i + 1 : i + 3] == [
        "18:01:06.345 | debug 57 01 04 f7 00 00 03 e9",
        "18:01:06.345 | debug 05 be 07 00 01 00 02 05",
    ]


def test_cucm_renderer_drops_the_summary_line_and_renders_others_generically() -> None:
    with pytest.raises(structlog.DropEvent):
        _render("request", status="VALID")
    line = _render("bad request", reason="BadDiscriminator: 0x58")
    assert line == "18:01:06.345 | debug 8:UNKNOWN:bad request reason=BadDiscriminator: 0x58"


def test_hex_rows() -> None:
    assert hex_rows(bytes(range(10))) == ["00 01 02 03 04 05 06 07", "08 09"]
    assert hex_rows(b"") == []


# --- handle_request ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(
    tmp_path_factory: pytest.TempPathFactory, lab_pki_dir: object, lab_pki: LabPki
) -> CertificateCache:
    store = TrustStore.init_from_pki(
        tmp_path_factory.mktemp("s") / "store", f"{lab_pki_dir}/source"
    )
    return store.load_cache()


def test_query_found_and_not_found(cache: CertificateCache, lab_pki: LabPki) -> None:
    cm = lab_pki.clusters["source"].nodes["ucm105pub"].callmanager.cert
    req = QueryCertRequest("CP-8861-SEP0", cm.subject, cm.issuer, cm.serial, request_id=9)
    result = handle_request(req, cache)
    assert result.response == QueryCertResponse(
        Status.VALID, certificate=cm.der, roles=(0, 2), ttl=86400, request_id=9
    )
    assert result.lookup is not None and result.lookup.key == cm.serial_hex + cm.issuer
    assert result.status == Status.VALID
    miss = handle_request(SEED_REQUEST, cache)
    assert miss.response == QueryCertResponse(Status.INVALID, request_id=1001)
    assert miss.lookup is not None and miss.lookup.entry is None


def test_verify_found_and_not_found(cache: CertificateCache, lab_pki: LabPki) -> None:
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs.cert
    assert handle_request(
        VerifyRequest("d", tvs.der, request_id=3), cache
    ).response == VerifyResponse(Status.VALID, roles=(21,), ttl=86400, request_id=3)
    assert handle_request(VerifyRequest("d", b"junk"), cache).response == VerifyResponse(
        Status.INVALID
    )


@pytest.mark.parametrize(
    "msg", [QueryCertResponse(Status.VALID), VerifyResponse(Status.INVALID), UnknownMessage(99, ())]
)
def test_non_requests_are_not_answered(cache: CertificateCache, msg: object) -> None:
    result = handle_request(msg, cache)  # type: ignore[arg-type]
    assert result.response is None and result.error and "not a request" in result.error


@given(issuer=st.text(max_size=80), serial=st.binary(max_size=40), rid=st.integers(0, 2**32 - 1))
def test_any_query_gets_an_answer(
    cache: CertificateCache, issuer: str, serial: bytes, rid: int
) -> None:
    result = handle_request(QueryCertRequest("d", "CN=x", issuer, serial, request_id=rid), cache)
    assert isinstance(result.response, QueryCertResponse)
    assert result.response.request_id == rid
