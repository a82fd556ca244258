"""Crash points: kill this process at a chosen point of the record path (for tests).

``RECORDER_CRASH_AT=point`` or ``point:n`` (read once, at import) makes the process
SIGKILL itself the n-th time (default 1st) it reaches ``point``. The points, in the
order a live step passes them:

- ``before_live``: a step is not recorded and is about to run live;
- ``before_intent`` / ``after_intent``: around the durable intent marker of an effect;
- ``after_effect``: an effect's function returned, its record is not written yet;
- ``before_write`` / ``after_write``: around the write of a step's record.

Unset (always, outside tests), every point costs one comparison.
"""

from __future__ import annotations

import os
import signal
import sys

from .errors import ConfigError

__all__ = ["POINTS", "reach"]

POINTS = (
    "before_live", "before_intent", "after_intent", "after_effect", "before_write", "after_write",
)  # fmt: skip


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS or (count and not count.isdigit()) or count == "0":
        raise ConfigError(
            f"RECORDER_CRASH_AT={spec!r} is not a crash point; use POINT or POINT:N (N >= 1) "
            f"with POINT one of {', '.join(POINTS)}."
        )
    return point, int(count or 1)


_target = _parse(os.environ.get("RECORDER_CRASH_AT"))
_seen = 0


def reach(point: str) -> None:
    """The record path passes ``point``: die here if this is the chosen crash."""
    global _seen
    if _target is None or _target[0] != point:
        return
    _seen += 1
    if _seen == _target[1]:
        print(f"CRASH {point}:{_seen}", flush=True)
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
