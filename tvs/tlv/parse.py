"""Parsing CTL/ITL ``.tlv`` and ``.sgn`` files into :class:`~tvs.tlv.model.TrustFile` values.

Owns the header layout (elements in any order, containers 3/7/9, lone-byte padding, header
length) and the record layout (record-length element first, then tags 2..12 in any order).
Does not verify signatures (:mod:`tvs.tlv.verify`). Whatever the input, the result is a
``TrustFile`` or a :class:`~tvs.tlv.errors.TlvError`.
"""

from __future__ import annotations

from typing import Final

from .elements import PADDING_TAG, Element, read_element, read_elements
from .errors import (
    FormatError,
    LengthError,
    MissingElementError,
    TruncatedError,
    UnknownAlgorithmError,
)
from .model import (
    ENC_SGN_VERSION,
    SGN_VERSION,
    TLV_VERSION,
    EncryptionInfo,
    EncryptionTag,
    FileHeader,
    HashAlgorithm,
    HeaderTag,
    Record,
    RecordTag,
    SignerInfo,
    TrustFile,
)

__all__ = [
    "RECORD_LENGTH_INCLUDES_ITSELF",
    "parse_file",
    "parse_header",
    "parse_signed_file",
    "parse_trust_list",
]

RECORD_LENGTH_INCLUDES_ITSELF: Final = True
"""Record tag 1 holds the length of the whole record, its own 5 bytes included (protocol notes:
"u16, whole record"; High: an independent open-source CTL reader and writer count it the same
way)."""

_RECORD_LENGTH_SIZE = 5  # tag 1, length 2, u16 value
_SGN_VERSIONS = (SGN_VERSION, ENC_SGN_VERSION)
_ENCRYPTION_TAGS = frozenset(
    {EncryptionTag.ENCRYPTION_INFO, EncryptionTag.HASH_ALGORITHM, EncryptionTag.PLAINTEXT_HASH}
)
_TOP_LEVEL = (
    frozenset(
        {
            HeaderTag.VERSION,
            HeaderTag.HEADER_LENGTH,
            HeaderTag.SIGNER_VERSION,
            HeaderTag.SIGNER_INFO,
            HeaderTag.SIGNATURE_INFO,
            HeaderTag.SIGNATURE,
            HeaderTag.FILENAME,
            HeaderTag.TIMESTAMP,
        }
    )
    | _ENCRYPTION_TAGS
)
_IV_SIZE = 16
_BLOCK = 16


# --- value decoders -------------------------------------------------------------------------
def _fixed(el: Element, size: int, what: str) -> bytes:
    if len(el.value) != size:
        raise LengthError(
            f"offset {el.offset}: tag {el.tag} ({what}) has {len(el.value)} bytes, expected {size}"
        )
    return el.value


def _uint(el: Element, size: int, what: str) -> int:
    return int.from_bytes(_fixed(el, size, what), "big")


def _pair(el: Element, what: str) -> tuple[int, int]:
    v = _fixed(el, 2, what)
    return (v[0], v[1])


def _text(value: bytes) -> str:
    """A NUL-terminated string (the NUL and anything after it dropped)."""
    raw = value.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _unique(elements: list[Element], where: str) -> dict[int, Element]:
    """Map tag -> element for the known tags; a repeated known tag is a FormatError."""
    seen: dict[int, Element] = {}
    for el in elements:
        if el.tag in seen and el.tag != PADDING_TAG:
            raise FormatError(
                f"offset {el.offset}: tag {el.tag} repeated in the {where} "
                f"(first at offset {seen[el.tag].offset})"
            )
        seen[el.tag] = el
    return seen


def _need(found: dict[int, Element], tag: int, what: str, where: str) -> Element:
    el = found.get(tag)
    if el is None:
        raise MissingElementError(f"{where}: no {what} element (tag {tag})")
    return el


# --- header ---------------------------------------------------------------------------------
def _header_elements(data: bytes) -> tuple[list[Element], int]:
    """Read top-level header elements until the header length (tag 2, any position) is reached."""
    elements: list[Element] = []
    header_length: int | None = None
    pos = 0
    while header_length is None or pos < header_length:
        if pos >= len(data):
            raise TruncatedError(
                f"offset {pos}: data ends inside the file header (no header length element yet)"
            )
        limit = len(data) if header_length is None else header_length
        el = read_element(data, pos, limit, where="header")
        elements.append(el)
        pos = el.end
        if el.tag == HeaderTag.HEADER_LENGTH and header_length is None:
            header_length = _uint(el, 2, "header length")
            if header_length < pos:
                raise LengthError(
                    f"offset {el.offset}: header length {header_length} ends before the "
                    f"header length element itself (offset {pos})"
                )
            if header_length > len(data):
                raise TruncatedError(
                    f"offset {el.offset}: header length {header_length} is past the end "
                    f"of the data at {len(data)}"
                )
    assert header_length is not None
    return elements, header_length


def parse_header(data: bytes) -> tuple[FileHeader, bytes]:
    """Parse the file header; returns it and the signed data (``data`` minus the tag-12 element)."""
    data = bytes(data)
    elements, header_length = _header_elements(data)
    top = [el for el in elements if el.tag != PADDING_TAG]
    found = _unique([el for el in top if el.tag in _TOP_LEVEL], "header")
    unknown = tuple(el for el in top if el.tag not in _TOP_LEVEL)
    where = "header"

    version = _pair(_need(found, HeaderTag.VERSION, "version", where), "version")
    sv = found.get(HeaderTag.SIGNER_VERSION)
    signer_version = _pair(sv, "signer version") if sv is not None else None

    info = _need(found, HeaderTag.SIGNER_INFO, "signer info", where)
    info_els = _container(data, info, "signer info")
    signer = SignerInfo(
        name=_text(_need(info_els, HeaderTag.SIGNER_NAME, "signer name", "signer info").value),
        serial=_need(info_els, HeaderTag.SERIAL_NUMBER, "serial number", "signer info").value,
        issuer=_text(_need(info_els, HeaderTag.ISSUER_NAME, "issuer name", "signer info").value),
    )

    sig_info = _need(found, HeaderTag.SIGNATURE_INFO, "signature info", where)
    sig_els = _container(data, sig_info, "signature info")
    hash_el = _need(sig_els, HeaderTag.HASH_ALGORITHM, "hash algorithm", "signature info")
    hash_algorithm = _hash_algorithm(hash_el)
    algo = _need(
        sig_els, HeaderTag.SIGNATURE_ALGORITHM_INFO, "signature algorithm info", "signature info"
    )
    algo_els = _container(data, algo, "signature algorithm info")
    signature_algorithm = _uint(
        _need(algo_els, HeaderTag.SIGNATURE_ALGORITHM, "signature algorithm", "algorithm info"),
        1,
        "signature algorithm",
    )
    modulus_index = _uint(
        _need(algo_els, HeaderTag.SIGNATURE_MODULUS, "signature modulus", "algorithm info"),
        1,
        "signature modulus",
    )

    sig = _need(found, HeaderTag.SIGNATURE, "signature", where)
    header = FileHeader(
        version=version,
        header_length=header_length,
        signer_version=signer_version,
        signer=signer,
        hash_algorithm=hash_algorithm,
        signature_algorithm=signature_algorithm,
        modulus_index=modulus_index,
        signature=sig.value,
        filename=_text(_need(found, HeaderTag.FILENAME, "filename", where).value),
        timestamp=_uint(_need(found, HeaderTag.TIMESTAMP, "timestamp", where), 4, "timestamp"),
        unknown=unknown,
        encryption=_encryption(data, found),
    )
    signed = data[: sig.offset] + data[sig.end :]
    return header, signed


def _hash_algorithm(el: Element) -> HashAlgorithm:
    code = _uint(el, 1, "hash algorithm")
    try:
        return HashAlgorithm(code)
    except ValueError:
        raise UnknownAlgorithmError(
            f"offset {el.offset}: unknown hash algorithm code {code} "
            f"(known: 1 SHA-1, 2 SHA-256, 3 SHA-512)"
        ) from None


def _container(data: bytes, el: Element, what: str) -> dict[int, Element]:
    inner = read_elements(data, el.offset + 3, el.end, where=f"{what} (tag {el.tag})")
    return _unique(inner, what)


def _encryption(data: bytes, found: dict[int, Element]) -> EncryptionInfo | None:
    """Tags 16 (with 17..25 inside), 26 and 27 of an ``.enc.sgn`` header; None when absent."""
    if not _ENCRYPTION_TAGS.intersection(found):
        return None
    where = "encrypted header"
    enc = _need(found, EncryptionTag.ENCRYPTION_INFO, "encryption info", where)
    enc_els = _container(data, enc, "encryption info")
    iv_info = _container(
        data, _need(enc_els, EncryptionTag.IV_INFO, "IV info", "encryption info"), "IV info"
    )
    key_info = _container(
        data, _need(enc_els, EncryptionTag.KEY_INFO, "key info", "encryption info"), "key info"
    )
    iv = _fixed(_need(iv_info, EncryptionTag.IV, "IV", "IV info"), _IV_SIZE, "IV")
    pad_el = _need(iv_info, EncryptionTag.PAD_COUNT, "pad count", "IV info")
    pad_count = _uint(pad_el, 2, "pad count")
    if not 1 <= pad_count <= _BLOCK:
        raise FormatError(f"offset {pad_el.offset}: pad count {pad_count} is outside 1..{_BLOCK}")
    wrapped = _need(key_info, EncryptionTag.WRAPPED_KEY, "wrapped key", "key info").value
    if not wrapped:
        raise LengthError(f"offset {enc.offset}: the wrapped key (tag 25) is empty")
    hash_algorithm = _hash_algorithm(
        _need(found, EncryptionTag.HASH_ALGORITHM, "plaintext hash algorithm", where)
    )
    hash_el = _need(found, EncryptionTag.PLAINTEXT_HASH, "plaintext hash", where)
    size = _HASH_SIZES[hash_algorithm]
    digest = _fixed(hash_el, size, f"{hash_algorithm.hash_name} plaintext hash")

    def small(els: dict[int, Element], tag: int, size: int, default: int) -> int:
        el = els.get(tag)
        return default if el is None else _uint(el, size, EncryptionTag(tag).name.lower())

    known_inner = {int(t) for t in EncryptionTag}
    extra = [
        el
        for els in (enc_els, iv_info, key_info)
        for el in els.values()
        if el.tag not in known_inner and el.tag != PADDING_TAG
    ]
    return EncryptionInfo(
        iv=iv,
        pad_count=pad_count,
        wrapped_key=wrapped,
        hash_algorithm=hash_algorithm,
        plaintext_hash=digest,
        key_bits=small(key_info, EncryptionTag.KEY_BITS, 2, len(wrapped) * 8),
        iv_type=small(iv_info, EncryptionTag.IV_TYPE, 1, 0),
        key_type=small(key_info, EncryptionTag.KEY_TYPE, 1, 0),
        key_format=small(key_info, EncryptionTag.KEY_FORMAT, 1, 1),
        unknown=tuple(sorted(extra, key=lambda el: el.offset)),
    )


_HASH_SIZES: Final = {HashAlgorithm.SHA1: 20, HashAlgorithm.SHA256: 32, HashAlgorithm.SHA512: 64}


# --- records --------------------------------------------------------------------------------
def _parse_record(data: bytes, pos: int) -> tuple[Record, int]:
    first = read_element(data, pos, len(data), where="file")
    if first.tag != RecordTag.RECORD_LENGTH:
        raise MissingElementError(
            f"offset {pos}: record starts with tag {first.tag}, expected record length (tag 1)"
        )
    length = _uint(first, 2, "record length")
    end = pos + length if RECORD_LENGTH_INCLUDES_ITSELF else first.end + length
    if end < first.end:
        raise LengthError(f"offset {pos}: record length {length} is shorter than its own element")
    if end > len(data):
        raise TruncatedError(
            f"offset {pos}: record of {length} bytes ends at {end}, past the end of the data "
            f"at {len(data)}"
        )
    elements = read_elements(data, first.end, end, where=f"record at offset {pos}")
    known = [el for el in elements if el.tag in _RECORD_FIELDS]
    found = _unique(known, f"record at offset {pos}")
    where = f"record at offset {pos}"

    def opt(tag: int) -> bytes | None:
        el = found.get(tag)
        return None if el is None else el.value

    role_el = _need(found, RecordTag.ROLE, "role", where)
    role = _uint(role_el, 2, "role")
    dns = opt(RecordTag.DNS_NAME)
    hash_el = found.get(RecordTag.HASH_ALGORITHM)
    record = Record(
        role=role,
        subject=_text(opt(RecordTag.SUBJECT_NAME) or b""),
        issuer=_text(opt(RecordTag.ISSUER_NAME) or b""),
        serial=opt(RecordTag.SERIAL_NUMBER) or b"",
        public_key=opt(RecordTag.PUBLIC_KEY) or b"",
        cert_signature=opt(RecordTag.SIGNATURE) or b"",
        certificate=opt(RecordTag.CERTIFICATE),
        dns_name=None if dns is None else _text(dns),
        ip_address=opt(RecordTag.IP_ADDRESS),
        cert_hash=opt(RecordTag.CERT_HASH),
        hash_algorithm=(
            None if hash_el is None or not hash_el.value else int.from_bytes(hash_el.value, "big")
        ),
        unknown=tuple(el for el in elements if el.tag not in _RECORD_FIELDS),
    )
    return record, end


_RECORD_FIELDS = frozenset(int(t) for t in RecordTag) - {RecordTag.RECORD_LENGTH}


def _parse_records(data: bytes, start: int) -> tuple[Record, ...]:
    records: list[Record] = []
    pos = start
    while pos < len(data):
        rec, pos = _parse_record(data, pos)
        records.append(rec)
    return tuple(records)


# --- whole files ----------------------------------------------------------------------------
def _trust_list(data: bytes, header: FileHeader, signed: bytes) -> TrustFile:
    records = _parse_records(data, header.header_length)
    return TrustFile(header=header, records=records, payload=b"", raw=data, signed_data=signed)


def _signed_file(data: bytes, header: FileHeader, signed: bytes) -> TrustFile:
    payload = data[header.header_length :]
    return TrustFile(header=header, records=(), payload=payload, raw=data, signed_data=signed)


def parse_trust_list(data: bytes) -> TrustFile:
    """Parse a CTL or ITL ``.tlv`` file: header, then records up to the end of the data."""
    data = bytes(data)
    return _trust_list(data, *parse_header(data))


def parse_signed_file(data: bytes) -> TrustFile:
    """Parse a ``.sgn`` file: header, then the signed payload (the original file bytes)."""
    data = bytes(data)
    return _signed_file(data, *parse_header(data))


def parse_file(data: bytes) -> TrustFile:
    """Parse either kind: version 1.2 (or a ``.tlv`` filename) is a trust list, else a .sgn file.

    Versions 1.0 and 2.0 are signed files whatever their filename; other versions are decided
    by the filename's extension.
    """
    data = bytes(data)
    header, signed = parse_header(data)
    if header.version == TLV_VERSION:
        return _trust_list(data, header, signed)
    if header.version in _SGN_VERSIONS or not header.filename.lower().endswith(".tlv"):
        return _signed_file(data, header, signed)
    return _trust_list(data, header, signed)
