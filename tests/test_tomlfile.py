"""tvs.tomlfile: every way a TOML file can be unreadable ends in the caller's error class with
the one message format, never in a bare OSError/ValueError (a NUL byte in a path found by the
lab-document fuzz test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvs.tomlfile import check_keys, expect_table, loads, read_text


class ReaderError(ValueError):
    pass


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.toml", None, "cannot read lab missing.toml: No such file or directory"),
        ("latin1.toml", b"name = '\xe9'\n", "not UTF-8 text"),
        ("nul\x00.toml", None, "not a usable file name"),
    ],
)
def test_unreadable_files_raise_the_callers_error(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReaderError, match=message.replace("lab ", "lab .*")):
        read_text(path, what="lab", error=ReaderError)


def test_parse_and_key_errors_have_one_format(tmp_path: Path) -> None:
    good = tmp_path / "ok.toml"
    good.write_text("a = 1\n[t]\nb = 2\n")
    doc = loads(read_text(good, what="lab", error=ReaderError), source="ok.toml", error=ReaderError)
    assert doc == {"a": 1, "t": {"b": 2}}
    with pytest.raises(ReaderError, match=r"^x.toml: not valid TOML: "):
        loads("a = ", source="x.toml", error=ReaderError)
    with pytest.raises(ReaderError, match=r"^x.toml: unknown key\(s\) 'c' \(allowed: a, t\)$"):
        check_keys({"a": 1, "c": 2}, {"a", "t"}, "x.toml", error=ReaderError)
    with pytest.raises(ReaderError, match=r"^x.toml: t: expected a table, not int$"):
        expect_table(3, "x.toml: t", error=ReaderError)
