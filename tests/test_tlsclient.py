"""tvs.tlsclient: the one connect-handshake-pin of every TLS client (``open_tls``), its
failures, and the shared client contexts (``client_tls``) with a per-connection identity."""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import pytest
import trio

from tvs.certs import Certificate
from tvs.pki import LabPki
from tvs.server import TvsServer, TvsServerConfig
from tvs.store import TrustStore
from tvs.tlsclient import (
    CLIENT_GROUPS,
    ClientIdentity,
    ClientTls,
    ConnectFailed,
    ConnectTimeout,
    HandshakeFailed,
    client_tls,
    open_tls,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connect_refused() -> None:
    with pytest.raises(ConnectFailed, match=r"connect to 127\.0\.0\.1:"):
        await open_tls(
            "127.0.0.1", _closed_port(), client_tls(), pinned=None,
            connect_timeout=5, handshake_timeout=5,
        )  # fmt: skip


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as n:
        serve = functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1")
        (listener,) = await n.start(serve)
        port = listener.socket.getsockname()[1]
        with pytest.raises(ConnectTimeout, match="handshake"):
            await open_tls(
                "127.0.0.1", port, client_tls(), pinned=None,
                connect_timeout=5, handshake_timeout=0.2,
            )  # fmt: skip
        n.cancel_scope.cancel()


@pytest.mark.parametrize("in_handshake", [False, True], ids=["after", "in-handshake"])
async def test_pinning(
    tmp_path: Path, lab_pki_dir: Path, lab_pki: LabPki, in_handshake: bool
) -> None:
    """The server certificate must be one of the pins: compared after the handshake, or, with
    the pins in the context (the phone's ITL rule), already in it, the error then naming the
    verify failure; the right pin passes."""
    store = TrustStore.init_from_pki(tmp_path / "store", lab_pki_dir / "source")
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs
    other = lab_pki.clusters["destination"].nodes["ucm11pub"].tvs.cert
    server = TvsServer(
        TvsServerConfig(store=store.root, cert=tvs.cert_path, key=tvs.key_path, port=0)
    )

    def context(pins: list[Certificate]) -> ClientTls:
        return client_tls(pinned=pins) if in_handshake else client_tls()

    async with trio.open_nursery() as n:
        host, port = await n.start(server.serve)
        ok = await open_tls(
            host, port, context([tvs.cert]), pinned=[tvs.cert], connect_timeout=5,
            handshake_timeout=5,
        )  # fmt: skip
        assert ok.server_certificate == tvs.cert and ok.version
        # the classic groups, as the ssl module's client and phones offer: no PQ hybrid
        assert ok.stream.conn.get_group_name() == CLIENT_GROUPS.split(b":")[0].decode().lower()
        ok.stream.close()
        with pytest.raises(HandshakeFailed) as info:
            await open_tls(
                host, port, context([other]), pinned=[other], connect_timeout=5,
                handshake_timeout=5, not_pinned="TVS not in the ITL",
            )  # fmt: skip
        server.request_shutdown()
    assert info.value.not_pinned
    if in_handshake:
        assert str(info.value).startswith("TVS not in the ITL (")
    else:
        assert f"TVS not in the ITL: {tvs.cert.subject}" in str(info.value)


def test_contexts_are_shared_per_settings(lab_pki: LabPki) -> None:
    tvs = lab_pki.clusters["source"].nodes["ucm105pub"].tvs.cert
    a = client_tls(pinned=[tvs])
    assert client_tls(pinned=[tvs, tvs]) is a  # the same pins, once each
    assert client_tls(pinned=[tvs], tls_max="1.2") is not a
    assert client_tls() is not a
    with pytest.raises(ValueError, match="TLS version"):
        client_tls(tls_max="2.0")


def test_identity_converted_once_and_checked(lab_pki: LabPki) -> None:
    src = lab_pki.clusters["source"]
    capf = src.capf
    tvs = next(iter(src.nodes.values())).tvs
    first = ClientIdentity.of(capf.cert, capf.key)
    assert ClientIdentity.of(capf.cert, capf.key) is first
    with pytest.raises(ValueError, match="do not match"):
        ClientIdentity.of(capf.cert, tvs.key)
