"""Crash-safe file writes: write a temporary file, fsync it, rename over the target, fsync the dir.

A reader (or a process restarted after a crash) sees either the old file or the new one,
never a half-written one. Temporary files start with ``.`` and end in ``.tmp``; store readers
skip them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_remove", "atomic_write", "fsync_dir", "is_temporary"]


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (create, rename, unlink) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_remove(path: Path) -> None:
    """Remove ``path`` (which must exist) and flush the directory."""
    path.unlink()
    fsync_dir(path.parent)


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(".tmp")
