"""File providers: where the TFTP server gets the bytes for a requested name.

A provider is any object with ``async def get(name, client) -> bytes | None``: it returns the
file's bytes, ``None`` when there is no such file (the server answers error 1), or raises
``FileRefused`` (the server answers its ``code``, 2 = access violation, and logs the reason).
``client`` is the requesting (host, port), so a cluster can generate per-phone files.

``DirectoryProvider`` serves files under a root directory, confined to it. ``CallableProvider``
wraps a plain function ``fn(name, client) -> bytes | None``; the function may be synchronous
(it runs on the event loop, so keep CPU work per call short, or cache) or ``async``.
"""

from __future__ import annotations

import inspect
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import FileRefused

__all__ = ["CallableProvider", "DirectoryProvider", "FileProvider", "check_name"]

Client = tuple[str, int]


@runtime_checkable
class FileProvider(Protocol):
    async def get(self, name: str, client: Client) -> bytes | None:
        """The bytes of ``name`` for ``client``, None if absent; raise ``FileRefused`` to deny."""
        ...


def check_name(name: str) -> None:
    """Refuse names no provider should see: empty, NUL or other control characters."""
    if not name:
        raise FileRefused("empty file name")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise FileRefused(f"control character in file name {name!r}")


class DirectoryProvider:
    """Files under ``root``. Refused with error 2: absolute paths, ``..`` components, control
    characters, symlinks resolving outside the root, and anything that is not a regular file."""

    def __init__(self, root: str | os.PathLike[str], *, max_size: int = 256 * 1024 * 1024):
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(str(self.root))
        self.max_size = max_size
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep

    def __repr__(self) -> str:
        return f"DirectoryProvider({self._root!r})"

    def resolve(self, name: str) -> Path:
        """The real path ``name`` stands for, checked to lie inside the root."""
        return Path(self._resolve(name))

    def _resolve(self, name: str) -> str:
        check_name(name)
        if name.startswith(("/", "\\")) or (name[1:2] == ":" and name[0].isalpha()):
            raise FileRefused(f"absolute path {name!r}")
        parts = name.split("/")
        if ".." in parts:
            raise FileRefused(f"'..' in {name!r}")
        real = os.path.realpath(os.path.join(self._root, *[p for p in parts if p]))
        if real != self._root and not real.startswith(self._prefix):
            raise FileRefused(f"{name!r} resolves outside the root to {real!r}")
        return real

    async def get(self, name: str, client: Client) -> bytes | None:
        real = self._resolve(name)
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FileRefused(f"cannot open {name!r}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FileRefused(f"{name!r} is not a regular file")
            if info.st_size > self.max_size:
                raise FileRefused(f"{name!r} is larger than {self.max_size} bytes")
            chunks = []
            size = 0
            while size <= self.max_size:  # the file may grow while we read it
                chunk = os.read(fd, max(info.st_size - size, 0) + 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)[: self.max_size]
        except OSError as exc:
            raise FileRefused(f"cannot read {name!r}: {exc.strerror}") from None
        finally:
            os.close(fd)


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


SyncOrAsyncFn = Callable[[str, Client], "bytes | Awaitable[bytes | None] | None"]


class CallableProvider:
    """Files produced by ``fn(name, client)``, sync or async, returning bytes or None."""

    def __init__(self, fn: SyncOrAsyncFn):
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallableProvider({self.fn!r})"

    async def get(self, name: str, client: Client) -> bytes | None:
        check_name(name)
        result = self.fn(name, client)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, bytes | bytearray | memoryview):
            raise TypeError(f"{self.fn!r} returned {type(result).__name__}, not bytes")
        return None if result is None else bytes(result)
