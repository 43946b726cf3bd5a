"""HTTP file service on TCP 6970, as CUCM runs beside TFTP for newer phone firmware.

Serves exactly what a TFTP file provider serves (the same provider object and contract, see
``tvs.tftp.providers``) with CUCM's response headers. ``policy`` holds the pure decisions
(limits, path rules, replies), ``server`` the Trio adapter on h11, ``client`` the phone's
fetch (its own request bytes, h11 parsing the answer with bounds).
"""

from .client import http_get, phone_request
from .errors import (
    HttpConnectError,
    HttpError,
    HttpProtocolError,
    HttpStatusError,
    HttpTimeout,
    HttpTooLarge,
)
from .policy import CUCM_MAX_CONNECTIONS, DEFAULT_HTTP_PORT, HttpLimits, Reply, route
from .server import HttpObserver, HttpServer, HttpServerStats, serve_http

__all__ = [
    "CUCM_MAX_CONNECTIONS",
    "DEFAULT_HTTP_PORT",
    "HttpConnectError",
    "HttpError",
    "HttpLimits",
    "HttpObserver",
    "HttpProtocolError",
    "HttpServer",
    "HttpServerStats",
    "HttpStatusError",
    "HttpTimeout",
    "HttpTooLarge",
    "Reply",
    "http_get",
    "phone_request",
    "route",
    "serve_http",
]
