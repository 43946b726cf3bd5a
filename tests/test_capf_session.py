"""CAPF session machines: every sequence of section 8 between our client and our server in
memory (messages through bytes), the legal-input tables, and our client against capfd's
transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.capf_support import (
    capf_identity,
    make_authority,
    manufacturing_ca,
    mic_for,
    run_pair,
    vector_identity,
)
from tvs.capf import CapfProtocolError, Command, Message, Reason
from tvs.capf.client import ClientSession, Credential
from tvs.capf.messages import CertificateBlob, CertType
from tvs.capf.session import (
    CLIENT_EXPECTS,
    CLIENT_MAY_SEND,
    SERVER_EXPECTS,
    SERVER_MAY_SEND,
    InstallCertificate,
    KeySpec,
    ServerSession,
    State,
)
from tvs.capf.transcript import parse_transcript
from tvs.pki.issue import issue_lsc

DEVICE = "SEP001122334455"
MAC = "001122334455"


@pytest.fixture
def capf():  # type: ignore[no-untyped-def]
    return capf_identity()


@pytest.fixture(scope="module")
def mfg():  # type: ignore[no-untyped-def]
    return manufacturing_ca()


@pytest.fixture
def authority(tmp_path: Path, capf, mfg):  # type: ignore[no-untyped-def]
    auth = make_authority(tmp_path / "capf.sqlite3", capf, (mfg.cert,))
    yield auth
    auth.db.close()


def commands(log: list[tuple[str, Message]]) -> list[str]:
    return [f"{d} {m.name}" for d, m in log]


def check_tags(log: list[tuple[str, Message]]) -> None:
    for direction, msg in log:
        allowed = SERVER_MAY_SEND if direction == "S>C" else CLIENT_MAY_SEND
        assert set(msg.tags) <= allowed, (direction, msg.name, msg.tags)


@pytest.mark.parametrize("key", ["rsa-2048", "ec-p256", "ec-p384", "ec-p521"])
def test_install_by_null_string(authority, key: str) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", auth_mode="null", key=key)
    server = ServerSession(1, authority)
    client = ClientSession(DEVICE)
    log = run_pair(server, client)
    check_tags(log)
    assert commands(log) == [
        "S>C AUTH_REQUEST",
        "C>S AUTH_RESPONSE",
        "S>C KEY_GENERATE_REQUEST",
        "C>S REQUEST_IN_PROGRESS",
        "C>S KEY_GENERATE_RESPONSE",
        "S>C STORE_CERTIFICATE_REQUEST",
        "C>S STORE_CERTIFICATE_RESPONSE",
        "S>C END_SESSION",
    ]
    result = client.result
    assert result is not None and result.result == "installed" and result.reason == 1
    cert = x509.load_der_x509_certificate(result.certificate)  # type: ignore[arg-type]
    cert.verify_directly_issued_by(authority.capf.cert.x509)
    assert cert.subject.rfc4514_string().startswith("CN=CP-8861-SEP001122334455")
    assert KeySpec.parse(key).name == key
    pub = cert.public_key()
    if key.startswith("ec"):
        assert isinstance(pub, ec.EllipticCurvePublicKey)
    else:
        assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048
    stored = authority.db.certificate(DEVICE)
    assert stored is not None and stored.der == result.certificate
    op = authority.db.get(DEVICE)
    assert op.operation == "none" and op.last_result == "installed"  # type: ignore[union-attr]
    # the next session finds nothing pending
    again = ClientSession(DEVICE)
    run_pair(ServerSession(2, authority), again)
    assert again.result is not None and again.result.result == "nothing"


def test_install_by_auth_string_and_wrong_string(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", auth_mode="string", auth_string="4321")
    wrong = ClientSession(DEVICE, password="1234")
    log = run_pair(ServerSession(1, authority), wrong)
    assert commands(log) == ["S>C AUTH_REQUEST", "C>S AUTH_RESPONSE", "S>C END_SESSION"]
    assert wrong.result is not None and wrong.result.result == "refused"
    assert wrong.result.reason == Reason.FAILURE
    assert authority.db.certificate(DEVICE) is None
    assert authority.db.get(DEVICE).last_why == "wrong auth string"
    right = ClientSession(DEVICE, password="4321")
    run_pair(ServerSession(2, authority), right)
    assert right.result is not None and right.result.result == "installed"


def test_install_by_lsc(authority, capf) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", auth_mode="lsc", key="ec-p256")
    old = issue_lsc(capf, mac=MAC, model="7841")
    client = ClientSession(DEVICE, credential=Credential(CertType.LSC, old.cert.der, old.key))
    log = run_pair(ServerSession(1, authority), client)
    check_tags(log)
    auth = log[1][1]
    assert auth.signed_data and auth.sha2_signed_data and auth.certificate
    assert client.result is not None and client.result.result == "installed"
    new = x509.load_der_x509_certificate(client.result.certificate)  # type: ignore[arg-type]
    assert "CP-7841-SEP001122334455" in new.subject.rfc4514_string()


def test_install_by_mic(authority, mfg) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", auth_mode="mic")
    mic = mic_for(mfg, MAC)
    cred = Credential(CertType.MIC, mic.cert.der, mic.key)
    client = ClientSession(DEVICE, credential=cred, sudi=cred)
    log = run_pair(ServerSession(7, authority), client)
    check_tags(log)
    assert log[1][1].sudi_data is not None
    assert client.result is not None and client.result.result == "installed"


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("untrusted-lsc", "not issued by a trusted CAPF"),
        ("untrusted-mic", "not issued by a trusted manufacturing root"),
        ("other-device", "another device"),
        ("bad-signature", "bad signature"),
        ("no-certificate", "without a certificate"),
    ],
)
def test_certificate_auth_refusals(authority, case: str, why: str) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", auth_mode="lsc")
    stranger = vector_identity("SEP001122334455-lsc.pem")  # issued by capfd's CAPF, trusted here
    other_mfg = manufacturing_ca()
    if case == "untrusted-lsc":
        ours = issue_lsc(manufacturing_ca(), mac=MAC)
        cred = Credential(CertType.LSC, ours.cert.der, ours.key)
    elif case == "untrusted-mic":
        mic = mic_for(other_mfg, MAC)
        cred = Credential(CertType.MIC, mic.cert.der, mic.key)
    elif case == "other-device":
        other = issue_lsc(authority.capf, mac="00AABBCCDDEE")
        cred = Credential(CertType.LSC, other.cert.der, other.key)
    elif case == "bad-signature":
        wrong_key = ec.generate_private_key(ec.SECP256R1())
        cred = Credential(CertType.LSC, stranger.cert.der, wrong_key)
    else:
        cred = None
    client = ClientSession(DEVICE, credential=cred)
    log = run_pair(ServerSession(1, authority), client)
    assert log[-1][1].reason == Reason.FAILURE
    assert client.result is not None and client.result.result == "refused"
    op = authority.db.get(DEVICE)
    assert op is not None and why in (op.last_why or "") and op.operation == "install"
    assert authority.db.certificate(DEVICE) is None


def test_fetch_and_delete(authority, capf) -> None:  # type: ignore[no-untyped-def]
    lsc = issue_lsc(capf, mac=MAC)
    authority.db.schedule([DEVICE], operation="fetch")
    client = ClientSession(DEVICE, current_lsc=lsc.cert.der)
    log = run_pair(ServerSession(1, authority), client)
    assert commands(log)[2:] == [
        "S>C FETCH_CERTIFICATE_REQUEST",
        "C>S FETCH_CERTIFICATE_RESPONSE",
        "S>C END_SESSION",
    ]
    assert log[-1][1].reason == Reason.NO_ACTION
    assert client.result is not None and client.result.result == "fetched"
    fetched = authority.db.certificate(DEVICE, "fetched")
    assert fetched is not None and fetched.der == lsc.cert.der

    authority.db.schedule([DEVICE], operation="delete")
    client = ClientSession(DEVICE, current_lsc=lsc.cert.der)
    log = run_pair(ServerSession(2, authority), client)
    assert commands(log)[2:] == [
        "S>C DELETE_CERTIFICATE_REQUEST",
        "C>S DELETE_CERTIFICATE_RESPONSE",
        "S>C END_SESSION",
    ]
    assert log[3][1].reason == Reason.SUCCESS and log[-1][1].reason == Reason.SUCCESS
    assert client.deleted and client.current_lsc is None
    assert client.result is not None and client.result.result == "deleted"


def test_fetch_without_certificate(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="fetch")
    client = ClientSession(DEVICE)
    log = run_pair(ServerSession(1, authority), client)
    assert log[3][1].reason == Reason.FAILURE
    assert authority.db.certificate(DEVICE, "fetched") is None


def test_nothing_pending_and_unknown_device(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="none")
    client = ClientSession(DEVICE)
    log = run_pair(ServerSession(1, authority), client)
    assert commands(log) == ["S>C AUTH_REQUEST", "C>S AUTH_RESPONSE", "S>C END_SESSION"]
    assert log[-1][1].reason == Reason.NO_ACTION
    assert client.result is not None and client.result.result == "nothing"
    stranger = ClientSession("SEP00AABBCCDDEE")
    log = run_pair(ServerSession(2, authority), stranger)
    assert log[-1][1].reason == Reason.UNKNOWN_DEVICE
    assert stranger.result is not None and stranger.result.result == "refused"
    assert authority.db.get("SEP00AABBCCDDEE") is None


def test_expired_deadline_is_nothing_pending(authority) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    authority.db.schedule([DEVICE], operation="install", deadline=past)
    client = ClientSession(DEVICE)
    log = run_pair(ServerSession(1, authority), client)
    assert log[-1][1].reason == Reason.NO_ACTION


@pytest.mark.parametrize("version", [2, 3])
def test_client_answers_the_server_version_and_server_accepts_2_or_3(
    authority, version: int
) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", key="ec-p256")
    server = ServerSession(1, authority, version=version)
    client = ClientSession(DEVICE)
    log = run_pair(server, client)
    assert log[1][1].version == version
    assert client.result is not None and client.result.result == "installed"


def test_server_refuses_unknown_client_version(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install")
    server = ServerSession(1, authority)
    server.start()
    out = server.receive(
        Message.build(
            Command.AUTH_RESPONSE, 1, reason=1, version=9, password="", device_name=DEVICE
        )
    )
    assert [m.name for m in out] == ["END_SESSION"] and out[0].reason == Reason.FAILURE
    assert server.done and server.outcome is not None and "version 9" in server.outcome.why


def test_illegal_messages_per_state(authority) -> None:  # type: ignore[no-untyped-def]
    for state, legal in SERVER_EXPECTS.items():
        assert legal and state is not State.CLOSED
    server = ServerSession(1, authority)
    server.start()
    with pytest.raises(CapfProtocolError) as info:
        server.receive(Message.build(Command.KEY_GENERATE_RESPONSE, 1, public_key=b"x"))
    assert info.value.reason == "unexpected-message"
    assert server.done and server.pending_end is not None
    assert server.pending_end.name == "END_SESSION"
    with pytest.raises(CapfProtocolError):
        server.receive(Message.build(Command.AUTH_RESPONSE, 1))
    # a wrong session id is refused too
    other = ServerSession(5, authority)
    other.start()
    with pytest.raises(CapfProtocolError):
        other.receive(Message.build(Command.AUTH_RESPONSE, 6, reason=1, device_name=DEVICE))
    # the client: a command the table does not allow in its state
    client = ClientSession(DEVICE)
    assert Command.KEY_GENERATE_REQUEST not in CLIENT_EXPECTS[State.AWAIT_AUTH]
    with pytest.raises(CapfProtocolError):
        client.receive(Message.build(Command.KEY_GENERATE_REQUEST, 1, key_size=2048))
    with pytest.raises(CapfProtocolError):
        client.provide_key(None)


def test_second_request_in_progress_ends_the_session(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install")
    server = ServerSession(1, authority)
    server.start()
    server.receive(Message.build(Command.AUTH_RESPONSE, 1, reason=1, version=3, device_name=DEVICE))
    assert server.receive(Message(Command.REQUEST_IN_PROGRESS, 1)) == []
    with pytest.raises(CapfProtocolError):
        server.receive(Message(Command.REQUEST_IN_PROGRESS, 1))


def test_server_refuses_a_key_it_did_not_ask_for(authority) -> None:  # type: ignore[no-untyped-def]
    authority.db.schedule([DEVICE], operation="install", key="rsa-2048")
    client = ClientSession(DEVICE)
    log = run_pair(
        ServerSession(1, authority),
        client,
        keygen=lambda spec: ec.generate_private_key(ec.SECP256R1()),
    )
    assert log[-1][1].reason == Reason.FAILURE
    assert "asked for rsa-2048" in (authority.db.get(DEVICE).last_why or "")


def test_key_spec_parse() -> None:
    assert KeySpec.parse("RSA-4096").key_size == 4096
    assert KeySpec.parse("ec-p521").name == "ec-p521"
    with pytest.raises(ValueError):
        KeySpec.parse("dsa-1024")


# -- our client against capfd's transcripts ------------------------------------------------

VECTORS = Path(__file__).parent / "vectors" / "capf"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("none.hex", {"device_name": "SEP001122334442"}),
        ("delete.hex", {"device_name": "SEP001122334466"}),
        ("fetch.hex", {"device_name": "SEP0011223344AA"}),
        ("ec384.hex", {"device_name": "SEP0011223344BB"}),
        ("ec256_pw.hex", {"device_name": "SEP0011223344CC", "password": "4321"}),
        ("certauth.hex", {"device_name": DEVICE}),
        ("ec_certauth.hex", {"device_name": "SEP0011223344CC"}),
    ],
)
def test_our_client_against_capfd_transcripts(name: str, kwargs: dict[str, str]) -> None:
    exchanges = parse_transcript((VECTORS / name).read_text())
    theirs_c2s = [ex.message for ex in exchanges if ex.direction == "C>S"]
    auth = theirs_c2s[0]
    kwargs = dict(kwargs)
    kwargs["device_name"] = auth.device_name or kwargs["device_name"]
    extra: dict[str, object] = {}
    if name == "fetch.hex":
        fetched = theirs_c2s[1].certificate
        assert fetched is not None
        extra["current_lsc"] = fetched.der
    if name == "certauth.hex":
        lsc = vector_identity("SEP001122334455-lsc.pem")
        cred = Credential(CertType.LSC, lsc.cert.der, lsc.key)
        extra.update(credential=cred, sudi=cred)
    if name == "ec_certauth.hex":
        lsc = vector_identity("SEP0011223344CC-ec-lsc.pem")
        sudi = vector_identity("sudi-for-ec-certauth.pem")
        extra.update(
            credential=Credential(CertType.LSC, lsc.cert.der, lsc.key),
            sudi=Credential(CertType.MIC, sudi.cert.der, sudi.key),
        )
    client = ClientSession(kwargs.pop("device_name"), **kwargs, **extra)  # type: ignore[arg-type]
    ours: list[Message] = []
    pending_key = None
    for ex in exchanges:
        if ex.direction != "S>C":
            continue
        ours += client.receive(ex.message)
        if client.key_request is not None:
            pending_key = client.key_request
            # the issued certificate's key is capfc's: hand the client a stand-in it will
            # not match, so STORE answers are compared on the capfd side only
            from tvs.capf.client import generate_key

            ours += client.provide_key(generate_key(client.key_request))
    assert client.done
    assert [m.name for m in ours] == [m.name for m in theirs_c2s]
    for mine, theirs in zip(ours, theirs_c2s, strict=True):
        if mine.command == Command.KEY_GENERATE_RESPONSE:
            assert pending_key is not None
            continue  # a fresh key each time
        if mine.command == Command.STORE_CERTIFICATE_RESPONSE:
            assert mine.reason == Reason.FAILURE  # not our key: we refuse to store it
            continue
        if mine.command == Command.AUTH_RESPONSE and name == "ec_certauth.hex":
            # ECDSA is randomised: same elements in the same order, same everything else
            assert mine.tags == theirs.tags
            assert mine.certificate == theirs.certificate and mine.sudi_data == theirs.sudi_data
            continue
        assert mine.encode() == theirs.encode(), mine.name


# -- properties: whatever a peer sends, a machine answers or raises its protocol error -------

_commands = st.sampled_from([int(c) for c in Command] + [0, 99, 255])
_fields = st.fixed_dictionaries(
    {},
    optional={
        "reason": st.integers(0, 9),
        "version": st.integers(0, 4),
        "device_name": st.sampled_from([DEVICE, "SEP00AABBCCDDEE", ""]),
        "password": st.sampled_from(["", "4321", "1"]),
        "public_key": st.binary(max_size=40),
        "key_size": st.integers(0, 0xFFFF),
        "key_type": st.integers(0, 3),
        "curve": st.integers(0, 4),
        "certificate": st.builds(CertificateBlob, st.integers(0, 3), st.binary(max_size=40)),
        "signed_data": st.binary(max_size=20),
    },
)
_messages = st.lists(st.tuples(_commands, _fields), max_size=8)


class _NullPolicy:
    """A policy that installs for everyone and issues garbage: the machine must cope."""

    def __init__(self) -> None:
        self.outcomes: list[object] = []

    def authorize(self, attempt: object) -> object:
        return InstallCertificate(KeySpec.parse("ec-p256"))

    def issue(self, attempt: object, key: object, public_key_der: bytes) -> bytes:
        raise ValueError("no")

    def completed(self, outcome: object) -> None:
        self.outcomes.append(outcome)


@settings(max_examples=200, deadline=None)
@given(_messages)
def test_server_session_never_crashes(messages: list[tuple[int, dict[str, object]]]) -> None:
    policy = _NullPolicy()
    server = ServerSession(1, policy)  # type: ignore[arg-type]
    server.start()
    for command, fields in messages:
        try:
            out = server.receive(Message.build(command, 1, **fields))
        except CapfProtocolError as exc:
            assert exc.reason
            break
        for m in out:
            assert set(m.tags) <= SERVER_MAY_SEND
        if server.done:
            break
    if server.done:
        assert len(policy.outcomes) == 1  # one outcome, one log line


@settings(max_examples=200, deadline=None)
@given(_messages)
def test_client_session_never_crashes(messages: list[tuple[int, dict[str, object]]]) -> None:
    client = ClientSession(DEVICE, current_lsc=b"der")
    for command, fields in messages:
        try:
            out = client.receive(Message.build(command, 1, **fields))
            if client.key_request is not None:
                out += client.provide_key(ec.generate_private_key(ec.SECP256R1()))
        except CapfProtocolError as exc:
            assert exc.reason
            break
        for m in out:
            assert set(m.tags) <= CLIENT_MAY_SEND
        if client.done:
            assert client.result is not None
            break


# -- our server against capfc's messages ---------------------------------------------------

_SCHEDULES: dict[str, dict[str, str]] = {
    "none.hex": {"operation": "none"},
    "delete.hex": {"operation": "delete"},
    "fetch.hex": {"operation": "fetch"},
    "ec384.hex": {"operation": "install", "key": "ec-p384"},
    "ec256_pw.hex": {
        "operation": "install",
        "auth_mode": "string",
        "auth_string": "4321",
        "key": "ec-p256",
    },
    "certauth.hex": {"operation": "install", "auth_mode": "lsc", "key": "rsa-2048"},
    "ec_certauth.hex": {"operation": "install", "auth_mode": "lsc", "key": "rsa-2048"},
}


@pytest.mark.parametrize("name", sorted(_SCHEDULES))
def test_our_server_against_capfc_messages(name: str, tmp_path: Path) -> None:
    import datetime as dt

    exchanges = parse_transcript((VECTORS / name).read_text())
    theirs_s2c = [ex.message for ex in exchanges if ex.direction == "S>C"]
    c2s = [ex.message for ex in exchanges if ex.direction == "C>S"]
    device = c2s[0].device_name
    assert device is not None
    authority = make_authority(tmp_path / "capf.sqlite3", capf_identity())
    # the vectors' certificates were valid on the day they were made
    authority.clock = lambda: dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    authority.db.schedule([device], **_SCHEDULES[name])  # type: ignore[arg-type]
    server = ServerSession(theirs_s2c[0].session_id, authority)
    ours = server.start()
    for msg in c2s:
        ours += server.receive(msg)
    assert server.done
    assert [m.name for m in ours] == [m.name for m in theirs_s2c]
    for mine, theirs in zip(ours, theirs_s2c, strict=True):
        if mine.command == Command.STORE_CERTIFICATE_REQUEST:  # our CA, our certificate
            assert mine.tags == theirs.tags and mine.certificate_type == theirs.certificate_type
            continue
        assert mine.encode() == theirs.encode(), mine.name
    authority.db.close()


def test_client_reports_the_servers_reason_info() -> None:
    client = ClientSession(DEVICE)
    client.receive(Message.build(Command.AUTH_REQUEST, 3, version=3))
    client.receive(Message.build(Command.END_SESSION, 3, reason=7, reason_info="locked out"))
    assert client.result is not None and client.result.result == "refused"
    assert client.result.why == "locked out"
