"""The pytest plugin shipped with the package (issue 12 item 15), used as a user would: an
inner pytest run (``pytester``) whose test file has only the user's scenario and the fixtures
the ``pytest11`` entry point provides."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
SCENARIO = """
name = "my-no-import"
description = "We forgot the import: everybody stays."
phones = 3
[[steps]]
action = "boot"
expect = { outcome = "booted" }
[[steps]]
action = "move"
[[steps]]
action = "boot"
expect = { outcome = "stayed", reason = "tvs.status-invalid" }
"""


def test_my_scenario(tvs_lab, tmp_path):
    path = tmp_path / "my.toml"
    path.write_text(SCENARIO)
    report = tvs_lab.run(path)
    assert report["passed"], report["summary"]
    assert report["summary"]["stayed"] == 3


def test_a_wrong_expectation_fails(tvs_lab):
    report = tvs_lab.run(SCENARIO.replace('"stayed"', '"migrated"'), phones=2)
    assert not report["passed"]


async def test_pair_and_fleet(tvs_cluster_pair, tvs_phone_fleet):
    fleet = tvs_phone_fleet(2)
    boots = await fleet.boot(tvs_cluster_pair.source)
    assert [b.result.state.value for b in boots] == ["registered", "registered"]
    again = await fleet.boot(tvs_cluster_pair["destination"], register=False)
    assert {b.result.steps[0].reason for b in again} == {"tvs.status-invalid"}
'''


def test_the_entry_point_is_installed() -> None:
    names = {e.name: e.value for e in entry_points(group="pytest11")}
    assert names.get("tvs_lab") == "phone_emu.pytest_plugin"


def test_a_users_scenario_through_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
