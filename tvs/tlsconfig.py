"""TLS settings shared by every side, and ``ssl``-module client contexts (the tests' and
benchmarks' independent client).

The one place for the legacy-TLS settings: servers with ``legacy`` also allow TLS 1.0+ and
``AES256-SHA`` (:data:`LEGACY_CIPHERS`, ``@SECLEVEL=0`` as OpenSSL 3 needs for old phone
firmware); a client that *forces* old firmware's offer uses :func:`offer_only_legacy` (TLS 1.0,
``AES256-SHA`` only). Servers are built by :mod:`tvs.tlsserver` (pyOpenSSL) with these
constants; :class:`ClientAuth` names the client-certificate modes.

The lab's own clients (the phone, the TVS and CAPF clients) are pyOpenSSL, in
:mod:`tvs.tlsclient`, with these constants; :func:`client_context` builds the ``ssl`` module's
equivalent (optional client certificate, optional pins as trust anchors), which the tests use
as a client independent of the lab's TLS code (OpenSSL 3.0 of the system against the servers'
bundled OpenSSL). :func:`certificate_pinned` is the phone's rule after the handshake: the
server certificate must be one its CTL/ITL names. Keylog files (SSLKEYLOGFILE format) for
Wireshark on both sides.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import itertools
import os
import shutil
import ssl
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from .certs import Certificate, PrivateKey

__all__ = [
    "LEGACY_CIPHERS",
    "LEGACY_ONLY_CIPHERS",
    "MODERN_CIPHERS",
    "TLS_MAX_VERSIONS",
    "ClientAuth",
    "certificate_pinned",
    "client_context",
    "load_identity",
    "offer_only_legacy",
]

LEGACY_CIPHERS = "DEFAULT:AES256-SHA:AES128-SHA:@SECLEVEL=0"
"""OpenSSL cipher string for old phones: everything modern plus the RSA-kx CBC suites."""
LEGACY_ONLY_CIPHERS = "AES256-SHA:@SECLEVEL=0"
"""What old firmware offers (the seed's 8861 negotiated AES256-SHA with CUCM 10.5)."""
MODERN_CIPHERS = (
    "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
)
"""TLS 1.2 suites without legacy (Python's ``ssl`` default, also given to pyOpenSSL servers)."""


_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (not named by the ssl module)


class ClientAuth(enum.StrEnum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


def load_identity(
    ctx: ssl.SSLContext,
    cert: Certificate | Sequence[Certificate] | str | Path,
    key: PrivateKey | str | Path,
) -> None:
    """Load a certificate (chain) and key, given as files or in-memory values."""
    if isinstance(cert, str | Path) and isinstance(key, str | Path):
        ctx.load_cert_chain(str(cert), str(key))
        return
    if isinstance(cert, str | Path):
        chain_pem = Path(cert).read_bytes()
    else:
        chain = [cert] if isinstance(cert, Certificate) else list(cert)
        chain_pem = b"".join(c.to_pem() for c in chain)
    if isinstance(key, str | Path):
        key_pem = Path(key).read_bytes()
    else:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    # the ssl module only loads identities from files: an anonymous memory file where Linux has
    # them (no file system work: a fleet builds thousands of contexts), else one file (chain,
    # then key) in a private directory made once per process, removed right after loading
    if _load_from_memfd(ctx, chain_pem + key_pem):
        return
    path = os.path.join(_identity_dir(), f"{os.getpid()}-{next(_identity_seq)}.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(chain_pem + key_pem)
        ctx.load_cert_chain(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _load_from_memfd(ctx: ssl.SSLContext, pem: bytes) -> bool:
    """Load ``pem`` through an anonymous in-memory file (``memfd_create``, read through
    ``/proc/self/fd``); False where that is not available."""
    global _memfd_works
    if not _memfd_works or not hasattr(os, "memfd_create"):
        return False
    try:
        fd = os.memfd_create("tvs-tls-identity", os.MFD_CLOEXEC)
    except OSError:
        _memfd_works = False
        return False
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(path):
            _memfd_works = False
            return False
        ctx.load_cert_chain(path)
    finally:
        os.close(fd)
    return True


_memfd_works = True
_identity_seq = itertools.count()
_identity_path: str | None = None


def _identity_dir() -> str:
    """A private (0700) temporary directory for :func:`load_identity`, removed at exit by the
    process that made it (a forked child never removes its parent's)."""
    global _identity_path
    if _identity_path is None or not os.path.isdir(_identity_path):
        path = _identity_path = tempfile.mkdtemp(prefix="tvs-tls-")
        owner = os.getpid()

        def cleanup() -> None:
            if os.getpid() == owner:
                shutil.rmtree(path, ignore_errors=True)

        atexit.register(cleanup)
    return _identity_path


def offer_only_legacy(ctx: ssl.SSLContext, *, max_tls10: bool = True) -> None:
    """Offer only what old firmware offers: ``AES256-SHA``, and TLS 1.0 only unless
    ``max_tls10`` is False (then up to TLS 1.2)."""
    ctx.set_ciphers(LEGACY_ONLY_CIPHERS)
    with warnings.catch_warnings():  # the ssl module deprecates TLS 1.0; old phones speak it
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1 if max_tls10 else ssl.TLSVersion.TLSv1_2


TLS_MAX_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
"""What ``--tls-max`` takes: the highest TLS version a client offers."""


def _versions(ctx: ssl.SSLContext, legacy: bool) -> None:
    if legacy:
        ctx.set_ciphers(LEGACY_CIPHERS)
        with warnings.catch_warnings():  # TLS 1.0 is deprecated: that is the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2


def client_context(
    *,
    cert: Certificate | Sequence[Certificate] | str | Path | None = None,
    key: PrivateKey | str | Path | None = None,
    legacy: bool = False,
    keylog: str | Path | None = None,
    pinned: Iterable[Certificate] | None = None,
) -> ssl.SSLContext:
    """A TVS client's context: optional client certificate.

    With ``pinned`` (possibly empty) the handshake itself fails, with an alert to the server,
    unless the server's chain reaches one of those certificates (each is a trust anchor,
    partial chains allowed, validity dates not checked), as a phone's ITL check does. The
    caller still compares the server certificate itself (:func:`certificate_pinned`).
    Without ``pinned`` nothing is verified in OpenSSL.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if pinned is not None:
        anchors = list({c.der: c for c in pinned}.values())
        if anchors:
            ctx.load_verify_locations(cadata=b"".join(c.der for c in anchors))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VerifyFlags(_NO_CHECK_TIME)
        ctx.verify_mode = ssl.CERT_REQUIRED
    _versions(ctx, legacy)
    if cert is not None:
        if key is None:
            raise ValueError("a client certificate needs its private key")
        load_identity(ctx, cert, key)
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    return ctx


def certificate_pinned(peer_der: bytes | None, pinned: Iterable[Certificate]) -> bool:
    """True when the server's certificate (DER) is byte-for-byte one of ``pinned``."""
    return peer_der is not None and any(peer_der == c.der for c in pinned)
