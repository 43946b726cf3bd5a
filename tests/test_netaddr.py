"""HOST:PORT parsing shared by every command (tvs.netaddr, tvs.cli.app.hostport)."""

from __future__ import annotations

import argparse

import pytest

from tvs.cli.app import hostport
from tvs.netaddr import parse_hostport


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("127.0.0.1:69", None, ("127.0.0.1", 69)),
        ("[::1]:6969", None, ("::1", 6969)),
        (":9445", None, ("127.0.0.1", 9445)),
        (":0", None, ("127.0.0.1", 0)),
        ("localhost", 69, ("localhost", 69)),
        ("::1", 2445, ("::1", 2445)),
        ("[::1]", 2445, ("::1", 2445)),
        (" 127.0.1.1:2445 ", None, ("127.0.1.1", 2445)),
    ],
)
def test_accepted(text: str, default: int | None, expected: tuple[str, int]) -> None:
    assert parse_hostport(text, default) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [("localhost", "HOST:PORT"), ("host:", "HOST:PORT"), ("h:99999", "bad port"),
     ("h:x", "bad port"), ("[::1", r"\[ADDRESS\]:PORT"), ("[::1]x", r"\[ADDRESS\]:PORT")],
)
def test_refused(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_hostport(text)


def test_argparse_type_reports_the_fault() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tvs", type=hostport(2445))
    assert parser.parse_args(["--tvs", "127.0.1.1"]).tvs == ("127.0.1.1", 2445)
    with pytest.raises(argparse.ArgumentTypeError, match="bad port"):
        hostport()("h:x")
