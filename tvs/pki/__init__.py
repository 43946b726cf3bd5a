"""The lab PKI: a recipe (``certs/lab.toml``) and the keys and certificates it describes.

``recipe`` reads the recipe, ``issue`` makes keys and certificates in memory (CUCM and
enterprise-CA style, phone LSCs), ``lab`` writes and reads the generated directory.
"""

from .errors import PkiError, RecipeError
from .issue import (
    Identity,
    default_phone_serial,
    generate_key,
    issue_lsc,
    key_type_of,
    windows_ca_serial,
)
from .lab import ENTERPRISE_CA, MANUFACTURING_CA, ClusterPki, LabPki, NodePki, generate
from .recipe import (
    CERT_KINDS,
    KEY_TYPES,
    ClusterSpec,
    EnterpriseCaSpec,
    NodeSpec,
    PhoneSpec,
    Recipe,
    SubjectSpec,
)

__all__ = [
    "CERT_KINDS",
    "ENTERPRISE_CA",
    "KEY_TYPES",
    "MANUFACTURING_CA",
    "ClusterPki",
    "ClusterSpec",
    "EnterpriseCaSpec",
    "Identity",
    "LabPki",
    "NodePki",
    "NodeSpec",
    "PhoneSpec",
    "PkiError",
    "Recipe",
    "RecipeError",
    "SubjectSpec",
    "default_phone_serial",
    "generate",
    "generate_key",
    "issue_lsc",
    "key_type_of",
    "windows_ca_serial",
]
