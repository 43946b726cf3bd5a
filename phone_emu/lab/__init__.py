"""The lab: fleets of emulated phones, the migration runner, scenarios and reports.

``config`` (the two clusters and the PKI recipe), ``fleet`` (many phones in one process),
``pool`` and ``workers`` (phone pools in this process or in worker processes), ``outcome``
(what one boot meant), ``scenarios`` (the TOML scenario format and the packaged suite), and
the migration runner: ``options`` (:class:`RunOptions`, :class:`MigrationError`),
``clusters`` (starting the two clusters, or using ones started elsewhere), ``runfleet`` (the
run's phones and pools), ``steps`` (what each scenario action does), ``migrate`` (a run from
start to report); ``report`` (JSON and HTML), ``progress`` (the terminal).
"""

from .config import DEFAULT_LAB, FleetSettings, LabConfig, LabConfigError
from .fleet import (
    FleetBoot,
    FleetError,
    boot_fleet,
    fleet_macs,
    make_identities,
    make_phones,
    parse_shard,
    shard_range,
)
from .migrate import MigrationError, RunOptions, peak_rss_mb, run_scenario
from .outcome import classify, snapshot
from .progress import RunProgress, summary_table
from .report import render_html, write_html, write_json
from .scenarios import (
    ACTIONS,
    OUTCOMES,
    Check,
    Expectation,
    Scenario,
    ScenarioError,
    ScenarioStep,
    builtin_scenarios,
    find_scenario,
    load_scenarios,
    migration_scenario,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_LAB",
    "OUTCOMES",
    "Check",
    "Expectation",
    "FleetBoot",
    "FleetError",
    "FleetSettings",
    "LabConfig",
    "LabConfigError",
    "MigrationError",
    "RunOptions",
    "RunProgress",
    "Scenario",
    "ScenarioError",
    "ScenarioStep",
    "boot_fleet",
    "builtin_scenarios",
    "classify",
    "find_scenario",
    "fleet_macs",
    "load_scenarios",
    "make_identities",
    "make_phones",
    "migration_scenario",
    "parse_shard",
    "peak_rss_mb",
    "render_html",
    "run_scenario",
    "shard_range",
    "snapshot",
    "summary_table",
    "write_html",
    "write_json",
]
