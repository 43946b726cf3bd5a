"""The phone's state directory: round trips, writes only what changed, atomic replacement,
unreadable files reported and treated as absent."""

from __future__ import annotations

import os

import pytest
from phone_support import MAC, cluster_files, drive

from phone_emu.phone.boot import BootMachine
from phone_emu.phone.identity import PhoneIdentity
from phone_emu.phone.persist import (
    CONFIG_FILE,
    CTL_FILE,
    ITL_FILE,
    PHONE_FILE,
    TVS_CACHE_FILE,
    StateError,
    StateStore,
    atomic_write,
)
from phone_emu.phone.trust import FileKind, TrustListCache, TrustState, TvsCacheEntry
from tvs.roles import Role


@pytest.fixture(scope="module")
def booted(lab_pki):
    src = lab_pki.clusters["source"]
    phone = src.phones[MAC]
    ident = PhoneIdentity.from_lsc(phone.cert, phone.key)
    result = drive(BootMachine(ident, now=1000.0), cluster_files(src))
    entry = TvsCacheEntry(lab_pki.clusters["destination"].itlrecovery.cert, (Role.SAST,), 5000.0)
    return result.trust.with_answer(entry, 1000.0), result.config


def test_round_trip(tmp_path, booted):
    trust, config = booted
    store = StateStore(tmp_path / "s")
    assert sorted(store.save(trust, config)) == sorted(
        [CTL_FILE, ITL_FILE, TVS_CACHE_FILE, CONFIG_FILE]
    )
    loaded = StateStore(tmp_path / "s").load()
    assert loaded.problems == ()
    assert loaded.trust.ctl.raw == trust.ctl.raw and loaded.trust.itl.raw == trust.itl.raw
    assert loaded.trust.tvs_cache == trust.tvs_cache
    assert loaded.config == config


def test_only_changes_are_written(tmp_path, booted):
    trust, config = booted
    store = StateStore(tmp_path)
    store.save(trust, config)
    assert store.save(trust, config) == []
    again = StateStore(tmp_path)
    again.load()
    assert again.save(trust, config) == []
    assert again.save(trust.with_list(FileKind.ITL, None), config) == [ITL_FILE]
    assert not (tmp_path / ITL_FILE).exists()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    atomic_write(target, b"old")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]


@pytest.mark.parametrize(
    "name,data",
    [
        (CTL_FILE, b"\x01\x00\x02\x01\x02"),
        (ITL_FILE, b""),
        (TVS_CACHE_FILE, b"[1, 2"),
        (TVS_CACHE_FILE, b'{"entries": [{"certificate": "!!", "roles": [], "expires_at": 1}]}'),
        (CONFIG_FILE, b'{"tvs_members": [{"priority": "x"}]}'),
        (CONFIG_FILE, b"\xff\xfe"),
        (PHONE_FILE, b"{"),
    ],
)
def test_unreadable_file_is_reported_and_absent(tmp_path, booted, name, data):
    trust, config = booted
    StateStore(tmp_path).save(trust, config)
    (tmp_path / name).write_bytes(data)
    store = StateStore(tmp_path)
    loaded = store.load()
    assert [p.file for p in loaded.problems] == [name]
    assert name in str(loaded.problems[0])
    if name == CTL_FILE:
        assert loaded.trust.ctl is None and loaded.trust.itl is not None
    if name == TVS_CACHE_FILE:
        assert loaded.trust.tvs_cache == ()
    if name == CONFIG_FILE:
        assert loaded.config is None
    # the next save rewrites or erases what could not be read
    store.save(loaded.trust, loaded.config)
    if name != PHONE_FILE:
        assert StateStore(tmp_path).load().problems == ()


def test_directory_that_is_a_file_raises_state_error(tmp_path, booted):
    trust, config = booted
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(StateError):
        StateStore(tmp_path / "x").save(trust, config)
    assert StateStore(tmp_path / "missing").load().trust == TrustState()


def test_shared_list_cache_is_used_when_loading(tmp_path, booted):
    trust, config = booted
    StateStore(tmp_path).save(trust, config)
    lists = TrustListCache()
    a = StateStore(tmp_path, lists=lists).load()
    b = StateStore(tmp_path, lists=lists).load()
    assert a.trust.ctl is b.trust.ctl and lists.hits == 2
