"""Named crash points for the kill-and-restart tests.

`crashpoint("oracle:trained")` does nothing unless $DGPT_CRASH_AT names that point, in which case
the process dies on the spot (os._exit, like a kill: no cleanup runs). Tests in one process may
arm a point with `arm()`, which raises Crash instead.
"""

from __future__ import annotations

import os

_armed: str | None = None


class Crash(BaseException):
    """Raised at an armed crash point (BaseException: nothing in the roles may catch it)."""


def arm(point: str | None) -> None:
    global _armed
    _armed = point


def crashpoint(point: str) -> None:
    global _armed
    if os.environ.get("DGPT_CRASH_AT") == point:
        os._exit(137)
    if _armed == point:
        _armed = None  # one crash per arming: the restarted role runs through
        raise Crash(point)
