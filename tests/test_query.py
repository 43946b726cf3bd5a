"""``phone-emu query`` as a process against our TVS server: VERIFY, QUERY, pinning, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from tvs.pki import LabPki
from tvs.roles import Role
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tlv import build_trust_list, sign_file

PHONE_EMU = str(Path(sys.executable).parent / "phone-emu")
MAC = "B000B4BA0AEE"


@attrs.frozen
class Setup:
    host: str
    port: int
    pki: LabPki
    pki_dir: Path
    tmp: Path

    def path(self, rel: str) -> str:
        return str(self.pki_dir / rel)

    def base(self, *extra: str) -> list[str]:
        return [
            PHONE_EMU, "query", "--tvs", f"{self.host}:{self.port}",
            "--lsc", self.path(f"source/phones/SEP{MAC}.pem"),
            "--key", self.path(f"source/phones/SEP{MAC}.key"), *extra,
        ]  # fmt: skip

    @property
    def pin(self) -> list[str]:
        return ["--trust", self.path("source/nodes/ucm105pub/tvs.pem")]


async def _start(nursery: trio.Nursery, store: Path, pki: LabPki, **kw: object) -> tuple[str, int]:
    tvs = pki.clusters["source"].nodes["ucm105pub"].tvs
    cfg = TvsServerConfig(store=store, cert=tvs.cert_path, key=tvs.key_path, port=0, **kw)  # type: ignore[arg-type]
    host, port = await nursery.start(TvsServer(cfg).serve)
    return host, port


@pytest.fixture
async def setup(
    nursery: trio.Nursery, tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki
) -> AsyncIterator[Setup]:
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    cm = lab_pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    store.import_certificates("Phone-SAST-trust", [cm])
    store.import_certificates("CallManager-trust", [cm])
    host, port = await _start(nursery, store.root, lab_pki)
    yield Setup(host, port, lab_pki, lab_pki_dir, tmp_path)


async def _run(cmd: list[str]) -> tuple[int, str, str]:
    done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_verify_valid_prints_answer(setup: Setup) -> None:
    code, out, err = await _run(
        setup.base(*setup.pin, "--cert", setup.path("destination/nodes/ucm11pub/callmanager.pem"))
    )
    assert code == 0, err
    assert "VERIFY_RESPONSE" in out and "valid" in out and "SAST (0), TFTP (3)" in out


async def test_query_by_fields_json_and_tags(setup: Setup) -> None:
    cm = setup.pki.clusters["destination"].nodes["ucm11pub"].callmanager.cert
    for tags in ("4,5", "5,6"):
        code, out, err = await _run(
            setup.base(
                *setup.pin,
                "--subject",
                cm.subject,
                "--issuer",
                cm.x509.issuer.rfc4514_string(),
                "--serial",
                cm.serial_hex,
                "--id",
                "4242",
                "--query-tags",
                tags,
                "--json",
            )
        )
        assert code == 0, err
        answer = json.loads(out)
        assert answer["status"] == "valid"
        assert answer["request_id"] == 4242
        assert answer["roles"] == [0, 3]
        assert answer["tls"]["server_subject"].startswith("CN=ucm105pub")


async def test_unknown_certificate_exits_1(setup: Setup) -> None:
    code, out, _ = await _run(
        setup.base(*setup.pin, "--cert", setup.path("destination/nodes/ucm11pub/tvs.pem"))
    )
    assert code == 1 and "invalid" in out


async def test_signer_of_a_signed_file(setup: Setup) -> None:
    dest = setup.pki.clusters["destination"].nodes["ucm11pub"].callmanager
    sgn = setup.tmp / "SEPB000B4BA0AEE.cnf.xml.sgn"
    sgn.write_bytes(sign_file(b"<device/>", filename=sgn.name, signer=dest.cert, key=dest.key))
    code, out, err = await _run(setup.base(*setup.pin, "--signer-of", str(sgn), "--json"))
    assert code == 0, err
    assert json.loads(out)["roles"] == [0, 3]


async def test_pinning_to_an_itl(setup: Setup) -> None:
    src = setup.pki.clusters["source"]
    node = src.nodes["ucm105pub"]
    good = setup.tmp / "ITLFile.tlv"
    good.write_bytes(
        build_trust_list(
            [(Role.SAST, node.callmanager.cert), (Role.TVS, node.tvs.cert)],
            signer=src.itlrecovery.cert,
            key=src.itlrecovery.key,
            filename="ITLFile.tlv",
        )
    )
    blank = setup.tmp / "blank-ITLFile.tlv"  # "Rollback to pre 8.0": no TVS record
    blank.write_bytes(
        build_trust_list(
            [], signer=src.itlrecovery.cert, key=src.itlrecovery.key, filename="ITLFile.tlv"
        )
    )
    cert = ["--cert", setup.path("source/capf.pem")]
    code, _, err = await _run(setup.base("--trust", str(good), *cert))
    assert code == 0, err
    code, _, err = await _run(setup.base("--trust", str(blank), *cert))
    assert code == 2 and "not pinned" in err


async def test_wrong_pin_and_insecure(setup: Setup) -> None:
    cert = ["--cert", setup.path("source/capf.pem")]
    code, _, err = await _run(
        setup.base("--trust", setup.path("destination/nodes/ucm11pub/tvs.pem"), *cert)
    )
    assert code == 2 and "TvsHandshakeError" in err and "not pinned" in err
    code, _, err = await _run(setup.base("--insecure", *cert))
    assert code == 0, err


async def test_transport_error_and_bad_usage_exit_2(setup: Setup) -> None:
    cert = ["--cert", setup.path("source/capf.pem")]
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    code, _, err = await _run(
        [PHONE_EMU, "query", "--tvs", f"127.0.0.1:{closed_port}", "--insecure", *cert]
    )
    assert code == 2 and "TvsConnectError" in err
    code, _, err = await _run(setup.base(*setup.pin, "--subject", "CN=x"))
    assert code == 2 and "--issuer" in err
    code, _, err = await _run(setup.base(*setup.pin, "--cert", str(setup.tmp / "missing.pem")))
    assert code == 2


async def test_keylog_and_legacy_tls(nursery: trio.Nursery, setup: Setup, tmp_path: Path) -> None:
    store = TrustStore.open(tmp_path / "store")
    host, port = await _start(nursery, store.root, setup.pki, legacy_tls=True)
    keylog = tmp_path / "keys.log"
    cmd = setup.base(*setup.pin, "--legacy-tls", "--keylog", str(keylog), "--cert",
                     setup.path("source/capf.pem"))  # fmt: skip
    cmd[cmd.index("--tvs") + 1] = f"{host}:{port}"
    code, _out, err = await _run(cmd)
    assert code == 0, err
    lines = keylog.read_text().splitlines()
    assert any(
        line.startswith(("CLIENT_RANDOM ", "CLIENT_HANDSHAKE_TRAFFIC_SECRET ")) for line in lines
    )
