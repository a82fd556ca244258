"""Recorded Playwright pages for runs: ``run.new_page()`` and ``run.wrap(page)``.

Imported only when a run asks for a page (or for :class:`~.options.Browser`): see
:mod:`.page` for how steps are recorded and how a page goes live, :mod:`.objects` for
what the program holds, :mod:`.events` for dialogs, popups and downloads,
:mod:`.assertions` for Playwright's ``expect``, :mod:`.checkpoint` for browser state,
:mod:`.launch` for finding and sharing Chromium.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .events import RecordedDialog, RecordedDownload, RecordedExpectation
from .launch import (
    BrowserNotFoundError,
    find_chromium,
    is_sync_playwright_loop,
    shutdown,
    shutdown_steps,
)
from .objects import RecordedContext, RecordedFrame, RecordedLocator, RecordedPage
from .options import Browser, BrowserResume, Screenshots
from .page import BrowserReexecutionError, NavigationResult, UnrecordedWarning

if TYPE_CHECKING:
    from ...runtime import Run

__all__ = [
    "Browser",
    "BrowserNotFoundError",
    "BrowserReexecutionError",
    "BrowserResume",
    "NavigationResult",
    "RecordedContext",
    "RecordedDialog",
    "RecordedDownload",
    "RecordedExpectation",
    "RecordedFrame",
    "RecordedLocator",
    "RecordedPage",
    "Screenshots",
    "UnrecordedWarning",
    "aclose_browser",
    "close_browser",
    "find_chromium",
    "new_page",
    "wrap",
]


def new_page(run: Run, context_options: dict[str, Any]) -> Any:
    """See :meth:`recorder.Run.new_page`."""
    from . import assertions, objects

    attempt = run._require_open()
    kind = "async" if attempt.entered_async or _in_event_loop() else "sync"
    assertions.install()
    page = objects.new_page(run, context_options, kind)
    return page if kind == "sync" else _ready(page)


async def _ready(page: RecordedPage) -> RecordedPage:
    return page


def wrap(run: Run, page: Any) -> RecordedPage:
    """See :meth:`recorder.Run.wrap`."""
    from . import assertions, objects

    module = type(page).__module__
    if not module.startswith("playwright."):
        raise TypeError(f"run.wrap() takes a Playwright page, not {type(page).__name__}")
    assertions.install()
    return objects.wrap(run, page, "async" if "async_api" in module else "sync")


def _in_event_loop() -> bool:
    """Whether the caller runs inside an asyncio event loop, not counting the loop
    Playwright's sync API keeps running under its greenlets."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return not is_sync_playwright_loop(loop)


def close_browser() -> None:
    """Close the browser shared by sync-API pages in this process."""
    shutdown()


async def aclose_browser() -> None:
    """Close the browser shared by async-API pages in this process."""
    from .drive import drive_async

    await drive_async(shutdown_steps("async"))
