"""Finding Chromium, launching it once per process, and closing it.

One browser process is shared by every run and attempt in a process (a notebook
kernel); each attempt opens its own contexts and closes them when it ends. The
executable comes from, in order: the ``chromium=`` argument of ``recorder.run``,
``$RECORDER_CHROMIUM``, a Playwright-managed build, the system's ``chromium``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import glob
import os
import shutil
import signal
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, RecorderError
from .drive import Op

__all__ = ["LAUNCH_ARGS", "BrowserNotFoundError", "driver_pid", "find_chromium", "launch_steps",
           "shutdown"]  # fmt: skip

LAUNCH_ARGS = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
_SYSTEM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserNotFoundError(RecorderError):
    """No Chromium executable could be found."""


def managed_chromium() -> str | None:
    """The newest Playwright-managed Chromium (``playwright install chromium``), found
    in Playwright's browser cache without starting Playwright."""
    cache = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or os.path.expanduser(
        "~/.cache/ms-playwright"
    )
    for pattern in (
        "chromium-*/chrome-linux*/chrome",
        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
        "chromium_headless_shell-*/chrome-*/headless_shell",
    ):
        found = sorted(glob.glob(os.path.join(cache, pattern)))
        if found:
            return found[-1]
    return None


def find_chromium(explicit: str | None = None, *, managed: str | None = None) -> str:
    """The Chromium executable to launch (see the module docstring for the order).

    ``managed`` is the path Playwright reports for its own build, if any (else its
    browser cache is searched).
    """
    managed = managed or managed_chromium()
    for source, path in (
        ("chromium=", explicit),
        ("RECORDER_CHROMIUM", os.environ.get("RECORDER_CHROMIUM")),
    ):
        if path:
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise ConfigError(f"{source} names {path!r}, which is not an executable file.")
            return path
    if managed and os.path.isfile(managed) and os.access(managed, os.X_OK):
        return managed
    for name in _SYSTEM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFoundError(
        "no Chromium found. Install one: `playwright install chromium` (downloads "
        "Playwright's build), or `sudo apt-get install chromium` on Debian/Ubuntu; or point "
        "RECORDER_CHROMIUM (or recorder.run(..., chromium=PATH)) at an executable."
    )


def launch_args() -> list[str]:
    args = list(LAUNCH_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return args


@dataclass
class _Shared:
    """A started Playwright and its browser, for one API kind (and one event loop)."""

    playwright: Any
    browser: Any
    executable: str
    headless: bool
    loop: Any = None


_lock = threading.Lock()
_shared: dict[str, _Shared] = {}
_launching: dict[Any, Any] = {}
"""A future per event loop while a launch for it is under way."""
launches = 0
"""How many times this process launched Chromium (tests read it: a replay launches none)."""


def _running_loop() -> Any:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def is_sync_playwright_loop(loop: Any) -> bool:
    """Whether ``loop`` is the one Playwright's sync API runs for the shared browser."""
    with _lock:
        shared = _shared.get("sync")
    return shared is not None and shared.loop is not None and shared.loop is loop


def _usable(shared: _Shared, kind: str) -> bool:
    if kind == "async":
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if shared.loop is not loop:
            return False
    try:
        return bool(shared.browser.is_connected())
    except Exception:
        return False


def launch_steps(
    kind: str, starter: Any, *, chromium: str | None, headless: bool
) -> Generator[Op, Any, Any]:
    """Steps that return the shared browser for ``kind`` ("sync" or "async"),
    launching it when there is none yet (or it belongs to a closed event loop).

    Pages of one event loop that go live at the same moment share one launch: the
    first launches, the others wait for it (one Chromium per process)."""
    loop = _running_loop() if kind == "async" else None
    if loop is not None:
        launching = _launching.get(loop)
        while launching is not None:
            yield functools.partial(asyncio.shield, launching)
            launching = _launching.get(loop)
        _launching[loop] = loop.create_future()
    try:
        return (yield from _launch_steps(kind, starter, chromium=chromium, headless=headless))
    finally:
        if loop is not None:
            done = _launching.pop(loop)
            done.set_result(None)


def _launch_steps(
    kind: str, starter: Any, *, chromium: str | None, headless: bool
) -> Generator[Op, Any, Any]:
    with _lock:
        shared = _shared.get(kind)
    if (
        shared is not None
        and _usable(shared, kind)
        and shared.headless == headless
        and chromium in (None, shared.executable)
    ):
        return shared.browser
    if shared is not None:
        yield from _stop_steps(kind, shared)
    playwright = yield starter
    try:
        managed = None
        with contextlib.suppress(Exception):
            managed = playwright.chromium.executable_path
        executable = find_chromium(chromium, managed=managed)
        browser = yield lambda: playwright.chromium.launch(
            executable_path=executable, headless=headless, args=launch_args()
        )
    except BaseException:
        yield playwright.stop
        raise
    # The async API's browser belongs to the caller's loop; the sync API runs a loop of
    # its own, which then looks like a running loop to code in the main thread.
    loop = asyncio.get_running_loop() if kind == "async" else _running_loop()
    global launches
    with _lock:
        launches += 1
        _shared[kind] = _Shared(playwright, browser, executable, headless, loop)
    return browser


def _stop_steps(kind: str, shared: _Shared) -> Generator[Op, Any, None]:
    with _lock:
        if _shared.get(kind) is shared:
            del _shared[kind]
    if kind == "async" and not _usable_loop(shared):
        if shared.loop is None or shared.loop.is_closed() or not shared.loop.is_running():
            _kill_driver(shared)  # else its loop runs in another thread, which still uses it
        return
    with contextlib.suppress(Exception):
        yield shared.browser.close
    with contextlib.suppress(Exception):
        yield shared.playwright.stop


def _usable_loop(shared: _Shared) -> bool:
    try:
        return asyncio.get_running_loop() is shared.loop and not shared.loop.is_closed()
    except RuntimeError:
        return False


def driver_pid(playwright: Any) -> int | None:
    """The process id of the Playwright driver (Node.js) behind ``playwright``, found
    where Playwright's Python package keeps its pipe: on the client that ``stop``
    belongs to (1.5x and later), or on the connection (earlier)."""
    holders = [
        getattr(getattr(playwright, "_impl_obj", None), "_connection", None),
        getattr(getattr(playwright.stop, "__self__", None), "_client", None),
    ]
    for holder in holders:
        process = getattr(getattr(holder, "_transport", None), "_proc", None)
        if process is not None and process.returncode is None:
            return int(process.pid)
    return None


def _kill_driver(shared: _Shared) -> None:
    """The browser's event loop is gone: end its driver process (Chromium exits
    when the driver's pipe closes)."""
    pid = driver_pid(shared.playwright)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))


def shutdown_steps(kind: str) -> Generator[Op, Any, None]:
    with _lock:
        shared = _shared.get(kind)
    if shared is not None:
        yield from _stop_steps(kind, shared)


def shutdown() -> None:
    """Close the sync API's shared browser (registered with atexit)."""
    from .drive import drive_sync

    drive_sync(shutdown_steps("sync"))


atexit.register(shutdown)
