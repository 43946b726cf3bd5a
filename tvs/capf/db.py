"""The CAPF operations database (sqlite): what is scheduled for each device, what was issued.

Owns the schema (versioned in ``meta``), one transaction per change (``BEGIN IMMEDIATE``),
WAL so a running server reads a new schedule at its next session while ``tvs capf schedule``
writes, and the lookup other features need: :func:`issued_certificate` /
:meth:`CapfDb.certificate` (encrypted configuration's certHash is the MD5 of that DER).
A row per device: operation (none, install, delete, fetch), authentication mode (null string,
auth string, LSC, MIC), the auth string, the key (``rsa-2048``, ``ec-p256``...), an optional
deadline, and the last session's result. Certificates are kept per device with their digests.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import attrs
from cryptography import x509

from .errors import CapfDbError
from .messages import AuthType
from .session import KeySpec, Outcome

__all__ = [
    "AUTH_MODES",
    "OPERATIONS",
    "SCHEMA_VERSION",
    "CapfDb",
    "DeviceOperation",
    "IssuedCertificate",
    "auth_type_of",
    "capf_auth_mode",
    "issued_certificate",
]

SCHEMA_VERSION: Final = 1
OPERATIONS: Final = ("none", "install", "delete", "fetch")
AUTH_MODES: Final = ("null", "string", "lsc", "mic")
_AUTH_TYPES: Final = {
    "string": AuthType.AUTH_STRING,
    "null": AuthType.NULL_STRING,
    "lsc": AuthType.LSC,
    "mic": AuthType.MIC,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    auth_mode TEXT NOT NULL,
    auth_string TEXT,
    key TEXT NOT NULL,
    deadline TEXT,
    updated TEXT NOT NULL,
    last_result TEXT,
    last_reason INTEGER,
    last_why TEXT,
    last_at TEXT
);
CREATE TABLE IF NOT EXISTS certificates (
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    der BLOB NOT NULL,
    md5 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_after TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (name, kind)
);
"""


def auth_type_of(mode: str) -> AuthType:
    return _AUTH_TYPES[mode]


def capf_auth_mode(op: DeviceOperation | None) -> int:
    """``<capfAuthMode>`` in the phone's configuration: 0 nothing pending, else the mode."""
    if op is None or not op.pending():
        return 0
    return int(_AUTH_TYPES[op.auth_mode])


def _iso(t: _dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(_dt.UTC).isoformat(timespec="seconds")


def _time(s: str | None) -> _dt.datetime | None:
    return None if s is None else _dt.datetime.fromisoformat(s)


def _now(now: _dt.datetime | None) -> _dt.datetime:
    return now if now is not None else _dt.datetime.now(_dt.UTC)


@attrs.frozen
class DeviceOperation:
    name: str
    operation: str
    auth_mode: str
    key: str
    updated: _dt.datetime
    auth_string: str | None = attrs.field(default=None, repr=False)
    deadline: _dt.datetime | None = None
    last_result: str | None = None
    last_reason: int | None = None
    last_why: str | None = None
    last_at: _dt.datetime | None = None

    def expired(self, now: _dt.datetime | None = None) -> bool:
        return self.deadline is not None and _now(now) > self.deadline

    def pending(self, now: _dt.datetime | None = None) -> bool:
        return self.operation != "none" and not self.expired(now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.name,
            "operation": self.operation,
            "auth": self.auth_mode,
            "auth_string_set": self.auth_string is not None,
            "key": self.key,
            "deadline": _iso(self.deadline),
            "updated": _iso(self.updated),
            "pending": self.pending(),
            "last_result": self.last_result,
            "last_reason": self.last_reason,
            "last_why": self.last_why,
            "last_at": _iso(self.last_at),
        }


@attrs.frozen
class IssuedCertificate:
    """A device's certificate as the CAPF knows it: ``kind`` is issued or fetched."""

    name: str
    kind: str
    der: bytes = attrs.field(repr=False)
    md5: str
    sha256: str
    serial: str
    not_after: _dt.datetime
    at: _dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.name,
            "kind": self.kind,
            "md5": self.md5,
            "sha256": self.sha256,
            "serial": self.serial,
            "not_after": _iso(self.not_after),
            "at": _iso(self.at),
        }


def _cert_row(name: str, kind: str, der: bytes, now: _dt.datetime) -> tuple[Any, ...]:
    cert = x509.load_der_x509_certificate(der)
    return (
        name,
        kind,
        der,
        hashlib.md5(der).hexdigest(),  # certHash is MD5 by protocol
        hashlib.sha256(der).hexdigest(),
        format(cert.serial_number, "X"),
        _iso(cert.not_valid_after_utc),
        _iso(now),
    )


class CapfDb:
    """One connection to the operations database; ``with CapfDb(path) as db: ...``."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise CapfDbError(f"{self.path}: no CAPF database (schedule something first)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)  # IF NOT EXISTS: safe when two processes race
            with self._write():
                row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    raise CapfDbError(
                        f"{self.path}: schema version {row[0]} is newer than this tvs"
                        f" ({SCHEMA_VERSION})"
                    )
        except (sqlite3.Error, OSError) as exc:
            raise CapfDbError(f"{self.path}: {exc}") from None

    def __enter__(self) -> CapfDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- scheduling ------------------------------------------------------------------------

    def schedule(
        self,
        names: Iterable[str],
        *,
        operation: str,
        auth_mode: str = "null",
        auth_string: str | None = None,
        key: str = "rsa-2048",
        deadline: _dt.datetime | None = None,
        now: _dt.datetime | None = None,
    ) -> int:
        """Set the operation of every device in one transaction; returns how many."""
        if operation not in OPERATIONS:
            raise ValueError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
        if auth_mode not in AUTH_MODES:
            raise ValueError(f"auth {auth_mode!r} is not one of {', '.join(AUTH_MODES)}")
        if auth_mode == "string" and not (
            auth_string and auth_string.isdigit() and 4 <= len(auth_string) <= 10
        ):
            raise ValueError("--auth string needs --auth-string of 4 to 10 digits (as CUCM)")
        key = KeySpec.parse(key).name
        stamp = _iso(_now(now))
        rows = [(n, operation, auth_mode, auth_string, key, _iso(deadline), stamp) for n in names]
        try:
            with self._write():
                self._db.executemany(
                    "INSERT INTO devices (name, operation, auth_mode, auth_string, key, deadline,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                    " operation=excluded.operation, auth_mode=excluded.auth_mode,"
                    " auth_string=excluded.auth_string, key=excluded.key,"
                    " deadline=excluded.deadline, updated=excluded.updated",
                    rows,
                )
        except sqlite3.Error as exc:
            raise CapfDbError(f"{self.path}: {exc}") from None
        return len(rows)

    def get(self, name: str) -> DeviceOperation | None:
        rows = self._select("SELECT * FROM devices WHERE name = ?", (name,))
        return rows[0] if rows else None

    def operations(self) -> list[DeviceOperation]:
        return self._select("SELECT * FROM devices ORDER BY name", ())

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[DeviceOperation]:
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise CapfDbError(f"{self.path}: {exc}") from None
        return [
            DeviceOperation(
                name=r[0],
                operation=r[1],
                auth_mode=r[2],
                auth_string=r[3],
                key=r[4],
                deadline=_time(r[5]),
                updated=_time(r[6]) or _dt.datetime.now(_dt.UTC),
                last_result=r[7],
                last_reason=r[8],
                last_why=r[9],
                last_at=_time(r[10]),
            )
            for r in rows
        ]

    # -- results ---------------------------------------------------------------------------

    def record(self, outcome: Outcome, *, now: _dt.datetime | None = None) -> None:
        """Keep a session's result, atomically: an installed or fetched certificate is stored
        and the operation returns to none; a delete removes the issued certificate; a refusal
        only notes the result (nothing stored)."""
        if outcome.device_name is None:
            return
        stamp = _iso(_now(now))
        name = outcome.device_name
        try:
            with self._write():
                done = outcome.result in ("installed", "fetched", "deleted")
                self._db.execute(
                    "UPDATE devices SET last_result=?, last_reason=?, last_why=?, last_at=?"
                    + (", operation='none'" if done else "")
                    + " WHERE name=?",
                    (outcome.result, int(outcome.reason), outcome.why, stamp, name),
                )
                if outcome.result == "installed" and outcome.certificate:
                    self._put_cert(name, "issued", outcome.certificate, _now(now))
                elif outcome.result == "fetched" and outcome.certificate:
                    self._put_cert(name, "fetched", outcome.certificate, _now(now))
                elif outcome.result == "deleted":
                    self._db.execute("DELETE FROM certificates WHERE name=?", (name,))
        except sqlite3.Error as exc:
            raise CapfDbError(f"{self.path}: {exc}") from None

    def _put_cert(self, name: str, kind: str, der: bytes, now: _dt.datetime) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _cert_row(name, kind, der, now),
        )

    def certificate(self, name: str, kind: str = "issued") -> IssuedCertificate | None:
        try:
            r = self._db.execute(
                "SELECT * FROM certificates WHERE name=? AND kind=?", (name, kind)
            ).fetchone()
        except sqlite3.Error as exc:
            raise CapfDbError(f"{self.path}: {exc}") from None
        if r is None:
            return None
        return IssuedCertificate(
            r[0],
            r[1],
            bytes(r[2]),
            r[3],
            r[4],
            r[5],
            _time(r[6]) or _dt.datetime.min,
            _time(r[7]) or _dt.datetime.min,
        )


def issued_certificate(path: str | Path, device: str) -> IssuedCertificate | None:
    """The LSC this CAPF issued to ``device`` (``SEP<MAC>``), or None: what encrypted
    configuration needs (certHash = ``.md5`` of ``.der``). None when there is no database."""
    if not Path(path).is_file():
        return None
    with CapfDb(path, create=False) as db:
        return db.certificate(device)
