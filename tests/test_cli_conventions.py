"""The CLI conventions, held over EVERY command of ``tvs`` and ``phone-emu`` (issue 12 items 10
and 12): walking the argparse trees, so a command added tomorrow is checked the day it lands.

- ``--version`` on both programs;
- every command that prints a result has ``--json`` (servers and signal senders excepted);
- start-up errors (a missing file, a file that is not what it should be, an unresolvable or
  busy listening address) end with exit code 2 (:class:`tvs.exitcodes.ExitCode`) and ONE line
  on stderr naming the file, option or address: no traceback.

A new command whose required options this test cannot fill fails with "add a sample value":
add one to ``SAMPLES`` (a valid value, so the error cases change one thing at a time).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

import phone_emu.cli
import tvs.cli
from tvs.cli.app import iter_commands

PROGRAMS: dict[str, Callable[[list[str]], int]] = {
    "tvs": tvs.cli.main,
    "phone-emu": phone_emu.cli.main,
}
PARSERS = {"tvs": tvs.cli.build_parser, "phone-emu": phone_emu.cli.build_parser}

# commands that print no result document: long-running servers and signal senders
NO_JSON = {
    ("tvs", "serve"),
    ("tvs", "tftp", "serve"),
    ("tvs", "http", "serve"),
    ("tvs", "capf", "serve"),
}


def _commands() -> Iterator[tuple[str, tuple[str, ...], argparse.ArgumentParser]]:
    for prog, build in PARSERS.items():
        for path, parser in iter_commands(build()):
            yield prog, path, parser


COMMANDS = list(_commands())
IDS = [" ".join((prog, *path)) for prog, path, _ in COMMANDS]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Commands run in-process configure structlog onto the captured stderr: undo it."""
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_version(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        PROGRAMS[prog](["--version"])
    assert done.value.code == 0
    assert "tvs-lab" in capsys.readouterr().out


def test_the_tree_is_walked() -> None:
    """The walk finds the commands of both programs, nested groups included."""
    names = set(IDS)
    assert {"tvs tlv verify", "tvs store list", "phone-emu scenarios run"} <= names
    assert len(names) == len(IDS) > 30


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_result_commands_have_json(
    prog: str, path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    if (prog, *path) in NO_JSON:
        pytest.skip("prints no result document")
    assert "--json" in _options(parser), f"{prog} {' '.join(path)} prints a result: add --json"


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_logging_options_come_from_the_one_helper(
    prog: str, path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    """``--log-level`` takes the same levels everywhere (``tvs.cli.common.add_logging_options``,
    which the command's ``setup_logging`` reads)."""
    from tvs.cli.common import LOG_LEVELS

    level = _options(parser).get("--log-level")
    if level is None:
        pytest.skip("no --log-level")
    assert tuple(level.choices or ()) == LOG_LEVELS, f"{prog} {' '.join(path)}: own --log-level"


# --- start-up errors -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    assert tvs.cli.main(["certs", "generate", "--out", str(out)]) == 0
    structlog.reset_defaults()
    return out


def _node(pki: Path) -> Path:
    return pki / "source" / "nodes" / "ucm105pub"


# valid values for required options, by option string (or positional dest); "{pki}", "{tmp}"
# and "{node}" are filled in. The error cases replace one kind of value at a time.
SAMPLES: dict[str, str] = {
    "--cert": "{node}/callmanager.pem",
    "--key": "{node}/callmanager.key",
    "--lsc": "{pki}/source/phones/SEPB000B4BA0AEE.pem",
    "--signer": "{node}/callmanager.pem",
    "--phone-cert": "{pki}/source/phones/SEPB000B4BA0AEE.pem",
    "--store": "{tmp}/store",
    "--root": "{tmp}",
    "--state": "{tmp}/state",
    "--out": "{tmp}/out",
    "--dir": "{tmp}/shared",
    "--cluster": "{pki}/source",
    "--config": "source",
    "--pki": "{pki}",
    "--trust": "Phone-SAST-trust",
    "--tftp": "127.0.0.1:9",
    "--tvs": "127.0.0.1:9",
    "--mac": "B000B4BA0AEE",
    "--device": "CP-8861-SEPB000B4BA0AEE",
    "--subject": "CN=x",
    "--issuer": "CN=y",
    "--serial": "01",
    "--phones": "1",
    "--pid": "999999999",
    "--pidfile": "{tmp}/none.pid",
    "file": "{node}/callmanager.pem",
    "files": "{node}/callmanager.pem",
    "dir": "{pki}",
    "server": "127.0.0.1:9",
    "input": "00",
    "match": "00000000",
    "names": "no-import",
    "rest": "{tmp}",
    "--db": "{tmp}/capf.sqlite3",
    "--capf": "127.0.0.1:9",
    "shards": "{tmp}/shard.json",
    "devices": "SEPB000B4BA0AEE",
    "device": "SEPB000B4BA0AEE",
}


# where a command needs another value than SAMPLES', or an optional option given (so that
# the other inputs are valid and each error case changes one thing)
BY_COMMAND: dict[tuple[str, ...], dict[str, str]] = {
    ("phone-emu", "boot"): {"--key": "{pki}/source/phones/SEPB000B4BA0AEE.key"},
    ("phone-emu", "fleet"): {"--pki": "{pki}", "--no-progress": ""},
    ("tvs", "cluster", "serve"): {"--pki": "{pki}", "--store": "{tmp}/cluster-store"},
    ("tvs", "cluster", "files"): {"--pki": "{pki}", "--store": "{tmp}/cluster-store"},
    ("phone-emu", "query"): {"--trust": "{node}/tvs.pem"},
    ("phone-emu", "capf"): {"--trust": "{pki}/source/capf.pem", "--device": "SEPB000B4BA0AEE"},
    ("tvs", "capf", "serve"): {"--cert": "{pki}/source/capf.pem", "--key": "{pki}/source/capf.key"},
}


def _value(key: str, pki: Path, tmp: Path, command: tuple[str, ...] = ()) -> str:
    special = BY_COMMAND.get(command, {})
    if key in special:
        return special[key].format(pki=pki, tmp=tmp, node=_node(pki))
    if key not in SAMPLES:
        pytest.fail(f"add a sample value for {key!r} to SAMPLES in {__file__}")
    return SAMPLES[key].format(pki=pki, tmp=tmp, node=_node(pki))


def _prepare(tmp: Path, pki: Path) -> None:
    """The directories SAMPLES name: the source cluster's trust store, a shared directory, a
    phone state."""
    from tvs.store import TrustStore

    if not (tmp / "store").exists():
        TrustStore.init_from_pki(tmp / "store", pki / "source")
    (tmp / "shared").mkdir(exist_ok=True)
    (tmp / "state").mkdir(exist_ok=True)


def _argv(
    parser: argparse.ArgumentParser,
    pki: Path,
    tmp: Path,
    override: Callable[[argparse.Action, str], str | None] = lambda a, v: None,
) -> list[str]:
    """The required options and positionals with sample values (``override`` may replace
    one); ``--log-level error`` when the command logs, so stderr holds only the error."""
    _prepare(tmp, pki)
    command = tuple(parser.prog.split())
    command = ("phone-emu" if command[0] == "phone-emu" else "tvs", *command[1:])
    extra = BY_COMMAND.get(command, {})
    # one option of each required mutually exclusive group (the first)
    chosen = {
        g._group_actions[0]
        for g in parser._mutually_exclusive_groups
        if g.required and g._group_actions
    }
    argv: list[str] = []
    positionals: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.option_strings:
            if action.dest == "log_level":
                argv += [action.option_strings[0], "error"]
            key = action.option_strings[0]
            if not (action.required or action in chosen or key in extra):
                continue
            if action.nargs == 0:  # a flag chosen from a required group
                argv.append(key)
                continue
        elif action.nargs in ("?", "*") and action.dest not in SAMPLES:
            continue
        else:
            key = action.dest
        value = _value(key, pki, tmp, command)
        changed = override(action, value)
        value = changed if changed is not None else value
        if action.option_strings:
            argv += [key, value]
        else:
            positionals.append(value)
    return [*argv, *positionals]


def _is_path(action: argparse.Action) -> bool:
    return action.type is Path


def _is_address(action: argparse.Action) -> bool:
    return getattr(action.type, "__name__", "") == "HOST:PORT"


def _check_one_line(
    prog: str, argv: list[str], capsys: pytest.CaptureFixture[str], what: str
) -> str | None:
    """Run; when it fails, it must be exit 2 and one line naming ``what``. Returns the line.

    A server that starts after all is stopped with SIGINT after a while (and returns 0)."""
    timer = threading.Timer(20.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code = PROGRAMS[prog](argv)
    finally:
        timer.cancel()
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err, f"{prog} {argv}: traceback\n{err}"
    if code == 0:
        return None
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{prog} {argv}: exit {code}, want 2 (input/environment error)\n{err}"
    assert len(lines) == 1, f"{prog} {argv}: {len(lines)} lines on stderr\n{err}"
    assert what in lines[0], f"{prog} {argv}: the error does not name {what!r}: {lines[0]}"
    assert ": error: " in lines[0], f"{prog} {argv}: want 'PROG COMMAND: error: ...': {lines[0]}"
    return lines[0]


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_missing_or_bad_input_file_is_one_line(
    prog: str,
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    pki: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each required file option in turn: missing, then garbage (a directory option given a
    regular file). The command fails with exit 2 and one line naming that file."""
    files = [
        a
        for a in parser._actions
        if _is_path(a) and (a.required or not a.option_strings) and a.dest not in ("out",)
    ]
    if not files:
        pytest.skip("no required file input")
    # options whose file or directory is created when missing: only the garbage case
    creates = {"--db", "--state", "--store"} if path != ("store", "import") else {"--state"}
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00this is not what you want\n")
    failures = 0
    for target in files:
        missing = tmp_path / "missing" / "nothing.pem"
        created = bool(set(target.option_strings) & creates)
        for bad in (garbage,) if created else (missing, garbage):

            def override(action: argparse.Action, value: str, target=target, bad=bad):
                return str(bad) if action is target else None

            argv = [*path, *_argv(parser, pki, tmp_path, override)]
            failures += _check_one_line(prog, argv, capsys, str(bad)) is not None
    assert failures, f"{prog} {' '.join(path)}: no bad input made it fail"


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_unresolvable_or_busy_address_is_one_line(
    prog: str,
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    pki: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A listening address (``--listen``) that does not resolve or is in use, and a server
    address that does not resolve: exit 2 and one line naming the address."""
    options = _options(parser)
    listen = options.get("--listen")
    clients = [a for a in parser._actions if _is_address(a) and a is not listen and a.required]
    if listen is None and not clients:
        pytest.skip("no address option")
    if listen is not None and not _is_address(listen):
        pytest.skip("--listen is an address without a port (tested with its command)")
    cases: list[tuple[argparse.Action, str]] = [
        (a, "no-such-host.invalid:9") for a in ([listen] if listen else []) + clients
    ]
    busy: socket.socket | None = None
    if listen is not None:
        udp = path[0] == "tftp"
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        if not udp:
            busy.listen()
        cases.append((listen, f"127.0.0.1:{busy.getsockname()[1]}"))
    try:
        for action, address in cases:

            def override(a: argparse.Action, v: str, action=action, address=address):
                return address if a is action else None

            argv = [*path, *_argv(parser, pki, tmp_path, override)]
            if action.option_strings and action.option_strings[0] not in argv:
                argv += [action.option_strings[0], address]
            line = _check_one_line(prog, argv, capsys, address.rsplit(":", 1)[0])
            assert line is not None, f"{prog} {argv}: succeeded with {address}"
    finally:
        if busy is not None:
            busy.close()


def test_first_error_of_nested_exception_groups() -> None:
    """``tvs.excgroup``: the one way to find the error inside what a nursery raises."""
    from tvs.excgroup import first_error, leaves

    busy = OSError(98, "Address already in use")
    group = BaseExceptionGroup(
        "outer", [ExceptionGroup("inner", [ValueError("x"), busy]), KeyboardInterrupt()]
    )
    assert first_error(group, (OSError,)) is busy
    assert isinstance(first_error(group), ValueError)
    assert first_error(group, (LookupError,)) is None
    assert [type(e) for e in leaves(group)] == [ValueError, OSError, KeyboardInterrupt]
    assert leaves(busy) == [busy]


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_an_unwritable_keylog_is_one_line(
    prog: str,
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    pki: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--keylog`` (an output file: TLS secrets) in a directory that does not exist is found
    before anything listens or connects."""
    if "--keylog" not in _options(parser) or path[0] == "trace":  # trace reads a key log
        pytest.skip("no --keylog output")
    keylog = tmp_path / "missing" / "keys.log"
    argv = [*path, *_argv(parser, pki, tmp_path), "--keylog", str(keylog)]
    if "--listen" in _options(parser) and _is_address(_options(parser)["--listen"]):
        argv += ["--listen", "127.0.0.1:0"]
    assert _check_one_line(prog, argv, capsys, str(keylog)) is not None


@pytest.mark.parametrize(("prog", "path", "parser"), COMMANDS, ids=IDS)
def test_a_busy_metrics_address_is_one_line(
    prog: str,
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    pki: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--metrics ADDR:PORT`` already in use names the metrics listener, not the server's."""
    if "--metrics" not in _options(parser):
        pytest.skip("no --metrics")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        argv = [*path, *_argv(parser, pki, tmp_path), "--metrics", address]
        if "--listen" in _options(parser) and _is_address(_options(parser)["--listen"]):
            argv += ["--listen", "127.0.0.1:0"]
        line = _check_one_line(prog, argv, capsys, address)
    assert line is not None and "metrics" in line


# --- JSON names ----------------------------------------------------------------------------------

_OLD_NAMES = {"role_codes", "not_valid_after", "certificate_sha256", "expiry", "fingerprint"}


def _check_names(doc: object, where: str) -> int:
    """The JSON conventions, everywhere in ``doc``: ``roles`` is a list of codes beside
    ``role_names``; a single ``role`` is a code beside ``role_name``; no old names."""
    checked = 0
    if isinstance(doc, dict):
        assert not (_OLD_NAMES & set(doc)), f"{where}: old names {_OLD_NAMES & set(doc)}"
        if isinstance(doc.get("roles"), list):
            assert all(isinstance(r, int) for r in doc["roles"]), f"{where}: roles {doc['roles']}"
            assert "role_names" in doc, f"{where}: roles without role_names"
            checked += 1
        if "role" in doc and doc["role"] is not None:
            assert isinstance(doc["role"], int) and "role_name" in doc, f"{where}: role {doc}"
            checked += 1
        for key, value in doc.items():
            checked += _check_names(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            checked += _check_names(value, f"{where}[{i}]")
    return checked


def test_json_names_follow_the_convention(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 12: the JSON of the commands that print roles, expiry and digests."""
    import json

    from tvs.wire import QueryCertResponse, Status, encode_message

    node = _node(pki)
    _prepare(tmp_path, pki)
    ctl = tmp_path / "CTLFile.tlv"
    build = ["tlv", "build", "--out", str(ctl), "--signer", str(node / "callmanager.pem")]
    build += ["--key", str(node / "callmanager.key"), "--record", f"SAST={node}/callmanager.pem"]
    assert tvs.cli.main([*build, "--record", f"TVS={node}/tvs.pem"]) == 0
    answer = encode_message(QueryCertResponse(status=Status.VALID, roles=(0, 3), ttl=60)).hex()
    runs = [
        ("tvs", ["store", "list", "--store", str(tmp_path / "store"), "--json"]),
        ("tvs", ["tlv", "show", str(ctl), "--json"]),
        ("tvs", ["tlv", "verify", str(ctl), "--trust-list", str(ctl), "--json"]),
        ("tvs", ["certs", "show", str(pki), "--json"]),
        ("tvs", ["decode", answer, "--json"]),
        ("phone-emu", ["show", "--state", str(tmp_path / "flash"), "--json"]),
    ]
    (tmp_path / "flash").mkdir()
    (tmp_path / "flash" / "ITLFile.tlv").write_bytes(ctl.read_bytes())  # a phone's held ITL
    checked = 0
    capsys.readouterr()
    for prog, argv in runs:
        assert PROGRAMS[prog](argv) == 0, argv
        doc = json.loads(capsys.readouterr().out)
        checked += _check_names(doc, " ".join((prog, *argv[:2])))
    assert checked >= 5  # roles lists and single roles were seen, not just absent
