"""The phone's downloads: HTTP 6970 first and TFTP per file when HTTP fails, the transport
recorded per file, the per-file deadline (a TFTP server that drips blocks) and the per-kind
size caps (a 100 MB file), as ``ctl.timeout`` / ``ctl.too-large``."""

from __future__ import annotations

import os
import socket
import struct

import pytest
import trio

from phone_emu.lab.config import LabConfig
from phone_emu.lab.migrate import RunOptions, run_scenario
from phone_emu.lab.scenarios import builtin_scenarios
from phone_emu.phone import BootState, Outcome, Phone, PhoneIdentity
from phone_emu.phone.driver import NetworkOptions, boot_phone
from phone_emu.phone.fetch import Fetcher, FetchLimits, FetchOptions
from phone_emu.phone.trust import FileKind
from phone_emu.phone.values import FetchFailed, FetchFile, FileFetched, FileMissing
from tvs.http import HttpServer
from tvs.tftp import CallableProvider, TftpServer
from tvs.tftp.protocol import Ack, Data, ReadRequest, decode_packet

MAC = "B000B4BA0AEE"
CTL = f"CTLSEP{MAC}.tlv"
TFTP_OPTIONS = {"timeout": 0.5, "retries": 2, "blksize": None, "bind": None}


class Files:
    """Two servers over two file sets: what HTTP serves and what TFTP serves."""

    def __init__(self, http: dict[str, bytes], tftp: dict[str, bytes]) -> None:
        self.http_files, self.tftp_files = http, tftp
        self.http = HttpServer(CallableProvider(lambda n, c: self.http_files.get(n)))
        self.tftp = TftpServer(CallableProvider(lambda n, c: self.tftp_files.get(n)))

    async def start(self, nursery: trio.Nursery) -> tuple[tuple[str, int], tuple[str, int]]:
        tftp = await nursery.start(self.tftp.serve, "127.0.0.1", 0)
        http = await nursery.start(self.http.serve, "127.0.0.1", 0)
        return tftp, http


def _fetcher(tftp, http, **options) -> Fetcher:
    return Fetcher(tftp, FetchOptions(**options), TFTP_OPTIONS, trio.current_time, http=http)


def _closed_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: refused
    return s, s.getsockname()[1]


async def test_http_first(nursery: trio.Nursery) -> None:
    files = Files({CTL: b"via http"}, {CTL: b"via tftp"})
    tftp, http = await files.start(nursery)
    got = await _fetcher(tftp, http).fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(got, FileFetched)
    assert (got.data, got.transport, got.fallback) == (b"via http", "http", "")
    assert files.tftp.statistics().transfers_started == 0


async def test_http_404_falls_back_to_tftp_for_that_file(nursery: trio.Nursery) -> None:
    files = Files({"ITLFile.tlv": b"itl"}, {CTL: b"ctl over tftp"})
    tftp, http = await files.start(nursery)
    fetcher = _fetcher(tftp, http)
    ctl = await fetcher.fetch(FetchFile(CTL, FileKind.CTL))
    itl = await fetcher.fetch(FetchFile("ITLFile.tlv", FileKind.ITL))
    assert isinstance(ctl, FileFetched) and ctl.transport == "tftp" and "404" in ctl.fallback
    assert isinstance(itl, FileFetched) and itl.transport == "http"  # the next file: HTTP again


async def test_http_refused_503_or_silent_falls_back(nursery: trio.Nursery) -> None:
    files = Files({}, {CTL: b"ctl"})
    tftp, _ = await files.start(nursery)
    closed, port = _closed_port()
    with closed:
        refused = await _fetcher(tftp, ("127.0.0.1", port)).fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(refused, FileFetched) and refused.transport == "tftp"

    async def answer(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        if stream.socket.getsockname()[1] == busy_port:
            await stream.send_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-length: 0\r\n\r\n")
        await trio.sleep_forever()  # the silent one never answers

    listeners = await nursery.start(trio.serve_tcp, answer, 0)
    busy_port = listeners[0].socket.getsockname()[1]
    busy = await _fetcher(tftp, ("127.0.0.1", busy_port)).fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(busy, FileFetched) and busy.transport == "tftp" and "503" in busy.fallback
    silent = await nursery.start(trio.serve_tcp, answer, 0)
    silent_port = silent[0].socket.getsockname()[1]
    fetcher = _fetcher(tftp, ("127.0.0.1", silent_port), http_timeout=0.3)
    slow = await fetcher.fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(slow, FileFetched) and slow.transport == "tftp"
    assert "within" in slow.fallback


async def test_modes_tftp_and_http(nursery: trio.Nursery) -> None:
    files = Files({CTL: b"http"}, {CTL: b"tftp", "ITLFile.tlv": b"only tftp"})
    tftp, http = await files.start(nursery)
    only_tftp = await _fetcher(tftp, http, mode="tftp").fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(only_tftp, FileFetched) and only_tftp.transport == "tftp"
    assert files.http.statistics().requests == 0
    only_http = _fetcher(tftp, http, mode="http")
    missing = await only_http.fetch(FetchFile("ITLFile.tlv", FileKind.ITL))
    assert isinstance(missing, FileMissing)
    closed, port = _closed_port()
    with closed:
        failed = await _fetcher(tftp, ("127.0.0.1", port), mode="http").fetch(
            FetchFile(CTL, FileKind.CTL)
        )
    assert isinstance(failed, FetchFailed) and failed.failure == "fetch-failed"
    with pytest.raises(ValueError, match="fetch mode"):
        FetchOptions(mode="ftp")


@pytest.mark.parametrize("mode", ["http+tftp", "tftp"])
async def test_100_mb_file_is_too_large(nursery: trio.Nursery, mode: str) -> None:
    huge = bytes(100 * 1024 * 1024)
    files = Files({CTL: huge}, {CTL: huge})
    tftp, http = await files.start(nursery)
    got = await _fetcher(tftp, http, mode=mode).fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(got, FetchFailed) and got.failure == "too-large", got
    assert str(FetchLimits().trust_list) in got.detail


async def _dripping_tftp(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
    """A TFTP server that answers every request with an endless file, one 512-byte block
    every 0.2 s (well inside the client's retransmission timeout): it never finishes."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    task_status.started(sock.getsockname())
    with sock:
        data, client = await sock.recvfrom(1024)
        assert isinstance(decode_packet(data), ReadRequest)
        block = 1
        while True:
            await sock.sendto(Data(block & 0xFFFF, b"x" * 512).to_bytes(), client)
            with trio.move_on_after(2):
                while True:
                    ack = decode_packet((await sock.recvfrom(1024))[0])
                    if isinstance(ack, Ack) and ack.block == block & 0xFFFF:
                        break
            await trio.sleep(0.2)
            block += 1


async def test_dripping_server_ends_in_the_deadline(nursery: trio.Nursery) -> None:
    tftp = await nursery.start(_dripping_tftp)
    closed, port = _closed_port()
    with closed:
        fetcher = _fetcher(tftp, ("127.0.0.1", port), limits=FetchLimits(deadline=1.5))
        got = await fetcher.fetch(FetchFile(CTL, FileKind.CTL))
    assert isinstance(got, FetchFailed) and got.failure == "timeout"


# --- through the boot machine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    return PhoneIdentity.from_lsc(phone.cert, phone.key)


async def test_boot_reasons_ctl_timeout_and_too_large(identity, nursery: trio.Nursery) -> None:
    tftp = await nursery.start(_dripping_tftp)
    opts = NetworkOptions(
        tftp_timeout=0.5, fetch=FetchOptions(mode="tftp", limits=FetchLimits(deadline=1.0))
    )
    result = await boot_phone(Phone(identity), tftp=tftp, options=opts)
    assert result.state is BootState.ERROR
    assert result.step("ctl").reason == "ctl.timeout"
    assert result.step("ctl").outcome is Outcome.ERROR

    files = Files({CTL: os.urandom(200 * 1024)}, {})
    tftp2, http = await files.start(nursery)
    opts = NetworkOptions(fetch=FetchOptions(http_ports={tftp2: http[1]}))
    result = await boot_phone(Phone(identity), tftp=tftp2, options=opts)
    ctl = result.step("ctl")
    assert (ctl.reason, ctl.outcome) == ("ctl.too-large", Outcome.REJECTED)
    assert "131072" in ctl.detail


async def test_boot_records_the_transport_of_each_file(
    identity, nursery: trio.Nursery, lab_pki, lab_pki_dir, tmp_path
) -> None:
    from phone_support import start_lab

    lab = await start_lab(nursery, lab_pki, lab_pki_dir, tmp_path)
    # the test lab serves TFTP only: HTTP is refused and every file comes over TFTP
    closed, port = _closed_port()
    with closed:
        opts = NetworkOptions(tftp_timeout=0.5, fetch=FetchOptions(http_ports={lab.tftp: port}))
        result = await boot_phone(Phone(identity), tftp=lab.tftp, options=opts)
    steps = result.to_dict()["steps"]
    fetched = [f for s in steps for f in s.get("fetched", [])]
    assert fetched and {f["transport"] for f in fetched} == {"tftp"}
    assert all("refused" in f["fallback"].lower() for f in fetched)


# --- the scenario ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_http_down_scenario_phones_migrate_over_tftp(lab_pki_dir, tmp_path) -> None:
    scenario = {s.name: s for s in builtin_scenarios()}["http-down"]
    report = await run_scenario(
        LabConfig.default(), scenario, RunOptions(phones=2, workdir=tmp_path, pki_dir=lab_pki_dir)
    )
    assert report["passed"] is True
    assert report["lab"]["destination"]["http"] is None
    for phone in report["phones"]:  # the last boot: on the destination, HTTP stopped
        assert phone["outcome"] == "migrated"
        assert set(phone["transports"].values()) == {"tftp"}


@pytest.mark.slow
async def test_bulk_migration_fetches_over_http(lab_pki_dir, tmp_path) -> None:
    scenario = {s.name: s for s in builtin_scenarios()}["bulk"]
    report = await run_scenario(
        LabConfig.default(), scenario, RunOptions(phones=2, workdir=tmp_path, pki_dir=lab_pki_dir)
    )
    assert report["passed"] is True
    for phone in report["phones"]:
        assert set(phone["transports"].values()) == {"http"}


def test_fetch_limits_are_per_kind() -> None:
    limits = FetchLimits()
    assert limits.cap(FileKind.CTL) == limits.cap(FileKind.ITL) == 128 * 1024
    assert limits.cap(FileKind.CONFIG) == 512 * 1024
    assert struct.calcsize("!HH") == 4  # the DATA header the dripping server writes


def test_report_item_transports_round_trip() -> None:
    from phone_emu.lab.values import BootEntry

    item = {
        "index": 0, "device": f"CP-8861-SEP{MAC}", "mac": MAC, "outcome": "migrated",
        "step": None, "reason": None, "cluster": "destination", "boot_step": 4,
        "state": "registered", "elapsed": 0.4, "finished_at": 1.0, "tvs_queries": 1,
        "status": [], "steps": {"ctl": "ctl.updated"}, "timings": {"ctl": 0.1},
        "transports": {"ctl": "tftp"},
    }  # fmt: skip
    assert BootEntry.from_json(item).to_json() == item
