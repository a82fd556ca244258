"""Warnings that point at the program's own line, not at the recorder's.

A recorder warning is raised deep inside an integration (a litellm hook, a browser
step's generator run by a driver), where no fixed ``stacklevel`` reaches the caller's
code. :func:`warn_at_caller` walks out of the recorder's modules (and the libraries it
calls through) to the first frame of the program and warns there, so that a notebook
shows the cell's line and Python's once-per-location filter works per call site.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["caller", "warn_at_caller"]

_INSIDE = ("recorder.", "litellm", "openai", "httpx", "playwright", "asyncio", "greenlet",
           "contextlib", "tenacity")  # fmt: skip


def caller() -> tuple[str, int, str | None]:
    """File, line and module of the first frame outside the recorder and the libraries
    it calls through."""
    frame = sys._getframe(1)
    while frame.f_back is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not (module == "recorder" or module.startswith(_INSIDE)):
            break
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals.get("__name__")


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the program's line."""
    filename, lineno, module = caller()
    warnings.warn_explicit(message, category, filename, lineno, module=module)
