"""The CAPF operations database and fleet device ranges: schema version, atomic schedules,
WAL, what a session result keeps (and what a refusal does not), the certHash lookup."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from tests.capf_support import capf_identity
from tvs.capf.db import (
    SCHEMA_VERSION,
    CapfDb,
    capf_auth_mode,
    issued_certificate,
)
from tvs.capf.devices import DeviceNameError, device_name, expand_devices
from tvs.capf.errors import CapfDbError
from tvs.capf.session import Outcome
from tvs.pki.issue import issue_lsc

DEVICE = "SEP001122334455"


def test_schema_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "capf.sqlite3"
    with CapfDb(path) as db:
        db.schedule([DEVICE], operation="install")
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    raw.execute("UPDATE meta SET value='99' WHERE key='schema'")
    raw.commit()
    raw.close()
    with pytest.raises(CapfDbError, match="newer"):
        CapfDb(path)
    with pytest.raises(CapfDbError, match="no CAPF database"):
        CapfDb(tmp_path / "missing.sqlite3", create=False)


def test_schedule_is_all_or_nothing(tmp_path: Path) -> None:
    with CapfDb(tmp_path / "capf.sqlite3") as db:
        with pytest.raises(ValueError):
            db.schedule([DEVICE, "SEP001122334466"], operation="install", key="dsa-512")
        with pytest.raises(ValueError):
            db.schedule([DEVICE], operation="install", auth_mode="string", auth_string="12")
        with pytest.raises(ValueError):
            db.schedule([DEVICE], operation="upgrade")
        assert db.operations() == []
        assert db.schedule([DEVICE], operation="install", key="EC-P384") == 1
        op = db.get(DEVICE)
        assert op is not None and op.key == "ec-p384" and capf_auth_mode(op) == 2
        db.schedule([DEVICE], operation="install", auth_mode="string", auth_string="123456")
        op = db.get(DEVICE)
        assert op is not None and capf_auth_mode(op) == 1 and op.to_dict()["auth_string_set"]
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        db.schedule([DEVICE], operation="install", auth_mode="mic", deadline=past)
        op = db.get(DEVICE)
        assert op is not None and op.expired() and not op.pending() and capf_auth_mode(op) == 0
    assert capf_auth_mode(None) == 0


def test_record_keeps_results_not_refusals(tmp_path: Path) -> None:
    path = tmp_path / "capf.sqlite3"
    lsc = issue_lsc(capf_identity(), mac="001122334455")
    with CapfDb(path) as db:
        db.schedule([DEVICE], operation="install")
        db.record(Outcome(DEVICE, "install", "refused", 7, "wrong auth string"))
        op = db.get(DEVICE)
        assert op is not None and op.operation == "install" and op.last_result == "refused"
        assert db.certificate(DEVICE) is None
        db.record(Outcome(DEVICE, "install", "installed", 1, "", lsc.cert.der))
        db.record(Outcome(None, "none", "refused", 7, "no device name"))  # nothing to keep
    # a restart: the result and the certificate are still there
    with CapfDb(path) as db:
        op = db.get(DEVICE)
        assert op is not None and op.operation == "none" and op.last_result == "installed"
    stored = issued_certificate(path, DEVICE)
    assert stored is not None and stored.der == lsc.cert.der
    import hashlib

    assert stored.md5 == hashlib.md5(lsc.cert.der).hexdigest()
    assert stored.to_dict()["not_after"].startswith(str(lsc.cert.not_valid_after.year))
    with CapfDb(path) as db:
        db.record(Outcome(DEVICE, "delete", "deleted", 1, ""))
    assert issued_certificate(path, DEVICE) is None
    assert issued_certificate(tmp_path / "none.sqlite3", DEVICE) is None


def test_device_names_and_ranges() -> None:
    assert device_name("sep001122334455") == DEVICE
    assert device_name("00:11:22:33:44:55") == DEVICE
    assert device_name("CP-8861-SEP001122334455") == DEVICE
    assert expand_devices(["SEP0011223344[0A-0C]", "SEP00112233440B", DEVICE]) == [
        "SEP00112233440A",
        "SEP00112233440B",
        "SEP00112233440C",
        DEVICE,
    ]
    assert len(expand_devices(["SEP00112233[0000-03FF]"])) == 1024
    assert len(expand_devices(["0011223344[00-ff]"])) == 256
    for bad in ("SEP0011223344[0-FF]", "SEP00112233[00-FF]", "SEP0011223344[FF-00]", "SEPZZ"):
        with pytest.raises(DeviceNameError):
            expand_devices([bad])
    with pytest.raises(DeviceNameError, match="more than"):
        expand_devices(["SEP0011223344[00-FF]"], limit=10)
