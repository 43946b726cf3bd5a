"""All-or-nothing writes of many store files: a journal, a lock, and recovery at the next open.

An import (or bulk import) writes one journal holding every file it will write, then applies
it. The journal's rename into place is the commit point:

- killed before it: only a temporary file exists; the next open removes it (store untouched);
- killed after it: the next open applies the journal again (store complete).

Applying is idempotent (each file is written whole, atomically), so a crash while applying is
finished by the next open too. Writers hold ``DIR/.lock`` (``flock``; the kernel drops it when a
process dies), and recovery only runs when it can take that lock, so an open never disturbs an
import in progress. Owns no store layout: callers give paths inside the store directory.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .atomic import atomic_write, fsync_dir
from .errors import StoreError

__all__ = ["commit_files", "recover", "store_lock"]

_LOCK = ".lock"
_JOURNAL_RE = re.compile(r"^\.import-\d+-[0-9a-f]+\.journal$")
_TMP_RE = re.compile(r"^\..+\.tmp$")


@contextlib.contextmanager
def store_lock(root: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the store's write lock; with ``wait=False`` yields False (and holds nothing) when
    another process has it."""
    try:
        fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if not wait:  # a read-only store: nothing to recover, nobody to exclude
            yield False
            return
        raise StoreError(f"{root}: cannot lock the store: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and not wait:
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)  # closing drops the lock


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise StoreError(f"{root}: journal names a path outside the store: {rel!r}")
    return root / rel


def _write(path: Path, data: bytes) -> None:
    """``atomic_write`` without the directory fsync (done once per directory at the end)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _apply(root: Path, journal: Path) -> int:
    try:
        doc = json.loads(journal.read_bytes())
        files = [(str(f["path"]), base64.b64decode(f["data"])) for f in doc["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{journal}: unreadable import journal: {exc}") from None
    dirs: set[Path] = set()
    for rel, data in files:
        path = _inside(root, rel)
        _write(path, data)
        dirs.add(path.parent)
    for d in sorted(dirs):
        fsync_dir(d)
    journal.unlink()
    fsync_dir(root)
    return len(files)


def commit_files(root: Path, files: Sequence[tuple[Path, bytes]]) -> None:
    """Write ``files`` (paths inside ``root``) all or nothing. The caller holds the lock."""
    if not files:
        return
    if len(files) == 1:
        atomic_write(files[0][0], files[0][1])
        return
    doc = {
        "files": [
            {"path": str(p.relative_to(root)), "data": base64.b64encode(d).decode()}
            for p, d in files
        ]
    }
    journal = root / f".import-{os.getpid()}-{secrets.token_hex(6)}.journal"
    atomic_write(journal, json.dumps(doc).encode())  # the commit point
    _apply(root, journal)


def recover(root: Path, folders: Iterable[Path]) -> list[str]:
    """Finish committed imports and remove temporary files a killed writer left, when no
    writer holds the lock. Returns one line per thing done (for a log)."""
    done: list[str] = []
    with store_lock(root, wait=False) as locked:
        if not locked:
            return done
        for journal in sorted(root.iterdir()):
            if _JOURNAL_RE.match(journal.name):
                n = _apply(root, journal)
                done.append(f"completed an interrupted import of {n} files ({journal.name})")
        for folder in (root, *folders):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in folder.iterdir():
                if _TMP_RE.match(path.name) and path.is_file() and not path.is_symlink():
                    path.unlink()
                    done.append(f"removed a stale temporary file {path}")
    return done
