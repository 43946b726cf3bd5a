"""``tvs enc``: build, show and decrypt encrypted configuration files (``.enc.sgn``).

A thin shell over :mod:`tvs.tlv` (parse, build, verify) and :mod:`tvs.tlv.encrypted` (the
crypto). Exit codes (:class:`~tvs.exitcodes.ExitCode`): 0 built / shown / decrypted, 1 the
signature does not verify or the key does not open the file, 2 unreadable input (missing or
malformed file, bad certificate or key, a file that is not encrypted).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..certs import Certificate, CertificateError, PrivateKey, load_certificates, load_private_key
from ..exitcodes import ExitCode
from ..tlv import (
    DecryptionError,
    SignatureError,
    SignerNotFoundError,
    TlvError,
    TrustFile,
    decrypt_config,
    describe,
    encrypt_config,
    parse_file,
    verify_file,
)

__all__ = ["register"]


class _Unreadable(Exception):
    """Input the command cannot use; becomes exit code 2."""


def register(sub: Any) -> None:
    enc = sub.add_parser(
        "enc", help="encrypted configuration files (.enc.sgn): build, show, decrypt"
    )
    enc_sub = enc.add_subparsers(dest="enc_command", metavar="ACTION", required=True)

    p = enc_sub.add_parser("build", help="encrypt FILE to a phone certificate and sign it")
    p.add_argument("--signer", required=True, type=Path, metavar="CERT", help="signer (TFTP role)")
    p.add_argument("--key", required=True, type=Path, metavar="KEY", help="signer private key")
    p.add_argument(
        "--phone-cert",
        required=True,
        type=Path,
        metavar="CERT",
        help="the phone certificate (LSC or MIC, RSA) whose key will open the file",
    )
    p.add_argument("--digest", choices=("sha1", "sha512"), default="sha1", help="default sha1")
    p.add_argument("--out", required=True, type=Path, help="the .enc.sgn file to write")
    p.add_argument("--filename", help="filename in the header (default: the --out file's name)")
    p.add_argument("--timestamp", type=int, help="header time, Unix seconds (default: now)")
    p.add_argument(
        "--signer-version",
        metavar="MAJOR.MINOR",
        help="write signer version tag 28 (absent by default: enccnf accepts header tags up to "
        "27 only)",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the plaintext configuration")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_build)

    p = enc_sub.add_parser("show", help="print an .enc.sgn file's header and encryption fields")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_show)

    p = enc_sub.add_parser(
        "decrypt", help="check the signature, open with the phone's key (0 ok, 1 refused)"
    )
    p.add_argument(
        "--key", required=True, type=Path, metavar="PHONE_KEY", help="the phone's private key"
    )
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        type=Path,
        metavar="CERT",
        help="trusted signer certificate file (PEM may hold several); repeat for more; without "
        "any, the signature is not checked (said on stderr)",
    )
    p.add_argument("--out", type=Path, help="write the plaintext here (default: stdout)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=_cmd_decrypt)


# --- helpers --------------------------------------------------------------------------------
def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Unreadable(f"{path}: {exc.strerror or exc}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _Unreadable(f"{path}: {exc.strerror or exc}") from None


def _cert(path: Path) -> Certificate:
    try:
        found = load_certificates(_read(path), source=str(path))
    except CertificateError as exc:
        raise _Unreadable(str(exc)) from None
    if not found:
        raise _Unreadable(f"{path}: no certificate")
    return found[0]


def _key(path: Path) -> PrivateKey:
    try:
        return load_private_key(_read(path))
    except CertificateError as exc:
        raise _Unreadable(f"{path}: {exc}") from None


def _encrypted(path: Path) -> TrustFile:
    try:
        f = parse_file(_read(path))
    except TlvError as exc:
        raise _Unreadable(f"{path}: {type(exc).__name__}: {exc}") from None
    if not f.encrypted:
        raise _Unreadable(
            f"{path}: not an encrypted file (header version "
            f"{f.header.version[0]}.{f.header.version[1]}, no encryption info tag 16)"
        )
    return f


def _emit(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))


def _run(args: argparse.Namespace, body: Callable[[], int]) -> int:
    try:
        return body()
    except (_Unreadable, TlvError) as exc:
        text = str(exc) if isinstance(exc, _Unreadable) else f"{type(exc).__name__}: {exc}"
        print(f"tvs enc {args.enc_command}: error: {text}", file=sys.stderr)
        if args.json:
            _emit({"file": str(args.file), "ok": False, "error": text})
        return ExitCode.ERROR


def describe_encrypted(f: TrustFile) -> dict[str, Any]:
    """:func:`tvs.tlv.describe` plus the encryption fields (bytes as lower-case hex)."""
    info = f.header.encryption
    assert info is not None
    return {
        **describe(f),
        "encryption": {
            "iv": info.iv.hex(),
            "iv_type": info.iv_type,
            "pad_count": info.pad_count,
            "key_type": info.key_type,
            "key_bits": info.key_bits,
            "key_format": info.key_format,
            "wrapped_key_length": len(info.wrapped_key),
            "hash_algorithm": info.hash_algorithm.hash_name,
            "plaintext_hash": info.plaintext_hash.hex(),
            "ciphertext_length": len(f.payload),
            "plaintext_length": len(f.payload) - info.pad_count,
            "unknown": [{"tag": e.tag, "offset": e.offset} for e in info.unknown],
        },
    }


# --- commands -------------------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> int:
    def body() -> int:
        plaintext = _read(args.file)
        signer, key, phone = _cert(args.signer), _key(args.key), _cert(args.phone_cert)
        version = None
        if args.signer_version:
            major, _, minor = args.signer_version.partition(".")
            if not (major.isdigit() and minor.isdigit()):
                raise _Unreadable(f"--signer-version {args.signer_version!r}: expected MAJOR.MINOR")
            version = (int(major), int(minor))
        filename = args.filename or args.out.name
        data = encrypt_config(
            plaintext,
            phone_cert=phone,
            filename=filename,
            signer=signer,
            key=key,
            digest=args.digest,
            timestamp=args.timestamp,
            signer_version=version,
        )
        _write(args.out, data)
        if args.json:
            _emit(
                {
                    "file": str(args.out),
                    "ok": True,
                    "size": len(data),
                    "filename": filename,
                    "plaintext_length": len(plaintext),
                    "signer": signer.subject,
                    "phone_certificate": phone.subject,
                    "phone_certificate_sha256": phone.sha256.hex(),
                    "digest": args.digest,
                }
            )
        else:
            print(
                f"wrote {args.out} ({len(data)} bytes; {len(plaintext)} bytes encrypted to "
                f"{phone.subject}, signed by {signer.subject} with {args.digest})"
            )
        return ExitCode.OK

    return _run(args, body)


def _cmd_show(args: argparse.Namespace) -> int:
    def body() -> int:
        f = _encrypted(args.file)
        d = describe_encrypted(f)
        if args.json:
            _emit({"file": str(args.file), **d})
            return ExitCode.OK
        h, e = f.header, d["encryption"]
        print(f"{args.file}: encrypted file, {d['size']} bytes, header {h.header_length} bytes")
        print(f"  version         {d['version']}")
        if d["signer_version"]:
            print(f"  signer version  {d['signer_version']}")
        print(f"  filename        {h.filename}")
        print(f"  timestamp       {h.timestamp} ({d['time']})")
        print(f"  signer          {h.signer.name}")
        print(f"  signer serial   {d['signer']['serial']}")
        print(f"  signer issuer   {h.signer.issuer}")
        print(
            f"  signature       {d['signature_algorithm_name']}, {d['hash_algorithm']}, "
            f"{d['signature_length']} bytes"
        )
        print(f"  cipher          AES-128-CBC, IV {e['iv']} (type {e['iv_type']})")
        print(
            f"  key             {e['wrapped_key_length']} bytes wrapped ({e['key_bits']} bits, "
            f"key type {e['key_type']}, format {e['key_format']}: RSA PKCS#1 v1.5)"
        )
        print(f"  padding         {e['pad_count']} bytes of 0x0D")
        print(f"  plaintext hash  {e['hash_algorithm']} {e['plaintext_hash']}")
        print(f"  ciphertext      {e['ciphertext_length']} bytes ({e['plaintext_length']} plain)")
        info = h.encryption
        assert info is not None
        for el in h.unknown + info.unknown:
            print(f"  unknown tag {el.tag} at offset {el.offset}: {len(el.value)} bytes")
        return ExitCode.OK

    return _run(args, body)


def _cmd_decrypt(args: argparse.Namespace) -> int:
    def body() -> int:
        trusted: list[Certificate] = []
        for path in args.trust:
            try:
                trusted += load_certificates(_read(path), source=str(path))
            except CertificateError as exc:
                raise _Unreadable(str(exc)) from None
        key = _key(args.key)
        f = _encrypted(args.file)
        result: dict[str, Any] = {
            "file": str(args.file),
            "filename": f.header.filename,
            "ok": False,
            "signature": "not-checked",
            "verified_by": None,
            "plaintext_length": None,
            "error": None,
        }
        try:
            if trusted:
                cert = verify_file(f, trusted=trusted)
                result["signature"] = "valid"
                result["verified_by"] = {"subject": cert.subject, "serial": cert.serial_hex}
            plaintext = decrypt_config(f, key)
        except (SignatureError, SignerNotFoundError, DecryptionError) as exc:
            if isinstance(exc, SignatureError | SignerNotFoundError):
                result["signature"] = "invalid"
            result["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{args.file}: REFUSED: {result['error']}", file=sys.stderr)
            if args.json:
                _emit(result)
            return ExitCode.INVALID
        if not trusted:
            print(f"{args.file}: signature not checked (no --trust)", file=sys.stderr)
        result.update(ok=True, plaintext_length=len(plaintext))
        if args.out is not None:
            _write(args.out, plaintext)
            result["out"] = str(args.out)
        if args.json:
            _emit(result)
        elif args.out is None:
            sys.stdout.buffer.write(plaintext)
            sys.stdout.flush()
        else:
            print(f"wrote {args.out} ({len(plaintext)} bytes, signature {result['signature']})")
        return ExitCode.OK

    return _run(args, body)
