"""The sans-I/O boot machine driven with in-memory files and a fake TVS (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phone_support import (
    MAC,
    FakeTvs,
    cluster_files,
    config_xml,
    ctl_records,
    drive,
    make_config,
    make_itl,
)

from phone_emu.phone.boot import (
    BootMachine,
    BootOptions,
    BootResult,
    BootState,
    FileFetched,
    Outcome,
    SipFailed,
    TransportFailure,
    TvsAnswered,
)
from phone_emu.phone.config import PhoneConfig, parse_config
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.phone.trust import TrustListCache
from tvs.roles import Role
from tvs.tlv import build_trust_list, parse_file
from tvs.wire import (
    QueryCertRequest,
    QueryCertResponse,
    QueryTags,
    Status,
    VerifyResponse,
    encode_message,
)

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def src(lab_pki):
    return lab_pki.clusters["source"]


@pytest.fixture(scope="module")
def dst(lab_pki):
    return lab_pki.clusters["destination"]


@pytest.fixture(scope="module")
def identity(src):
    phone = src.phones[MAC]
    return PhoneIdentity.from_lsc(phone.cert, phone.key)


@pytest.fixture(scope="module")
def src_files(src):
    return cluster_files(src, config_xml(tvs=[("src-tvs", 2445)], cms=[("src-cm", 5061)]))


@pytest.fixture(scope="module")
def dst_files(dst):
    return cluster_files(dst, config_xml(tvs=[("dst-tvs", 2445)], cms=[("dst-cm", 5061)]))


def boot(identity, files, *, trust=None, config=None, now=T0, tvs=None, options=None, **kw):
    m = BootMachine(identity, trust, config, now=now, options=options, **kw)
    return drive(m, files, tvs=tvs)


@pytest.fixture(scope="module")
def on_source(identity, src_files) -> BootResult:
    """A phone that booted once on the source cluster."""
    return boot(identity, src_files)


def test_first_boot_trusts_on_first_use(on_source):
    r = on_source
    assert r.state is BootState.REGISTERED and r.exit_code == 0
    assert r.reasons == ("ctl.installed", "itl.installed", "config.applied", "register.passed")
    assert r.step("ctl").source == "first-use"
    assert r.step("itl").source == "ctl"  # the fresh CTL authenticates the ITL
    assert r.step("config").source == "ctl"
    assert r.step("itl").files == (f"ITLSEP{MAC}.tlv", "ITLFile.tlv")
    assert r.step("config").files == (f"SEP{MAC}.cnf.xml.sgn",)
    assert r.status_lines == ("CTL and ITL installed",)
    assert r.tvs_queries == 0
    assert r.trust.ctl is not None and r.trust.itl is not None
    assert [str(m) for m in r.config.tvs_members] == ["src-tvs:2445"]
    assert r.registration == "passed"


def test_second_boot_unchanged_files_sends_no_query(identity, src_files, on_source):
    tvs = FakeTvs()
    r = boot(identity, src_files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.reasons == ("ctl.unchanged", "itl.unchanged", "config.unchanged", "register.passed")
    assert tvs.queries == [] and r.tvs_queries == 0
    assert r.status_lines == ()
    assert r.trust == on_source.trust


def test_migration_asks_the_source_tvs_then_trusts_the_new_ctl(identity, dst, dst_files, on_source):
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.SAST, Role.TFTP))])
    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.reasons == ("ctl.updated", "itl.updated", "config.applied", "register.passed")
    assert [str(q.member) for q in tvs.queries] == ["src-tvs:2445"]  # the OLD configuration
    q = tvs.queries[0]
    assert q.request.subject == dst.itlrecovery.cert.subject
    assert q.request.serial == dst.itlrecovery.cert.serial
    assert q.request.device == f"CP-8861-SEP{MAC}"
    assert q.pinned == on_source.trust.tvs_pins()  # pinned to the old ITL's TVS records
    assert r.step("ctl").source == "tvs" and r.step("itl").source == "ctl"
    assert r.status_lines == ("Trust List updated",)
    assert [e.certificate for e in r.trust.tvs_cache] == [dst.itlrecovery.cert]
    assert r.trust.tvs_cache[0].expires_at == T0 + 86400
    assert [str(m) for m in r.config.tvs_members] == ["dst-tvs:2445"]  # new TVS list applied
    attempt = r.step("ctl").attempts[0]
    assert attempt.reason == "tvs.valid" and attempt.roles == (Role.SAST, Role.TFTP)


def test_tvs_cache_answers_within_ttl_and_expires(identity, dst, on_source):
    """A CTL whose signer is in no held list: the TVS answer is cached for its TTL."""

    def foreign_ctl(ts: int) -> bytes:
        recs = [r for r in ctl_records(dst) if r[1] != dst.itlrecovery.cert]
        return build_trust_list(
            recs, signer=dst.itlrecovery.cert, key=dst.itlrecovery.key, timestamp=ts
        )

    files = {f"CTLSEP{MAC}.tlv": foreign_ctl(1)}
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.SAST,))], ttl=600)
    opts = BootOptions(register=False)
    r1 = boot(
        identity, files, trust=on_source.trust, config=on_source.config, tvs=tvs, options=opts
    )
    assert r1.step("ctl").reason == "ctl.updated" and len(tvs.queries) == 1
    files[f"CTLSEP{MAC}.tlv"] = foreign_ctl(2)  # regenerated: new bytes, same unknown signer
    r2 = boot(
        identity, files, trust=r1.trust, config=r1.config, tvs=tvs, now=T0 + 599, options=opts
    )
    assert r2.step("ctl").reason == "ctl.updated" and r2.step("ctl").source == "tvs-cache"
    assert len(tvs.queries) == 1 and r2.tvs_queries == 0
    files[f"CTLSEP{MAC}.tlv"] = foreign_ctl(3)
    r3 = boot(
        identity, files, trust=r2.trust, config=r2.config, tvs=tvs, now=T0 + 600, options=opts
    )
    assert r3.step("ctl").source == "tvs" and len(tvs.queries) == 2
    assert r3.trust.tvs_cache[0].expires_at == T0 + 1200


def test_tvs_says_invalid_keeps_old_trust_and_config(identity, dst_files, on_source):
    tvs = FakeTvs()
    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.step("ctl").reason == "tvs.status-invalid"
    assert r.step("ctl").outcome is Outcome.REJECTED
    assert r.step("itl").reason == "tvs.status-invalid"
    assert r.step("config").reason == "tvs.status-invalid"
    assert r.state is BootState.REJECTED and r.exit_code == 1
    assert r.trust.ctl is on_source.trust.ctl and r.trust.itl is on_source.trust.itl
    assert r.config == on_source.config
    assert "Trust List update failed" in r.status_lines
    assert r.trust.tvs_cache == ()


def test_failover_to_the_next_member_on_connect_error_or_timeout(
    identity, dst, dst_files, on_source
):
    cfg = PhoneConfig(
        tvs_members=parse_config(config_xml(tvs=[("a", 1), ("b", 2), ("c", 3)])).tvs_members
    )
    tvs = FakeTvs(
        known=[(dst.itlrecovery.cert, (Role.SAST, Role.TFTP))],
        fail={"a:1": TransportFailure.CONNECT, "b:2": TransportFailure.TIMEOUT},
    )
    r = boot(identity, dst_files, trust=on_source.trust, config=cfg, tvs=tvs)
    ctl = r.step("ctl")
    assert ctl.reason == "ctl.updated"
    assert [a.reason for a in ctl.attempts] == ["tvs.connect-failed", "tvs.timeout", "tvs.valid"]
    assert r.tvs_queries == 3


def test_all_members_unreachable_is_a_transport_error(identity, dst_files, on_source):
    tvs = FakeTvs(fail={"src-tvs:2445": TransportFailure.CONNECT})
    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.step("ctl").reason == "tvs.unreachable" and r.step("ctl").outcome is Outcome.ERROR
    assert r.state is BootState.ERROR and r.exit_code == 2


def test_handshake_failure_does_not_fail_over(identity, dst_files, on_source):
    cfg = parse_config(config_xml(tvs=[("a", 1), ("b", 2)]))
    tvs = FakeTvs(fail={"a:1": TransportFailure.HANDSHAKE})
    r = boot(identity, dst_files, trust=on_source.trust, config=cfg, tvs=tvs)
    assert r.step("ctl").reason == "tvs.handshake-failed"
    assert len(r.step("ctl").attempts) == 1 and r.exit_code == 1


def test_roles_and_certificate_of_the_answer_are_checked(identity, src, dst, dst_files, on_source):
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.APP_SERVER,))])
    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.step("ctl").reason == "ctl.role-not-allowed"

    def wrong_cert(action, now):
        return TvsAnswered(QueryCertResponse(Status.VALID, src.capf.cert.der, (0,), 60), now)

    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=wrong_cert)
    assert r.step("ctl").reason == "tvs.certificate-mismatch"
    assert r.trust.tvs_cache == ()

    def wrong_type(action, now):
        return TvsAnswered(VerifyResponse(Status.VALID), now)

    r = boot(identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=wrong_type)
    assert r.step("ctl").reason == "tvs.protocol-error" and r.exit_code == 2


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


@pytest.mark.parametrize("name,step", [("ctl", "ctl"), ("itl", "itl"), ("config", "config")])
def test_tampered_signatures_are_rejected(identity, src, on_source, name, step):
    files = {
        f"CTLSEP{MAC}.tlv": on_source.trust.ctl.raw,
        "ITLFile.tlv": on_source.trust.itl.raw,
        f"SEP{MAC}.cnf.xml.sgn": make_config(
            src, config_xml(tvs=[("src-tvs", 2445)], cms=[("other-cm", 5061)])
        ),
    }
    key = {"ctl": f"CTLSEP{MAC}.tlv", "itl": "ITLFile.tlv", "config": f"SEP{MAC}.cnf.xml.sgn"}
    files[key[name]] = _flip(files[key[name]], len(files[key[name]]) - 3)  # a record byte
    tvs = FakeTvs()
    r = boot(identity, files, trust=on_source.trust, config=on_source.config, tvs=tvs)
    assert r.step(step).reason == f"{step}.signature-bad"
    assert r.step(step).outcome is Outcome.REJECTED and r.exit_code == 1
    assert tvs.queries == []  # a known signer with a bad signature is not sent to TVS
    assert r.trust.ctl is on_source.trust.ctl and r.trust.itl is on_source.trust.itl
    if name == "config":
        assert r.config == on_source.config
    else:
        assert r.step("config").reason == "config.applied"
    if name == "ctl":
        assert "CTL update failed" in r.status_lines


def test_garbage_trust_list_is_malformed_not_a_crash(identity, src_files, on_source):
    files = dict(src_files)
    files[f"CTLSEP{MAC}.tlv"] = b"\x01\x00\x02\x01"
    r = boot(identity, files, trust=on_source.trust, config=on_source.config)
    assert r.step("ctl").reason == "ctl.malformed"
    assert r.step("itl").reason == "itl.unchanged"


def test_non_secure_phone_fetches_unsigned_config(identity):
    files = {f"SEP{MAC}.cnf.xml": config_xml()}
    r = boot(identity, files)
    assert r.reasons == ("ctl.not-found", "itl.not-found", "config.applied", "register.non-secure")
    assert r.step("ctl").outcome is Outcome.ABSENT
    assert r.step("config").files == (f"SEP{MAC}.cnf.xml",)
    assert r.status_lines == ("No Trust List installed",)
    assert r.state is BootState.CONFIGURED and r.exit_code == 0
    assert r.registration == "skipped"


def test_itl_falls_back_to_itlfile_and_per_phone_name_wins(identity, src, src_files):
    files = dict(src_files)
    files[f"ITLSEP{MAC}.tlv"] = make_itl(src)
    r = boot(identity, files)
    assert r.step("itl").files == (f"ITLSEP{MAC}.tlv",)


def test_no_register_says_skipped_not_passed(identity, src_files):
    r = boot(identity, src_files, options=BootOptions(register=False))
    assert r.step("register").reason == "register.skipped"
    assert r.state is BootState.CONFIGURED and r.registration == "skipped"
    assert r.to_dict()["registration"] == "skipped"


def test_sip_handshake_refusal_is_a_rejection(identity, src_files):
    m = BootMachine(identity, now=T0)
    r = drive(m, src_files, sip=lambda a, now: SipFailed(TransportFailure.HANDSHAKE, "x", now))
    assert r.step("register").reason == "register.handshake-failed" and r.exit_code == 1


def test_config_that_is_not_xml_is_rejected_and_old_config_kept(identity, src, on_source):
    files = cluster_files(src)
    files[f"SEP{MAC}.cnf.xml.sgn"] = make_config(src, b"<device><TVS>")
    files[f"CTLSEP{MAC}.tlv"] = on_source.trust.ctl.raw
    files["ITLFile.tlv"] = on_source.trust.itl.raw
    r = boot(identity, files, trust=on_source.trust, config=on_source.config)
    assert r.step("config").reason == "config.rejected" and r.config == on_source.config


def test_missing_config_is_an_error(identity, src_files):
    files = {k: v for k, v in src_files.items() if "cnf" not in k}
    r = boot(identity, files)
    assert r.step("config").reason == "config.not-found" and r.exit_code == 2


def test_unsigned_ctl_signer_without_tvs_is_unknown(identity, dst_files, on_source):
    r = boot(identity, dst_files, trust=on_source.trust, config=None)
    assert r.step("ctl").reason == "ctl.signer-unknown" and r.tvs_queries == 0


def test_shared_list_cache_parses_identical_bytes_once(identity, src_files):
    lists = TrustListCache()
    r1 = boot(identity, src_files, lists=lists)
    r2 = boot(identity, src_files, lists=lists)
    assert lists.misses == 2 and lists.hits == 2
    assert r1.trust.ctl is r2.trust.ctl


def test_machine_refuses_results_that_do_not_answer_the_action(identity):
    m = BootMachine(identity, now=T0)
    m.start()
    with pytest.raises(TypeError):
        m.send(TvsAnswered(QueryCertResponse(Status.INVALID), T0))
    with pytest.raises(RuntimeError):
        m.start()
    m.send(FileFetched(b"", T0))


def test_itl_signed_by_unknown_signer_is_checked_against_the_ctl(identity, src, dst, on_source):
    files = {f"CTLSEP{MAC}.tlv": on_source.trust.ctl.raw, "ITLFile.tlv": make_itl(dst)}
    tvs = FakeTvs()
    r = boot(
        identity,
        files,
        trust=on_source.trust,
        config=on_source.config,
        tvs=tvs,
        options=BootOptions(register=False),
    )
    assert r.step("itl").reason == "tvs.status-invalid" and len(tvs.queries) == 1
    assert r.trust.itl is on_source.trust.itl


def test_itl_only_cluster_verifies_config_with_the_itl(identity, src):
    """A non-secure cluster: no CTL; the ITL (first use) vouches for the signed config."""
    files = {
        "ITLFile.tlv": make_itl(
            src,
            records=[
                (Role.SAST, src.itlrecovery.cert),
                (Role.TFTP, src.publisher.callmanager.cert),
                (Role.TVS, src.publisher.tvs.cert),
            ],
        ),
        f"SEP{MAC}.cnf.xml.sgn": make_config(src, config_xml()),
    }
    r = boot(identity, files)
    assert r.reasons == ("ctl.not-found", "itl.installed", "config.applied", "register.non-secure")
    assert r.step("itl").source == "first-use" and r.step("config").source == "itl"
    assert r.status_lines == ("ITL installed",)
    assert r.exit_code == 0 and r.registration == "skipped"


def test_tvs_answers_share_one_certificate_value(identity, dst, dst_files, on_source):
    lists = TrustListCache()
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.SAST, Role.TFTP))])
    a = boot(
        identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs, lists=lists
    )
    b = boot(
        identity, dst_files, trust=on_source.trust, config=on_source.config, tvs=tvs, lists=lists
    )
    assert a.trust.tvs_cache[0].certificate is b.trust.tvs_cache[0].certificate


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["ctl", "itl", "config"]),
    cut=st.integers(min_value=0, max_value=8000),
    flip=st.integers(min_value=0, max_value=255),
    tail=st.binary(max_size=8),
)
def test_whatever_the_server_sends_the_boot_ends_with_a_result(
    identity, src_files, on_source, which, cut, flip, tail
):
    """The fuzz invariant for the machine: truncated, flipped or padded files give a result
    with a reason, never an exception; a damaged file is never installed."""
    name = {"ctl": f"CTLSEP{MAC}.tlv", "itl": "ITLFile.tlv", "config": f"SEP{MAC}.cnf.xml.sgn"}
    files = dict(src_files)
    data = files[name[which]]
    pos = cut % len(data)
    damaged = data[:pos] + bytes([data[pos] ^ (flip or 1)]) + data[pos + 1 :] + tail
    files[name[which]] = damaged
    r = boot(identity, files, trust=on_source.trust, config=on_source.config, tvs=FakeTvs())
    step = r.step(which)
    assert step.outcome in (Outcome.OK, Outcome.REJECTED, Outcome.ERROR)
    if which != "config":
        held = r.trust.ctl if which == "ctl" else r.trust.itl
        assert held.raw == (damaged if step.outcome is Outcome.OK else data)


def test_oversized_trust_list_is_refused(identity, src, src_files):
    big = make_itl(src, records=[(Role.TVS, src.publisher.tvs.cert)] * 45)
    assert len(big) > 64 * 1024
    files = dict(src_files)
    files["ITLFile.tlv"] = big
    r = boot(identity, files)
    assert r.step("itl").reason == "itl.too-large" and r.trust.itl is None
    r = boot(identity, src_files, options=BootOptions(max_trust_list=1000))
    assert r.step("ctl").reason == "ctl.too-large"
    assert r.status_lines == (
        "CTL update failed",
        "Trust List update failed",
        "No Trust List installed",
    )


@pytest.mark.parametrize("tags", [QueryTags.TAGS_4_5, QueryTags.TAGS_5_6])
def test_the_request_bytes_are_the_bytes_sent(identity, dst, dst_files, on_source, tags):
    """One setting: the machine encodes the query once with its options' tags, and the action
    carries those bytes for the driver to send as they are."""
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.SAST, Role.TFTP))])
    r = boot(
        identity,
        dst_files,
        trust=on_source.trust,
        config=on_source.config,
        tvs=tvs,
        options=BootOptions(query_tags=tags, keep_bytes=True),
    )
    q = tvs.queries[0]
    assert q.data == encode_message(q.request, query_tags=tags)
    assert r.step("ctl").attempts[0].request == q.data
    assert q.request == QueryCertRequest.for_signer(
        identity.device_name, parse_file(dst_files["CTLSEP" + MAC + ".tlv"]).header.signer,
        request_id=q.request.request_id,
    )
