"""The lab a migration runs in: the PKI recipe, the two clusters, and the fleet's defaults.

Owns :class:`LabConfig` (read from a TOML file or the embedded default, the seed's lab: source
CUCM 10.5 on 127.0.1.1, destination CUCM 11.0 on 127.0.2.1, both mixed mode, 50 phones) and
turning it into the two :class:`tvs.cluster.ClusterConfig` values for a working directory
(``<workdir>/pki``, ``<workdir>/stores/<cluster>``). Does not own starting anything.

TOML shape (every table optional)::

    [pki]
    recipe = "default"            # or a recipe file (tvs certs generate), relative to this file

    [clusters.source]             # tvs.cluster.ClusterConfig keys over the recipe's cluster of
    version = "10.5.2.11900-3"    # that name (version, security mode, nodes); ports default
    security_mode = "mixed"       # to 0 (any free port: the files tell the phones where to
    rollback_pre80 = false        # go); pki_dir and store_dir come from the working directory

    [clusters.destination]
    version = "11.0.1.10000-10"

    [fleet]
    phones = 50
    concurrency = 256             # phones booting at once (the boot-storm limit)
    model = "8861"
    mac_start = "B000B4BA0AEE"    # the seed's phone; the next phones count up from it
    register = true               # finish each boot with the secure SIP TLS handshake
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from tvs import tomlfile
from tvs.cluster.config import ClusterConfig
from tvs.cluster.errors import ClusterConfigError
from tvs.device import DeviceNameError, normalise_mac
from tvs.pki import Recipe, RecipeError

__all__ = ["CLUSTER_ROLES", "DEFAULT_LAB", "FleetSettings", "LabConfig", "LabConfigError"]

CLUSTER_ROLES: Final = ("source", "destination")

DEFAULT_LAB: Final = """\
# The seed's lab: phones on the source cluster (CUCM 10.5(2), 127.0.1.1) move to the
# destination cluster (CUCM 11.0, 127.0.2.1, CallManager certificate from the enterprise CA).
[pki]
recipe = "default"

[clusters.source]
security_mode = "mixed"
rollback_pre80 = false

[clusters.destination]
security_mode = "mixed"

[fleet]
phones = 50
concurrency = 256
model = "8861"
mac_start = "B000B4BA0AEE"
register = true
"""


class LabConfigError(ValueError):
    """A lab configuration that cannot be used; the message names the key."""


@attrs.frozen
class FleetSettings:
    phones: int = 50
    concurrency: int = 256
    model: str = "8861"
    mac_start: str = "B000B4BA0AEE"
    register: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "fleet") -> FleetSettings:
        allowed = {f.name for f in attrs.fields(cls)}
        tomlfile.check_keys(d, allowed, where, error=LabConfigError)
        kw: dict[str, Any] = {}
        for key in ("phones", "concurrency"):
            if key in d:
                v = d[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise LabConfigError(f"{where}.{key}: expected a positive integer, got {v!r}")
                kw[key] = v
        if "register" in d:
            if not isinstance(d["register"], bool):
                raise LabConfigError(f"{where}.register: expected true or false")
            kw["register"] = d["register"]
        if "model" in d:
            model = d["model"]
            if not isinstance(model, str) or not model.replace("-", "").isalnum():
                raise LabConfigError(f"{where}.model: expected a phone model like 8861")
            kw["model"] = model
        if "mac_start" in d:
            try:
                kw["mac_start"] = normalise_mac(str(d["mac_start"]))
            except DeviceNameError as exc:
                raise LabConfigError(f"{where}.mac_start: {exc}") from None
        return cls(**kw)


@attrs.frozen
class LabConfig:
    """The PKI recipe, one cluster table per role (``source``, ``destination``), the fleet."""

    recipe: Recipe
    clusters: Mapping[str, Mapping[str, Any]]
    fleet: FleetSettings = FleetSettings()
    source: str = "embedded default"

    # --- reading --------------------------------------------------------------------------
    @classmethod
    def default(cls) -> LabConfig:
        """The embedded default: the seed's two-cluster lab."""
        return cls.loads(DEFAULT_LAB, source="embedded default")

    @classmethod
    def load(cls, path: str | Path) -> LabConfig:
        p = Path(path)
        text = tomlfile.read_text(p, what="lab configuration", error=LabConfigError)
        return cls.loads(text, source=str(p), base=p.parent)

    @classmethod
    def loads(cls, text: str, *, source: str = "lab", base: Path | None = None) -> LabConfig:
        data = tomlfile.loads(text, source=source, error=LabConfigError)
        return cls.from_dict(data, source=source, base=base)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, source: str = "lab", base: Path | None = None
    ) -> LabConfig:
        tomlfile.check_keys(
            d, {"pki", "clusters", "fleet"}, source, error=LabConfigError, what="table"
        )
        pki = d.get("pki", {})
        recipe_ref = pki.get("recipe", "default") if isinstance(pki, Mapping) else None
        if not isinstance(recipe_ref, str):
            raise LabConfigError(f"{source}: pki.recipe: expected 'default' or a file name")
        try:
            if recipe_ref == "default":
                recipe = Recipe.default()
            else:
                rp = Path(recipe_ref)
                recipe = Recipe.load(rp if rp.is_absolute() or base is None else base / rp)
        except RecipeError as exc:
            raise LabConfigError(f"{source}: pki.recipe: {exc}") from None
        raw = tomlfile.expect_table(
            d.get("clusters", {}), f"{source}: clusters", error=LabConfigError
        )
        tomlfile.check_keys(
            raw, CLUSTER_ROLES, f"{source}: clusters", error=LabConfigError, what="role"
        )
        if not all(isinstance(t, Mapping) for t in raw.values()):
            raise LabConfigError(f"{source}: clusters: expected [clusters.source] tables")
        tables = {role: dict(raw.get(role, {})) for role in CLUSTER_ROLES}
        fleet_table = tomlfile.expect_table(
            d.get("fleet", {}), f"{source}: fleet", error=LabConfigError
        )
        fleet = FleetSettings.from_dict(fleet_table, f"{source}: fleet")
        lab = cls(recipe=recipe, clusters=tables, fleet=fleet, source=source)
        for role in CLUSTER_ROLES:  # fail now, not when the clusters start
            lab.cluster_config(role, Path("/nonexistent-workdir"))
        return lab

    # --- derived --------------------------------------------------------------------------
    def with_overrides(self, clusters: Mapping[str, Mapping[str, Any]]) -> LabConfig:
        """A copy with some cluster keys replaced (scenarios use it, e.g. a non-secure source)."""
        merged = {role: dict(t) for role, t in self.clusters.items()}
        for role, table in clusters.items():
            if role not in CLUSTER_ROLES:
                raise LabConfigError(f"clusters: unknown role {role!r} (source, destination)")
            merged[role].update(copy.deepcopy(dict(table)))
        lab = attrs.evolve(self, clusters=merged)
        for role in CLUSTER_ROLES:
            lab.cluster_config(role, Path("/nonexistent-workdir"))
        return lab

    def cluster_config(self, role: str, workdir: Path) -> ClusterConfig:
        """The role's ``ClusterConfig``: the recipe's cluster, then the lab's keys, ports 0
        unless nodes are given, PKI and stores under ``workdir``, no store polling (in-process)."""
        table = dict(self.clusters.get(role, {}))
        name = str(table.get("name", role))
        try:
            spec = self.recipe.cluster(name)
        except KeyError:
            raise LabConfigError(
                f"{self.source}: cluster {name!r} is not in the PKI recipe "
                f"({', '.join(c.name for c in self.recipe.clusters)})"
            ) from None
        base: dict[str, Any] = {
            "name": name,
            "version": spec.version,
            "security_mode": spec.security_mode,
            "nodes": [
                {
                    "name": n.name,
                    "address": n.address,
                    "tftp_port": 0,
                    "tvs_port": 0,
                    "sip_port": 0,
                    "sip_tcp_port": 0,
                    "http_port": 0,
                    "capf_port": 0,
                }
                for n in spec.nodes
            ],
        }
        base.update(table)
        base.update(
            pki_dir=str(workdir / "pki"),
            store_dir=str(workdir / "stores" / name),
            watch_interval=0,
        )
        try:
            return ClusterConfig.from_dict(base, source=f"{self.source}: clusters.{role}")
        except ClusterConfigError as exc:
            raise LabConfigError(str(exc)) from None
