"""The TVS server: pure request handling and the Trio TLS adapter.

``handle_request`` (message + cache -> response + facts) is sans-I/O; ``TvsServer`` /
``serve_tvs`` serve it over TLS with limits, reload and graceful shutdown; ``run_workers``
shares the port between processes; ``configure_logging`` sets the console/json/cucm formats.
"""

from __future__ import annotations

from .config import DEFAULT_PORT, TvsServerConfig
from .cucmlog import CucmRenderer
from .handler import HandlerResult, Lookup, handle_request
from .logsetup import LOG_FORMATS, configure_logging
from .observer import NullObserver, ServerObserver
from .tls_server import TvsServer, serve_tvs, serve_until_signalled
from .workers import run_workers

__all__ = [
    "DEFAULT_PORT",
    "LOG_FORMATS",
    "CucmRenderer",
    "HandlerResult",
    "Lookup",
    "NullObserver",
    "ServerObserver",
    "TvsServer",
    "TvsServerConfig",
    "configure_logging",
    "handle_request",
    "run_workers",
    "serve_tvs",
    "serve_until_signalled",
]
