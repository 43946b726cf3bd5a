"""The migration runner: ``phone-emu migrate`` end to end (JSON and HTML reports, --back, exit
codes), clusters started elsewhere, outcome classification, the lab configuration, reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from phone_emu.lab.config import LabConfig, LabConfigError
from phone_emu.lab.fleet import FleetBoot
from phone_emu.lab.migrate import MigrationError, RunOptions, run_scenario
from phone_emu.lab.outcome import classify
from phone_emu.lab.report import failure_chart, migration_chart, render_html
from phone_emu.lab.scenarios import builtin_scenarios, migration_scenario
from phone_emu.lab.values import WorkerSettings
from phone_emu.lab.workers import WorkerError, WorkerPool
from phone_emu.phone.boot import BootResult, BootState, Outcome, Step
from phone_emu.phone.config import PhoneConfig, TvsMember
from phone_emu.phone.trust import TrustState
from tvs.cluster import EmulatedCluster

_MAIN = "import sys; from phone_emu.cli import main; sys.exit(main(sys.argv[1:]))"


async def _cli(*args: str) -> trio.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-c", _MAIN, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_migrate_manual_and_back_writes_both_reports(
    lab_pki_dir: Path, tmp_path: Path
) -> None:
    rep, page = tmp_path / "r.json", tmp_path / "r.html"
    done = await _cli(
        "migrate",
        "--phones",
        "3",
        "--method",
        "manual",
        "--back",
        "--pki",
        str(lab_pki_dir),
        "--workdir",
        str(tmp_path / "work"),
        "--report",
        str(rep),
        "--html",
        str(page),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert b"PASS" in done.stdout
    report = json.loads(rep.read_text())
    assert report["method"] == "manual" and report["passed"] is True
    assert len(report["phones"]) == 3
    for p in report["phones"]:
        assert {"device", "outcome", "step", "reason"} <= set(p)
        assert p["outcome"] == "migrated" and p["cluster"] == "source"
        assert [h["outcome"] for h in p["history"]] == ["booted", "migrated", "migrated"]
        assert set(p["timings"]) == {"ctl", "itl", "config", "register"}
        assert all(t >= 0 for t in p["timings"].values())
    s = report["summary"]
    assert (s["phones"], s["migrated"], s["stayed"], s["failed"]) == (3, 3, 0, 0)
    imports = [st for st in report["steps"] if st["action"] == "import"]
    assert "reverse" in imports[0]["detail"] and "TVS restarted" in imports[0]["detail"]
    boots = [st for st in report["steps"] if st["action"] == "boot"]
    assert [b["cluster"] for b in boots] == ["source", "destination", "source"]
    assert [len(b["migrated_times"]) for b in boots] == [0, 3, 3]
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 2
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "CP-8861-SEPB000B4BA0AEE" in html and "no failures" in html


@pytest.mark.slow
async def test_migrate_json_on_stdout_and_exit_1_when_phones_do_not_move(
    lab_pki_dir: Path, tmp_path: Path
) -> None:
    done = await _cli(
        "migrate",
        "--scenario",
        "no-import",
        "--phones",
        "2",
        "--pki",
        str(lab_pki_dir),
        "--json",
    )
    assert done.returncode == 0, done.stderr  # the scenario expects them to stay
    report = json.loads(done.stdout)
    assert [p["reason"] for p in report["phones"]] == ["tvs.status-invalid"] * 2
    flipped = tmp_path / "flipped.toml"
    flipped.write_text(
        'name = "flipped"\n[[steps]]\naction = "boot"\nexpect = { outcome = "booted" }\n'
        '[[steps]]\naction = "move"\n[[steps]]\naction = "boot"\n'
        'expect = { outcome = "migrated" }\n'
    )
    bad = await _cli(
        "migrate",
        "--scenario",
        str(flipped),
        "--phones",
        "2",
        "--pki",
        str(lab_pki_dir),
        "--no-progress",
    )
    assert bad.returncode == 1
    assert b"FAIL" in bad.stdout
    usage = await _cli("migrate", "--config", str(tmp_path / "missing.toml"))
    assert usage.returncode == 2 and b"cannot read lab configuration" in usage.stderr


@pytest.mark.slow
async def test_clusters_started_elsewhere(lab_pki_dir: Path, tmp_path: Path) -> None:
    """--source/--destination: the runner only boots, moves and reboots; import steps refuse."""
    lab = LabConfig.default()
    async with trio.open_nursery() as nursery:
        clusters = {}
        for role in ("source", "destination"):
            cfg = lab.cluster_config(role, tmp_path / "ext").evolve(pki_dir=lab_pki_dir)
            clusters[role] = await nursery.start(EmulatedCluster(cfg).serve)
        external = {r: c.tftp_address for r, c in clusters.items()}
        no_import = next(s for s in builtin_scenarios() if s.name == "no-import")
        report = await run_scenario(
            lab,
            no_import,
            # external clusters: the runner cannot know their HTTP ports (a 6970 elsewhere on the
            # machine may belong to another lab), so phones fetch by TFTP as they are told
            RunOptions(
                phones=2,
                pki_dir=lab_pki_dir,
                external=external,
                workdir=tmp_path / "run",
                fetch_mode="tftp",
            ),
        )
        assert report["passed"], [(p["outcome"], p["reason"]) for p in report["phones"]]
        assert report["lab"]["source"]["external"] is True
        assert clusters["source"].statistics().tvs_requests.get("INVALID", 0) >= 2
        with pytest.raises(MigrationError, match="in-process"):
            await run_scenario(
                lab,
                migration_scenario("bulk", phones=1),
                RunOptions(pki_dir=lab_pki_dir, external=external, workdir=tmp_path / "r2"),
            )
        with pytest.raises(MigrationError, match="--pki"):
            await run_scenario(lab, no_import, RunOptions(external=external))
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_worker_processes_run_a_scenario(lab_pki_dir: Path, tmp_path: Path) -> None:
    """--workers 2: two processes boot the phones; a step reaching one phone (corrupt-itl)
    finds it in whichever worker holds it, and the outcomes are the in-process ones."""
    invalid = next(s for s in builtin_scenarios() if s.name == "invalid-itl")
    report = await run_scenario(
        LabConfig.default(),
        invalid,
        RunOptions(phones=5, workers=2, workdir=tmp_path, pki_dir=lab_pki_dir),
    )
    assert report["passed"], report["steps"][-1]
    assert report["fleet"]["workers"] == 2
    assert len(report["summary"]["workers_peak_rss_mb"]) == 2
    assert all(mb > 0 for mb in report["summary"]["workers_peak_rss_mb"])
    assert [p["index"] for p in report["phones"]] == [0, 1, 2, 3, 4]
    assert [p["outcome"] for p in report["phones"]] == ["stayed"] + ["migrated"] * 4
    assert "SEPB000B4BA0AEE" in report["steps"][2]["detail"]


async def test_a_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="not a lab PKI directory"):
        await WorkerPool.start(
            WorkerSettings(
                pki_dir=str(tmp_path / "none"),
                cluster="source",
                macs=[(0, "B000B4BA0AEE")],
                concurrency=1,
            )
        )


async def test_workers_spawned_early_end_when_the_set_up_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker processes start before the PKI and the clusters (their start-up overlaps the
    runner's); a run that fails in between still ends them."""
    spawned: list[WorkerPool] = []
    spawn = WorkerPool.spawn

    async def recording_spawn(**kwargs: str) -> WorkerPool:
        pool = await spawn(**kwargs)
        spawned.append(pool)
        return pool

    monkeypatch.setattr(WorkerPool, "spawn", recording_spawn)
    empty = tmp_path / "pki"
    empty.mkdir()
    with pytest.raises(Exception, match="missing"):  # the PKI directory has no files
        await run_scenario(
            LabConfig.default(),
            migration_scenario("bulk", phones=4),
            RunOptions(phones=4, workers=2, workdir=tmp_path / "run", pki_dir=empty),
        )
    assert len(spawned) == 2
    assert all(p._proc.returncode is not None for p in spawned)  # exited, and reaped


# --- classification ------------------------------------------------------------------------------

TARGET_TVS = {("127.0.2.1", 2445)}


def _result(*outcomes: Outcome, reasons: tuple[str, ...] = (), tvs=("127.0.2.1", 2445)):
    names = ("ctl", "itl", "config", "register")
    reasons = reasons or tuple(f"{n}.ok" for n in names)
    steps = tuple(
        Step(name=n, outcome=o, reason=r, started=0.0, finished=0.1)
        for n, o, r in zip(names, outcomes, reasons, strict=True)
    )
    config = PhoneConfig(tvs_members=(TvsMember(0, *tvs),), sha256=b"new")
    state = BootState.REJECTED if Outcome.REJECTED in outcomes else BootState.REGISTERED
    if Outcome.ERROR in outcomes:
        state = BootState.ERROR
    return FleetBoot(
        0,
        "CP-8861-SEPB000B4BA0AEE",
        0.0,
        0.4,
        BootResult(
            device_name="CP-8861-SEPB000B4BA0AEE",
            state=state,
            steps=steps,
            status_lines=(),
            started=0.0,
            finished=0.4,
            trust=TrustState(),
            config=config,
        ),
    )


OK4 = (Outcome.OK,) * 4
BEFORE = (b"ctl", b"itl", b"cfg")


def test_classify_success_depends_on_where_the_phone_was() -> None:
    b = _result(*OK4)
    assert classify(b, BEFORE, BEFORE, home=None, target="destination") == ("booted", None, None)
    assert classify(b, BEFORE, BEFORE, home="destination", target="destination")[0] == "booted"
    assert classify(
        b, BEFORE, (b"x", b"y", b"z"), home="source", target="destination", target_tvs=TARGET_TVS
    ) == ("migrated", None, None)


def test_classify_a_boot_that_ends_with_the_wrong_tvs_list_failed() -> None:
    b = _result(*OK4, tvs=("127.0.1.1", 2445))
    assert classify(
        b, BEFORE, BEFORE, home="source", target="destination", target_tvs=TARGET_TVS
    ) == ("failed", "config", "lab.wrong-cluster")


def test_classify_refusal_with_unchanged_state_is_stayed_else_failed() -> None:
    b = _result(
        Outcome.REJECTED,
        Outcome.REJECTED,
        Outcome.REJECTED,
        Outcome.OK,
        reasons=(
            "tvs.status-invalid",
            "tvs.status-invalid",
            "tvs.status-invalid",
            "register.passed",
        ),
    )
    assert classify(b, BEFORE, BEFORE, home="source", target="destination") == (
        "stayed",
        "ctl",
        "tvs.status-invalid",
    )
    half = (b"new-ctl", b"itl", b"cfg")
    assert classify(b, BEFORE, half, home="source", target="destination") == (
        "failed",
        "ctl",
        "tvs.status-invalid",
    )


def test_classify_transport_errors_and_crashes_failed() -> None:
    b = _result(
        Outcome.ERROR,
        Outcome.OK,
        Outcome.OK,
        Outcome.OK,
        reasons=("ctl.fetch-failed", "itl.ok", "config.ok", "register.ok"),
    )
    assert classify(b, BEFORE, BEFORE, home="source", target="destination") == (
        "failed",
        "ctl",
        "ctl.fetch-failed",
    )
    crashed = FleetBoot(0, "CP-8861-SEPB000B4BA0AEE", 0.0, 0.1, None, "RuntimeError: boom")
    assert classify(crashed, BEFORE, BEFORE, home=None, target="source") == (
        "failed",
        None,
        "lab.exception",
    )


# --- lab configuration ---------------------------------------------------------------------------


def test_default_lab_is_the_seed_lab(tmp_path: Path) -> None:
    lab = LabConfig.default()
    src = lab.cluster_config("source", tmp_path)
    dst = lab.cluster_config("destination", tmp_path)
    assert (src.version, dst.version) == ("10.5.2.11900-3", "11.0.1.10000-10")
    assert (src.nodes[0].address, dst.nodes[0].address) == ("127.0.1.1", "127.0.2.1")
    assert src.nodes[0].tftp_port == src.nodes[0].tvs_port == 0
    assert src.pki_dir == tmp_path / "pki" and dst.store_dir == tmp_path / "stores/destination"
    assert (lab.fleet.phones, lab.fleet.mac_start) == (50, "B000B4BA0AEE")


def test_lab_file_overrides(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    f.write_text(
        '[clusters.source]\nsecurity_mode = "nonsecure"\nrollback_pre80 = true\n'
        '[clusters.destination]\nversion = "12.5.1.10000-22"\n'
        '[fleet]\nphones = 7\nconcurrency = 3\nmac_start = "00:11:22:33:44:55"\n'
    )
    lab = LabConfig.load(f)
    src = lab.cluster_config("source", tmp_path)
    assert src.security_mode == "nonsecure" and src.rollback_pre80
    assert lab.cluster_config("destination", tmp_path).version == "12.5.1.10000-22"
    assert (lab.fleet.phones, lab.fleet.concurrency, lab.fleet.mac_start) == (7, 3, "001122334455")
    again = lab.with_overrides({"source": {"security_mode": "mixed"}})
    assert again.cluster_config("source", tmp_path).security_mode == "mixed"
    assert again.cluster_config("source", tmp_path).rollback_pre80


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[lab]\nx = 1\n", "unknown table"),
        ("[clusters.third]\n", "unknown role"),
        ('[clusters.source]\nsecurity_mode = "open"\n', "security_mode"),
        ('[clusters.source]\nname = "elsewhere"\n', "not in the PKI recipe"),
        ("[fleet]\nphones = 0\n", "fleet.phones"),
        ('[fleet]\nmac_start = "nope"\n', "mac_start"),
        ("[fleet]\ncolour = 1\n", "colour"),
        ('[fleet]\nmodel = "88 61"\n', "fleet.model"),
        ("[clusters]\nsource = 5\n", "clusters"),
        ("fleet = 5\n", "fleet"),
        ('[pki]\nrecipe = "missing.toml"\n', "pki.recipe"),
        ("[[[", "TOML"),
    ],
)
def test_bad_lab_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "lab.toml"
    f.write_text(text)
    with pytest.raises(LabConfigError) as info:
        LabConfig.load(f)
    assert needle in str(info.value)


_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "source",
                    "destination",
                    "name",
                    "version",
                    "security_mode",
                    "nodes",
                    "rollback_pre80",
                    "phones",
                    "concurrency",
                    "mac_start",
                    "recipe",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["pki", "clusters", "fleet", "other"]), _ANY, max_size=3))
def test_any_lab_document_is_a_lab_or_a_lab_config_error(doc: dict) -> None:
    try:
        lab = LabConfig.from_dict(doc, source="fuzz.toml")
    except LabConfigError:
        return
    assert lab.cluster_config("source", Path("/w")).name


# --- reports -------------------------------------------------------------------------------------


def test_charts_are_plain_svg() -> None:
    line = migration_chart([{"label": "to <dest>", "times": [0.5, 0.2, 1.5]}])
    assert line.startswith("<svg") and line.endswith("</svg>")
    assert "to &lt;dest&gt; (3 phones)" in line and "<polyline" in line
    assert "no phone migrated" in migration_chart([{"label": "x", "times": []}])
    bars = failure_chart({"tvs.status-invalid (step 3)": 4, "ctl.fetch-failed (step 3)": 1})
    assert bars.count("<rect") == 2 and bars.index("tvs.status-invalid") < bars.index("ctl.fetch")
    assert "no failures" in failure_chart({})
    many = migration_chart([{"label": "big", "times": [i / 100 for i in range(10000)]}])
    points = many.split('points="')[1].split('"')[0].split()
    assert len(points) <= 2 * 1000 + 1
    assert points[-1].endswith(",16.0")  # the line reaches the top: all 10000 phones


def test_html_report_from_a_minimal_document() -> None:
    doc = {"scenario": "s<1>", "summary": {"phones": 0}, "steps": [], "phones": []}
    page = render_html(doc)
    assert "s&lt;1&gt;" in page and "<script" not in page and "differs" in page
