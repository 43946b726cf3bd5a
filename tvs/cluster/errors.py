"""The emulated cluster's errors: one hierarchy for configuration and runtime faults."""

from __future__ import annotations

__all__ = ["ClusterConfigError", "ClusterError"]


class ClusterError(Exception):
    """The emulated cluster cannot do what was asked (bad configuration, missing PKI, ...)."""


class ClusterConfigError(ClusterError, ValueError):
    """A cluster configuration (TOML or dict) is not valid; the message names the key."""
