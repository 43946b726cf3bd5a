"""HTTP file service on TCP 6970, as CUCM runs beside TFTP for newer phone firmware.

Serves exactly what a TFTP file provider serves (the same provider object and contract, see
``tvs.tftp.providers``) with CUCM's response headers. ``policy`` holds the pure decisions
(limits, path rules, replies), ``server`` the Trio adapter on h11.
"""

from .policy import CUCM_MAX_CONNECTIONS, DEFAULT_HTTP_PORT, HttpLimits, Reply, route
from .server import HttpObserver, HttpServer, HttpServerStats, serve_http

__all__ = [
    "CUCM_MAX_CONNECTIONS",
    "DEFAULT_HTTP_PORT",
    "HttpLimits",
    "HttpObserver",
    "HttpServer",
    "HttpServerStats",
    "Reply",
    "route",
    "serve_http",
]
