"""structlog configuration for the TVS server: ``console``, ``json`` or ``cucm`` output.

Events carry private fields (``_raw`` bytes, ``_message`` values) that only the ``cucm``
renderer uses; the other formats drop them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from .cucmlog import CucmRenderer

__all__ = ["LOG_FORMATS", "configure_logging"]

LOG_FORMATS = ("console", "json", "cucm")


def _drop_private(logger: object, method_name: str, event_dict: Any) -> Any:
    for key in [k for k in event_dict if k.startswith("_")]:
        del event_dict[key]
    return event_dict


def configure_logging(
    fmt: str = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Set up structlog globally (the ``tvs serve`` process; tests use ``capture_logs``)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(LOG_FORMATS)})")
    out = stream or sys.stderr
    lvl = logging.DEBUG if fmt == "cucm" else getattr(logging, level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if fmt == "cucm":
        processors.append(CucmRenderer())
    elif fmt == "json":
        processors += [
            _drop_private,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            _drop_private,
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
