"""The store layer's errors: one hierarchy under :class:`StoreError`."""

from __future__ import annotations

__all__ = ["StoreError", "StoreInputError", "StoreNotFoundError", "UnknownStoreError"]


class StoreError(Exception):
    """A trust store operation failed; the store on disk is unchanged."""


class UnknownStoreError(StoreError, KeyError):
    """A store name that is not one of the CUCM stores (or not importable)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown store"


class StoreInputError(StoreError, ValueError):
    """An input file is not a certificate, or a PKCS#12 password is wrong."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store directory, or the certificate to remove, does not exist."""
