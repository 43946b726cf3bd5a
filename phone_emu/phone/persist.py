"""The phone's flash: trust lists, TVS answers and configuration in a state directory.

Owns the directory layout, atomic writes (temporary file, fsync, rename), and loading that
never crashes: a file that cannot be read or parsed is reported as a :class:`StateProblem`
and treated as absent (a corrupt CTL/ITL means "no trust list"). Layout::

    CTLFile.tlv      the CTL as fetched (bytes unchanged)
    ITLFile.tlv      the ITL as fetched
    config.json      the applied configuration (TVS members, CallManager group)
    tvs-cache.json   TVS answers: certificate (base64 DER), roles, expiry (Unix time)
    phone.json       identity and the last boot's summary (informational)
    lsc.pem          the LSC CAPF installed, then its private key (PEM), when it did
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives import serialization

from tvs.certs import Certificate, CertificateError, PrivateKey, load_private_key
from tvs.tlv import TlvError

from .config import PhoneConfig
from .trust import TrustList, TrustListCache, TrustState, TvsCacheEntry

__all__ = [
    "CONFIG_FILE",
    "CTL_FILE",
    "ITL_FILE",
    "LSC_FILE",
    "PHONE_FILE",
    "TVS_CACHE_FILE",
    "LoadedState",
    "StateError",
    "StateProblem",
    "StateStore",
    "atomic_write",
]

CTL_FILE: Final = "CTLFile.tlv"
ITL_FILE: Final = "ITLFile.tlv"
CONFIG_FILE: Final = "config.json"
TVS_CACHE_FILE: Final = "tvs-cache.json"
PHONE_FILE: Final = "phone.json"
LSC_FILE: Final = "lsc.pem"
_MAX_STATE_FILE: Final = 4 << 20
_CORRUPT: Final = object()


class StateError(OSError):
    """The state directory cannot be created or written."""


@attrs.frozen
class StateProblem:
    """A state file that could not be used, and why; the phone carries on without it."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@attrs.frozen
class LoadedState:
    trust: TrustState
    config: PhoneConfig | None
    problems: tuple[StateProblem, ...] = ()
    phone: dict[str, Any] | None = None
    lsc: tuple[Certificate, PrivateKey] | None = attrs.field(default=None, repr=False)
    """The LSC (and key) CAPF installed on this phone, when one is in ``lsc.pem``."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new bytes, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _entry_to_json(e: TvsCacheEntry) -> dict[str, Any]:
    return {
        "certificate": base64.b64encode(e.certificate.der).decode("ascii"),
        "roles": list(e.roles),
        "expires_at": e.expires_at,
        "subject": e.certificate.subject,  # for people reading the file
    }


def _entry_from_json(d: dict[str, Any]) -> TvsCacheEntry:
    return TvsCacheEntry(
        certificate=Certificate.from_der(base64.b64decode(d["certificate"], validate=True)),
        roles=tuple(int(r) for r in d["roles"]),
        expires_at=float(d["expires_at"]),
    )


class StateStore:
    """One phone's state directory. ``load()`` never raises for bad content; ``save()`` writes
    only what changed since the last load or save."""

    def __init__(self, root: str | Path, *, lists: TrustListCache | None = None) -> None:
        self.root = Path(root)
        self._lists = lists
        self._saved: dict[str, object] = {}

    def _read(self, name: str, problems: list[StateProblem]) -> bytes | None:
        path = self.root / name
        try:
            if path.stat().st_size > _MAX_STATE_FILE:
                problems.append(StateProblem(name, "file too large"))
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problems.append(StateProblem(name, f"unreadable: {exc.strerror or exc}"))
            return None

    def _trust_list(self, name: str, problems: list[StateProblem]) -> TrustList | None:
        data = self._read(name, problems)
        if data is None:
            return None
        try:
            return self._lists.get(data) if self._lists is not None else TrustList.parse(data)
        except TlvError as exc:
            problems.append(StateProblem(name, f"corrupt trust list, ignored: {exc}"))
            return None

    def _json_file(self, name: str, problems: list[StateProblem]) -> Any:
        data = self._read(name, problems)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(StateProblem(name, f"corrupt JSON, ignored: {exc}"))
            return None

    def load(self) -> LoadedState:
        problems: list[StateProblem] = []
        ctl = self._trust_list(CTL_FILE, problems)
        itl = self._trust_list(ITL_FILE, problems)
        entries: list[TvsCacheEntry] = []
        raw_cache = self._json_file(TVS_CACHE_FILE, problems)
        if raw_cache is not None:
            try:
                entries = [_entry_from_json(d) for d in raw_cache["entries"]]
            except (KeyError, TypeError, ValueError, CertificateError) as exc:
                problems.append(StateProblem(TVS_CACHE_FILE, f"bad entry, cache ignored: {exc!r}"))
        config = None
        raw_config = self._json_file(CONFIG_FILE, problems)
        if raw_config is not None:
            try:
                config = PhoneConfig.from_dict(raw_config)
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(StateProblem(CONFIG_FILE, f"bad configuration, ignored: {exc!r}"))
        phone = self._json_file(PHONE_FILE, problems)
        lsc = self._lsc(problems)
        trust = TrustState(ctl=ctl, itl=itl, tvs_cache=tuple(entries))
        self._remember(trust, config)
        for problem in problems:  # unreadable files are rewritten or erased at the next save
            self._saved[problem.file] = _CORRUPT
        return LoadedState(
            trust=trust,
            config=config,
            problems=tuple(problems),
            phone=phone if isinstance(phone, dict) else None,
            lsc=lsc,
        )

    def _lsc(self, problems: list[StateProblem]) -> tuple[Certificate, PrivateKey] | None:
        data = self._read(LSC_FILE, problems)
        if data is None:
            return None
        try:
            return Certificate.from_pem(data), load_private_key(data)
        except (CertificateError, ValueError) as exc:
            problems.append(StateProblem(LSC_FILE, f"unusable LSC, ignored: {exc}"))
            return None

    def save_lsc(self, cert: Certificate, key: PrivateKey) -> None:
        """Write ``lsc.pem``: the certificate CAPF installed, then its key (raises StateError)."""
        pem = cert.to_pem() + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.root / LSC_FILE, pem)
            os.chmod(self.root / LSC_FILE, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write state in {self.root}: {exc}") from exc

    def _remember(self, trust: TrustState, config: PhoneConfig | None) -> None:
        self._saved = {
            CTL_FILE: trust.ctl.sha256 if trust.ctl else None,
            ITL_FILE: trust.itl.sha256 if trust.itl else None,
            TVS_CACHE_FILE: trust.tvs_cache,
            CONFIG_FILE: config,
        }

    def save(self, trust: TrustState, config: PhoneConfig | None) -> list[str]:
        """Write the files whose content changed; returns their names (raises StateError)."""
        written: list[str] = []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for name, tl in ((CTL_FILE, trust.ctl), (ITL_FILE, trust.itl)):
                prev = self._saved.get(name)
                if tl is not None and prev != tl.sha256:
                    atomic_write(self.root / name, tl.raw)
                    written.append(name)
                elif tl is None and prev is not None:  # deleted, or unreadable at load
                    (self.root / name).unlink(missing_ok=True)
                    written.append(name)
            if self._saved.get(TVS_CACHE_FILE, ()) != trust.tvs_cache:
                doc = {"entries": [_entry_to_json(e) for e in trust.tvs_cache]}
                atomic_write(self.root / TVS_CACHE_FILE, _json(doc))
                written.append(TVS_CACHE_FILE)
            if config is not None and self._saved.get(CONFIG_FILE) != config:
                atomic_write(self.root / CONFIG_FILE, _json(config.to_dict()))
                written.append(CONFIG_FILE)
            elif config is None and self._saved.get(CONFIG_FILE) is not None:
                (self.root / CONFIG_FILE).unlink(missing_ok=True)
                written.append(CONFIG_FILE)
        except OSError as exc:
            raise StateError(f"cannot write state in {self.root}: {exc}") from exc
        self._remember(trust, config)
        return written

    def save_phone(self, info: dict[str, Any]) -> None:
        """Write ``phone.json`` (identity and last boot summary)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.root / PHONE_FILE, _json(info))
        except OSError as exc:
            raise StateError(f"cannot write state in {self.root}: {exc}") from exc
