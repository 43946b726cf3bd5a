"""structlog configuration for the TVS server: ``console``, ``json`` or ``cucm`` output.

Events carry private fields (``_raw`` bytes, ``_message`` values) that only the ``cucm``
renderer uses; the other formats drop them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import structlog

from .cucmlog import CucmRenderer

__all__ = ["LOG_FORMATS", "configure_logging", "log_enabled"]

LOG_FORMATS = ("console", "json", "cucm")


def log_enabled(logger: Any, level: int) -> bool:
    """Whether ``logger`` (a structlog logger, bound or the lazy proxy) writes events of
    ``level`` (``logging.DEBUG``...): a busy server skips building a disabled event's fields.
    True when the configured wrapper cannot tell (not a filtering logger)."""
    check = getattr(logger, "is_enabled_for", None)
    return True if check is None else bool(check(level))


def _drop_private(logger: object, method_name: str, event_dict: Any) -> Any:
    for key in [k for k in event_dict if k.startswith("_")]:
        del event_dict[key]
    return event_dict


def _local_time(logger: object, method_name: str, event_dict: Any) -> Any:
    now = time.time()
    t = time.localtime(now)
    micros = int((now % 1) * 1_000_000)
    event_dict["timestamp"] = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d}"
    return event_dict


def _value(v: object) -> str:
    if isinstance(v, str):
        return repr(v) if (not v or any(c in v for c in " '\"=\n")) else v
    return str(v)


def _console_line(logger: object, method_name: str, event_dict: Any) -> str:
    """``HH:MM:SS.ffffff [level    ] event   key=value ...`` (ConsoleRenderer's look, several
    times cheaper: a busy server writes one of these per request)."""
    stamp = event_dict.pop("timestamp", "")
    level = event_dict.pop("level", method_name)
    event = str(event_dict.pop("event", ""))
    rest = " ".join(f"{k}={_value(event_dict[k])}" for k in sorted(event_dict))
    return f"{stamp} [{level:<9}] {event:<30} {rest}".rstrip()


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
        processors += [_drop_private, _local_time, _console_line]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
