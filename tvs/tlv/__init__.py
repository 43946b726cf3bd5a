"""CTL/ITL ``.tlv`` and ``.sgn`` file codec: parse, build, sign, verify (sans-I/O).

Layout (protocol notes section 2): :mod:`.elements` reads and writes single elements (with the
lone-byte padding tag 13), :mod:`.model` holds the values and wire numbers, :mod:`.parse` and
:mod:`.build` convert, :mod:`.verify` checks signatures, :mod:`.policy` decides whom to trust
(the signing-role table, :func:`check_file`), :mod:`.describe` makes JSON,
:mod:`.encrypted` holds the crypto of encrypted ``.enc.sgn`` configuration files.
"""

from .build import (
    RecordSpec,
    build_trust_list,
    encode_encryption_info,
    encode_record,
    host_name_from_cn,
    sign_encrypted_file,
    sign_file,
)
from .describe import describe, describe_record
from .elements import PADDING_TAG, Element, encode_element, read_element, read_elements
from .encrypted import cert_hash, decrypt_config, encrypt_config
from .errors import (
    DecryptionError,
    FormatError,
    LengthError,
    MissingElementError,
    SignatureError,
    SignerNotFoundError,
    TlvError,
    TruncatedError,
    UnknownAlgorithmError,
)
from .model import (
    ENC_SGN_VERSION,
    MODULUS_SIZES,
    SGN_VERSION,
    SIGNATURE_ALGORITHM_EC,
    SIGNATURE_ALGORITHM_RSA,
    SIGNER_VERSION_EC,
    SIGNER_VERSION_RSA,
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
from .parse import (
    RECORD_LENGTH_INCLUDES_ITSELF,
    parse_file,
    parse_header,
    parse_signed_file,
    parse_trust_list,
)
from .policy import SIGNING_ROLES, FileKind, Verification, check_file, file_kind
from .verify import matches_signer, verify_file, verify_with_certificate

__all__ = [
    "ENC_SGN_VERSION",
    "MODULUS_SIZES",
    "PADDING_TAG",
    "RECORD_LENGTH_INCLUDES_ITSELF",
    "SGN_VERSION",
    "SIGNATURE_ALGORITHM_EC",
    "SIGNATURE_ALGORITHM_RSA",
    "SIGNER_VERSION_EC",
    "SIGNER_VERSION_RSA",
    "SIGNING_ROLES",
    "TLV_VERSION",
    "DecryptionError",
    "Element",
    "EncryptionInfo",
    "EncryptionTag",
    "FileHeader",
    "FileKind",
    "FormatError",
    "HashAlgorithm",
    "HeaderTag",
    "LengthError",
    "MissingElementError",
    "Record",
    "RecordSpec",
    "RecordTag",
    "SignatureError",
    "SignerInfo",
    "SignerNotFoundError",
    "TlvError",
    "TruncatedError",
    "TrustFile",
    "UnknownAlgorithmError",
    "Verification",
    "build_trust_list",
    "cert_hash",
    "check_file",
    "decrypt_config",
    "describe",
    "describe_record",
    "encode_element",
    "encode_encryption_info",
    "encode_record",
    "encrypt_config",
    "file_kind",
    "host_name_from_cn",
    "matches_signer",
    "parse_file",
    "parse_header",
    "parse_signed_file",
    "parse_trust_list",
    "read_element",
    "read_elements",
    "sign_encrypted_file",
    "sign_file",
    "verify_file",
    "verify_with_certificate",
]
