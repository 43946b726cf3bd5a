"""``phone-emu boot`` / ``phone-emu show`` as a user runs them, against loopback servers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import trio
from phone_support import MAC, Lab, closed_port, start_lab

from phone_emu.cli import main
from tvs.hexdump import extract_hex_dumps

PHONE_EMU = str(Path(sys.executable).parent / "phone-emu")
LINE = re.compile(r"^\d{4} (NOT|INF|DEB|WRN|ERR) [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2}\.\d{6} \S")


@pytest.fixture
async def lab(nursery, lab_pki, lab_pki_dir, tmp_path) -> Lab:
    return await start_lab(nursery, lab_pki, lab_pki_dir, tmp_path)


@pytest.fixture(scope="module")
def lsc(lab_pki):
    return lab_pki.clusters["source"].phones[MAC]


async def run(*args: str) -> tuple[int, str, str]:
    proc = await trio.run_process(
        [PHONE_EMU, *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def boot_args(lab: Lab, lsc, state: Path, *extra: str) -> list[str]:
    host, port = lab.tftp
    return [
        "boot",
        "--tftp",
        f"{host}:{port}",
        "--state",
        str(state),
        "--lsc",
        str(lsc.cert_path),
        "--key",
        str(lsc.key_path),
        "--fetch",  # the test lab serves TFTP only (and 6970 here may be anyone's)
        "tftp",
        *extra,
    ]


def show(capsys, *args: str) -> tuple[int, str]:
    """``phone-emu show`` in process (it runs no event loop)."""
    capsys.readouterr()
    code = main(["show", *args])
    return code, capsys.readouterr().out


async def test_boot_json_then_show(lab, lsc, tmp_path, capsys):
    state = tmp_path / "flash"
    code, out, err = await run(*boot_args(lab, lsc, state, "--json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["device"] == f"CP-8861-SEP{MAC}" and doc["state"] == "registered"
    assert doc["registration"] == "passed"
    assert [s["reason"] for s in doc["steps"]] == [
        "ctl.installed",
        "itl.installed",
        "config.applied",
        "register.passed",
    ]
    assert doc["status"] == ["CTL and ITL installed"]

    code, out = show(capsys, "--state", str(state), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["ctl"]["signer"]["name"] == lab.src.itlrecovery.cert.subject
    assert {r["role_name"] for r in shown["itl"]["records"]} >= {"SAST", "TVS"}
    assert {r["role"] for r in shown["itl"]["records"]} >= {0, 21}
    assert shown["config"]["tvs_members"][0]["port"] == lab.tvs_port
    assert shown["phone"]["last_boot"]["state"] == "registered"
    assert shown["phone"]["tftp"] == f"{lab.tftp[0]}:{lab.tftp[1]}"

    code, out = show(capsys, "--state", str(state))
    assert code == 0 and "CTL: CTLFile.tlv" in out and "TVS cache: 0 entries" in out


async def test_migration_boot_in_phone_log_format(lab, lsc, tmp_path, capsys):
    state = tmp_path / "flash"
    assert (await run(*boot_args(lab, lsc, state)))[0] == 0
    lab.vouch_for_destination()
    lab.serve_cluster("destination")
    code, out, err = await run(*boot_args(lab, lsc, state, "--log-format", "phone"))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines[:3]
    text = "\n".join(lines)
    assert f"-GETXXTP [GT870][src=CTLSEP{MAC}.tlv][dest=/tmp/CTLFile.tlv]" in text
    assert "SECUREAPP-Attempting connect to TVS server addr [127.0.0.1]" in text
    assert "SECUREAPP-TVS added cert to TVS cache - expires in 1 hours" in text
    assert "SECUREAPP-TL file updated." in text
    assert "Phone status: Trust List updated" in text
    written = re.search(r"bytes written : (\d+)", text)
    dumps = extract_hex_dumps(text)
    assert dumps and len(dumps[0].data) == int(written.group(1))
    assert dumps[0].data[:4] == bytes([0x57, 0x01, 0x03, 0x00])
    assert dumps[1].data[:3] == bytes([0x57, 0x01, 0x04])

    assert "TVS cache: 1 entry" in show(capsys, "--state", str(state))[1]


async def test_rejection_exits_1_and_summary_names_the_reason(lab, lsc, tmp_path):
    state = tmp_path / "flash"
    assert (await run(*boot_args(lab, lsc, state)))[0] == 0
    lab.serve_cluster("destination")  # nothing imported at the source: TVS says invalid
    code, out, _ = await run(*boot_args(lab, lsc, state, "--no-register"))
    assert code == 1
    assert "tvs.status-invalid" in out and "status: Trust List update failed" in out
    assert "register.skipped" in out


async def test_no_register_is_reported_as_skipped(lab, lsc, tmp_path):
    code, out, _ = await run(*boot_args(lab, lsc, tmp_path / "f", "--json", "--no-register"))
    assert code == 0 and json.loads(out)["registration"] == "skipped"


async def test_unreachable_tftp_exits_2(lab, lsc, tmp_path):
    args = boot_args(lab, lsc, tmp_path / "f", "--tftp-timeout", "0.05", "--json")
    args[2] = f"127.0.0.1:{closed_port()}"
    code, out, _ = await run(*args)
    assert code == 2 and json.loads(out)["steps"][0]["reason"] == "ctl.fetch-failed"


def test_usage_errors_exit_2(tmp_path, capsys, lsc, lab_pki):
    missing = str(tmp_path / "none.pem")
    args = [
        "boot",
        "--tftp",
        "127.0.0.1:69",
        "--state",
        str(tmp_path),
        "--lsc",
        missing,
        "--key",
        missing,
    ]
    assert main(args) == 2
    assert "none.pem" in capsys.readouterr().err
    wrong_key = str(lab_pki.clusters["source"].capf.key_path)
    args = [
        "boot",
        "--tftp",
        "127.0.0.1:69",
        "--state",
        str(tmp_path),
        "--lsc",
        str(lsc.cert_path),
        "--key",
        wrong_key,
    ]
    assert main(args) == 2
    assert "does not belong" in capsys.readouterr().err
    assert main(["show", "--state", str(tmp_path / "absent")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["boot", "--tftp", "127.0.0.1:x", "--state", "d", "--lsc", "a", "--key", "b"])
    assert exc.value.code == 2


def test_corrupt_state_is_reported_by_show(tmp_path, capsys):
    (tmp_path / "CTLFile.tlv").write_bytes(b"junk")
    assert main(["show", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "problem: CTLFile.tlv: corrupt trust list" in out and "CTL: none" in out


async def test_erase_then_boot_trusts_on_first_use(lab, lsc, tmp_path, capsys):
    """Issue 12 item 14: ``phone-emu erase --state DIR [--ctl] [--itl] [--all]``."""
    state = tmp_path / "flash"
    code, _, err = await run(*boot_args(lab, lsc, state))
    assert code == 0, err
    capsys.readouterr()
    assert main(["erase", "--state", str(state), "--itl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["erased"] == ["itl"]
    code, out = show(capsys, "--state", str(state), "--json")
    shown = json.loads(out)
    assert shown["itl"] is None and shown["ctl"] is not None and shown["config"] is not None

    assert main(["erase", "--state", str(state)]) == 0  # neither flag: both lists
    assert "erased ctl" in capsys.readouterr().out
    assert main(["erase", "--state", str(state), "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["erased"] == ["config"]
    shown = json.loads(show(capsys, "--state", str(state), "--json")[1])
    assert shown["ctl"] is None and shown["itl"] is None and shown["config"] is None

    code, out, err = await run(*boot_args(lab, lsc, state, "--json"))
    assert code == 0, err
    assert [s["reason"] for s in json.loads(out)["steps"]][:2] == [
        "ctl.installed",
        "itl.installed",
    ]
    assert main(["erase", "--state", str(tmp_path / "none")]) == 2
    assert "--state" in capsys.readouterr().err
