"""Errors of the lab PKI layer (recipe reading, generation, loading a generated directory)."""

from __future__ import annotations

__all__ = ["PkiError", "RecipeError"]


class PkiError(Exception):
    """The lab PKI could not be generated or loaded (unreadable directory, corrupt key, ...)."""


class RecipeError(PkiError, ValueError):
    """A recipe is not valid TOML or does not describe a usable lab; the message says where."""
