"""The phone booting over real loopback sockets: the TFTP server, the TVS server (backed by a
trust store) and a TLS listener standing in for the CallManager's secure SIP port."""

from __future__ import annotations

import attrs
import pytest
import trio
from phone_support import (
    MAC,
    T0,
    Clock,
    Lab,
    closed_port,
    config_xml,
    ctl_records,
    make_config,
    make_itl,
    start_lab,
)

from phone_emu.phone import BootState, Outcome, Phone, PhoneIdentity
from phone_emu.phone.driver import NetworkOptions, boot_phone
from phone_emu.phone.persist import CONFIG_FILE, CTL_FILE, ITL_FILE, TVS_CACHE_FILE
from phone_emu.tvs_client import TvsClientConfig
from tvs.tlv import build_trust_list


@pytest.fixture
async def lab(nursery, lab_pki, lab_pki_dir, tmp_path) -> Lab:
    return await start_lab(nursery, lab_pki, lab_pki_dir, tmp_path)


@pytest.fixture(scope="module")
def identity(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    return PhoneIdentity.from_lsc(phone.cert, phone.key)


OPTS = NetworkOptions(
    tvs=TvsClientConfig(connect_timeout=2, timeout=5), tftp_timeout=0.5, tftp_retries=2
)


async def _boot(phone, lab, clock=None, options=OPTS):
    return await boot_phone(phone, tftp=lab.tftp, clock=clock or Clock(), options=options)


async def _on_source(identity, lab, state=None) -> Phone:
    phone = Phone.open(identity, state)
    r = await _boot(phone, lab)
    assert r.state is BootState.REGISTERED, r.to_dict()
    lab.fetched.clear()
    return phone


async def test_first_boot_then_unchanged_second_boot(lab, identity, tmp_path):
    state = tmp_path / "phone"
    phone = Phone.open(identity, state)
    assert phone.problems == () and not phone.trust.has_trust_list
    r1 = await _boot(phone, lab)
    assert r1.state is BootState.REGISTERED and r1.exit_code == 0, r1.to_dict()
    assert r1.reasons == ("ctl.installed", "itl.installed", "config.applied", "register.passed")
    assert r1.status_lines == ("CTL and ITL installed",)
    assert lab.fetched == [
        f"CTLSEP{MAC}.tlv",
        f"ITLSEP{MAC}.tlv",
        "ITLFile.tlv",
        f"SEP{MAC}.cnf.xml.sgn",
    ]
    assert (state / CTL_FILE).read_bytes() == lab.files[f"CTLSEP{MAC}.tlv"]
    assert (state / ITL_FILE).read_bytes() == lab.files["ITLFile.tlv"]
    assert (state / CONFIG_FILE).exists()
    again = Phone.open(identity, state)  # a new process: the phone comes back from flash
    assert again.trust.ctl.sha256 == phone.trust.ctl.sha256 and again.config == phone.config
    r2 = await _boot(again, lab)
    assert r2.reasons == ("ctl.unchanged", "itl.unchanged", "config.unchanged", "register.passed")
    assert r2.tvs_queries == 0 and lab.observer.served == []


async def test_migration_sequence_of_the_seed(lab, identity):
    phone = await _on_source(identity, lab)
    lab.vouch_for_destination()
    lab.serve_cluster("destination")
    r = await _boot(phone, lab)
    assert r.reasons == ("ctl.updated", "itl.updated", "config.applied", "register.passed"), (
        r.to_dict()
    )
    assert r.step("ctl").source == "tvs" and r.step("itl").source == "ctl"
    assert len(lab.observer.served) == 1  # one query, for the CTL; the ITL needs none
    assert r.status_lines == ("Trust List updated",)
    ctl_attempt = r.step("ctl").attempts[0]
    assert ctl_attempt.reason == "tvs.valid" and ctl_attempt.target == f"127.0.0.1:{lab.tvs_port}"
    assert r.trust.ctl.signer.name == lab.dst.itlrecovery.cert.subject


async def test_unknown_ctl_signer_vouched_by_tvs_is_cached_for_the_ttl(lab, identity, tmp_path):
    state = tmp_path / "phone"
    phone = await _on_source(identity, lab, state)
    lab.vouch_for_destination()  # answers carry TTL 3600
    dst = lab.dst

    def foreign_ctl(ts: int) -> bytes:  # signed by a certificate the phone holds nowhere
        recs = [r for r in ctl_records(lab.src)]
        return build_trust_list(
            recs, signer=dst.itlrecovery.cert, key=dst.itlrecovery.key, timestamp=ts
        )

    clock = Clock()
    lab.files[f"CTLSEP{MAC}.tlv"] = foreign_ctl(1)
    r1 = await _boot(phone, lab, clock)
    assert r1.step("ctl").reason == "ctl.updated" and r1.step("ctl").source == "tvs"
    assert r1.tvs_queries == 1 and len(lab.observer.served) == 1
    assert r1.step("ctl").attempts[0].ttl == 3600
    assert (state / TVS_CACHE_FILE).exists()

    phone = Phone.open(identity, state)  # the cache survives a restart
    assert len(phone.trust.tvs_cache) == 1
    clock.now = T0 + 3599
    lab.files[f"CTLSEP{MAC}.tlv"] = foreign_ctl(2)
    r2 = await _boot(phone, lab, clock)
    assert r2.step("ctl").source == "tvs-cache" and r2.tvs_queries == 0
    assert len(lab.observer.served) == 1

    clock.now = T0 + 3600
    lab.files[f"CTLSEP{MAC}.tlv"] = foreign_ctl(3)
    r3 = await _boot(phone, lab, clock)
    assert r3.step("ctl").source == "tvs" and r3.tvs_queries == 1
    assert len(lab.observer.served) == 2
    assert r3.trust.tvs_cache[0].expires_at == T0 + 7200


async def test_tvs_says_invalid_phone_keeps_old_trust(lab, identity, tmp_path):
    state = tmp_path / "phone"
    phone = await _on_source(identity, lab, state)
    before = (state / CTL_FILE).read_bytes(), phone.config
    lab.serve_cluster("destination")  # destination certificates never imported at the source
    r = await _boot(phone, lab)
    assert r.step("ctl").reason == "tvs.status-invalid"
    assert r.step("config").reason == "tvs.status-invalid"
    assert r.state is BootState.REJECTED and r.exit_code == 1
    assert "Trust List update failed" in r.status_lines
    assert ((state / CTL_FILE).read_bytes(), phone.config) == before
    assert len(lab.observer.served) >= 1


async def test_tvs_unreachable_fails_over_to_the_second_member(lab, identity):
    lab.serve_cluster("source", tvs_ports=[closed_port(), lab.tvs_port])
    phone = await _on_source(identity, lab)
    lab.vouch_for_destination()
    lab.serve_cluster("destination")
    r = await _boot(phone, lab)
    ctl = r.step("ctl")
    assert ctl.reason == "ctl.updated", r.to_dict()
    assert [a.reason for a in ctl.attempts] == ["tvs.connect-failed", "tvs.valid"]
    assert r.exit_code == 0


async def test_every_member_unreachable_is_a_transport_error(lab, identity):
    lab.serve_cluster("source", tvs_ports=[closed_port(), closed_port()])
    phone = await _on_source(identity, lab)
    lab.serve_cluster("destination")
    r = await _boot(phone, lab)
    assert r.step("ctl").reason == "tvs.unreachable" and r.exit_code == 2


async def test_tvs_certificate_not_in_the_itl_fails_the_handshake(lab, identity):
    """Rollback to pre 8.0 on a secure source: the ITL is blanked, the CTL is not."""
    lab.files["ITLFile.tlv"] = make_itl(lab.src, tvs=False)
    phone = await _on_source(identity, lab)
    assert phone.trust.tvs_pins() == ()
    lab.vouch_for_destination()
    lab.serve_cluster("destination")
    r = await _boot(phone, lab)
    assert r.step("ctl").reason == "tvs.handshake-failed", r.to_dict()
    assert len(r.step("ctl").attempts) == 1  # a refused certificate is not failed over
    assert r.state is BootState.REJECTED and lab.observer.served == []
    assert phone.trust.ctl.signer.name == lab.src.itlrecovery.cert.subject


@pytest.mark.parametrize("which", ["ctl", "itl", "config"])
async def test_tampered_signature_is_rejected(lab, identity, which):
    phone = await _on_source(identity, lab)
    name = {"ctl": f"CTLSEP{MAC}.tlv", "itl": "ITLFile.tlv", "config": f"SEP{MAC}.cnf.xml.sgn"}
    lab.serve_cluster("source", tvs_ports=[lab.tvs_port, lab.tvs_port])  # new bytes everywhere
    data = lab.files[name[which]]
    lab.files[name[which]] = data[:-2] + bytes([data[-2] ^ 0x40]) + data[-1:]
    held = phone.trust, phone.config
    r = await _boot(phone, lab)
    step = r.step(which)
    assert step.reason == f"{which}.signature-bad" and step.outcome is Outcome.REJECTED
    assert r.exit_code == 1 and r.tvs_queries == 0
    if which == "config":
        assert phone.config == held[1]
    else:
        assert phone.trust.held(step_kind(which)) is held[0].held(step_kind(which))


def step_kind(which):
    from phone_emu.phone.trust import FileKind

    return FileKind(which)


async def test_corrupt_state_directory_is_reported_and_means_no_trust_list(lab, identity, tmp_path):
    state = tmp_path / "phone"
    state.mkdir()
    (state / CTL_FILE).write_bytes(b"\x01\x00\x02garbage")
    (state / ITL_FILE).write_bytes(b"")
    (state / TVS_CACHE_FILE).write_text("{not json")
    (state / CONFIG_FILE).write_text('{"tvs_members": 5}')
    phone = Phone.open(identity, state)
    assert sorted(p.file for p in phone.problems) == sorted(
        [CTL_FILE, ITL_FILE, TVS_CACHE_FILE, CONFIG_FILE]
    )
    assert not phone.trust.has_trust_list and phone.config is None
    r = await _boot(phone, lab)
    assert r.reasons[:2] == ("ctl.installed", "itl.installed") and r.exit_code == 0
    assert Phone.open(identity, state).problems == ()


async def test_legacy_tls_phone_speaks_tls10_aes256_sha(lab, identity):
    legacy_server, legacy_port = await lab.start_tvs(legacy=True)
    lab.serve_cluster("source", tvs_ports=[legacy_port])
    phone = await _on_source(identity, lab)
    lab.vouch_for_destination()
    legacy_server.reload()
    lab.serve_cluster("destination")
    legacy = attrs.evolve(
        OPTS,
        tvs=attrs.evolve(OPTS.tvs, tls_max="1.0"),
        boot=attrs.evolve(OPTS.boot, register=False),
    )
    r = await _boot(phone, lab, options=legacy)
    attempt = r.step("ctl").attempts[0]
    assert attempt.reason == "tvs.valid", r.to_dict()
    assert "TLSv1 " in attempt.detail + " " and "AES256-SHA" in attempt.detail


async def test_legacy_phone_against_a_modern_tvs_fails_the_handshake(lab, identity):
    phone = await _on_source(identity, lab)
    lab.serve_cluster("destination")
    legacy = attrs.evolve(
        OPTS,
        tvs=attrs.evolve(OPTS.tvs, tls_max="1.0"),
        boot=attrs.evolve(OPTS.boot, register=False),
    )
    r = await _boot(phone, lab, options=legacy)
    assert r.step("ctl").reason == "tvs.handshake-failed", r.to_dict()


async def test_sip_server_not_in_the_ctl_fails_registration(lab, identity):
    lab.serve_cluster("source")
    lab.files[f"SEP{MAC}.cnf.xml.sgn"] = make_config(
        lab.src,
        config_xml(
            tvs=[("127.0.0.1", lab.tvs_port)], cms=[("127.0.0.1", lab.sip_ports["destination"])]
        ),
    )
    phone = Phone.open(identity)
    r = await _boot(phone, lab)
    assert r.step("register").reason == "register.handshake-failed" and r.exit_code == 1
    assert r.registration == "failed"


async def test_silent_tvs_member_times_out_and_the_phone_fails_over(lab, identity):
    silent = trio.socket.socket()
    await silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP in the kernel, never answers the TLS handshake
    with silent:
        port = silent.getsockname()[1]
        lab.serve_cluster("source", tvs_ports=[port, lab.tvs_port])
        phone = await _on_source(identity, lab)
        lab.vouch_for_destination()
        lab.serve_cluster("destination")
        quick = attrs.evolve(OPTS, tvs=attrs.evolve(OPTS.tvs, timeout=0.5))
        r = await _boot(phone, lab, options=quick)
    ctl = r.step("ctl")
    assert [a.reason for a in ctl.attempts] == ["tvs.timeout", "tvs.valid"], r.to_dict()
    assert ctl.reason == "ctl.updated" and r.exit_code == 0
