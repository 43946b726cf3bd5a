"""Test helpers for the CTL/ITL/.sgn codec: certificates made with ``cryptography`` at test
time, an independent header writer that puts elements in any order, and Hypothesis strategies.

The writer here is deliberately separate from :mod:`tvs.tlv.build` so that parse tests do not
only check the codec against itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from tvs.certs import Certificate, PrivateKey

_NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def make_key(kind: str = "rsa", bits: int = 2048) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return ec.generate_private_key(ec.SECP256R1() if kind == "ec" else ec.SECP384R1())


def _name(cn: str, ou: str = "IST") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "QLD"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stormin"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_cert(
    cn: str,
    key: PrivateKey,
    *,
    issuer: tuple[Certificate, PrivateKey] | None = None,
    serial: int | None = None,
) -> Certificate:
    """A certificate for ``key``; self-signed unless ``issuer`` (cert, key) is given."""
    subject = _name(cn)
    issuer_name = subject if issuer is None else issuer[0].x509.subject
    signing_key = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    return Certificate.from_x509(builder.sign(signing_key, hashes.SHA256()))


# --- an independent writer ------------------------------------------------------------------
def el(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + len(value).to_bytes(2, "big") + value


def assemble_header(
    top: Sequence[tuple[int, bytes]],
    *,
    order: Sequence[int],
    sig_len: int,
    sign: Callable[[bytes], bytes],
    body: bytes,
    padding_at: int | None = None,
) -> bytes:
    """A signed header whose top-level elements appear in ``order``.

    ``top`` lists (tag, value) for every element but the header length (tag 2) and the
    signature (tag 12); ``order`` is a permutation of ``range(len(top) + 2)`` where index
    ``len(top)`` stands for the header length and ``len(top) + 1`` for the signature.
    Padding bytes (tag 13) go before the element at position ``padding_at`` (default: last).
    """
    n = len(top)
    fixed = sum(3 + len(v) for _, v in top) + 5 + 3 + sig_len
    pad = b"\x0d" * (-fixed % 4)
    header_length = fixed + len(pad)
    pieces: list[bytes] = []
    sig_index = None
    for pos, i in enumerate(order):
        if padding_at is not None and pos == padding_at:
            pieces.append(pad)
        if i < n:
            pieces.append(el(*top[i]))
        elif i == n:
            pieces.append(el(2, header_length.to_bytes(2, "big")))
        else:
            sig_index = len(pieces)
            pieces.append(b"")
    if padding_at is None or padding_at >= len(order):
        pieces.append(pad)
    assert sig_index is not None
    signature = sign(b"".join(pieces) + body)
    assert len(signature) == sig_len
    pieces[sig_index] = el(12, signature)
    return b"".join(pieces) + body


def shuffled(values: Sequence[bytes], perm: Sequence[int]) -> bytes:
    return b"".join(values[i] for i in perm)


# --- strategies -----------------------------------------------------------------------------
def tlv_like_bytes() -> st.SearchStrategy[bytes]:
    """Bytes that often look like a header: a version element, a header length, then noise."""
    start = st.sampled_from([b"", b"\x01\x00\x02\x01\x02", b"\x01\x00\x02\x01\x00"])
    length = st.integers(0, 400).map(lambda n: b"\x02\x00\x02" + n.to_bytes(2, "big"))
    return st.tuples(start, st.one_of(st.just(b""), length), st.binary(max_size=400)).map(
        lambda t: b"".join(t)
    )
