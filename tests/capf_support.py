"""Helpers for CAPF tests: the vectors' CAPF identity, a manufacturing CA, a memory Pair."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tvs.capf import Message, decode_message
from tvs.capf.authority import CapfAuthority
from tvs.capf.client import ClientSession, generate_key
from tvs.capf.db import CapfDb
from tvs.capf.session import KeySpec, ServerSession
from tvs.certs import Certificate, load_private_key
from tvs.pki.issue import Identity, issue_mic, make_manufacturing_ca

VECTORS = Path(__file__).parent / "vectors" / "capf"


def vector_identity(name: str) -> Identity:
    data = (VECTORS / name).read_bytes()
    return Identity(cert=Certificate.from_pem(data), key=load_private_key(data))


def capf_identity() -> Identity:
    """The CAPF certificate and key capfd used for the vectors (a throw-away CA)."""
    return vector_identity("capf-issuer.pem")


def manufacturing_ca() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(cert=make_manufacturing_ca(key), key=key)


def mic_for(ca: Identity, mac: str) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(cert=issue_mic(ca, key, mac=mac), key=key)


def make_authority(
    db_path: Path, capf: Identity, mics: tuple[Certificate, ...] = ()
) -> CapfAuthority:
    return CapfAuthority(CapfDb(db_path), capf, mic_issuers=mics)


def run_pair(
    server: ServerSession,
    client: ClientSession,
    *,
    keygen: Callable[[KeySpec], Any] = generate_key,
) -> list[tuple[str, Message]]:
    """Run both machines in memory, every message through bytes; returns the transcript."""
    log: list[tuple[str, Message]] = []
    to_client = list(server.start())
    to_server: list[Message] = []
    for _ in range(50):
        for msg in to_client:
            got = decode_message(msg.encode())
            log.append(("S>C", got))
            to_server += client.receive(got)
            if client.key_request is not None:
                to_server += client.provide_key(keygen(client.key_request))
        to_client = []
        for msg in to_server:
            got = decode_message(msg.encode())
            log.append(("C>S", got))
            to_client += server.receive(got)
        to_server = []
        if server.done and not to_client:
            return log
    raise AssertionError("the pair did not finish")


NOW = dt.datetime.now(dt.UTC)
