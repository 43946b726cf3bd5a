"""The phone's CAPF step and encrypted configuration over real loopback sockets: TFTP serving a
stub and an ``.enc.sgn`` made from what the CAPF database knows, a real CAPF server (TLS 3804
on port 0), TVS and the secure SIP listener of ``phone_support``."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from phone_support import MAC, Clock, Lab, config_xml, make_config, start_lab

from phone_emu.phone import BootState, Phone, PhoneIdentity
from phone_emu.phone.boot import BootOptions
from phone_emu.phone.console import console_lines
from phone_emu.phone.driver import NetworkOptions, boot_phone
from phone_emu.tvs_client import TvsClientConfig
from tvs.capf.server import CapfServer, CapfServerConfig
from tvs.certs import Certificate
from tvs.cluster.encconfig import build_encrypted_config, build_stub

DEVICE = f"SEP{MAC}"
OPTS = NetworkOptions(
    tvs=TvsClientConfig(connect_timeout=2, timeout=5),
    tftp_timeout=0.5,
    tftp_retries=2,
    capf_timeout=5,
    boot=BootOptions(capf_interval=0.01),
)


@pytest.fixture
async def lab(nursery, lab_pki, lab_pki_dir, tmp_path) -> Lab:
    return await start_lab(nursery, lab_pki, lab_pki_dir, tmp_path)


@pytest.fixture
async def capf(nursery, lab, tmp_path):
    c = lab.src.capf
    mic_ca = lab.pki.manufacturing_ca
    server = CapfServer(
        CapfServerConfig(
            chain=[c.cert],
            key=c.key,
            db=tmp_path / "capf.db",
            port=0,
            lsc_issuers=[c.cert],
            mic_issuers=[mic_ca.cert] if mic_ca is not None else [],
        )
    )
    await nursery.start(server.serve)
    yield server
    server.close()


@pytest.fixture(scope="module")
def identity(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    return PhoneIdentity.from_lsc(phone.cert, phone.key)


def serve_encrypted(lab: Lab, capf: CapfServer, *, mode: int, fallback: Certificate | None):
    """The cluster's rule in miniature: the phone certificate CUCM knows is the one its CAPF
    issued (else ``fallback``); the stub names it and the .enc.sgn is encrypted to it."""
    cm = lab.src.publisher.callmanager
    assert capf.address is not None
    full = lab.config("source")
    issued = capf.db.certificate(DEVICE)
    known = Certificate.from_der(issued.der) if issued is not None else fallback
    lab.files[f"SEP{MAC}.cnf.xml.sgn"] = build_stub(
        MAC,
        known=known,
        signer=cm.cert,
        key=cm.key,
        capf_auth_mode=0 if issued is not None else mode,
        capf_servers=[capf.address],
    )
    if known is not None:
        lab.files[f"SEP{MAC}.cnf.xml.enc.sgn"] = build_encrypted_config(
            MAC, full, known=known, signer=cm.cert, key=cm.key
        )


async def _boot(phone, lab, options=OPTS):
    return await boot_phone(phone, tftp=lab.tftp, clock=Clock(), options=options)


async def test_null_string_enrollment_then_encrypted_configuration(lab, capf, identity):
    """Files rebuilt only between boots: the boot that enrolls still sees the old stub."""
    capf.db.schedule([DEVICE], operation="install", auth_mode="null", key="rsa-2048")
    serve_encrypted(lab, capf, mode=2, fallback=None)
    phone = Phone.open(identity)
    first = await _boot(phone, lab)
    assert first.step("capf").reason == "capf.installed", first.to_dict()
    assert first.step("config").reason == "config.cert-unknown"  # asked again: same stub
    issued = Certificate.from_der(capf.db.certificate(DEVICE).der)
    assert phone.identity.lsc == issued != identity.lsc  # the phone keeps its new LSC
    serve_encrypted(lab, capf, mode=2, fallback=None)  # CUCM rebuilds the files
    second = await _boot(phone, lab)
    assert second.step("config").reason == "config.applied", second.to_dict()
    assert second.state is BootState.REGISTERED and not second.has_step("capf")


async def test_enrollment_and_configuration_in_one_boot(lab, capf, identity):
    """The TFTP provider rebuilds the stub from the CAPF database at every request."""
    capf.db.schedule([DEVICE], operation="install", auth_mode="null", key="rsa-2048")
    serve_encrypted(lab, capf, mode=2, fallback=None)

    class Live(dict):
        def get(self, name, default=None):
            if name.startswith(DEVICE):
                serve_encrypted(lab, capf, mode=2, fallback=None)
            return dict.get(self, name, default)

    lab.files = Live(lab.files)
    r = await _boot(Phone.open(identity), lab)
    assert [s.name for s in r.steps] == ["ctl", "itl", "config", "capf", "register"]
    assert r.step("config").reason == "config.applied" and r.state is BootState.REGISTERED
    text = "\n".join(console_lines(r, identity))
    assert "SECUREAPP-CAPF: LSC installed" in text


async def test_wrong_auth_string_is_refused_three_times_nothing_stored(lab, capf, identity):
    capf.db.schedule(
        [DEVICE], operation="install", auth_mode="string", auth_string="4321", key="ec-p256"
    )
    xml = lab.config("source").replace(
        b"</device>",
        f"<capfAuthMode>1</capfAuthMode><capfList><capf><phonePort>{capf.address[1]}</phonePort>"
        f"<processNodeName>127.0.0.1</processNodeName></capf></capfList></device>".encode(),
    )
    lab.files[f"SEP{MAC}.cnf.xml.sgn"] = make_config(lab.src, xml)
    opts = NetworkOptions(
        tvs=OPTS.tvs,
        tftp_timeout=0.5,
        tftp_retries=2,
        boot=BootOptions(capf_interval=0.01, capf_auth_string="1111"),
    )
    phone = Phone.open(identity)
    r = await _boot(phone, lab, opts)
    step = r.step("capf")
    assert step.reason == "capf.auth-failed" and len(step.attempts) == 3, r.to_dict()
    assert phone.identity == identity and capf.db.certificate(DEVICE) is None
    # right string, EC key as scheduled: the phone now registers with a new EC LSC
    opts = NetworkOptions(
        tvs=OPTS.tvs, boot=BootOptions(capf_interval=0.01, capf_auth_string="4321")
    )
    r = await _boot(phone, lab, opts)
    assert r.step("capf").reason == "capf.installed" and r.state is BootState.REGISTERED
    assert isinstance(phone.identity.key, ec.EllipticCurvePrivateKey)


async def test_capf_server_not_in_the_trust_lists_is_untrusted(lab, capf, identity, nursery):
    other = lab.dst.capf  # a CAPF whose certificate no CTL/ITL record holds
    rogue = CapfServer(
        CapfServerConfig(chain=[other.cert], key=other.key, db=capf.config.db, port=0)
    )
    address = await nursery.start(rogue.serve)
    xml = config_xml(
        tvs=[("127.0.0.1", lab.tvs_port)], cms=[("127.0.0.1", lab.sip_ports["source"])]
    )
    xml = xml.replace(
        b"</device>",
        f"<capfAuthMode>2</capfAuthMode><capfList><capf><phonePort>{address[1]}</phonePort>"
        f"<processNodeName>127.0.0.1</processNodeName></capf></capfList></device>".encode(),
    )
    lab.files[f"SEP{MAC}.cnf.xml.sgn"] = make_config(lab.src, xml)
    r = await _boot(Phone.open(identity), lab)
    assert r.step("capf").reason == "capf.server-untrusted", r.to_dict()
    rogue.close()


async def test_new_lsc_is_kept_in_the_state_directory(lab, capf, identity, tmp_path):
    """The LSC CAPF installed is written to the phone's flash (``lsc.pem``) and used again
    when the phone comes back from its state directory (a new process)."""
    from phone_emu.phone.persist import LSC_FILE

    capf.db.schedule([DEVICE], operation="install", auth_mode="null", key="rsa-2048")
    serve_encrypted(lab, capf, mode=2, fallback=None)
    state = tmp_path / "phone"
    phone = Phone.open(identity, state)
    r = await _boot(phone, lab)
    assert r.step("capf").reason == "capf.installed"
    assert (state / LSC_FILE).is_file()
    again = Phone.open(identity, state)  # the caller still names the factory LSC
    assert again.identity.lsc == phone.identity.lsc != identity.lsc
    serve_encrypted(lab, capf, mode=2, fallback=None)
    r2 = await _boot(again, lab)
    assert r2.step("config").reason == "config.applied" and r2.state is BootState.REGISTERED


def _config_asking(lab: Lab, capf: CapfServer, mode: int) -> None:
    assert capf.address is not None
    xml = lab.config("source").replace(
        b"</device>",
        f"<capfAuthMode>{mode}</capfAuthMode><capfList><capf><phonePort>{capf.address[1]}"
        f"</phonePort><processNodeName>127.0.0.1</processNodeName></capf></capfList>"
        "</device>".encode(),
    )
    lab.files[f"SEP{MAC}.cnf.xml.sgn"] = make_config(lab.src, xml)


async def test_phone_without_lsc_enrolls_with_its_mic(lab, capf):
    """capfAuthMode 4: the phone proves itself with its MIC (SIGNED_DATA, SHA-2, SUDI)."""
    from phone_emu.lab.fleet import make_mic_identities

    assert lab.pki.manufacturing_ca is not None
    (mic_phone,) = make_mic_identities(lab.pki.manufacturing_ca, [(0, MAC)])
    capf.db.schedule([DEVICE], operation="install", auth_mode="mic", key="rsa-2048")
    _config_asking(lab, capf, 4)
    phone = Phone.open(mic_phone)
    r = await _boot(phone, lab)
    assert r.step("capf").reason == "capf.installed", r.to_dict()
    assert phone.identity.lsc is not None and phone.identity.mic == mic_phone.mic
    assert phone.identity.lsc.issuer == lab.src.capf.cert.subject
    assert r.state is BootState.REGISTERED


async def test_phone_renews_its_lsc_by_proving_the_old_one(lab, capf, identity):
    """capfAuthMode 3: the existing LSC (issued by this CAPF) is the proof; EC key asked."""
    capf.db.schedule([DEVICE], operation="install", auth_mode="lsc", key="ec-p256")
    _config_asking(lab, capf, 3)
    phone = Phone.open(identity)
    r = await _boot(phone, lab)
    assert r.step("capf").reason == "capf.installed", r.to_dict()
    assert isinstance(phone.identity.key, ec.EllipticCurvePrivateKey)
    assert phone.identity.lsc != identity.lsc and r.state is BootState.REGISTERED
