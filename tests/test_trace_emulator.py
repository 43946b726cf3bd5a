"""The emulator's own logs against the seed: a lab migration (the phone's ``--log-format phone``
console and the TVS server's ``--log-format cucm`` trace) read back and diffed with the seed's
excerpts step by step."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog
import trio
from phone_support import MAC, Clock, Lab, make_ctl, make_itl, start_lab

from phone_emu.phone import BootState, Phone, PhoneIdentity
from phone_emu.phone.boot import BootOptions
from phone_emu.phone.console import console_lines
from phone_emu.phone.driver import NetworkOptions, boot_phone
from phone_emu.tvs_client import TvsClientConfig
from tvs.server import configure_logging
from tvs.store import TrustStore
from tvs.trace import Kind, Source, Timeline, build_timeline, diff_timelines

VECTORS = Path(__file__).parent / "vectors"
SEED = build_timeline(
    [
        ("phone", (VECTORS / "seed_phone_console.txt").read_text()),
        ("tvs-3", (VECTORS / "seed_tvs_handshake.txt").read_text()),
        ("tvs", (VECTORS / "seed_tvs_trace.txt").read_text()),
    ]
)
OPTS = NetworkOptions(
    tvs=TvsClientConfig(connect_timeout=2, timeout=5),
    tftp_timeout=0.5,
    tftp_retries=2,
    boot=BootOptions(keep_bytes=True),
)


@pytest.fixture
async def lab(nursery: trio.Nursery, lab_pki, lab_pki_dir, tmp_path) -> Lab:  # type: ignore[no-untyped-def]
    return await start_lab(nursery, lab_pki, lab_pki_dir, tmp_path)


async def _migrate(lab: Lab, identity: PhoneIdentity, *, import_destination: bool) -> Timeline:
    """The seed's migration, Method 2, as the seed's versions do it: the destination CTL is
    signed by its CallManager certificate (10.5/11.0, no ITLRecovery signer), which the source
    TVS was told about (Phone-SAST-trust + CallManager-trust, restart TVS)."""
    phone = Phone.open(identity)
    first = await boot_phone(phone, tftp=lab.tftp, clock=Clock(), options=OPTS)
    assert first.state is BootState.REGISTERED, first.to_dict()
    dst = lab.dst
    if import_destination:
        store = TrustStore.open(lab.tmp / "store")  # type: ignore[operator]
        for trust in ("Phone-SAST-trust", "CallManager-trust"):
            store.import_certificates(trust, [dst.publisher.callmanager.cert], ttl=86400)
    assert lab.tvs is not None
    lab.tvs.reload()
    lab.serve_cluster("destination")
    lab.files[f"CTLSEP{MAC}.tlv"] = make_ctl(dst, signer=dst.publisher.callmanager)
    lab.files[f"ITLSEP{MAC}.tlv"] = make_itl(dst)
    tvs_log = io.StringIO()
    configure_logging("cucm", stream=tvs_log)
    try:
        result = await boot_phone(phone, tftp=lab.tftp, clock=Clock(), options=OPTS)
    finally:
        structlog.reset_defaults()
    console = "\n".join(console_lines(result, identity, server=lab.tftp[0]))
    return build_timeline([("phone.log", console), ("tvs.log", tvs_log.getvalue())])


async def test_lab_migration_matches_the_seed_step_for_step(lab: Lab, lab_pki) -> None:  # type: ignore[no-untyped-def]
    phone = lab_pki.clusters["source"].phones[MAC]
    identity = PhoneIdentity.from_lsc(phone.cert, phone.key)
    run = await _migrate(lab, identity, import_destination=True)

    # the emulator's dumps are whole: the request and response decode completely
    tvs_request = next(e for e in run.events if e.source == Source.TVS and e.kind == Kind.REQUEST)
    assert tvs_request.message is not None and not tvs_request.message.truncated
    assert tvs_request.message.inspection is not None and tvs_request.message.inspection.complete
    phone_request = next(
        e for e in run.events if e.source == Source.PHONE and e.kind == Kind.REQUEST
    )
    assert phone_request.message is not None
    assert phone_request.message.data == tvs_request.message.data  # both ends saw the same bytes
    response = next(e for e in run.events if e.source == Source.TVS and e.kind == Kind.RESPONSE)
    assert response.fields["roles"] == [0, 3] and response.fields["ttl"] == 86400
    assert "roles_from" not in response.fields  # read from the message itself

    # the lab PKI's serials and so the lengths differ from the seed's; everything else matches
    # until the seed's excerpt ends (after the ITL); the lab phone goes on to its configuration
    diff = diff_timelines(SEED, run, ignore=["serial", "length"])
    assert diff.compared == (Source.PHONE, Source.TVS)
    div = diff.divergence
    assert div is not None and div.expected is None, diff
    assert div.source == Source.PHONE and div.actual is not None
    assert div.actual.kind == Kind.FILE_REQUEST
    assert div.actual.fields["file"] == f"SEP{MAC}.cnf.xml.sgn"
    core = [e for e in SEED.events if e.kind not in (Kind.ERROR, Kind.FILE_DONE)]
    core = [e for e in core if e.kind not in (Kind.TVS_CONNECT, Kind.TVS_CERT_CHECK)]
    assert diff.matched == len(core)
    assert run.stopped().startswith("ended at step")


async def test_lab_migration_without_the_import_diverges_at_the_tvs_answer(
    lab: Lab, lab_pki
) -> None:  # type: ignore[no-untyped-def]
    """The failure the seed warns about: the destination certificate was not imported."""
    phone = lab_pki.clusters["source"].phones[MAC]
    identity = PhoneIdentity.from_lsc(phone.cert, phone.key)
    run = await _migrate(lab, identity, import_destination=False)
    diff = diff_timelines(SEED, run, ignore=["serial", "length"])
    div = diff.divergence
    assert div is not None and div.source == Source.TVS
    assert div.expected is not None and div.expected.kind == Kind.LOOKUP
    assert div.field == "found" and "expected True, actual False" in div.reason
    assert "failed at step" in run.stopped()
