"""``tvs cluster serve`` / ``tvs cluster files``: overrides, PKI generation, bound addresses,
graceful SIGTERM, and exit code 2 for bad configurations and busy addresses."""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

from tvs.cli import build_parser, main
from tvs.cli.cluster import load_config
from tvs.pki import LabPki
from tvs.store import TrustStore
from tvs.tftp import tftp_get
from tvs.tlv import parse_file, verify_file

MAC = "B000B4BA0AEE"

MINI_RECIPE = """
[enterprise_ca]
common_name = "mini-CA"
key_type = "ec-p256"

[[clusters]]
name = "mini"
version = "12.5.1.10000-22"
domain = "mini.lab"
key_type = "ec-p256"
nodes = [{ name = "pub", fqdn = "pub.mini.lab", address = "127.0.6.1" }]
"""


def _mini_config(tmp_path: Path, **ports: int) -> Path:
    p = {"tftp_port": 0, "tvs_port": 0, "sip_port": 0, **ports}
    text = f"""
name = "mini"
version = "12.5.1.10000-22"
pki_dir = "{tmp_path / "pki"}"
store_dir = "{tmp_path / "store"}"
[[nodes]]
name = "pub"
address = "127.0.6.1"
tftp_port = {p["tftp_port"]}
tvs_port = {p["tvs_port"]}
sip_port = {p["sip_port"]}
sip_tcp_port = 0
"""
    (tmp_path / "recipe.toml").write_text(MINI_RECIPE)
    path = tmp_path / "mini.toml"
    path.write_text(text)
    return path


def test_overrides_apply_to_the_example(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "cluster",
            "serve",
            "--config",
            "source",
            "--pki",
            str(tmp_path / "pki"),
            "--store",
            str(tmp_path / "st"),
            "--listen",
            "0.0.0.0",
            "--advertise",
            "source",
            "--json",
            "--log-format",
            "json",
        ]
    )
    config = load_config(args)
    assert config.pki_dir == tmp_path / "pki" and config.store_dir == tmp_path / "st"
    node = config.nodes[0]
    assert (node.bind_address, node.address, node.tvs_port) == ("0.0.0.0", "source", 2445)


def test_files_writes_what_tftp_serves(
    lab_pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["cluster", "files", "--config", "destination", "--pki", str(lab_pki_dir)]
    argv += ["--store", str(tmp_path / "store"), "--mac", "b0:00:b4:ba:0a:ee", "--out", str(out)]
    assert main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        f"CTLSEP{MAC}.tlv",
        f"ITLSEP{MAC}.tlv",
        "ITLFile.tlv",
        f"SEP{MAC}.cnf.xml",
        f"SEP{MAC}.cnf.xml.sgn",
    }
    ctl = parse_file((out / f"CTLSEP{MAC}.tlv").read_bytes())
    assert "ucm11pub" in verify_file(ctl).subject
    assert str(out / "ITLFile.tlv") in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "/nonexistent/c.toml"], "cannot read"),
        (["--config", "source", "--mac", "nope"], "not a MAC"),
        (["--config", "source"], "cannot read recipe"),
    ],
)
def test_bad_input_exits_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["cluster", "files", *argv, "--out", str(tmp_path)]
    if "--mac" not in argv:
        argv += ["--mac", MAC]
    argv += ["--pki", str(tmp_path / "pki"), "--recipe", str(tmp_path / "missing-recipe.toml")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_recipe_without_the_cluster_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _mini_config(tmp_path)
    argv = ["cluster", "files", "--config", str(config), "--mac", MAC, "--out", str(tmp_path)]
    assert main(argv) == 2  # the packaged recipe has no cluster "mini"
    assert "mini" in capsys.readouterr().err


def test_busy_address_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.6.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        config = _mini_config(tmp_path, tvs_port=busy_port)
        argv = [
            "cluster",
            "serve",
            "--config",
            str(config),
            "--recipe",
            str(tmp_path / "recipe.toml"),
        ]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    err = err.splitlines()[-1]  # before it: "generated the lab PKI", the TVS cache log line
    assert err.startswith("tvs cluster serve: error:")
    assert f"TVS of pub at 127.0.6.1:{busy_port}" in err and "in use" in err


async def test_serve_generates_pki_prints_addresses_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _mini_config(tmp_path)
    cmd = [sys.executable, "-c", "import sys; from tvs.cli import main; sys.exit(main())"]
    cmd += ["cluster", "serve", "--config", str(config)]
    cmd += ["--recipe", str(tmp_path / "recipe.toml"), "--json", "--log-format", "json"]
    pidfile = tmp_path / "cluster.pid"
    cmd += ["--pidfile", str(pidfile)]
    proc = await trio.lowlevel.open_process(cmd, stdout=-1, stderr=-1)
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "serve exited before printing its addresses"
                line += chunk
        info = json.loads(line)
        assert info["cluster"] == "mini" and info["nodes"][0]["name"] == "pub"
        host, port = info["tftp"].rsplit(":", 1)
        assert host == "127.0.6.1" and int(port) != 0
        with trio.fail_after(10):
            data = await tftp_get(host, int(port), f"ITLSEP{MAC}.tlv", timeout=0.5)
        itl = parse_file(data)
        assert "ITLRECOVERY" in verify_file(itl).subject  # 12.5: ITLRecovery signs
        assert (tmp_path / "pki" / "mini" / "itlrecovery.pem").is_file()
        # an import (another process) leaves the CTL alone; `tvs cluster ctl-update` rebuilds it
        ctl_before = await tftp_get(host, int(port), "CTLFile.tlv", timeout=0.5)
        other = LabPki.load(tmp_path / "pki").cluster("mini").capf.cert
        TrustStore.open(tmp_path / "store").import_certificates("Phone-SAST-trust", [other])
        assert main(["cluster", "ctl-update", "--pidfile", str(pidfile)]) == 0
        with trio.fail_after(20):
            while await tftp_get(host, int(port), "CTLFile.tlv", timeout=0.5) == ctl_before:
                await trio.sleep(0.1)
        (tmp_path / "bad.pid").write_text("not a pid\n")
        assert main(["cluster", "ctl-update", "--pidfile", str(tmp_path / "bad.pid")]) == 2
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_two_clusters_started_at_once_share_one_lab_pki(tmp_path: Path) -> None:
    """Issue 12 item 13: both generate the missing lab PKI at the same time; the generation
    lock makes the second wait and keep what the first made (no "appeared while generating")."""
    import subprocess

    pki = tmp_path / "pki"
    base = [sys.executable, "-c", "import sys; from tvs.cli import main; sys.exit(main())"]
    base += ["cluster", "files", "--pki", str(pki), "--mac", MAC, "--json"]
    procs = [
        subprocess.Popen(
            [*base, "--config", name, "--out", str(tmp_path / f"{name}{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, name in enumerate(("source", "destination", "source"))
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["files"]
    assert (pki / "source" / "itlrecovery.pem").is_file()
    assert (pki / "destination" / "nodes" / "ucm11pub" / "callmanager.pem").is_file()


async def test_serve_metrics_and_keylog(tmp_path: Path) -> None:
    """``tvs cluster serve --metrics ADDR:PORT --keylog FILE``: the TVS metrics of every node
    at /metrics, and the TLS secrets of a TVS handshake in the key log."""
    import ssl
    import urllib.request

    config = _mini_config(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    keylog = tmp_path / "keys.log"
    cmd = [sys.executable, "-c", "import sys; from tvs.cli import main; sys.exit(main())"]
    cmd += ["cluster", "serve", "--config", str(config), "--recipe", str(tmp_path / "recipe.toml")]
    cmd += ["--json", "--metrics", f"127.0.0.1:{metrics_port}", "--keylog", str(keylog)]
    proc = await trio.lowlevel.open_process(cmd, stdout=-1, stderr=-1)
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "serve exited before printing its addresses"
                line += chunk
        info = json.loads(line)
        host, port = info["nodes"][0]["tvs"].rsplit(":", 1)
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with trio.fail_after(20):
            stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=ctx)
            await stream.do_handshake()
            await stream.aclose()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await trio.to_thread.run_sync(
            lambda: urllib.request.urlopen(url, timeout=10).read().decode()
        )
        assert "tvs_connections_total" in text and "tvs_cache_entries" in text
        with trio.fail_after(10):
            while "CLIENT_" not in (keylog.read_text() if keylog.exists() else ""):
                await trio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
