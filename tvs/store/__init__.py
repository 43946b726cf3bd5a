"""CUCM trust stores on disk, the store-to-roles table, the TVS cache, bulk certificate management.

Public API: :class:`TrustStore` (``open``, which also finishes or rolls back an import a
killed writer left, ``init_from_pki``, ``import_certificates`` and ``import_many``, all or
nothing, ``list``, ``remove``, ``load_cache``), :class:`CertificateCache`, the one roles table
(``STORE_ROLES``), the phone issuing set (``PHONE_ISSUER_STORES``), what a certificate in an
export is (``recognise``, ``KINDS``), PKCS#12 helpers and the bulk functions (``bulk_export``,
``consolidate``, ``bulk_import``).
"""

from __future__ import annotations

from .bulk import BulkImportResult, bulk_export, bulk_import, consolidate
from .cache import CacheEntry, CertificateCache, normalize_serial
from .errors import StoreError, StoreInputError, StoreNotFoundError, UnknownStoreError
from .kinds import KINDS, Recognised, recognise
from .pkcs12 import LabelledCertificate, dump_pkcs12, load_pkcs12, read_certificate_file
from .table import (
    ALL_STORES,
    BULK_IMPORT_MAP,
    DEFAULT_TTL,
    OWN_STORES,
    PHONE_ISSUER_STORES,
    STORE_ROLES,
    TRUST_STORES,
    roles_for_stores,
)
from .trust_store import StoreEntry, TrustStore

__all__ = [
    "ALL_STORES",
    "BULK_IMPORT_MAP",
    "DEFAULT_TTL",
    "KINDS",
    "OWN_STORES",
    "PHONE_ISSUER_STORES",
    "STORE_ROLES",
    "TRUST_STORES",
    "BulkImportResult",
    "CacheEntry",
    "CertificateCache",
    "LabelledCertificate",
    "Recognised",
    "StoreEntry",
    "StoreError",
    "StoreInputError",
    "StoreNotFoundError",
    "TrustStore",
    "UnknownStoreError",
    "bulk_export",
    "bulk_import",
    "consolidate",
    "dump_pkcs12",
    "load_pkcs12",
    "normalize_serial",
    "read_certificate_file",
    "recognise",
    "roles_for_stores",
]
