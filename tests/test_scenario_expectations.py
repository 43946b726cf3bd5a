"""Issue 11 item 8: every packaged scenario asserts an outcome for every phone at every boot,
and the scenarios whose expectations issue 11 changed say why in a TOML comment."""

from __future__ import annotations

from importlib import resources

import pytest

from phone_emu.lab.scenarios import builtin_scenarios

SCENARIOS = {s.name: s for s in builtin_scenarios()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_boot_step_checks_every_phone(name: str) -> None:
    scenario = SCENARIOS[name]
    boots = [s for s in scenario.steps if s.action == "boot"]
    assert boots, name
    for step in boots:
        assert step.expect, f"{name}: a boot step without expectations"
        for index in range(scenario.phones):
            assert step.expected_for(index) is not None, f"{name}: phone {index} unchecked"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("back-after-manual", "Issue 11"),
        ("nonsecure-rollback", "Issue 11"),
        ("manual-without-capf", "another CAPF"),
        ("manual-no-restart-notify", "Section 7"),
        ("manual-ctl-update", "Section 7"),
    ],
)
def test_changed_or_new_expectations_say_why(name: str, why: str) -> None:
    root = resources.files("phone_emu.lab").joinpath("scenarios")
    text = root.joinpath(f"{name}.toml").read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    assert why in comments, name
    assert name in SCENARIOS
