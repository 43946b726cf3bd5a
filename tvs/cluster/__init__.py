"""An emulated CUCM cluster: configuration, signed file generation, TVS + TFTP + SIP TLS listener.

:mod:`.config` reads the cluster's TOML; :mod:`.files` generates the CTL, ITL and phone
configuration (pure); :mod:`.sip` is the TLS listener standing for the secure SIP port;
:mod:`.cluster` runs everything on Trio (``EmulatedCluster``).
"""

from __future__ import annotations

from ..store import consolidate
from .cluster import ClusterStats, EmulatedCluster
from .config import (
    CLIENT_AUTH_MODES,
    DEFAULT_HTTP_PORT,
    DEFAULT_SIP_PORT,
    DEFAULT_TFTP_PORT,
    DEFAULT_TVS_PORT,
    DEFAULT_VERSION,
    DIGESTS,
    EXAMPLES,
    SECURITY_MODES,
    SIP_CLIENT_AUTH_DEFAULT,
    ClusterConfig,
    NodeConfig,
    example_text,
    parse_version,
)
from .errors import ClusterConfigError, ClusterError
from .files import (
    CTL_NAME,
    ITL_NAME,
    ClusterFiles,
    FileInputs,
    NodeEndpoint,
    build_config_sgn,
    build_config_xml,
    build_ctl,
    build_itl,
    ctl_records,
    ctl_signer,
    endpoints_from_config,
    itl_records,
    itl_signer,
)
from .sip import SipListener, SipStats

__all__ = [
    "CLIENT_AUTH_MODES",
    "CTL_NAME",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_SIP_PORT",
    "DEFAULT_TFTP_PORT",
    "DEFAULT_TVS_PORT",
    "DEFAULT_VERSION",
    "DIGESTS",
    "EXAMPLES",
    "ITL_NAME",
    "SECURITY_MODES",
    "SIP_CLIENT_AUTH_DEFAULT",
    "ClusterConfig",
    "ClusterConfigError",
    "ClusterError",
    "ClusterFiles",
    "ClusterStats",
    "EmulatedCluster",
    "FileInputs",
    "NodeConfig",
    "NodeEndpoint",
    "SipListener",
    "SipStats",
    "build_config_sgn",
    "build_config_xml",
    "build_ctl",
    "build_itl",
    "consolidate",
    "ctl_records",
    "ctl_signer",
    "endpoints_from_config",
    "example_text",
    "itl_records",
    "itl_signer",
    "parse_version",
]
