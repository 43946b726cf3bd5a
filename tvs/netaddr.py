"""``HOST:PORT`` strings, parsed one way for every command and option.

Accepts ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` (host 127.0.0.1), a bare ``HOST`` or bare IPv6
address when a default port is given. Knows nothing of sockets.
"""

from __future__ import annotations

__all__ = ["LOOPBACK", "parse_hostport"]

LOOPBACK = "127.0.0.1"


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``(host, port)`` from ``text``; ValueError naming the fault when it is not an address."""
    t = text.strip()
    if t.startswith("["):
        host, close, rest = t[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
        port = rest[1:]
    elif t.count(":") == 1:
        host, _, port = t.partition(":")
    else:  # a bare host, or a bare IPv6 address
        host, port = t, ""
    if not port:
        if default_port is None:
            raise ValueError(f"{text!r}: expected HOST:PORT")
        return host or LOOPBACK, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: bad port {port!r}")
    return host or LOOPBACK, int(port)
