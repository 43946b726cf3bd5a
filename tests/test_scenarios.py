"""The scenario suite: every packaged scenario runs against real clusters on loopback with a small
fleet, and every phone's outcome is asserted against the scenario's expectation; plus the
scenario file format and the ``phone-emu scenarios`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from phone_emu.lab.config import LabConfig
from phone_emu.lab.migrate import RunOptions, run_scenario
from phone_emu.lab.scenarios import (
    ACTIONS,
    Expectation,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    find_scenario,
    load_scenarios,
    migration_scenario,
)

SUITE = {s.name: s for s in builtin_scenarios()}
PHONES = 3

pytestmark = pytest.mark.slow


def test_the_suite_holds_the_issue_scenarios() -> None:
    assert set(SUITE) >= {
        "bulk",
        "manual",
        "no-import",
        "manual-no-restart",
        "rollback-secure",
        "back-after-bulk",
        "back-after-manual",
        "invalid-itl",
        "nonsecure-rollback",
        "http-down",
        "enroll-storm",
        "reenroll-on-destination",
        "capf-wrong-auth-string",
        "encrypted-config-migration",
        "erase-trust-lists",
    }
    for s in SUITE.values():
        assert s.description
        assert s.checked_steps >= 1
        assert s.steps[-1].action == "boot" and s.steps[-1].expect


@pytest.mark.parametrize("name", sorted(SUITE))
async def test_scenario(name: str, lab_pki_dir: Path, tmp_path: Path) -> None:
    scenario = SUITE[name]
    report = await run_scenario(
        LabConfig.default(),
        scenario,
        RunOptions(phones=PHONES, workdir=tmp_path, pki_dir=lab_pki_dir),
    )
    boot_steps = [
        (st, rec)
        for st, rec in zip(scenario.steps, report["steps"], strict=True)
        if st.action == "boot"
    ]
    # every phone, at every checked boot step, did what the scenario says
    for step, rec in boot_steps:
        assert sum(rec["counts"].values()) == PHONES
        if step.expect:
            assert rec["checks"]["ok"] == rec["checks"]["total"] == PHONES, rec["checks"]
    last = scenario.steps[-1]
    assert len(report["phones"]) == PHONES
    for p in report["phones"]:
        e = last.expected_for(p["index"])
        assert e is not None
        assert p["outcome"] == e.outcome, p
        if e.reason is not None:
            assert p["reason"] == e.reason, p
        if p["outcome"] in ("migrated", "booted"):
            assert p["step"] is None and p["reason"] is None
        else:
            assert p["step"] in ("ctl", "itl", "config", "capf", "register")
            assert p["reason"]
    assert report["passed"] is True
    assert report["summary"]["expectations"]["ok"] == report["summary"]["expectations"]["total"]


@pytest.mark.parametrize(
    ("name", "capf", "phones_booted"),
    [
        ("enroll-storm", "capf.installed", True),
        ("capf-wrong-auth-string", "capf.auth-failed", False),
    ],
)
async def test_capf_scenarios_details(
    name: str, capf: str, phones_booted: bool, lab_pki_dir: Path, tmp_path: Path
) -> None:
    """Beyond the outcomes: every phone's last boot ran CAPF as the scenario says; a refused
    enrollment stores nothing (the cluster's CAPF database issued no certificate) and the
    phones still register with their old LSC."""
    from tvs.capf.db import CapfDb

    report = await run_scenario(
        LabConfig.default(),
        SUITE[name],
        RunOptions(phones=PHONES, workdir=tmp_path, pki_dir=lab_pki_dir),
    )
    assert report["passed"] is True
    assert report["fleet"]["enroll"] is (name == "enroll-storm")
    for p in report["phones"]:
        steps = dict(p["steps"]) if isinstance(p["steps"], list) else p["steps"]
        assert steps["capf"] == capf and steps["register"] == "register.passed", p
    db_files = list(tmp_path.glob("stores/*/capf.sqlite3"))
    assert db_files
    issued = 0
    for f in db_files:
        with CapfDb(f, create=False) as db:
            issued += sum(db.certificate(op.name) is not None for op in db.operations())
    assert issued == (PHONES if phones_booted else 0)


async def test_a_wrong_expectation_is_reported(lab_pki_dir: Path, tmp_path: Path) -> None:
    """no-import with the expectation turned around: the runner says it differs, per phone."""
    s = SUITE["no-import"]
    flipped = Scenario(
        name="no-import-expecting-migration",
        description="wrong on purpose",
        steps=(*s.steps[:-1], s.steps[-1].__class__("boot", {}, (Expectation("migrated"),))),
    )
    report = await run_scenario(
        LabConfig.default(), flipped, RunOptions(phones=2, workdir=tmp_path, pki_dir=lab_pki_dir)
    )
    assert report["passed"] is False
    assert [p["ok"] for p in report["phones"]] == [False, False]
    assert {p["outcome"] for p in report["phones"]} == {"stayed"}
    differ = report["steps"][-1]["checks"]["differ"]
    assert [d["expected"] for d in differ] == ["migrated", "migrated"]


# --- the file format -----------------------------------------------------------------------------

GOOD = """
name = "mine"
description = "a user's scenario"
phones = 2
[clusters.source]
security_mode = "nonsecure"
[[steps]]
action = "boot"
expect = { outcome = "booted" }
[[steps]]
action = "corrupt-itl"
phones = [1]
mode = "erase"
[[steps]]
action = "move"
[[steps]]
action = "boot"
expect = [
    { phones = [1], outcome = "stayed", reason = "tvs.handshake-failed" },
    { outcome = "migrated" },
]
"""


def test_scenario_file_round_trip() -> None:
    s = Scenario.loads(GOOD, source="mine.toml")
    assert s.name == "mine" and s.phones == 2
    assert s.clusters == {"source": {"security_mode": "nonsecure"}}
    assert [st.action for st in s.steps] == ["boot", "corrupt-itl", "move", "boot"]
    assert s.steps[1].params == {"phones": (1,), "mode": "erase"}
    assert s.steps[2].params == {"to": "destination"}
    last = s.steps[3]
    assert last.expected_for(1) == Expectation("stayed", "tvs.handshake-failed", (1,))
    assert last.expected_for(0) == Expectation("migrated")
    assert last.expected_for(7) == Expectation("migrated")
    assert s.method is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda t: t.replace('name = "mine"', ""), "'name'"),
        (lambda t: t.replace('action = "move"', 'action = "teleport"'), "'action'"),
        (lambda t: t.replace('mode = "erase"', 'mode = "melt"'), ".mode"),
        (lambda t: t.replace('outcome = "booted"', 'outcome = "happy"'), "'outcome'"),
        (lambda t: t.replace("phones = 2", "phones = 0"), "'phones'"),
        (lambda t: t.replace("phones = [1]", "phones = [-1]"), "phone indices"),
        (lambda t: t + '[[steps]]\naction = "move"\nto = "moon"\n', ".to"),
        (lambda t: t + '[[steps]]\naction = "import"\nmethod = "fax"\n', ".method"),
        (lambda t: t + '[[steps]]\naction = "import"\nrestart = "yes"\n', ".restart"),
        (lambda t: t + '[[steps]]\naction = "move"\nexpect = { outcome = "stayed" }\n', "boot"),
        (lambda t: t + '[[steps]]\naction = "boot"\ncolour = "red"\n', "colour"),
        (lambda t: t + "oops = 1\n", "oops"),
        (lambda t: t + '[[steps]]\naction = "reenroll"\nauth = "pin"\n', ".auth"),
        (lambda t: t + '[[steps]]\naction = "reenroll"\nauth = "string"\n', ".auth_string"),
        (lambda t: t + '[[steps]]\naction = "reenroll"\ncluster = "moon"\n', ".cluster"),
        (lambda t: "enroll = 1\n" + t, "enroll"),
        (lambda t: t.replace("[clusters.source]", "[clusters.third]"), "clusters"),
        (lambda t: t + "[[[", "TOML"),
    ],
)
def test_bad_scenario_files_name_the_problem(change, needle: str) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.loads(change(GOOD), source="mine.toml")
    assert "mine.toml" in str(info.value)
    assert needle in str(info.value)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.text(max_size=12),
    st.sampled_from(
        [
            *ACTIONS,
            "boot",
            "bulk",
            "manual",
            "source",
            "destination",
            "stayed",
            "migrated",
            "stale",
            "erase",
        ]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "action",
                    "expect",
                    "outcome",
                    "reason",
                    "phones",
                    "method",
                    "restart",
                    "reverse",
                    "to",
                    "cluster",
                    "value",
                    "mode",
                    "x",
                    "source",
                    "destination",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=12,
)
_DOCS = st.fixed_dictionaries(
    {},
    optional={
        "name": _SCALARS,
        "description": _SCALARS,
        "phones": _SCALARS,
        "clusters": st.one_of(
            _VALUES, st.dictionaries(st.sampled_from(["source", "destination", "x"]), _VALUES)
        ),
        "steps": st.lists(_VALUES, max_size=4),
        "extra": _VALUES,
    },
)


@settings(max_examples=300, deadline=None)
@given(_DOCS)
def test_any_document_is_a_scenario_or_a_scenario_error(doc: dict) -> None:
    """The fuzz invariant: whatever the file holds, a Scenario or a ScenarioError."""
    try:
        s = Scenario.from_dict(doc, source="fuzz.toml")
    except ScenarioError as exc:
        assert "fuzz.toml" in str(exc)
        return
    assert s.steps and all(step.action in ACTIONS for step in s.steps)
    for step in s.steps:
        step.describe()
        step.expected_for(0)


def test_every_action_has_defaults_and_describes_itself() -> None:
    for action in ACTIONS:
        s = Scenario.loads(f'name = "x"\n[[steps]]\naction = "{action}"\n')
        assert s.steps[0].describe().startswith(action)


def test_user_scenarios_extend_and_replace_the_suite(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(GOOD)
    (tmp_path / "bulk.toml").write_text(GOOD.replace('name = "mine"', 'name = "bulk"'))
    (tmp_path / "notes.txt").write_text("not a scenario")
    got = {s.name: s for s in load_scenarios([tmp_path])}
    assert set(got) == set(SUITE) | {"mine"}
    assert got["bulk"].source == str(tmp_path / "bulk.toml")
    assert find_scenario(str(tmp_path / "mine.toml"), builtin_scenarios()).name == "mine"
    with pytest.raises(ScenarioError, match="no scenario 'nope'"):
        find_scenario("nope", list(got.values()))


def test_migration_scenario_is_what_migrate_runs() -> None:
    s = migration_scenario("manual", back=True, phones=7)
    assert s.phones == 7 and s.method == "manual"
    assert [st.action for st in s.steps] == ["boot", "import", "move", "boot", "move", "boot"]
    assert s.steps[1].params["reverse"] is True
    assert [e.outcome for st in s.steps for e in st.expect] == ["booted", "migrated", "migrated"]
    elsewhere = migration_scenario("none")
    assert [st.action for st in elsewhere.steps] == ["boot", "move", "boot"]
    assert elsewhere.method is None


# --- the command ---------------------------------------------------------------------------------


_MAIN = "import sys; from phone_emu.cli import main; sys.exit(main(sys.argv[1:]))"


async def _cli(*args: str) -> trio.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-c", _MAIN, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_cli_list() -> None:
    done = await _cli("scenarios", "list", "--json")
    assert done.returncode == 0
    names = [s["name"] for s in json.loads(done.stdout)]
    assert sorted(names) == sorted(SUITE)
    table = await _cli("scenarios", "list")
    assert table.returncode == 0 and b"manual-no-restart" in table.stdout


async def test_cli_run_exit_codes(lab_pki_dir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        'name = "wrong"\nphones = 2\n[[steps]]\naction = "boot"\n'
        'expect = { outcome = "migrated" }\n'
    )
    common = ["--pki", str(lab_pki_dir), "--no-progress", "--dir", str(tmp_path)]
    ok = await _cli("scenarios", "run", "no-import", "--phones", "2", "--json", *common)
    assert ok.returncode == 0, ok.stderr
    [report] = json.loads(ok.stdout)
    assert report["scenario"] == "no-import" and report["passed"]
    assert {p["reason"] for p in report["phones"]} == {"tvs.status-invalid"}
    bad = await _cli("scenarios", "run", "wrong", "no-import", "--phones", "2", *common)
    assert bad.returncode == 1
    assert b"DIFFERS" in bad.stdout
    missing = await _cli("scenarios", "run", "nope", *common)
    assert missing.returncode == 2 and b"no scenario 'nope'" in missing.stderr
    nothing = await _cli("scenarios", "run", *common)
    assert nothing.returncode == 2


def test_erase_step_parameters() -> None:
    """The ``erase`` step: phones "all" or indices; ctl/itl default on; something to erase."""
    base = 'name = "x"\ndescription = "d"\nphones = 2\n[[steps]]\naction = "boot"\n'
    step = Scenario.loads(base + '[[steps]]\naction = "erase"\nphones = [1]\nitl = false\n')
    erase = step.steps[1]
    assert erase.params == {"phones": (1,), "ctl": True, "itl": False, "all": False}
    assert erase.describe() == "erase phones=1 itl=false"
    with pytest.raises(ScenarioError, match="erase needs"):
        Scenario.loads(base + '[[steps]]\naction = "erase"\nctl = false\nitl = false\n')
