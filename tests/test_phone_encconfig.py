"""The boot machine with an encrypted configuration (section 9) and its CAPF step (section 8),
driven with in-memory files and a fake CAPF (no sockets)."""

from __future__ import annotations

import pytest
from phone_support import MAC, FakeTvs, config_xml, drive, make_ctl, make_itl
from strategies_tlv import make_cert, make_key

from phone_emu.phone.boot import (
    BootMachine,
    BootOptions,
    BootState,
    CapfEnded,
    CapfFailed,
    CapfIssued,
    Outcome,
    RunCapf,
    TransportFailure,
)
from phone_emu.phone.config import parse_config
from phone_emu.phone.identity import PhoneIdentity
from tvs.cluster.encconfig import build_encrypted_config, build_stub
from tvs.pki import issue_lsc
from tvs.tlv import cert_hash, parse_file, sign_file

T0 = 1_700_000_000.0
FULL = config_xml(tvs=[("enc-tvs", 2445)], cms=[("enc-cm", 5061)])
CAPF = (("capf.lab", 3804),)


@pytest.fixture(scope="module")
def src(lab_pki):
    return lab_pki.clusters["source"]


@pytest.fixture(scope="module")
def identity(src):
    phone = src.phones[MAC]
    return PhoneIdentity.from_lsc(phone.cert, phone.key)


def files_for(src, known, *, mode=2, full=FULL, enc_to=None):
    """CTL, ITL, the stub naming ``known`` and the .enc.sgn encrypted to ``enc_to`` (default
    ``known``), all signed by the source publisher's CallManager as the cluster does."""
    cm = src.publisher.callmanager
    out = {
        f"CTLSEP{MAC}.tlv": make_ctl(src),
        "ITLFile.tlv": make_itl(src),
        f"SEP{MAC}.cnf.xml.sgn": build_stub(
            MAC,
            known=known,
            signer=cm.cert,
            key=cm.key,
            capf_auth_mode=mode,
            capf_servers=CAPF,
        ),
    }
    target = enc_to if enc_to is not None else known
    if target is not None:
        out[f"SEP{MAC}.cnf.xml.enc.sgn"] = build_encrypted_config(
            MAC, full, known=target, signer=cm.cert, key=cm.key
        )
    return out


class FakeCapf:
    """Issues a new LSC from the source CAPF and re-keys the served files to it, or refuses."""

    def __init__(self, src, files, *, answer="install"):
        self.src, self.files, self.answer = src, files, answer
        self.calls: list[RunCapf] = []

    def __call__(self, action: RunCapf, now: float):
        self.calls.append(action)
        if self.answer == "install":
            new = issue_lsc(self.src.capf, mac=MAC, model="8861", key_type="rsa2048")
            self.files.update(files_for(self.src, new.cert))
            return CapfIssued(new.cert, new.key, now, "stored")
        if self.answer == "untrusted":
            return CapfFailed(TransportFailure.HANDSHAKE, "not in the CTL/ITL", now)
        if self.answer == "down":
            return CapfFailed(TransportFailure.CONNECT, "refused", now)
        reason = {"wrong": 7, "unknown": 9, "nothing": 0}[self.answer]
        return CapfEnded("refused" if reason else "nothing", reason, "END_SESSION", now)


def boot(identity, files, *, capf=None, options=None):
    m = BootMachine(identity, None, None, now=T0, options=options)
    return drive(m, files, tvs=FakeTvs(), capf=capf)


def test_encrypted_config_is_opened_with_the_lsc(src, identity) -> None:
    r = boot(identity, files_for(src, identity.lsc, mode=0))
    cfg = r.step("config")
    assert cfg.outcome is Outcome.OK and cfg.reason == "config.applied"
    assert cfg.files == (f"SEP{MAC}.cnf.xml.sgn", f"SEP{MAC}.cnf.xml.enc.sgn")
    assert r.config is not None and r.config.tvs_members[0].address == "enc-tvs"
    assert not r.has_step("capf") and r.state is BootState.REGISTERED and r.identity is None


def test_empty_cert_hash_runs_capf_then_opens_the_new_configuration(src, identity) -> None:
    files = files_for(src, None)
    capf = FakeCapf(src, files)
    r = boot(identity, files, capf=capf)
    assert [s.name for s in r.steps] == ["ctl", "itl", "config", "capf", "register"]
    assert r.step("capf").reason == "capf.installed" and len(capf.calls) == 1
    call = capf.calls[0]
    assert (call.auth_mode, call.device_name, str(call.server)) == (2, f"SEP{MAC}", "capf.lab:3804")
    assert call.pinned == (src.capf.cert,)  # trusted through the CAPF record only
    assert r.step("config").reason == "config.applied" and r.state is BootState.REGISTERED
    assert r.identity is not None and r.identity.lsc != identity.lsc
    assert r.config is not None and r.config.tvs_members[0].address == "enc-tvs"


def test_cert_unknown_without_capf_offered_fails_cleanly(src, identity) -> None:
    other = issue_lsc(src.capf, mac=MAC, model="8861", key_type="rsa2048")
    r = boot(identity, files_for(src, other.cert, mode=0))
    cfg = r.step("config")
    assert cfg.outcome is Outcome.REJECTED and cfg.reason == "config.cert-unknown"
    assert cert_hash(identity.lsc) in cfg.detail and not r.has_step("capf")


def test_decrypt_failure_runs_capf(src, identity) -> None:
    """certHash names the phone's LSC but the file was encrypted to another key."""
    other = issue_lsc(src.capf, mac=MAC, model="8861", key_type="rsa2048")
    files = files_for(src, identity.lsc, enc_to=other.cert)
    r = boot(identity, files, capf=FakeCapf(src, files))
    assert r.steps[2].reason == "config.applied"  # the second try, after CAPF
    r2 = boot(identity, files_for(src, identity.lsc, mode=0, enc_to=other.cert))
    assert r2.step("config").reason == "config.decrypt-failed" and r2.state is BootState.REJECTED


def test_tampered_encrypted_file_fails_the_signature(src, identity) -> None:
    files = files_for(src, identity.lsc, mode=0)
    name = f"SEP{MAC}.cnf.xml.enc.sgn"
    data = bytearray(files[name])
    data[-3] ^= 0x40
    files[name] = bytes(data)
    r = boot(identity, files)
    assert r.step("config").reason == "config.signature-bad"


def test_ec_phone_is_a_lab_limitation(src) -> None:
    key = make_key("ec")
    ec_identity = PhoneIdentity(mac=MAC, lsc=make_cert(f"CP-8861-SEP{MAC}", key), key=key)
    files = files_for(src, src.phones[MAC].cert, mode=0)
    cm = src.publisher.callmanager
    files[f"SEP{MAC}.cnf.xml.sgn"] = build_stub(
        MAC, known=ec_identity.lsc, signer=cm.cert, key=cm.key  # the cluster knows the EC LSC
    )
    r = boot(ec_identity, files)
    cfg = r.step("config")
    assert cfg.reason == "config.ec-unsupported" and "lab limitation" in cfg.detail
    # a certHash that is not its own sends the EC phone to CAPF first (an RSA key may follow)
    r = boot(ec_identity, files_for(src, src.phones[MAC].cert, mode=0))
    assert r.step("config").reason == "config.cert-unknown"


def test_ordinary_config_asking_for_capf_enrolls_before_registering(src, identity) -> None:
    xml = FULL.replace(
        b"</device>",
        b"<capfAuthMode>2</capfAuthMode><capfList><capf><phonePort>3805</phonePort>"
        b"<processNodeName>capf.lab</processNodeName></capf></capfList></device>",
    )
    cm = src.publisher.callmanager
    files = {
        f"CTLSEP{MAC}.tlv": make_ctl(src),
        "ITLFile.tlv": make_itl(src),
        f"SEP{MAC}.cnf.xml.sgn": sign_file(
            xml, filename=f"SEP{MAC}.cnf.xml.sgn", signer=cm.cert, key=cm.key
        ),
    }
    assert parse_config(xml).capf_auth_mode == 2
    capf = FakeCapf(src, {})
    r = boot(identity, files, capf=capf)
    assert r.step("capf").reason == "capf.installed" and capf.calls[0].server.port == 3805
    assert r.step("config").reason == "config.applied"  # not fetched again
    assert r.identity is not None and r.state is BootState.REGISTERED


def test_auth_string_mode_needs_the_string(src, identity) -> None:
    files = files_for(src, None, mode=1)
    r = boot(identity, files, capf=FakeCapf(src, files))
    assert r.step("capf").outcome is Outcome.SKIPPED
    assert r.step("capf").reason == "capf.auth-string-needed"
    files = files_for(src, None, mode=1)
    capf = FakeCapf(src, files)
    r = boot(identity, files, capf=capf, options=BootOptions(capf_auth_string="1234"))
    assert capf.calls[0].auth_string == "1234" and r.step("config").reason == "config.applied"


def test_wrong_auth_string_three_attempts_nothing_stored(src, identity) -> None:
    files = files_for(src, None, mode=1)
    capf = FakeCapf(src, files, answer="wrong")
    opts = BootOptions(capf_auth_string="0000", capf_interval=0.5)
    r = boot(identity, files, capf=capf, options=opts)
    step = r.step("capf")
    assert step.outcome is Outcome.REJECTED and step.reason == "capf.auth-failed"
    assert [c.delay for c in capf.calls] == [0.0, 0.5, 0.5] and len(step.attempts) == 3
    assert r.identity is None and r.state is BootState.REJECTED


def test_unknown_device_is_not_retried(src, identity) -> None:
    files = files_for(src, None)
    capf = FakeCapf(src, files, answer="unknown")
    r = boot(identity, files, capf=capf)
    assert r.step("capf").reason == "capf.unknown-device" and len(capf.calls) == 1


@pytest.mark.parametrize(
    ("answer", "reason", "outcome"),
    [
        ("untrusted", "capf.server-untrusted", Outcome.REJECTED),
        ("down", "capf.connect-failed", Outcome.ERROR),
        ("nothing", "capf.nothing-pending", Outcome.OK),
    ],
)
def test_other_endings(src, identity, answer, reason, outcome) -> None:
    files = files_for(src, None)
    r = boot(identity, files, capf=FakeCapf(src, files, answer=answer))
    assert (r.step("capf").reason, r.step("capf").outcome) == (reason, outcome)
    assert r.step("config").reason == "config.cert-unknown"


def test_no_capf_record_means_untrusted_server(src, identity) -> None:
    from phone_support import ctl_records, itl_records

    from tvs.roles import Role

    files = files_for(src, None)
    files[f"CTLSEP{MAC}.tlv"] = make_ctl(
        src, records=[r for r in ctl_records(src) if r[0] != Role.CAPF]
    )
    files["ITLFile.tlv"] = make_itl(src, records=[r for r in itl_records(src) if r[0] != Role.CAPF])
    capf = FakeCapf(src, files)
    r = boot(identity, files, capf=capf)
    assert r.step("capf").reason == "capf.server-untrusted" and capf.calls == []


def test_stub_fields(src, identity) -> None:
    files = files_for(src, identity.lsc)
    payload = parse_file(files[f"SEP{MAC}.cnf.xml.sgn"]).payload.decode()
    for part in (
        "<fullConfig>false</fullConfig>",
        "<encrConfig>true</encrConfig>",
        f"<certHash>{cert_hash(identity.lsc)}</certHash>",
        "<capfAuthMode>2</capfAuthMode>",
        "<phonePort>3804</phonePort><processNodeName>capf.lab</processNodeName>",
    ):
        assert part in payload


def test_console_lines_of_the_capf_step(src, identity) -> None:
    from phone_emu.phone.console import console_lines

    files = files_for(src, None)
    r = boot(identity, files, capf=FakeCapf(src, files))
    text = "\n".join(console_lines(r, identity))
    assert "Attempting connect to CAPF server addr [capf.lab]" in text
    assert "SECUREAPP-CAPF: LSC installed: new LSC" in text
    assert f"src=SEP{MAC}.cnf.xml.enc.sgn" in text
    assert "Encrypted config: certHash matches, file decrypted." in text
