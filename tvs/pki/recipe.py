"""The lab PKI recipe: which clusters, nodes and phones get which certificates.

Owns the recipe values (:class:`Recipe`, :class:`ClusterSpec`, :class:`NodeSpec`,
:class:`PhoneSpec`, ...) and reading them from TOML (``certs/lab.toml``, packaged as
``tvs/pki/lab.toml``). Reading is strict: an unknown key, a bad MAC or key type, a duplicate
name raises :class:`RecipeError` saying where. Does not make keys or certificates.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from .. import device, tomlfile
from .errors import RecipeError

__all__ = [
    "CERT_KINDS",
    "KEY_TYPES",
    "ClusterSpec",
    "EnterpriseCaSpec",
    "NodeSpec",
    "PhoneSpec",
    "Recipe",
    "SubjectSpec",
]

KEY_TYPES = ("rsa2048", "ec-p256")
"""Key types the generator makes; ``rsa2048`` is the default (what CUCM and the seed use)."""

CERT_KINDS = ("callmanager", "tvs", "itlrecovery", "capf", "lsc")
"""Certificate kinds a cluster's ``key_types`` table may override."""

CALLMANAGER_ISSUERS = ("self", "enterprise-ca")
SECURITY_MODES = ("mixed", "nonsecure")
DEFAULT_VALIDITY_DAYS = 1826  # five years, CUCM's default for its own certificates

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEX8_RE = re.compile(r"^[0-9a-f]{8}$")


def _key_type(value: object, where: str) -> str:
    if value not in KEY_TYPES:
        raise RecipeError(f"{where}: key type {value!r} is not one of {', '.join(KEY_TYPES)}")
    return str(value)


def _positive_days(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise RecipeError(f"{where}: validity_days must be a positive integer, not {value!r}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(f"{where}: expected a non-empty string, not {value!r}")
    return value


def _table(value: object, where: str) -> dict[str, Any]:
    return dict(tomlfile.expect_table(value, where, error=RecipeError))


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    tomlfile.check_keys(table, allowed, where, error=RecipeError)


_SUBJECT_KEYS = {"OU": "unit", "O": "organization", "L": "locality", "ST": "state", "C": "country"}


@attrs.frozen
class SubjectSpec:
    """The organisation part of a subject (all but CN); TOML keys OU, O, L, ST, C."""

    unit: str = "IST"
    organization: str = "Stormin"
    locality: str = "Brisbane"
    state: str = "QLD"
    country: str = "AU"

    @classmethod
    def from_dict(cls, d: object, where: str, base: SubjectSpec | None = None) -> SubjectSpec:
        table = _table(d, where)
        _check_keys(table, set(_SUBJECT_KEYS), where)
        values = {_SUBJECT_KEYS[k]: _text(v, f"{where}.{k}") for k, v in table.items()}
        if len(values.get("country", "AU")) != 2:
            raise RecipeError(f"{where}.C: country must be two letters, not {values['country']!r}")
        return attrs.evolve(base or cls(), **values)


@attrs.frozen
class NodeSpec:
    """One CUCM node: short name (its directory), FQDN, the loopback address it serves on."""

    name: str
    fqdn: str
    address: str

    @classmethod
    def from_dict(cls, d: object, where: str, domain: str) -> NodeSpec:
        table = _table(d, where)
        _check_keys(table, {"name", "fqdn", "address"}, where)
        if "name" not in table or "address" not in table:
            raise RecipeError(f"{where}: a node needs 'name' and 'address'")
        name = _text(table["name"], f"{where}.name")
        if not _NAME_RE.match(name):
            raise RecipeError(f"{where}.name: {name!r} is not a usable node name")
        address = _text(table["address"], f"{where}.address")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise RecipeError(f"{where}.address: {address!r} is not an IP address") from None
        fqdn = _text(table.get("fqdn", f"{name}.{domain}"), f"{where}.fqdn")
        return cls(name=name, fqdn=fqdn, address=address)


@attrs.frozen
class PhoneSpec:
    """One phone holding an LSC: MAC (upper-case hex), model (``8861``), manufacturing serial."""

    mac: str
    model: str = "8861"
    serial: str | None = None
    key_type: str | None = None

    @property
    def name(self) -> str:
        """``SEP<MAC>``, the file and device name."""
        return device.device_name(self.mac)

    @property
    def device_name(self) -> str:
        """``CP-<model>-SEP<MAC>``, the LSC's CN and the TVS device-name element."""
        return device.phone_device_name(self.model, self.mac)

    @classmethod
    def from_dict(cls, d: object, where: str) -> PhoneSpec:
        table = _table(d, where)
        _check_keys(table, {"mac", "model", "serial", "key_type"}, where)
        if "mac" not in table:
            raise RecipeError(f"{where}: a phone needs 'mac'")
        mac = _mac(table["mac"], f"{where}.mac")
        model = _text(table.get("model", "8861"), f"{where}.model")
        serial = _text(table["serial"], f"{where}.serial") if "serial" in table else None
        kt = _key_type(table["key_type"], f"{where}.key_type") if "key_type" in table else None
        return cls(mac=mac, model=model, serial=serial, key_type=kt)


def _mac(value: object, where: str) -> str:
    try:
        return device.normalise_mac(value)
    except device.DeviceNameError as exc:
        raise RecipeError(f"{where}: {exc}") from None


@attrs.frozen
class ClusterSpec:
    """One CUCM cluster: version, nodes (the first is the publisher), phones, certificate policy."""

    name: str
    version: str
    domain: str
    nodes: tuple[NodeSpec, ...]
    callmanager_issuer: str = "self"
    key_type: str = "rsa2048"
    phones: tuple[PhoneSpec, ...] = ()
    security_mode: str = "mixed"
    subject: SubjectSpec = SubjectSpec()
    capf_id: str = "00000000"
    capf_subject: SubjectSpec = SubjectSpec()
    key_types: tuple[tuple[str, str], ...] = ()
    validity_days: int = DEFAULT_VALIDITY_DAYS

    @property
    def publisher(self) -> NodeSpec:
        return self.nodes[0]

    @property
    def capf_name(self) -> str:
        return f"CAPF-{self.capf_id}"

    def key_type_for(self, kind: str) -> str:
        """Key type for a certificate kind (one of :data:`CERT_KINDS`)."""
        return dict(self.key_types).get(kind, self.key_type)

    def phone_key_type(self, phone: PhoneSpec) -> str:
        return phone.key_type or self.key_type_for("lsc")

    @classmethod
    def from_dict(cls, d: object, where: str) -> ClusterSpec:
        t = _table(d, where)
        allowed = {f.name for f in attrs.fields(cls)} | {"capf"}
        _check_keys(t, allowed - {"capf_id", "capf_subject"}, where)
        for required in ("name", "version", "domain", "nodes"):
            if required not in t:
                raise RecipeError(f"{where}: a cluster needs {required!r}")
        name = _text(t["name"], f"{where}.name")
        if not _NAME_RE.match(name) or name == "enterprise-ca":
            raise RecipeError(f"{where}.name: {name!r} is not a usable cluster (directory) name")
        where = f"cluster {name!r}"
        domain = _text(t["domain"], f"{where}.domain")
        if not isinstance(t["nodes"], list) or not t["nodes"]:
            raise RecipeError(f"{where}.nodes: expected a non-empty list of nodes")
        nodes = tuple(
            NodeSpec.from_dict(n, f"{where}.nodes[{i}]", domain) for i, n in enumerate(t["nodes"])
        )
        _unique([n.name for n in nodes], f"{where}.nodes", "node name")
        phones_raw = t.get("phones", [])
        if not isinstance(phones_raw, list):
            raise RecipeError(f"{where}.phones: expected a list of phones")
        phones = tuple(
            PhoneSpec.from_dict(p, f"{where}.phones[{i}]") for i, p in enumerate(phones_raw)
        )
        _unique([p.mac for p in phones], f"{where}.phones", "MAC")
        issuer = t.get("callmanager_issuer", "self")
        if issuer not in CALLMANAGER_ISSUERS:
            choices = ", ".join(CALLMANAGER_ISSUERS)
            raise RecipeError(f"{where}.callmanager_issuer: {issuer!r} is not one of {choices}")
        mode = t.get("security_mode", "mixed")
        if mode not in SECURITY_MODES:
            choices = ", ".join(SECURITY_MODES)
            raise RecipeError(f"{where}.security_mode: {mode!r} is not one of {choices}")
        subject = SubjectSpec.from_dict(t.get("subject", {}), f"{where}.subject")
        capf = _table(t.get("capf", {}), f"{where}.capf")
        _check_keys(capf, {"id", "subject"}, f"{where}.capf")
        capf_id = str(capf.get("id", hashlib.sha256(f"{name}/{domain}".encode()).hexdigest()[:8]))
        if not _HEX8_RE.match(capf_id):
            raise RecipeError(f"{where}.capf.id: {capf_id!r} is not 8 lower-case hex digits")
        capf_subject = SubjectSpec.from_dict(
            capf.get("subject", {}), f"{where}.capf.subject", subject
        )
        kts = _table(t.get("key_types", {}), f"{where}.key_types")
        _check_keys(kts, set(CERT_KINDS), f"{where}.key_types")
        return cls(
            name=name,
            version=_text(str(t["version"]), f"{where}.version"),
            domain=domain,
            nodes=nodes,
            callmanager_issuer=issuer,
            key_type=_key_type(t.get("key_type", "rsa2048"), f"{where}.key_type"),
            phones=phones,
            security_mode=mode,
            subject=subject,
            capf_id=capf_id,
            capf_subject=capf_subject,
            key_types=tuple(
                (k, _key_type(v, f"{where}.key_types.{k}")) for k, v in sorted(kts.items())
            ),
            validity_days=_positive_days(
                t.get("validity_days", DEFAULT_VALIDITY_DAYS), f"{where}.validity_days"
            ),
        )


def _unique(values: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise RecipeError(f"{where}: duplicate {what} {v!r}")
        seen.add(v)


@attrs.frozen
class EnterpriseCaSpec:
    """The enterprise (Windows-style) CA that may sign CallManager certificates."""

    common_name: str = "stormin-WIN2012-CA"
    key_type: str = "rsa2048"
    validity_days: int = 3652

    @classmethod
    def from_dict(cls, d: object, where: str = "enterprise_ca") -> EnterpriseCaSpec:
        t = _table(d, where)
        _check_keys(t, {"common_name", "key_type", "validity_days"}, where)
        return cls(
            common_name=_text(t.get("common_name", "stormin-WIN2012-CA"), f"{where}.common_name"),
            key_type=_key_type(t.get("key_type", "rsa2048"), f"{where}.key_type"),
            validity_days=_positive_days(t.get("validity_days", 3652), f"{where}.validity_days"),
        )


@attrs.frozen
class Recipe:
    """What the lab PKI holds: an enterprise CA and one or more clusters."""

    clusters: tuple[ClusterSpec, ...]
    enterprise_ca: EnterpriseCaSpec = EnterpriseCaSpec()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recipe:
        t = _table(d, "recipe")
        _check_keys(t, {"enterprise_ca", "clusters"}, "recipe")
        raw = t.get("clusters")
        if not isinstance(raw, list) or not raw:
            raise RecipeError("recipe: expected at least one [[clusters]] table")
        clusters = tuple(ClusterSpec.from_dict(c, f"clusters[{i}]") for i, c in enumerate(raw))
        _unique([c.name for c in clusters], "recipe.clusters", "cluster name")
        ca = EnterpriseCaSpec.from_dict(t.get("enterprise_ca", {}))
        return cls(clusters=clusters, enterprise_ca=ca)

    @classmethod
    def loads(cls, text: str, *, source: str = "recipe") -> Recipe:
        data = tomlfile.loads(text, source=source, error=RecipeError)
        try:
            return cls.from_dict(data)
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        text = tomlfile.read_text(path, what="recipe", error=RecipeError)
        return cls.loads(text, source=str(path))

    @classmethod
    def default(cls) -> Recipe:
        """The packaged default recipe (``tvs/pki/lab.toml``): the seed's two-cluster lab."""
        text = resources.files(__package__).joinpath("lab.toml").read_text(encoding="utf-8")
        return cls.loads(text, source="default recipe (tvs/pki/lab.toml)")

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(name)

    def with_key_type(self, key_type: str) -> Recipe:
        """The same recipe with every key (CA, cluster certificates, LSCs) of ``key_type``."""
        kt = _key_type(key_type, "key type")
        clusters = tuple(
            attrs.evolve(
                c,
                key_type=kt,
                key_types=(),
                phones=tuple(attrs.evolve(p, key_type=None) for p in c.phones),
            )
            for c in self.clusters
        )
        return attrs.evolve(
            self, clusters=clusters, enterprise_ca=attrs.evolve(self.enterprise_ca, key_type=kt)
        )
