"""Issue 11 items 2, 4 and 7 on a standalone TVS (real server on loopback): the lookup falls
back to the current CTL (``tvs serve --ctl FILE``) with the CTL's roles, the ``cucm`` trace says
which source answered, the refresh modes (``restart``, ``notify`` with a delay, ``--watch``),
and the default of not asking for the phone certificate."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog
import trio

from phone_emu.tvs_client import TvsClientConfig, tvs_request
from tvs.certs import Certificate
from tvs.cli import build_parser
from tvs.cli.serve import config_from_args
from tvs.pki import LabPki
from tvs.roles import Role
from tvs.server import TvsServer, TvsServerConfig, configure_logging
from tvs.store import TrustStore
from tvs.tlv import build_trust_list
from tvs.trace import Kind, build_timeline
from tvs.wire import QueryCertRequest, QueryCertResponse, Status

DEVICE = "CP-8861-SEPB000B4BA0AEE"


@pytest.fixture
def store_dir(tmp_path: Path, lab_pki_dir: Path) -> Path:
    TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    return tmp_path / "store"


def _ctl(lab_pki: LabPki, *extra: tuple[Role, Certificate]) -> bytes:
    """A source CTL (signed by the source CallManager) with ``extra`` records."""
    src = lab_pki.clusters["source"]
    cm = src.publisher.callmanager
    records = [(Role.SAST, cm.cert), (Role.CCM_TFTP, cm.cert), (Role.CAPF, src.capf.cert), *extra]
    return build_trust_list(records, signer=cm.cert, key=cm.key, filename="CTLFile.tlv")


async def _start(nursery: trio.Nursery, config: TvsServerConfig) -> tuple[TvsServer, int]:
    server = TvsServer(config)
    _, port = await nursery.start(server.serve)
    return server, port


async def _ask(port: int, lab_pki: LabPki, cert: Certificate) -> QueryCertResponse:
    tvs = lab_pki.clusters["source"].publisher.tvs.cert
    msg = QueryCertRequest(DEVICE, cert.subject, cert.issuer, cert.serial, request_id=7)
    with trio.fail_after(10):
        resp = await tvs_request("127.0.0.1", port, msg, TvsClientConfig(pinned=[tvs], timeout=5))
    assert isinstance(resp, QueryCertResponse)
    return resp


def _server_config(store: Path, lab_pki: LabPki, **kw: object) -> TvsServerConfig:
    tvs = lab_pki.clusters["source"].publisher.tvs
    return TvsServerConfig(store=store, cert=tvs.cert_path, key=tvs.key_path, port=0, **kw)  # type: ignore[arg-type]


async def test_cache_miss_falls_back_to_the_ctl_with_its_roles(
    store_dir: Path, lab_pki: LabPki, tmp_path: Path, nursery: trio.Nursery
) -> None:
    firewall = lab_pki.clusters["destination"].publisher.callmanager.cert
    ctl = tmp_path / "CTLFile.tlv"
    ctl.write_bytes(_ctl(lab_pki, (Role.FIREWALL, firewall)))
    args = build_parser().parse_args(
        ["serve", "--cert", "c", "--key", "k", "--store", str(store_dir), "--ctl", str(ctl)]
    )
    assert config_from_args(args).ctl == ctl  # `tvs serve --ctl FILE`
    out = io.StringIO()
    configure_logging("cucm", "debug", stream=out)
    try:
        _, port = await _start(nursery, _server_config(store_dir, lab_pki, ctl=ctl))
        resp = await _ask(port, lab_pki, firewall)  # only in the CTL
        own = await _ask(port, lab_pki, lab_pki.clusters["source"].publisher.callmanager.cert)
        stranger = await _ask(port, lab_pki, lab_pki.clusters["destination"].capf.cert)
    finally:
        structlog.reset_defaults()
    assert resp.status is Status.VALID and resp.roles == (int(Role.FIREWALL),)
    assert resp.certificate == firewall.der
    assert set(own.roles) == {Role.SAST, Role.CCM_TFTP}  # the store answers first
    assert stranger.status is Status.INVALID  # in neither
    text = out.getvalue()
    assert "CTLFileCache::getCertificateInformation - Looking up the current CTL file" in text
    assert "CTLFileCache::getCertificateInformation - {role : 6}" in text
    assert text.count("CertificateDBCache::getCertificateInformation - Entry not found") == 2
    # `tvs trace` reads the source back: the first lookup was answered by the CTL
    lookups = [e for e in build_timeline([("tvs.log", text)]).events if e.kind is Kind.LOOKUP]
    assert [(e.fields.get("found"), e.fields.get("source")) for e in lookups] == [
        (True, "ctl"),
        (True, None),
        (False, None),
    ]
    assert lookups[0].fields["roles"] == [int(Role.FIREWALL)]


async def test_restart_mode_reads_a_new_ctl_only_on_reload(
    store_dir: Path, lab_pki: LabPki, tmp_path: Path, nursery: trio.Nursery
) -> None:
    dst_cm = lab_pki.clusters["destination"].publisher.callmanager.cert
    ctl = tmp_path / "CTLFile.tlv"
    ctl.write_bytes(_ctl(lab_pki))
    server, port = await _start(
        nursery, _server_config(store_dir, lab_pki, ctl=ctl, watch_interval=0.05)
    )
    ctl.write_bytes(_ctl(lab_pki, (Role.SAST, dst_cm)))  # utils ctl update CTLFile
    assert (await _ask(port, lab_pki, dst_cm)).status is Status.INVALID  # not restarted
    server.reload()  # SIGHUP: "restart TVS"
    assert (await _ask(port, lab_pki, dst_cm)).roles == (int(Role.SAST),)


@pytest.mark.parametrize(("refresh", "watch"), [("notify", False), ("restart", True)])
async def test_notify_mode_follows_store_and_ctl_changes_by_itself(
    store_dir: Path,
    lab_pki: LabPki,
    tmp_path: Path,
    nursery: trio.Nursery,
    refresh: str,
    watch: bool,
) -> None:
    dst = lab_pki.clusters["destination"]
    ctl = tmp_path / "CTLFile.tlv"
    ctl.write_bytes(_ctl(lab_pki))
    config = _server_config(
        store_dir,
        lab_pki,
        ctl=ctl,
        refresh=refresh,
        refresh_delay=0.2,
        watch=watch,
        watch_interval=0.05,
    )
    assert config.notify and config.notify_delay == (0.0 if watch else 0.2)
    _, port = await _start(nursery, config)
    TrustStore.open(store_dir).import_certificates("Phone-SAST-trust", [dst.itlrecovery.cert])
    with trio.fail_after(20):
        while (resp := await _ask(port, lab_pki, dst.itlrecovery.cert)).status != Status.VALID:
            await trio.sleep(0.05)
    assert resp.roles == (int(Role.SAST), int(Role.TFTP))  # Phone-SAST-trust (section 7)
    ctl.write_bytes(_ctl(lab_pki, (Role.VPN, dst.capf.cert)))
    with trio.fail_after(20):
        while (resp := await _ask(port, lab_pki, dst.capf.cert)).status != Status.VALID:
            await trio.sleep(0.05)
    assert resp.roles == (int(Role.VPN),)


def test_refresh_options_and_client_auth_default() -> None:
    base = ["serve", "--cert", "c", "--key", "k", "--store", "s"]
    default = config_from_args(build_parser().parse_args(base))
    assert (default.refresh, default.refresh_delay, default.ctl) == ("restart", 8.0, None)
    assert str(default.client_auth) in ("none", "ClientAuth.NONE")
    assert not default.notify
    notify = config_from_args(
        build_parser().parse_args([*base, "--refresh", "notify", "--refresh-delay", "2.5"])
    )
    assert notify.notify and notify.notify_delay == 2.5
    watch = config_from_args(build_parser().parse_args([*base, "--watch"]))
    assert watch.notify and watch.notify_delay == 0.0
    with pytest.raises(ValueError, match="refresh"):
        TvsServerConfig(store=Path("s"), cert=Path("c"), key=Path("k"), refresh="sometimes")
