"""Exception groups (what a Trio nursery raises): the one way to find the error inside.

:func:`first_error` is the first leaf of the given kinds, depth first; :func:`leaves` every
leaf in order. Commands report the first error as one line (:mod:`tvs.cli.common`); the
cluster names the listener that could not bind; the lab run re-raises its single error. Pure.
"""

from __future__ import annotations

__all__ = ["first_error", "leaves"]


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc`` (nested groups flattened), or ``[exc]``."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    out: list[BaseException] = []
    for inner in exc.exceptions:
        out += leaves(inner)
    return out


def first_error(
    exc: BaseException, kinds: tuple[type[BaseException], ...] = (Exception,)
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside (nested) exception groups
    depth first; None when there is none."""
    return next((e for e in leaves(exc) if isinstance(e, kinds)), None)
