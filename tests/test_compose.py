"""docker-compose.yml and the Dockerfile: the compose file is valid, every command it names
parses with the real CLI, published ports match what the clusters bind, and the image's shard
wrapper turns ``--shard auto`` into ``I/N``. ``docker compose config`` runs where it works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from phone_emu.cli import build_parser as phone_parser
from tvs.cli import build_parser as tvs_parser
from tvs.cli.cluster import load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
_TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}
_SERVICE_KEYS = {
    "image",
    "build",
    "volumes",
    "command",
    "depends_on",
    "ports",
    "healthcheck",
    "environment",
    "restart",
    "stop_signal",
    "stop_grace_period",
}


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR:-default}`` substitution, recursively."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return dict(_interpolate(data, env or {}))


def _parse(argv: list[str]) -> Any:
    """Parse ``argv`` with the real argparse tree of its program; fail the test if it does not."""
    if argv[0] == "tvs-lab-shard":
        argv = argv[1:]
        argv[argv.index("--shard") + 1] = "1/1"
    program, args = argv[0], argv[1:]
    parser = {"tvs": tvs_parser, "phone-emu": phone_parser}[program]()
    try:
        return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{program} does not accept: {' '.join(args)}")


def _commands(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    found = []
    for name, svc in data["services"].items():
        found.append((name, [str(a) for a in svc["command"]]))
        if "healthcheck" in svc:
            test = svc["healthcheck"]["test"]
            assert test[0] == "CMD", f"{name}: healthcheck must be an exec-form CMD"
            found.append((f"{name} healthcheck", [str(a) for a in test[1:]]))
    return found


def test_structure() -> None:
    data = _compose()
    assert {k for k in data if not k.startswith("x-")} <= _TOP_LEVEL
    services = data["services"]
    assert {"pki", "source", "destination", "phones"} <= set(services)
    volumes = set(data.get("volumes") or {})
    for name, svc in services.items():
        assert set(svc) <= _SERVICE_KEYS, f"{name}: unexpected keys {set(svc) - _SERVICE_KEYS}"
        assert svc["build"] == "." and svc["image"] == "tvs-lab:latest"  # one image
        assert isinstance(svc["command"], list), f"{name}: exec-form command"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for v in svc.get("volumes", []):
            assert v.split(":")[0] in volumes, f"{name}: undeclared volume {v}"
    assert (ROOT / "Dockerfile").is_file()
    phones = services["phones"]
    assert phones["depends_on"]["source"]["condition"] == "service_healthy"
    assert "PHONE_SHARDS" in phones["environment"]


def test_every_command_exists_in_the_cli() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = _commands(_compose())
    assert len(commands) >= 6
    for _, argv in commands:
        program = argv[1] if argv[0] == "tvs-lab-shard" else argv[0]
        assert program in scripts
        assert hasattr(_parse(argv), "func")


def test_fleet_command_is_sharded_and_sized_by_variables() -> None:
    data = _compose({"PHONES": "400", "PHONES_TFTP": "destination:7969"})
    argv = [str(a) for a in data["services"]["phones"]["command"]]
    assert argv[:3] == ["tvs-lab-shard", "phone-emu", "fleet"]
    args = _parse(argv)
    assert args.phones == 400 and args.shard == (1, 1)
    assert args.tftp[0] == "destination"


@pytest.mark.parametrize("service", ["source", "destination"])
def test_published_ports_are_the_bound_ports(service: str) -> None:
    svc = _compose()["services"][service]
    args = _parse([str(a) for a in svc["command"]])
    config = load_config(args)
    node = config.nodes[0]
    assert node.bind_address == "0.0.0.0" and node.address == service  # service name = DNS name
    published = {p.split(":", 1)[1] for p in svc["ports"]}
    assert published == {
        f"{node.tftp_port}:{node.tftp_port}/udp",
        f"{node.tvs_port}:{node.tvs_port}/tcp",
        f"{node.sip_port}:{node.sip_port}/tcp",
        f"{node.http_port}:{node.http_port}/tcp",
    }
    assert f"127.0.0.1:{node.tftp_port}" in svc["healthcheck"]["test"]
    exposed = re.search(r"^EXPOSE (.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert exposed is not None
    for port in published:
        assert port.split(":", 1)[1] in exposed.group(1).split()


def test_clusters_do_not_collide_when_published_on_one_host() -> None:
    services = _compose()["services"]
    host_ports = [
        p.rsplit(":", 2)[1] + p[p.index("/") :]
        for s in services.values()
        for p in s.get("ports", [])
    ]
    assert len(host_ports) == len(set(host_ports)) == 8


def _shard_script(tmp_path: Path) -> Path:
    text = DOCKERFILE.read_text()
    m = re.search(
        r"^COPY --chmod=755 <<'EOF' /usr/local/bin/tvs-lab-shard\n(.*?)^EOF$", text, re.S | re.M
    )
    assert m is not None, "the Dockerfile embeds tvs-lab-shard"
    script = tmp_path / "tvs-lab-shard"
    script.write_text(m.group(1))
    return script


@pytest.mark.parametrize(
    ("env", "expected", "code"),
    [
        ({"SHARD_NAME": "tvs-lab-phones-3.tvs-lab_default", "PHONE_SHARDS": "4"}, "3/4", 0),
        ({"SHARD_NAME": "tvs-lab_phones_2", "PHONE_SHARDS": "2"}, "2/2", 0),  # compose v1 names
        ({"SHARD": "1", "PHONE_SHARDS": "1"}, "1/1", 0),
        ({"SHARD_NAME": "tvs-lab-phones-5", "PHONE_SHARDS": "4"}, None, 2),
    ],
)
def test_shard_wrapper(
    tmp_path: Path, env: dict[str, str], expected: str | None, code: int
) -> None:
    script = _shard_script(tmp_path)
    probe = [sys.executable, "-c", "import sys; print(' '.join(sys.argv[1:]))"]
    result = subprocess.run(
        [sys.executable, str(script), *probe, "fleet", "--shard", "auto", "--phones", "auto"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == code, result.stderr
    if expected is not None:
        assert result.stdout.split() == ["fleet", "--shard", expected, "--phones", "auto"]
    else:
        assert "set PHONE_SHARDS" in result.stderr


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "lab", "*.key", "*.p12"} <= ignored
    assert "tvs" not in ignored and "phone_emu" not in ignored


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return cmd
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    cmd = _compose_cli()
    if cmd is None:
        pytest.skip("no working `docker compose` / `docker-compose` here")
    result = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
