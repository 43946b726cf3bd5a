"""File providers: the one contract by which the TFTP and HTTP servers get a file's bytes.

A provider is any object with ``async def get(name, client) -> FileVersion | None``. It
returns one immutable :class:`FileVersion` per version of a file, the SAME object for every
request of that version, so a server's transfers hold a reference to one shared buffer and
never a copy (memory does not grow with transfers x file size). ``None`` means there is no
such file (TFTP error 1, HTTP 404); raising ``FileRefused`` denies it (TFTP error ``code``,
HTTP 404 too: the client learns nothing about why). ``client`` is the requesting
(host, port), so a cluster can generate per-phone files.

``DirectoryProvider`` serves regular files under a root, confined to it; it keys a version
by real path, device, inode, size and modification time, keeps recent versions in a cache
bounded in bytes and entries, and shares any version still held by a transfer even after the
cache dropped it. It never opens anything but a regular file in a way that could block (a
FIFO in the root is refused at once). ``CallableProvider`` wraps ``fn(name, client)``
(sync or async) returning ``bytes`` (or a ``FileVersion``) or None; a function that returns
the same ``bytes`` object for the same content (the emulated cluster caches its generated
files) gets the same version object back.

``check_name`` holds the path rules both servers apply (no empty name, no control bytes);
``DirectoryProvider`` adds no absolute paths, no ``..``, nothing resolving outside the root.
"""

from __future__ import annotations

import inspect
import os
import re
import stat
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs
import trio

from .errors import FileRefused
from .protocol import to_netascii

__all__ = [
    "CallableProvider",
    "DirectoryProvider",
    "FileProvider",
    "FileVersion",
    "check_name",
    "check_path",
]

Client = tuple[str, int]


@attrs.frozen(eq=False, weakref_slot=True)
class FileVersion:
    """One version of one file: the immutable bytes every transfer of that version shares.

    ``key`` says which version this is (for a directory: real path, device, inode, size and
    modification time in ns); two requests that get the same object share one buffer.
    """

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    key: Hashable = None
    _netascii: list[bytes] = attrs.field(factory=list, init=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def netascii(self) -> bytes:
        """The netascii form (CR LF line ends), computed once per version."""
        if not self._netascii:
            self._netascii.append(to_netascii(self.data))
        return self._netascii[0]


@runtime_checkable
class FileProvider(Protocol):
    async def get(self, name: str, client: Client) -> FileVersion | None:
        """The current version of ``name`` for ``client``, None if absent; raise
        ``FileRefused`` to deny."""
        ...


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what check_name refuses


def check_name(name: str) -> None:
    """Refuse names no provider should see: empty, NUL or other control characters."""
    if not name:
        raise FileRefused("empty file name")
    if _CONTROL.search(name):
        raise FileRefused(f"control character in file name {name!r}")


def check_path(name: str) -> list[str]:
    """``check_name`` plus the directory rules: no absolute path (``/x``, ``\\x``, ``C:x``),
    no ``..`` component. Returns the ``/``-separated parts."""
    check_name(name)
    if name.startswith(("/", "\\")) or (name[1:2] == ":" and name[0].isalpha()):
        raise FileRefused(f"absolute path {name!r}")
    parts = name.split("/")
    if ".." in parts:
        raise FileRefused(f"'..' in {name!r}")
    return parts


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_THREAD_READ = 1024 * 1024
"""Files larger than this are read in a worker thread, not on the event loop."""


class DirectoryProvider:
    """Regular files under ``root``. Refused with error 2: absolute paths, ``..`` components,
    control characters, symlinks resolving outside the root, anything that is not a regular
    file (FIFOs, devices, directories; checked without blocking), files over ``max_size``.

    ``cache_bytes`` / ``cache_entries`` bound the versions kept after their last transfer
    ended (least recently used first out); versions still in use are shared regardless.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_size: int = 256 * 1024 * 1024,
        cache_bytes: int = 64 * 1024 * 1024,
        cache_entries: int = 1024,
    ):
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(str(self.root))
        self.max_size = max_size
        self.cache_bytes = cache_bytes
        self.cache_entries = cache_entries
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep
        self._cache: OrderedDict[str, FileVersion] = OrderedDict()
        self._cached_bytes = 0
        self._live: weakref.WeakValueDictionary[str, FileVersion] = weakref.WeakValueDictionary()
        self._reading: dict[Hashable, trio.Event] = {}
        self.reads = 0
        """How many times a file was read from disk (the rest were shared versions)."""

    def __repr__(self) -> str:
        return f"DirectoryProvider({self._root!r})"

    def resolve(self, name: str) -> Path:
        """The real path ``name`` stands for, checked to lie inside the root."""
        return Path(self._resolve(name))

    def _resolve(self, name: str) -> str:
        parts = check_path(name)
        real = os.path.realpath(os.path.join(self._root, *[p for p in parts if p]))
        if real != self._root and not real.startswith(self._prefix):
            raise FileRefused(f"{name!r} resolves outside the root to {real!r}")
        return real

    async def get(self, name: str, client: Client) -> FileVersion | None:
        real = self._resolve(name)
        try:
            before = os.stat(real)  # refuse a FIFO or a device before even opening it
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FileRefused(f"cannot stat {name!r}: {exc.strerror}") from None
        if not stat.S_ISREG(before.st_mode):
            raise FileRefused(f"{name!r} is not a regular file")
        try:
            fd = os.open(real, _OPEN_FLAGS)  # O_NONBLOCK: a FIFO swapped in cannot block us
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
            key = (real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            version = self._lookup(real, key)
            if version is not None:
                return version
            reading = self._reading.get(key)
            if reading is not None:  # another request is reading this version: share it
                await reading.wait()
                version = self._lookup(real, key)
                if version is not None:
                    return version
            if info.st_size > _THREAD_READ:
                self._reading[key] = done = trio.Event()
                try:
                    data = await trio.to_thread.run_sync(_read_all, fd, info.st_size, self.max_size)
                finally:
                    del self._reading[key]
                    done.set()
            else:
                data = _read_all(fd, info.st_size, self.max_size)
            self.reads += 1
            if len(data) != info.st_size:  # changed while we read: serve it, do not keep it
                return FileVersion(data, None)
            version = FileVersion(data, key)
            self._store(real, version)
            return version
        except OSError as exc:
            raise FileRefused(f"cannot read {name!r}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def _lookup(self, real: str, key: Hashable) -> FileVersion | None:
        version = self._cache.get(real)
        if version is not None and version.key == key:
            self._cache.move_to_end(real)
            return version
        version = self._live.get(real)
        if version is not None and version.key == key:
            self._store(real, version)
            return version
        return None

    def _store(self, real: str, version: FileVersion) -> None:
        old = self._cache.pop(real, None)
        if old is not None:
            self._cached_bytes -= old.size
        self._live[real] = version
        if version.size > self.cache_bytes:
            return  # shared while in use (``_live``), never kept after
        self._cache[real] = version
        self._cached_bytes += version.size
        while self._cached_bytes > self.cache_bytes or len(self._cache) > self.cache_entries:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.size


def _read_all(fd: int, size: int, limit: int) -> bytes:
    chunks = []
    total = 0
    while total <= limit:  # the file may grow while we read it
        chunk = os.read(fd, max(size - total, 0) + 65536)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return data[:limit] if total > limit else data


SyncOrAsyncFn = Callable[
    [str, Client], "bytes | FileVersion | Awaitable[bytes | FileVersion | None] | None"
]


class CallableProvider:
    """Files produced by ``fn(name, client)``, sync or async, returning bytes, a
    ``FileVersion`` or None. The same ``bytes`` object returned again gives the same version
    (no copy is ever made of ``bytes``; a ``bytearray`` or ``memoryview`` is copied once, as
    it could change)."""

    def __init__(self, fn: SyncOrAsyncFn):
        self.fn = fn
        self._versions: weakref.WeakValueDictionary[int, FileVersion] = (
            weakref.WeakValueDictionary()
        )

    def __repr__(self) -> str:
        return f"CallableProvider({self.fn!r})"

    async def get(self, name: str, client: Client) -> FileVersion | None:
        check_name(name)
        result = self.fn(name, client)
        if inspect.isawaitable(result):
            result = await result
        if result is None or isinstance(result, FileVersion):
            return result
        if not isinstance(result, bytes | bytearray | memoryview):
            raise TypeError(f"{self.fn!r} returned {type(result).__name__}, not bytes")
        if not isinstance(result, bytes):
            return FileVersion(bytes(result))
        version = self._versions.get(id(result))
        if version is None or version.data is not result:
            version = FileVersion(result, id(result))
            self._versions[id(result)] = version
        return version
