"""``tvs capf serve|schedule|list|show`` and ``phone-emu capf``: a real server process on
loopback, the client command in-process, exit codes 0/1/2 and JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phone_emu.cli import main as phone_main
from tests.capf_support import VECTORS
from tvs.capf.db import issued_certificate
from tvs.certs import load_certificates
from tvs.cli import main as tvs_main

CAPF_PEM = VECTORS / "capf-issuer.pem"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "capf.sqlite3"


@pytest.fixture
def server(db: Path) -> Iterator[tuple[str, int]]:
    """``tvs capf serve`` in its own process on a free loopback port."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tvs.cli import main; sys.exit(main(sys.argv[1:]))",
            "capf",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            str(CAPF_PEM),
            "--key",
            str(CAPF_PEM),
            "--db",
            str(db),
            "--log-format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        port = None
        for _ in range(50):
            line = proc.stderr.readline()
            m = re.search(r'"port": (\d+)', line)
            if m and "capf.listening" in line:
                port = int(m.group(1))
                break
        assert port, f"the server did not say where it listens: {line!r}"
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_schedule_list_show(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        tvs_main(
            [
                "capf",
                "schedule",
                "SEP0011223344[00-0F]",
                "--operation",
                "install",
                "--key",
                "ec-p384",
                "--deadline",
                "+7d",
                "--db",
                str(db),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["scheduled"] == 16 and out["last"] == "SEP00112233440F"
    assert tvs_main(["capf", "list", "--db", str(db), "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)["devices"]
    assert len(devices) == 16 and devices[0]["key"] == "ec-p384" and devices[0]["pending"]
    assert tvs_main(["capf", "show", "sep001122334405", "--db", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["device"] == "SEP001122334405" and shown["issued"] is None
    assert tvs_main(["capf", "show", "SEP00112233AAAA", "--db", str(db)]) == 1
    assert "not in the CAPF database" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedule", "SEPnope", "--operation", "install"], "DEVICE"),
        (["schedule", "SEP0011223344[10-00]", "--operation", "install"], "backwards"),
        (["schedule", "SEP001122334455", "--operation", "install", "--auth", "string"], "4 to 10"),
        (["schedule", "SEP001122334455", "--operation", "install", "--key", "dsa"], "dsa"),
        (["list"], "no CAPF database"),
    ],
)
def test_user_errors_are_one_line(
    db: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tvs_main(["capf", *argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_phone_emu_capf_against_tvs_capf_serve(
    db: Path, server: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = server
    where = f"{host}:{port}"
    assert tvs_main(["capf", "schedule", "SEP001122334455", "--operation", "install",
                     "--auth", "string", "--auth-string", "4321", "--key", "ec-p256",
                     "--db", str(db)]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "lsc.pem"
    base = ["capf", "--capf", where, "--trust", str(CAPF_PEM), "--device", "SEP001122334455"]
    # wrong string: refused, exit 1, nothing written
    assert phone_main([*base, "--auth-string", "1111", "--out", str(out)]) == 1
    assert "capf.auth-failed" in capsys.readouterr().out and not out.exists()
    # the right one: installed, exit 0, certificate then key in --out
    assert phone_main([*base, "--auth-string", "4321", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["result"] == "installed" and result["reason_code"] == "capf.installed"
    pem = out.read_bytes()
    assert pem.index(b"CERTIFICATE") < pem.index(b"PRIVATE KEY")
    cert = load_certificates(pem)[0]
    stored = issued_certificate(db, "SEP001122334455")
    assert stored is not None and stored.der == cert.der
    # the new LSC proves the phone for the next operation (fetch by LSC)
    assert tvs_main(["capf", "schedule", "SEP001122334455", "--operation", "fetch",
                     "--auth", "lsc", "--db", str(db)]) == 0  # fmt: skip
    assert phone_main([*base, "--lsc", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["result"] == "fetched"
    # unknown device: exit 1; untrusted server: exit 2
    assert phone_main(["capf", "--capf", where, "--insecure", "--device", "SEP0000000000FF"]) == 1
    other = VECTORS / "SEP001122334455-lsc.pem"
    assert (
        phone_main(["capf", "--capf", where, "--trust", str(other), "--device", "SEP00000000FF01"])
        == 2
    )
    assert "capf.server-untrusted" in capsys.readouterr().err
    # nobody listening: exit 2, with the reason code the phone's boot report uses too
    assert (
        phone_main(["capf", "--capf", "127.0.0.1:1", "--insecure", "--device", "SEP0000000000FF"])
        == 2
    )
    assert "capf.connect-failed" in capsys.readouterr().err
