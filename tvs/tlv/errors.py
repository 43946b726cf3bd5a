"""The CTL/ITL/.sgn codec's error hierarchy: one base, one subclass per fault.

Every error message says what went wrong and where (file offset, element tag). Whatever bytes
the parser is given, it either returns a value or raises one of these (the fuzz invariant).
"""

from __future__ import annotations

__all__ = [
    "DecryptionError",
    "FormatError",
    "LengthError",
    "MissingElementError",
    "SignatureError",
    "SignerNotFoundError",
    "TlvError",
    "TruncatedError",
    "UnknownAlgorithmError",
]


class TlvError(ValueError):
    """A CTL/ITL/.sgn file could not be parsed, built or verified."""


class TruncatedError(TlvError):
    """The data ends before the element, header or record it announces."""


class LengthError(TlvError):
    """A length field runs past its container, or a fixed-size value has the wrong size."""


class FormatError(TlvError):
    """The elements are well delimited but do not form a valid file (duplicates, bad values)."""


class MissingElementError(TlvError):
    """A required element (header length, signer, signature, record length...) is absent."""


class UnknownAlgorithmError(TlvError):
    """A hash or signature algorithm code, or a key type/size, that the codec cannot use."""


class SignatureError(TlvError):
    """The signature does not verify with the signer's key."""


class SignerNotFoundError(TlvError):
    """No trusted certificate and no record of the file matches the header's signer."""


class DecryptionError(TlvError):
    """An encrypted file does not open with the key given (unwrap, padding or plaintext hash)."""
