"""How the phone downloads one file: HTTP 6970 first, TFTP for that file when HTTP fails, as
current firmware does (protocol notes section 10), under a per-file deadline and size cap.

Owns :class:`FetchOptions` (the mode ``http+tftp`` | ``tftp`` | ``http``, the HTTP port, the
caps and deadline of :class:`FetchLimits`) and :class:`Fetcher`, which turns one
``FetchFile`` action into ``FileFetched`` (with the transport that delivered it),
``FileMissing`` or ``FetchFailed`` (``failure``: ``fetch-failed``, ``too-large``, ``timeout``:
the boot machine makes ``ctl.too-large`` and the like of it). The transports are
``tvs.http.http_get`` (the phone's own request bytes) and ``tvs.tftp.tftp_get``.

HTTP failures that send the phone to TFTP: connection refused, 404, 503 (any status other
than 200), timeout, a broken answer. A file over the cap is refused whatever the transport,
without trying the other one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import trio

from tvs.http import HttpError, HttpStatusError, HttpTooLarge, http_get
from tvs.tftp import ErrorCode, TftpError, TftpProtocolError, TftpRemoteError, tftp_get

from .trust import FileKind
from .values import FetchFailed, FetchFile, FileFetched, FileMissing

__all__ = ["FETCH_MODES", "FetchLimits", "FetchOptions", "Fetcher"]

FETCH_MODES: Final = ("http+tftp", "tftp", "http")
DEFAULT_HTTP_PORT: Final = 6970

Address = tuple[str, int]


@attrs.frozen
class FetchLimits:
    """Per-file bounds, like a real phone's (our figures; docs/reference/phone.md).

    ``trust_list``: CTL and ITL downloads stop past 128 KiB (a phone loads at most 64 KB; a
    file between the two is fetched and then refused with the exact size). ``config``: the
    configuration file (``.cnf.xml``, ``.sgn``, ``.enc.sgn``) stops past 512 KiB (real ones
    are 5-50 KB). ``deadline``: each file, every transport tried included, must arrive within
    30 s, however the server paces it.
    """

    trust_list: int = 128 * 1024
    config: int = 512 * 1024
    deadline: float = 30.0

    def cap(self, kind: FileKind) -> int:
        return self.config if kind is FileKind.CONFIG else self.trust_list


def _mode(value: str) -> str:
    if value not in FETCH_MODES:
        raise ValueError(f"fetch mode {value!r} is not one of {', '.join(FETCH_MODES)}")
    return value


@attrs.frozen
class FetchOptions:
    """How files are fetched. ``http_ports`` maps a TFTP server's address to the port of the
    HTTP service beside it when that is not ``http_port`` (lab clusters bind free ports)."""

    mode: str = attrs.field(default="http+tftp", converter=_mode)
    http_port: int = DEFAULT_HTTP_PORT
    http_timeout: float = 5.0
    limits: FetchLimits = attrs.field(factory=FetchLimits)
    http_ports: Mapping[Address, int] = attrs.field(factory=dict, eq=False)

    def http_address(self, tftp: Address) -> Address:
        return tftp[0], self.http_ports.get(tftp, self.http_port)


class Fetcher:
    """Fetches files for one boot from the TFTP server ``tftp`` and the HTTP service beside it
    (``http``); ``tftp_options`` are ``tftp_get``'s keyword arguments (timeout, retries,
    blksize, bind)."""

    def __init__(
        self,
        tftp: Address,
        options: FetchOptions,
        tftp_options: Mapping[str, Any],
        clock: Callable[[], float],
        *,
        http: Address | None = None,
    ) -> None:
        self.tftp = tftp
        self.http = http or options.http_address(tftp)
        self.options = options
        self.tftp_options = dict(tftp_options)
        self.clock = clock

    async def fetch(self, action: FetchFile) -> FileFetched | FileMissing | FetchFailed:
        limits = self.options.limits
        name, cap = action.filename, limits.cap(action.kind)
        deadline = trio.current_time() + limits.deadline
        fallback = ""
        if self.options.mode != "tftp":
            got: FileFetched | FileMissing | FetchFailed | str | None = None
            if self.options.http_timeout < limits.deadline:
                # HTTP's own timeout ends first: no second cancel scope for the file's deadline
                got = await self._http(name, cap)
            else:
                with trio.move_on_at(deadline):
                    got = await self._http(name, cap)
            if got is None:  # the file's deadline ended the HTTP try
                return self._timeout(name)
            if not isinstance(got, str):
                return got
            fallback = got
        with trio.move_on_at(deadline):
            return await self._tftp(name, cap, fallback)
        return self._timeout(name)

    def _timeout(self, name: str) -> FetchFailed:
        detail = f"{name}: not complete within {self.options.limits.deadline:g}s"
        return FetchFailed(self.clock(), detail, failure="timeout")

    async def _http(self, name: str, cap: int) -> FileFetched | FileMissing | FetchFailed | str:
        """The file over HTTP, or (a str) why HTTP failed when TFTP may be tried next."""
        host, port = self.http
        try:
            data = await http_get(
                host,
                port,
                name,
                timeout=self.options.http_timeout,
                max_size=cap,
                bind=self.tftp_options.get("bind"),
            )
        except HttpTooLarge as exc:
            return FetchFailed(self.clock(), f"HTTP {host}:{port} {name}: {exc}", "too-large")
        except HttpError as exc:
            fallback = f"HTTP {host}:{port}: {exc}"
            if self.options.mode == "http":
                if isinstance(exc, HttpStatusError) and exc.status == 404:
                    return FileMissing(self.clock(), fallback)
                return FetchFailed(self.clock(), fallback)
            return fallback
        return FileFetched(data, self.clock(), server=host, transport="http")

    async def _tftp(
        self, name: str, cap: int, fallback: str
    ) -> FileFetched | FileMissing | FetchFailed:
        host, port = self.tftp
        then = f" (after {fallback})" if fallback else ""
        try:
            data = await tftp_get(host, port, name, max_size=cap, **self.tftp_options)
        except TftpProtocolError as exc:
            if exc.code == ErrorCode.DISK_FULL:  # our own cap: the file is larger
                return FetchFailed(self.clock(), f"TFTP {name}: {exc}", "too-large")
            return FetchFailed(self.clock(), f"TFTP {name}: {exc}{then}")
        except TftpRemoteError as exc:
            if exc.code == ErrorCode.FILE_NOT_FOUND:
                return FileMissing(self.clock(), f"{exc.message}{then}")
            return FetchFailed(self.clock(), f"{exc}{then}")
        except (TftpError, OSError) as exc:
            return FetchFailed(self.clock(), f"{type(exc).__name__}: {exc}{then}")
        return FileFetched(data, self.clock(), server=host, transport="tftp", fallback=fallback)
