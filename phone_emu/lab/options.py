"""What a migration run is asked to do, and the error when the lab cannot do it.

Owns :class:`RunOptions` (the ``phone-emu migrate`` / ``scenarios run`` flags as one value:
fleet size and speed, where the working directory and the PKI are, clusters started elsewhere,
worker processes, progress) and :class:`MigrationError`. Does not own the lab's own settings
(``config.LabConfig``) nor the run itself (``migrate``).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from .progress import RunProgress

__all__ = ["AUTO_WORKERS_FROM", "MigrationError", "RunOptions", "auto_workers"]

AUTO_WORKERS_FROM = 500
"""Fleets this large boot in one worker process per core by default (smaller ones in the
runner: a worker costs about a second to start)."""


def auto_workers(phones: int, cpus: int | None = None) -> int:
    """The default number of worker processes for ``phones`` phones: one per core from
    :data:`AUTO_WORKERS_FROM` phones on, else 1 (the runner's own process)."""
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(cores, phones)) if phones >= AUTO_WORKERS_FROM else 1


class MigrationError(RuntimeError):
    """The lab cannot run (PKI, clusters, a step that needs an in-process cluster)."""


@attrs.frozen
class RunOptions:
    phones: int | None = None  # None: the scenario's (or the lab's) count
    concurrency: int | None = None
    register: bool | None = None
    tftp_blksize: int | None = None  # RFC 2348 block size the phones ask for (None: plain 512)
    fetch_mode: str = "http+tftp"  # how phones download: http+tftp, tftp, http
    http_port: int = (
        6970  # HTTP port of a TFTP server the lab did not start (--source/--destination)
    )
    workdir: Path | None = None  # None: a temporary directory, removed unless keep
    keep: bool = False
    pki_dir: Path | None = None  # an existing lab PKI instead of generating one
    external: dict[str, tuple[str, int]] = attrs.field(factory=dict)  # role -> TFTP address
    shared_key: bool = False
    workers: int | None = 1  # processes booting phones (1: the runner's own; None: auto_workers)
    log_level: str = "error"  # of worker processes
    progress: RunProgress = attrs.field(factory=lambda: RunProgress(enabled=False))
