"""Phone pools in worker processes, so a migration uses every core.

Owns a tiny protocol over a worker's stdin/stdout, one JSON object per line: ``init`` (a
:class:`~phone_emu.lab.values.WorkerSettings`: issue the LSCs of the worker's slice of the fleet
from the CAPF in a lab PKI directory), ``boot`` (a :class:`~phone_emu.lab.values.BootRequest`;
the worker streams one :class:`~phone_emu.lab.values.BootEntry` per phone as each boot ends,
then ``{"done": true}``), ``corrupt-itl``, ``erase``; end of input ends the worker.
:class:`WorkerPool` is the parent's side, a :class:`~phone_emu.lab.values.Pool` like
:class:`~phone_emu.lab.pool.PhonePool`; the runner starts one per ``--workers``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import json
import math
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from phone_emu.phone.boot import BootOptions
from phone_emu.phone.driver import NetworkOptions
from phone_emu.phone.fetch import FetchOptions
from phone_emu.phone.trust import TrustListCache
from tvs.pki import MANUFACTURING_CA, LabPki, PkiError

from .fleet import make_identities, make_mic_identities, make_phones
from .pool import PhonePool
from .values import BootEntry, BootRequest, WorkerSettings

if TYPE_CHECKING:
    from phone_emu.phone.identity import PhoneIdentity

__all__ = ["GC_THRESHOLDS", "WorkerError", "WorkerPool", "freeze_long_lived", "main", "thaw"]

_MAX_LINE = 1 << 20
_WORKER = "import sys; from phone_emu.lab.workers import main; sys.exit(main(sys.argv[1:]))"


def _identities(s: WorkerSettings) -> list[PhoneIdentity]:
    """LSCs from the cluster's CAPF, or (``enroll``) MICs only; only that issuer is read from
    the lab PKI."""
    if s.enroll:
        try:
            mic_ca = LabPki.load_identity(s.pki_dir, MANUFACTURING_CA)
        except PkiError:
            raise WorkerError(
                f"{s.pki_dir}: the lab PKI has no manufacturing CA (regenerate it)"
            ) from None
        return make_mic_identities(mic_ca, s.macs, model=s.model, shared_key=s.shared_key)
    capf = LabPki.load_identity(s.pki_dir, f"{s.cluster}/capf")
    return make_identities(capf, s.macs, model=s.model, shared_key=s.shared_key)


GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds while a fleet boots: a young collection every 50,000 allocations
instead of 700 (a boot allocates thousands of short-lived objects: with the default, one
process ran over a thousand collections per 3,000 phones, a few % of its CPU)."""


def freeze_long_lived() -> tuple[int, int, int] | None:
    """Take what lives for the whole run (modules, the PKI, the fleet's identities and phones,
    the clusters) out of the cyclic collector's sight, so later collections, full ones
    included, walk only what the boots allocate; and collect less often
    (:data:`GC_THRESHOLDS`). Does nothing (None) when something is frozen already (a caller's
    own :func:`gc.freeze`); else the thresholds before, for :func:`thaw`."""
    if gc.get_freeze_count():
        return None
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return before


def thaw(before: tuple[int, int, int] | None) -> None:
    """Undo :func:`freeze_long_lived` (``before``: what it returned): a process running many
    scenarios (the tests) frees each run's objects."""
    if before is not None:
        gc.unfreeze()
        gc.set_threshold(*before)


class WorkerError(RuntimeError):
    """A worker process failed or broke the protocol."""


class _Lines:
    """Newline-separated JSON objects from a byte stream (bounded lines)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def next(self) -> dict[str, Any] | None:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return json.loads(line)  # type: ignore[no-any-return]
            if len(self._buf) > _MAX_LINE:
                raise WorkerError("line too long")
            data = await self._stream.receive_some(65536)
            if not data:
                return None
            self._buf += data


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


# --- the parent's side ---------------------------------------------------------------------------


class WorkerPool:
    """A slice of the fleet in a child process running :func:`main`."""

    def __init__(self, proc: trio.Process, indices: Sequence[int]) -> None:
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin = proc.stdin
        self._lines = _Lines(proc.stdout)
        self.indices = list(indices)
        self.peak_rss_mb = 0.0
        """The worker's peak resident memory, as of its last boot step."""

    @classmethod
    async def spawn(cls, *, log_level: str = "error") -> WorkerPool:
        """A new worker process, not yet given its phones (:meth:`init`): starting Python and
        its imports takes a while, which can overlap the runner's own set-up."""
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", _WORKER, "--log-level", log_level],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return cls(proc, ())

    async def init(self, settings: WorkerSettings) -> None:
        """Give the worker its slice of the fleet (it issues their LSCs, then answers)."""
        self.indices = list(settings.indices)
        await self._send({"op": "init", **settings.to_json()})
        await self._reply()

    @classmethod
    async def start(cls, settings: WorkerSettings, *, log_level: str = "error") -> WorkerPool:
        """:meth:`spawn` then :meth:`init`."""
        pool = await cls.spawn(log_level=log_level)
        try:
            await pool.init(settings)
        except BaseException:
            await pool.aclose()
            raise
        return pool

    async def _send(self, obj: Any) -> None:
        try:
            await self._stdin.send_all(_line(obj))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise WorkerError(f"worker {self._proc.pid} is gone: {exc}") from None

    async def _reply(self) -> dict[str, Any]:
        msg = await self._lines.next()
        if msg is None:
            code = await self._proc.wait()
            raise WorkerError(f"worker {self._proc.pid} exited (status {code})")
        if "error" in msg:
            raise WorkerError(f"worker {self._proc.pid}: {msg['error']}")
        return msg

    async def boot(
        self, request: BootRequest, on_entry: Callable[[BootEntry], None] | None = None
    ) -> list[BootEntry]:
        await self._send({"op": "boot", **request.to_json()})
        got: dict[int, BootEntry] = {}
        while True:
            msg = await self._reply()
            if msg.get("done"):
                self.peak_rss_mb = float(msg.get("peak_rss_mb", 0.0))
                break
            entry = BootEntry.from_json(msg)
            got[entry.index] = entry
            if on_entry is not None:
                on_entry(entry)
        return [got[i] for i in self.indices]

    async def corrupt_itl(self, indices: Sequence[int], itl: bytes | None) -> list[str]:
        await self._send(
            {
                "op": "corrupt-itl",
                "indices": list(indices),
                "itl": base64.b64encode(itl).decode() if itl is not None else None,
            }
        )
        return list((await self._reply())["names"])

    async def erase(
        self, indices: Sequence[int] | None, *, ctl: bool, itl: bool, everything: bool
    ) -> list[str]:
        await self._send(
            {
                "op": "erase",
                "indices": None if indices is None else list(indices),
                "ctl": ctl,
                "itl": itl,
                "everything": everything,
            }
        )
        return list((await self._reply())["names"])

    async def aclose(self) -> None:
        """End of input ends the worker; kill it if it has not exited within 10 s."""
        with trio.CancelScope(shield=True):
            await self._stdin.aclose()
            with trio.move_on_after(10):
                await self._proc.wait()
            if self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()
            assert self._proc.stdout is not None
            await self._proc.stdout.aclose()


# --- the worker ----------------------------------------------------------------------------------


async def _serve(read: trio.abc.ReceiveStream, write: trio.abc.SendStream) -> None:
    lines = _Lines(read)
    pool: PhonePool | None = None
    while (msg := await lines.next()) is not None:
        op = msg.get("op")
        if op == "init":
            s = WorkerSettings.from_json(msg)
            ids = _identities(s)
            network = NetworkOptions(
                boot=BootOptions(register=s.register),
                lists=TrustListCache(max_entries=64),
                tftp_blksize=s.tftp_blksize,
                fetch=FetchOptions(
                    mode=s.fetch_mode,
                    http_port=s.http_port,
                    http_ports={(h, p): hp for h, p, hp in s.http_ports},
                ),
            )
            pool = PhonePool(
                make_phones(ids), s.indices, concurrency=s.concurrency, network=network
            )
            freeze_long_lived()
            await write.send_all(_line({"ok": True}))
        elif op == "boot" and pool is not None:
            send, recv = trio.open_memory_channel[BootEntry](math.inf)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stream_entries, recv, write)
                async with send:
                    await pool.boot(BootRequest.from_json(msg), send.send_nowait)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            await write.send_all(_line({"done": True, "peak_rss_mb": round(rss, 1)}))
        elif op == "corrupt-itl" and pool is not None:
            itl = base64.b64decode(msg["itl"]) if msg["itl"] is not None else None
            names = await pool.corrupt_itl(msg["indices"], itl)
            await write.send_all(_line({"names": names}))
        elif op == "erase" and pool is not None:
            names = await pool.erase(
                msg["indices"], ctl=msg["ctl"], itl=msg["itl"], everything=msg["everything"]
            )
            await write.send_all(_line({"names": names}))
        else:
            await write.send_all(_line({"error": f"unexpected {op!r}"}))


async def _stream_entries(
    recv: trio.MemoryReceiveChannel[BootEntry], write: trio.abc.SendStream
) -> None:
    """Write entries as they come, batching whatever is already queued."""
    async with recv:
        async for first in recv:
            batch = [_line(first.to_json())]
            while True:
                try:
                    batch.append(_line(recv.receive_nowait().to_json()))
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await write.send_all(b"".join(batch))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phone_emu.lab.workers")
    parser.add_argument("--log-level", default="error")
    args = parser.parse_args(argv)
    from tvs.server.logsetup import configure_logging

    configure_logging("console", args.log_level, stream=sys.stderr)
    read = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    write = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))

    async def run() -> int:
        async with read, write:
            try:
                await _serve(read, write)
            except Exception as exc:  # report it to the parent, then fail
                reason = f"{type(exc).__name__}: {exc}"
                print(f"phone-emu worker: {reason}", file=sys.stderr)
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await write.send_all(_line({"error": reason}))
                return 1
        return 0

    return trio.run(run)


if __name__ == "__main__":
    sys.exit(main())
