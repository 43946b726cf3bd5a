"""Reading TOML configuration files: one way to read, parse and check keys, one error format.

Every TOML reader (the cluster configuration, the PKI recipe, the lab configuration, the
scenarios) reads and parses through :func:`read_text` and :func:`loads` and checks each table
with :func:`check_keys`, raising its own layer's error class with these messages:

- ``cannot read <what> <path>: <reason>``
- ``<source>: not valid TOML: <parser message>``
- ``<where>: unknown key(s) 'a', 'b' (allowed: x, y, z)``
- ``<where>: expected a table, not <type>``

Owns no schema: what a key means stays with its reader. Pure apart from reading one file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_keys", "expect_table", "loads", "read_text"]


def read_text(path: str | Path, *, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``; ``error("cannot read <what> <path>: <reason>")`` if not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL byte in the path (the OS refuses it before any I/O)
        if isinstance(exc, UnicodeDecodeError):
            raise error(f"cannot read {what} {path}: not UTF-8 text") from None
        raise error(f"cannot read {what} {path!r}: not a usable file name ({exc})") from None
    except UnicodeDecodeError:
        raise error(f"cannot read {what} {path}: not UTF-8 text") from None


def loads(text: str, *, source: str, error: type[Exception]) -> dict[str, Any]:
    """Parse TOML ``text``; ``error("<source>: not valid TOML: ...")`` if it is not."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None


def expect_table(value: object, where: str, *, error: type[Exception]) -> Mapping[str, Any]:
    """``value`` when it is a TOML table, else ``error("<where>: expected a table, ...")``."""
    if not isinstance(value, Mapping):
        raise error(f"{where}: expected a table, not {type(value).__name__}")
    return value


def check_keys(
    table: Mapping[str, Any],
    allowed: Iterable[str],
    where: str,
    *,
    error: type[Exception],
    what: str = "key",
) -> None:
    """Raise ``error("<where>: unknown <what>(s) 'a', 'b' (allowed: ...)")`` for keys of
    ``table`` outside ``allowed``; ``what`` is ``"table"`` for a file's top level."""
    allowed = set(allowed)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise error(
            f"{where}: unknown {what}(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
