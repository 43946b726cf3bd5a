"""The lab PKI directory: generating it from a recipe, and loading it back.

Owns the on-disk layout other tools rely on (issue contract)::

    DIR/enterprise-ca.{pem,key}
    DIR/manufacturing-ca.{pem,key}                   (the emulated Cisco MIC root; optional)
    DIR/<cluster>/{itlrecovery,capf}.{pem,key}
    DIR/<cluster>/nodes/<node>/{callmanager,tvs}.{pem,key}
    DIR/<cluster>/phones/SEP<MAC>.{pem,key}          (the phone's LSC)

Certificates are PEM, keys unencrypted PKCS#8 PEM with mode 0600; every file is written to a
temporary name and renamed into place. :func:`generate` is idempotent: an existing key is always
kept unless ``overwrite``; an existing certificate is kept when it still matches its key and its
issuer, else it is re-issued with the same key. Certificate contents come from ``issue.py``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType

import attrs
from cryptography.hazmat.primitives import serialization

from .. import device
from ..certs import Certificate, CertificateError, PrivateKey, load_private_key
from .errors import PkiError
from .issue import (
    Identity,
    generate_key,
    issue_lsc,
    make_callmanager,
    make_capf,
    make_enterprise_ca,
    make_itlrecovery,
    make_manufacturing_ca,
    make_tvs,
)
from .recipe import ClusterSpec, NodeSpec, PhoneSpec, Recipe

__all__ = ["ENTERPRISE_CA", "MANUFACTURING_CA", "ClusterPki", "LabPki", "NodePki", "generate"]

ENTERPRISE_CA = "enterprise-ca"
MANUFACTURING_CA = "manufacturing-ca"
"""The lab's emulated manufacturing CA: it issues phones' MICs, and clusters trust it (in
CAPF-trust) as CUCM trusts Cisco's manufacturing roots. Directories generated before it
existed load without it (``LabPki.manufacturing_ca`` is None)."""


@attrs.frozen
class NodePki:
    """One node's own certificates."""

    name: str
    callmanager: Identity
    tvs: Identity


@attrs.frozen
class ClusterPki:
    """One cluster's certificates; ``phones`` is keyed by upper-case MAC."""

    name: str
    itlrecovery: Identity
    capf: Identity
    nodes: Mapping[str, NodePki]
    phones: Mapping[str, Identity]
    spec: ClusterSpec | None = None

    @property
    def publisher(self) -> NodePki:
        """The first node (the recipe's order; name order when loaded without a recipe)."""
        return next(iter(self.nodes.values()))


@attrs.frozen
class LabPki:
    """A generated lab PKI directory, loaded."""

    root: Path
    enterprise_ca: Identity
    clusters: Mapping[str, ClusterPki]
    recipe: Recipe | None = None
    written: frozenset[Path] = frozenset()
    manufacturing_ca: Identity | None = None
    """Files written by the :func:`generate` call that returned this value (empty after load)."""

    @classmethod
    def load(cls, out: str | Path, recipe: Recipe | None = None) -> LabPki:
        """Read a directory made by :func:`generate`.

        With ``recipe``, exactly the recipe's clusters, nodes and phones are read (a missing
        file is an error); without, whatever the directory holds in the standard layout.
        """
        root = Path(out)
        if not root.is_dir():
            raise PkiError(
                f"{root}: not a lab PKI directory (make one: tvs certs generate --out {root})"
            )
        with _generation_lock(root, shared=True):  # never read a PKI another process is writing
            labels = _recipe_labels(recipe) if recipe is not None else _discover_labels(root)
            if not _cert_path(root, MANUFACTURING_CA).is_file():  # made before it existed
                labels = [label for label in labels if label != MANUFACTURING_CA]
            found = {label: _load_identity(root, label) for label in labels}
        return _assemble(root, recipe, found, frozenset())

    @staticmethod
    def load_identity(out: str | Path, label: str) -> Identity:
        """Read one identity of a directory made by :func:`generate`, by its label (as
        :meth:`identities` names them: ``source/capf``, ``manufacturing-ca``...): what a
        process that only issues certificates needs, without reading (and checking) every
        key of the lab."""
        root = Path(out)
        if not root.is_dir():
            raise PkiError(
                f"{root}: not a lab PKI directory (make one: tvs certs generate --out {root})"
            )
        with _generation_lock(root, shared=True):
            return _load_identity(root, label)

    def cluster(self, name: str) -> ClusterPki:
        try:
            return self.clusters[name]
        except KeyError:
            raise PkiError(f"{self.root}: no cluster {name!r}") from None

    def identities(self) -> Iterator[tuple[str, Identity]]:
        """Every identity with its label (its path below the root, without ``.pem``)."""
        yield ENTERPRISE_CA, self.enterprise_ca
        if self.manufacturing_ca is not None:
            yield MANUFACTURING_CA, self.manufacturing_ca
        for c in self.clusters.values():
            yield f"{c.name}/capf", c.capf
            yield f"{c.name}/itlrecovery", c.itlrecovery
            for n in c.nodes.values():
                yield f"{c.name}/nodes/{n.name}/callmanager", n.callmanager
                yield f"{c.name}/nodes/{n.name}/tvs", n.tvs
            for mac, phone in c.phones.items():
                yield f"{c.name}/phones/SEP{mac}", phone


# --- generation --------------------------------------------------------------------------------

_Maker = Callable[[PrivateKey, Identity | None], Certificate]


@attrs.frozen
class _Slot:
    label: str
    key_type: str
    issuer: str | None  # label of the issuing slot; None = self-signed
    make: _Maker


def _plan(recipe: Recipe, now: _dt.datetime) -> list[_Slot]:
    """Every certificate the recipe asks for, issuers before what they issue."""
    ca = recipe.enterprise_ca

    def enterprise_ca(key: PrivateKey, _: Identity | None) -> Certificate:
        return make_enterprise_ca(ca, key, now=now)

    def manufacturing_ca(key: PrivateKey, _: Identity | None) -> Certificate:
        return make_manufacturing_ca(key, now=now)

    slots = [
        _Slot(ENTERPRISE_CA, ca.key_type, None, enterprise_ca),
        _Slot(MANUFACTURING_CA, ca.key_type, None, manufacturing_ca),
    ]
    for c in recipe.clusters:
        slots += _cluster_slots(c, now)
    return slots


def _cluster_slots(c: ClusterSpec, now: _dt.datetime) -> list[_Slot]:
    def capf(key: PrivateKey, _: Identity | None) -> Certificate:
        return make_capf(c, key, now=now)

    def itlrecovery(key: PrivateKey, _: Identity | None) -> Certificate:
        return make_itlrecovery(c, key, now=now)

    slots = [
        _Slot(f"{c.name}/capf", c.key_type_for("capf"), None, capf),
        _Slot(f"{c.name}/itlrecovery", c.key_type_for("itlrecovery"), None, itlrecovery),
    ]
    cm_issuer = ENTERPRISE_CA if c.callmanager_issuer == "enterprise-ca" else None
    for n in c.nodes:

        def callmanager(key: PrivateKey, ca: Identity | None, n: NodeSpec = n) -> Certificate:
            return make_callmanager(c, n, key, enterprise_ca=ca, now=now)

        def tvs(key: PrivateKey, _: Identity | None, n: NodeSpec = n) -> Certificate:
            return make_tvs(c, n, key, now=now)

        base = f"{c.name}/nodes/{n.name}"
        slots.append(
            _Slot(f"{base}/callmanager", c.key_type_for("callmanager"), cm_issuer, callmanager)
        )
        slots.append(_Slot(f"{base}/tvs", c.key_type_for("tvs"), None, tvs))
    for p in c.phones:

        def lsc(key: PrivateKey, capf: Identity | None, p: PhoneSpec = p) -> Certificate:
            return issue_lsc(
                _required(capf),
                mac=p.mac,
                model=p.model,
                key=key,
                serial=p.serial,
                now=now,
                validity_days=c.validity_days,
            ).cert

        slots.append(_Slot(f"{c.name}/phones/{p.name}", c.phone_key_type(p), f"{c.name}/capf", lsc))
    return slots


def _required(issuer: Identity | None) -> Identity:
    if issuer is None:  # pragma: no cover - _plan always names the CAPF
        raise PkiError("LSC without a CAPF")
    return issuer


def generate(
    recipe: Recipe, out: str | Path, *, overwrite: bool = False, now: _dt.datetime | None = None
) -> LabPki:
    """Make (or complete) the lab PKI for ``recipe`` under ``out``; see the module docstring.

    ``overwrite`` replaces every key and certificate. Raises :class:`PkiError` when the
    directory cannot be written or an existing key cannot be read.
    """
    root = Path(out)
    now = now or _dt.datetime.now(_dt.UTC)
    if root.exists() and not root.is_dir():
        raise PkiError(f"output directory {root} exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PkiError(f"cannot create output directory {root}: {exc.strerror or exc}") from None
    with _generation_lock(root):  # two processes generating one lab PKI take turns
        return _generate(recipe, root, overwrite, now)


@contextlib.contextmanager
def _generation_lock(root: Path, *, shared: bool = False) -> Iterator[None]:
    """A lock on the directory itself (flock: released when the process dies, no file left
    behind), so two clusters started at once do not race on the shared lab PKI: generating
    takes it exclusively (the second generator waits, then keeps what the first made), loading
    takes it shared (a reader waits until a generation in progress has written everything)."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError as exc:
        raise PkiError(f"cannot lock {root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _generate(recipe: Recipe, root: Path, overwrite: bool, now: _dt.datetime) -> LabPki:
    slots = _plan(recipe, now)
    fresh = [s for s in slots if overwrite or not _key_path(root, s.label).exists()]
    keys = _make_keys([s.key_type for s in fresh])
    new_keys = dict(zip((s.label for s in fresh), keys, strict=True))
    done: dict[str, Identity] = {}
    written: set[Path] = set()
    try:
        for slot in slots:
            done[slot.label] = _realise(root, slot, done, new_keys, overwrite, written)
    except OSError as exc:
        raise PkiError(f"cannot write lab PKI in {root}: {exc}") from None
    return _assemble(root, recipe, done, frozenset(written))


def _realise(
    root: Path,
    slot: _Slot,
    done: Mapping[str, Identity],
    new_keys: Mapping[str, PrivateKey],
    overwrite: bool,
    written: set[Path],
) -> Identity:
    cert_path, key_path = _cert_path(root, slot.label), _key_path(root, slot.label)
    issuer = done[slot.issuer] if slot.issuer else None
    key = new_keys.get(slot.label)
    if key is None:
        key = _read_key(key_path)
    elif not overwrite and key_path.exists():  # pragma: no cover - appeared since planning
        raise PkiError(f"{key_path}: appeared while generating; not overwriting it")
    cert = None
    if slot.label not in new_keys and cert_path.exists():
        cert = _read_cert_or_none(cert_path)
        if cert is not None and not _fits(cert, key, issuer):
            cert = None
    if slot.label in new_keys:
        _write_atomic(key_path, _key_pem(key), 0o600)
        written.add(key_path)
    if cert is None:
        cert = slot.make(key, issuer)
        _write_atomic(cert_path, cert.to_pem(), 0o644)
        written.add(cert_path)
    return Identity(cert=cert, key=key, cert_path=cert_path, key_path=key_path)


def _make_keys(key_types: list[str]) -> list[PrivateKey]:
    """Keys for ``key_types``; RSA generation releases the GIL, so use threads when it pays."""
    if sum(kt.startswith("rsa") for kt in key_types) < 2:
        return [generate_key(kt) for kt in key_types]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(generate_key, key_types))


def _fits(cert: Certificate, key: PrivateKey, issuer: Identity | None) -> bool:
    """True when ``cert`` belongs to ``key`` and was signed by ``issuer`` (itself if None)."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key.public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        return False
    return cert.is_issued_by(issuer.cert if issuer else cert)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path`` (made 0600), rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode != 0o600:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- loading -----------------------------------------------------------------------------------


def _cert_path(root: Path, label: str) -> Path:
    return root / f"{label}.pem"


def _key_path(root: Path, label: str) -> Path:
    return root / f"{label}.key"


def _read_key(path: Path) -> PrivateKey:
    try:
        return load_private_key(path)
    except OSError as exc:
        raise PkiError(f"{path}: cannot read key: {exc.strerror or exc}") from None
    except CertificateError as exc:
        raise PkiError(f"{path}: {exc} (use --overwrite to replace it)") from None


def _read_cert_or_none(path: Path) -> Certificate | None:
    try:
        return Certificate.load(path)
    except (OSError, CertificateError):
        return None


def _load_identity(root: Path, label: str) -> Identity:
    cert_path, key_path = _cert_path(root, label), _key_path(root, label)
    for p in (cert_path, key_path):
        if not p.is_file():
            raise PkiError(f"{p}: missing (run `tvs certs generate --out {root}`)")
    try:
        cert = Certificate.load(cert_path)
    except (OSError, CertificateError) as exc:
        raise PkiError(f"{cert_path}: {exc}") from None
    return Identity(cert=cert, key=_read_key(key_path), cert_path=cert_path, key_path=key_path)


def _recipe_labels(recipe: Recipe) -> list[str]:
    return [s.label for s in _plan(recipe, _dt.datetime.now(_dt.UTC))]


def _discover_labels(root: Path) -> list[str]:
    labels = [ENTERPRISE_CA, MANUFACTURING_CA]
    for cdir in sorted(p for p in root.iterdir() if (p / "capf.pem").is_file()):
        labels += [f"{cdir.name}/capf", f"{cdir.name}/itlrecovery"]
        nodes = cdir / "nodes"
        for ndir in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []:
            base = f"{cdir.name}/nodes/{ndir.name}"
            labels += [f"{base}/callmanager", f"{base}/tvs"]
        phones = cdir / "phones"
        for pem in sorted(phones.glob("SEP*.pem")) if phones.is_dir() else []:
            labels.append(f"{cdir.name}/phones/{pem.stem}")
    return labels


def _assemble(
    root: Path, recipe: Recipe | None, found: Mapping[str, Identity], written: frozenset[Path]
) -> LabPki:
    """Group identities (keyed by label) into clusters, nodes and phones, in label order."""
    own: dict[str, dict[str, Identity]] = {}
    nodes: dict[str, dict[str, dict[str, Identity]]] = {}
    phones: dict[str, dict[str, Identity]] = {}
    for label, ident in found.items():
        if label in (ENTERPRISE_CA, MANUFACTURING_CA):
            continue
        parts = label.split("/")
        cname = parts[0]
        own.setdefault(cname, {})
        nodes.setdefault(cname, {})
        phones.setdefault(cname, {})
        if parts[1] == "nodes":
            nodes[cname].setdefault(parts[2], {})[parts[3]] = ident
        elif parts[1] == "phones":
            mac = device.mac_in(parts[2])  # SEP<MAC>; any other file name is not a phone
            if mac is not None:
                phones[cname][mac] = ident
        else:
            own[cname][parts[1]] = ident
    clusters = {
        cname: ClusterPki(
            name=cname,
            itlrecovery=own[cname]["itlrecovery"],
            capf=own[cname]["capf"],
            nodes=MappingProxyType(
                {n: NodePki(n, k["callmanager"], k["tvs"]) for n, k in nodes[cname].items()}
            ),
            phones=MappingProxyType(phones[cname]),
            spec=recipe.cluster(cname) if recipe is not None else None,
        )
        for cname in own
    }
    return LabPki(
        root=root,
        enterprise_ca=found[ENTERPRISE_CA],
        clusters=MappingProxyType(clusters),
        recipe=recipe,
        written=written,
        manufacturing_ca=found.get(MANUFACTURING_CA),
    )
