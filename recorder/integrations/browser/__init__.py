"""Recorded Playwright pages for runs: ``run.new_page()`` and ``run.wrap(page)``.

Imported only when a run asks for a page; see :mod:`.page` for how steps are recorded,
:mod:`.checkpoint` for browser state, :mod:`.launch` for finding and sharing Chromium.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .launch import (
    BrowserNotFoundError,
    find_chromium,
    is_sync_playwright_loop,
    shutdown,
    shutdown_steps,
)
from .page import (
    BrowserReexecutionError,
    NavigationResult,
    PageState,
    RecordedLocator,
    RecordedPage,
    UnrecordedWarning,
)

if TYPE_CHECKING:
    from ...runtime import Run

__all__ = [
    "BrowserNotFoundError",
    "BrowserReexecutionError",
    "NavigationResult",
    "RecordedLocator",
    "RecordedPage",
    "UnrecordedWarning",
    "aclose_browser",
    "close_browser",
    "find_chromium",
    "new_page",
    "wrap",
]


def _next_index(run: Run) -> int:
    attempt = run._require_open()
    attempt.pages += 1
    return attempt.pages - 1


def new_page(run: Run, context_options: dict[str, Any]) -> Any:
    """See :meth:`recorder.Run.new_page`."""
    attempt = run._require_open()
    kind = "async" if attempt.entered_async or _in_event_loop() else "sync"
    page = RecordedPage(PageState(run, _next_index(run), kind, dict(context_options)))
    if kind == "sync":
        return page

    async def ready() -> RecordedPage:
        return page

    return ready()


def wrap(run: Run, page: Any) -> RecordedPage:
    """See :meth:`recorder.Run.wrap`."""
    module = type(page).__module__
    if not module.startswith("playwright."):
        raise TypeError(f"run.wrap() takes a Playwright page, not {type(page).__name__}")
    kind = "async" if "async_api" in module else "sync"
    state = PageState(run, _next_index(run), kind, {})
    state.real = page
    state.owned = False
    return RecordedPage(state)


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
