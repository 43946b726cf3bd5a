"""The project's one exit-code convention, used by every ``tvs`` and ``phone-emu`` command.

- ``OK`` (0): success; the thing checked is valid, the operation was done.
- ``INVALID`` (1): the thing checked is invalid, or the peer refused (TVS answered invalid, a
  signature does not verify, CAPF refused the enrollment, a migration left phones behind).
- ``ERROR`` (2): usage, input, environment or transport error (bad option, unreadable file,
  address in use, timeout, connection refused, protocol garbage).

Owns nothing else: commands decide which of the three applies, and say why in one line.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    OK = 0
    INVALID = 1
    ERROR = 2
