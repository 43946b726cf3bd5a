"""Scenario definitions: TOML files naming the steps of a migration and what every phone must do.

Owns the scenario file format, reading the packaged suite (``phone_emu/lab/scenarios/*.toml``)
and users' files, and checking a boot step's per-phone outcomes against the expectations.
Does not run anything (``migrate.Lab`` does). File shape::

    name = "manual-no-restart"
    description = "manual import without the TVS restart: nobody moves until TVS restarts"
    phones = 4                          # default fleet size (--phones overrides)
    [clusters.source]                   # optional: cluster keys over the lab's (LabConfig)
    security_mode = "mixed"

    [[steps]]
    action = "boot"                     # boot (or reboot) every phone on the TFTP it points at
    expect = { outcome = "booted" }

    [[steps]]
    action = "import"
    method = "manual"                   # bulk | manual
    restart = false                     # restart TVS afterwards (default true)

    [[steps]]
    action = "move"                     # DHCP option 150 -> the destination's TFTP
    to = "destination"

    [[steps]]
    action = "boot"
    expect = [                          # checked for every phone, first matching entry wins
        { phones = [0], outcome = "stayed", reason = "tvs.handshake-failed" },
        { outcome = "migrated" },       # no ``phones``: every phone not named above
    ]

Actions: ``boot``; ``move`` (``to`` = source | destination); ``import`` (``method``,
``restart``, ``reverse``: also upload the source's certificates to the destination, manual
only; ``upload_capf``, manual only, default true: the source CAPF certificate into the
destination's CAPF-trust, so the destination's SIP port trusts the phones' LSCs);
``restart-tvs`` (``cluster`` = source | destination | both); ``ctl-update`` (``cluster``, the
same choices: ``utils ctl update CTLFile``, the only thing that rebuilds a CTL); ``wait``
(``seconds``, at most 120: lets a ``notify`` TVS follow a change); ``set-rollback``
(``cluster``, ``value``: "Prepare Cluster for Rollback to pre 8.0"); ``corrupt-itl``
(``phones``: indices, ``mode`` = stale | erase); ``erase`` (what a user does on the phone:
``phones`` = "all" or indices, ``ctl``, ``itl`` (both true by default), ``all``: also the TVS
answers and the configuration); ``reenroll`` (``cluster``, default
destination, schedules a CAPF install for every phone of the fleet: ``auth`` = null | string |
lsc | mic, ``auth_string`` for string, ``key`` = rsa-2048 | ec-p256 | ..., and
``phone_auth_string``: what the phones are given to type, default ``auth_string``). A
top-level ``enroll = true`` starts the fleet with MICs and no LSCs. Outcomes: ``booted``
(holds the files of the cluster it was already on, or its first), ``migrated`` (accepted
another cluster's files), ``stayed`` (refused them, kept its old trust and configuration),
``failed`` (anything else).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final

import attrs

from tvs import tomlfile

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "Check",
    "Expectation",
    "Scenario",
    "ScenarioError",
    "ScenarioStep",
    "builtin_scenarios",
    "check_outcomes",
    "find_scenario",
    "load_scenarios",
    "migration_scenario",
]

OUTCOMES: Final = ("booted", "migrated", "stayed", "failed")
CLUSTERS: Final = ("source", "destination")
_PARAMS: Final[Mapping[str, Mapping[str, Any]]] = {
    "boot": {},
    "move": {"to": "destination"},
    "import": {"method": "bulk", "restart": True, "reverse": False, "upload_capf": True},
    "restart-tvs": {"cluster": "source"},
    "ctl-update": {"cluster": "source"},
    "wait": {"seconds": 1.0},
    "set-rollback": {"cluster": "source", "value": True},
    "corrupt-itl": {"phones": [0], "mode": "stale"},
    "erase": {"phones": "all", "ctl": True, "itl": True, "all": False},
    "reenroll": {
        "cluster": "destination",
        "auth": "null",
        "auth_string": "",
        "phone_auth_string": "",
        "key": "rsa-2048",
    },
}
_CAPF_AUTH: Final = ("null", "string", "lsc", "mic")
ACTIONS: Final = tuple(_PARAMS)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key."""


@attrs.frozen
class Expectation:
    """What the selected phones (indices; None = every phone not selected before) must do."""

    outcome: str
    reason: str | None = None
    phones: tuple[int, ...] | None = None

    def describe(self) -> str:
        return self.outcome + (f" ({self.reason})" if self.reason else "")


@attrs.frozen
class ScenarioStep:
    action: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    expect: tuple[Expectation, ...] = ()

    def expected_for(self, index: int) -> Expectation | None:
        for e in self.expect:
            if e.phones is None or index in e.phones:
                return e
        return None

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if _PARAMS[self.action].get(k) != v}
        args = " ".join(f"{k}={_show(v)}" for k, v in shown.items())
        return f"{self.action} {args}".strip()


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


@attrs.frozen
class Scenario:
    name: str
    description: str
    steps: tuple[ScenarioStep, ...]
    phones: int = 4
    clusters: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    source: str = ""
    enroll: bool = False
    """The fleet starts with MICs and no LSCs (phones enroll by CAPF at their first boot)."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "scenario") -> Scenario:
        allowed = {"name", "description", "phones", "clusters", "steps", "enroll"}
        _no_unknown(d, allowed, source)
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(f"{source}: 'name' must be a non-empty string")
        where = f"{source} ({name})"
        phones = d.get("phones", 4)
        if isinstance(phones, bool) or not isinstance(phones, int) or phones < 1:
            raise ScenarioError(f"{where}: 'phones' must be a positive integer")
        clusters = d.get("clusters", {})
        if (
            not isinstance(clusters, Mapping)
            or set(clusters) - set(CLUSTERS)
            or not all(isinstance(t, Mapping) for t in clusters.values())
        ):
            raise ScenarioError(f"{where}: 'clusters' may hold [clusters.source/destination]")
        raw = d.get("steps")
        if not isinstance(raw, list) or not raw:
            raise ScenarioError(f"{where}: expected at least one [[steps]] table")
        steps = tuple(_step(s, f"{where} steps[{i}]") for i, s in enumerate(raw))
        enroll = d.get("enroll", False)
        if not isinstance(enroll, bool):
            raise ScenarioError(f"{where}: 'enroll' must be true or false")
        return cls(
            enroll=enroll,
            name=name.strip(),
            description=str(d.get("description", "")).strip(),
            steps=steps,
            phones=phones,
            clusters={k: dict(v) for k, v in clusters.items()},
            source=source,
        )

    @classmethod
    def loads(cls, text: str, *, source: str = "scenario") -> Scenario:
        data = tomlfile.loads(text, source=source, error=ScenarioError)
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        p = Path(path)
        text = tomlfile.read_text(p, what="scenario", error=ScenarioError)
        return cls.loads(text, source=str(p))

    @property
    def method(self) -> str | None:
        for s in self.steps:
            if s.action == "import":
                return str(s.params["method"])
        return None

    @property
    def checked_steps(self) -> int:
        return sum(1 for s in self.steps if s.expect)


def _no_unknown(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    tomlfile.expect_table(d, where, error=ScenarioError)
    tomlfile.check_keys(d, allowed, where, error=ScenarioError)


def _indices(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        raise ScenarioError(f"{where}: 'phones' must be a list of phone indices (0, 1, ...)")
    return tuple(value)


def _expectation(d: Any, where: str) -> Expectation:
    _no_unknown(d, {"outcome", "reason", "phones"}, where)
    outcome = d.get("outcome")
    if outcome not in OUTCOMES:
        raise ScenarioError(f"{where}: 'outcome' must be one of {', '.join(OUTCOMES)}")
    reason = d.get("reason")
    if reason is not None and (not isinstance(reason, str) or not reason):
        raise ScenarioError(f"{where}: 'reason' must be a reason code like tvs.status-invalid")
    phones = _indices(d["phones"], where) if "phones" in d else None
    return Expectation(outcome=outcome, reason=reason, phones=phones)


def _step(d: Any, where: str) -> ScenarioStep:
    if not isinstance(d, Mapping):
        raise ScenarioError(f"{where}: expected a table")
    action = d.get("action")
    if not isinstance(action, str) or action not in _PARAMS:
        raise ScenarioError(f"{where}: 'action' must be one of {', '.join(ACTIONS)}")
    defaults = _PARAMS[action]
    _no_unknown(d, {"action", "expect", *defaults}, f"{where} ({action})")
    params = {k: d.get(k, v) for k, v in defaults.items()}
    for key, default in defaults.items():
        value = params[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ScenarioError(f"{where}.{key}: expected true or false")
    if action == "move" and params["to"] not in CLUSTERS:
        raise ScenarioError(f"{where}.to: expected source or destination")
    if action == "wait":
        sec = params["seconds"]
        if isinstance(sec, bool) or not isinstance(sec, int | float) or not 0 <= sec <= 120:
            raise ScenarioError(f"{where}.seconds: expected 0..120 seconds")
    if action in ("restart-tvs", "ctl-update") and params["cluster"] not in (*CLUSTERS, "both"):
        raise ScenarioError(f"{where}.cluster: expected source, destination or both")
    if action == "set-rollback" and params["cluster"] not in CLUSTERS:
        raise ScenarioError(f"{where}.cluster: expected source or destination")
    if action == "import" and params["method"] not in ("bulk", "manual"):
        raise ScenarioError(f"{where}.method: expected bulk or manual")
    if action == "reenroll":
        if params["cluster"] not in CLUSTERS:
            raise ScenarioError(f"{where}.cluster: expected source or destination")
        if params["auth"] not in _CAPF_AUTH:
            raise ScenarioError(f"{where}.auth: expected one of {', '.join(_CAPF_AUTH)}")
        for key in ("auth_string", "phone_auth_string", "key"):
            if not isinstance(params[key], str):
                raise ScenarioError(f"{where}.{key}: expected a string")
        if params["auth"] == "string" and not params["auth_string"]:
            raise ScenarioError(f'{where}.auth_string: auth = "string" needs the string')
    if action == "erase":
        if params["phones"] != "all":
            params["phones"] = _indices(params["phones"], f"{where}.phones")
        if not (params["ctl"] or params["itl"] or params["all"]):
            raise ScenarioError(f"{where}: erase needs ctl, itl or all")
    if action == "corrupt-itl":
        params["phones"] = _indices(params["phones"], f"{where}.phones")
        if params["mode"] not in ("stale", "erase"):
            raise ScenarioError(f"{where}.mode: expected stale or erase")
    raw = d.get("expect", [])
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise ScenarioError(f"{where}.expect: expected a table or a list of tables")
    if raw and action != "boot":
        raise ScenarioError(f"{where}.expect: only boot steps have per-phone outcomes")
    expect = tuple(_expectation(e, f"{where}.expect[{i}]") for i, e in enumerate(raw))
    return ScenarioStep(action=action, params=params, expect=expect)


# --- the suite ----------------------------------------------------------------------------------


def builtin_scenarios() -> list[Scenario]:
    """The packaged suite, in file-name order."""
    root = resources.files(__package__).joinpath("scenarios")
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            out.append(Scenario.loads(text, source=f"scenarios/{entry.name}"))
    return out


def load_scenarios(paths: Iterable[str | Path] = ()) -> list[Scenario]:
    """The packaged suite followed by users' files (a directory means its ``*.toml``); a user
    scenario with a packaged scenario's name replaces it."""
    by_name = {s.name: s for s in builtin_scenarios()}
    for p in paths:
        path = Path(p)
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for f in files:
            s = Scenario.load(f)
            by_name[s.name] = s
    return list(by_name.values())


def find_scenario(name: str, scenarios: Sequence[Scenario]) -> Scenario:
    """By name, or a TOML file path."""
    for s in scenarios:
        if s.name == name:
            return s
    if name.endswith(".toml") or Path(name).is_file():
        return Scenario.load(name)
    known = ", ".join(s.name for s in scenarios)
    raise ScenarioError(f"no scenario {name!r} (known: {known})")


def migration_scenario(method: str, *, back: bool = False, phones: int = 50) -> Scenario:
    """What ``phone-emu migrate`` does without ``--scenario``: boot on the source, import
    with ``method`` (``none``: no import step, it was done elsewhere), move to the destination
    and reboot (every phone must migrate); with ``back``, move to the source again and reboot
    (every phone must migrate back)."""
    steps = [ScenarioStep("boot", {}, (Expectation("booted"),))]
    if method != "none":  # "none": the certificates were imported elsewhere (tvs store bulk)
        steps.append(ScenarioStep("import", {"method": method, "restart": True, "reverse": back}))
    steps += [
        ScenarioStep("move", {"to": "destination"}),
        ScenarioStep("boot", {}, (Expectation("migrated"),)),
    ]
    if back:
        steps += [
            ScenarioStep("move", {"to": "source"}),
            ScenarioStep("boot", {}, (Expectation("migrated"),)),
        ]
    return Scenario(
        name=f"migrate-{method}" + ("-and-back" if back else ""),
        description=(f"{method} import" if method != "none" else "no import step")
        + ", then every phone moves to the destination"
        + (" and back" if back else ""),
        steps=tuple(steps),
        phones=phones,
        source="phone-emu migrate",
    )


# --- checking -----------------------------------------------------------------------------------


@attrs.frozen
class Check:
    """One phone's outcome at one boot step against what the scenario expects."""

    index: int
    device: str
    outcome: str
    reason: str | None
    expected: Expectation | None

    @property
    def ok(self) -> bool:
        e = self.expected
        if e is None:
            return True
        return self.outcome == e.outcome and (e.reason is None or e.reason == self.reason)


def check_outcomes(
    step: ScenarioStep, outcomes: Sequence[tuple[int, str, str, str | None]]
) -> list[Check]:
    """``outcomes``: (index, device, outcome, reason) per phone -> one check per phone."""
    return [
        Check(index, device, outcome, reason, step.expected_for(index))
        for index, device, outcome, reason in outcomes
    ]
