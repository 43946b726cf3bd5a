"""deploy/k8s: the manifests parse, the kustomization lists them all, every command they run is
parsed by the real CLI, the clusters' configurations load and bind the ports their Services
and container ports name, the servers trust the pod networks, and the fleet is an Indexed Job
whose ``--shards`` is its ``completions`` and whose reports land where the merge reads them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from phone_emu.cli import build_parser as phone_parser
from tvs.cli import build_parser as tvs_parser
from tvs.cli.cluster import load_config

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
_VAR = re.compile(r"\$\((\w+)\)")


def _docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= set(doc), path
            out.append(doc)
    return out


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _docs() if d["kind"] == kind}


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for d in _docs():
        if d["kind"] in ("Deployment", "Job"):
            specs.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
    return specs


def _parse(argv: list[str], env: dict[str, str] | None = None) -> Any:
    """Parse ``argv`` (``$(VAR)`` expanded as the kubelet does) with the real argparse tree."""
    argv = [_VAR.sub(lambda m: (env or {}).get(m.group(1), m.group(0)), a) for a in argv]
    program, args = argv[0], argv[1:]
    parser = {"tvs": tvs_parser, "phone-emu": phone_parser}[program]()
    try:
        return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{program} does not accept: {' '.join(args)}")


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization" and kust["namespace"] == "tvs-lab"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files
    kinds = {d["kind"] for d in _docs()}
    expected = {"Namespace", "PersistentVolumeClaim", "ConfigMap", "Job", "Deployment", "Service"}
    assert expected <= kinds


def test_every_command_is_parsed_by_the_cli() -> None:
    commands = []
    for name, spec in _pod_specs():
        for c in spec.get("initContainers", []) + spec["containers"]:
            commands.append((name, c["command"]))
            probe = c.get("readinessProbe", {}).get("exec")
            if probe:
                commands.append((f"{name} probe", probe["command"]))
    assert len(commands) >= 8
    for _, argv in commands:
        assert hasattr(_parse([str(a) for a in argv], {"JOB_COMPLETION_INDEX": "0"}), "func")


def test_volumes_and_config_maps_exist() -> None:
    claims, maps = _by_kind("PersistentVolumeClaim"), _by_kind("ConfigMap")
    for name, spec in _pod_specs():
        mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        for v in spec["volumes"]:
            assert v["name"] in mounted or any(
                v["name"] in {m["name"] for m in c.get("volumeMounts", [])}
                for c in spec.get("initContainers", [])
            ), f"{name}: volume {v['name']} never mounted"
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
            if "configMap" in v:
                assert v["configMap"]["name"] in maps


@pytest.mark.parametrize("role", ["source", "destination"])
def test_cluster_deployment_services_and_ports(role: str, tmp_path: Path) -> None:
    deployment = _by_kind("Deployment")[f"tvs-lab-{role}"]
    services = _by_kind("Service")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    argv = [str(a) for a in container["command"]]
    # the configuration the ConfigMap mounts at /etc/tvs-lab
    data = _by_kind("ConfigMap")["tvs-lab-clusters"]["data"]
    config_file = tmp_path / f"{role}.toml"
    config_file.write_text(data[f"{role}.toml"])
    argv[argv.index(f"/etc/tvs-lab/{role}.toml")] = str(config_file)
    args = _parse(argv)
    config = load_config(args)
    assert config.name == role and config.trusted_networks, "pods must not be throttled"
    assert str(config.pki_dir) == "/lab/pki" and str(config.store_dir) == f"/lab/stores/{role}"
    [node] = config.nodes
    assert node.bind_address == "0.0.0.0" and node.address == f"tvs-lab-{role}"
    bound = {
        ("UDP", node.tftp_port),
        ("TCP", node.tvs_port),
        ("TCP", node.sip_port),
        ("TCP", node.sip_tcp_port),
        ("TCP", node.http_port),
        ("TCP", node.capf_port),
    }
    declared = {(p["protocol"], p["containerPort"]) for p in container["ports"]}
    assert declared == bound
    # the announced name is the Service with TVS, SIP, CAPF and HTTP; TFTP is headless
    svc = services[f"tvs-lab-{role}"]
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {("TCP", p["port"]) for p in svc["spec"]["ports"]} == bound - {("UDP", node.tftp_port)}
    tftp = services[f"tvs-lab-{role}-tftp"]
    assert tftp["spec"]["clusterIP"] == "None"
    assert ("UDP", node.tftp_port) in {(p["protocol"], p["port"]) for p in tftp["spec"]["ports"]}


def test_pki_job_writes_the_pki_the_clusters_wait_for() -> None:
    job = _by_kind("Job")["tvs-lab-pki"]
    [c] = job["spec"]["template"]["spec"]["containers"]
    args = _parse(c["command"])
    assert str(args.out) == "/lab/pki"
    for role in ("source", "destination"):
        spec = _by_kind("Deployment")[f"tvs-lab-{role}"]["spec"]["template"]["spec"]
        [wait] = spec["initContainers"]
        assert wait["command"][:3] == ["tvs", "certs", "show"] and wait["command"][3] == "/lab/pki"


def test_fleet_is_an_indexed_job_of_its_shards() -> None:
    job = _by_kind("Job")["tvs-lab-phones"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    [c] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    assert (
        "job-completion-index" in env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    )
    reports = set()
    for index in range(spec["completions"]):
        args = _parse(c["command"], {"JOB_COMPLETION_INDEX": str(index)})
        assert args.shards == spec["completions"] and args.shard is None
        assert args.phones >= args.shards
        reports.add(str(args.report))
        host, port = args.tftp
        services = _by_kind("Service")
        assert host in services and services[host]["spec"]["clusterIP"] == "None"
        assert port == 6969
    assert len(reports) == spec["completions"]  # one report per shard, in one directory
    assert {str(Path(r).parent) for r in reports} == {"/lab/reports/phones"}


def test_readme_shows_the_three_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running on Kubernetes") :]
    assert "kubectl apply -k deploy/k8s" in section
    assert "kubectl -n tvs-lab wait --for=condition=complete job/tvs-lab-phones" in section
    merge = re.search(r"phone-emu report merge (\S+) --report (\S+) --html (\S+)", section)
    assert merge is not None and merge.group(1) == "/lab/reports/phones"
    args = _parse(["phone-emu", *merge.group(0).split()[1:]])
    assert args.shards == [Path("/lab/reports/phones")] and args.html == Path(merge.group(3))


def test_kubectl_kustomize_builds_the_lab() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(built) == len(_docs())
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {
        "tvs-lab"
    }
