"""Agents that use Playwright's event-driven surface, for ``test_browser_events.py``.

Each scenario is plain Playwright code on a recorded page (async and sync API), with
``mark(n)`` calls where the test stops an attempt with an exception or SIGKILLs the
process. Run one in a process of its own::

    python -m tests.integration.event_agents SCENARIO async|sync STORE SITE_URL

with ``STOP_AT=n`` (raise at mark n) or ``KILL_AT=n`` (SIGKILL at mark n); it prints
``RESULT <json>``, ``LAUNCHES <n>`` (Chromium launches in the process) and ``LIVE <n>``
(steps that ran live), or exits 3 after printing ``STOPPED``.

The part of a scenario after a mark depends only on state a checkpoint holds (URL,
cookies, storage, the server's state) and on in-page steps a restore runs again
(inputs, ``evaluate``): what a click changed inside a page is not rebuilt.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.async_api import expect as aexpect
from playwright.sync_api import expect as sexpect

import recorder
from recorder.integrations.browser import aclose_browser, close_browser, launch

Mark = Callable[[int], None]


class Stop(Exception):
    """Raised at the mark named by STOP_AT."""


# -- async scenarios -------------------------------------------------------------------


async def popup_link(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/popups")
    mark(1)
    async with page.expect_popup() as info:
        await page.click("#open-tab")
    popup = await info.value
    await popup.wait_for_load_state()
    origin = await popup.locator("#from").inner_text()
    mark(2)
    await popup.click("#confirm-popup")
    return [origin, await popup.locator("#done").inner_text(), popup.url.rsplit("/", 1)[-1]]


async def window_open(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/popups")
    async with page.context.expect_page() as info:
        await page.click("#open-window")
    popup = await info.value
    await popup.wait_for_load_state()
    mark(1)
    origin = await popup.locator("#from").inner_text()
    mark(2)
    await popup.get_by_role("button", name="Confirm").click()
    return [origin, await popup.locator("#done").inner_text(), len(page.context.pages)]


async def dialogs(page: Any, site: str, mark: Mark) -> Any:
    seen: list[list[str]] = []

    async def on_dialog(dialog: Any) -> None:
        seen.append([dialog.type, dialog.message])
        if dialog.type == "prompt":
            await dialog.accept("Ada")
        elif dialog.type == "confirm" and dialog.message != "Really delete?":
            await dialog.dismiss()
        else:
            await dialog.accept()

    page.on("dialog", on_dialog)
    await page.goto(site + "/dialogs")
    await page.click("#alert")
    await page.click("#confirm")
    shown = [await page.locator(f"#{n}-result").inner_text() for n in ("alert", "confirm")]
    mark(1)
    await page.click("#prompt")
    await page.click("#delete")
    await aexpect(page.locator("#delete-result")).to_have_text(re.compile("deleted"))
    shown += [await page.locator(f"#{n}-result").inner_text() for n in ("prompt", "delete")]
    mark(2)
    await page.goto(site + "/dialogs")
    await page.click("#confirm")
    return [seen, shown, await page.locator("#confirm-result").inner_text()]


async def frames(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/frames")
    frame = page.frame_locator("#inner")
    await frame.locator("#frame-name").fill("Ada")
    mark(1)
    await frame.locator("#frame-go").click()
    greeting = await frame.locator("#frame-greeting").inner_text()
    await frame.get_by_role("button", name="Order").click()
    await aexpect(frame.locator("#frame-order-result")).to_have_text(re.compile("ordered"))
    mark(2)
    await page.goto(site + "/frames")
    inner = page.frame(name="inner")
    await inner.fill("#frame-name", "Bob")
    names = [f.name for f in page.frames]
    return [greeting, await inner.input_value("#frame-name"), names]


async def downloads(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/downloads")
    async with page.expect_download() as info:
        await page.click("#report")
    report = await info.value
    target = Path(tempfile.mkdtemp()) / report.suggested_filename
    await report.save_as(target)
    mark(1)
    async with page.expect_download() as info:
        await page.click("#report-js")
    made = await info.value
    made_text = Path(await made.path()).read_text()
    mark(2)
    await page.goto(site + "/downloads")
    return [report.suggested_filename, target.read_text(), made.suggested_filename, made_text]


async def waits(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/late?delay_ms=300")
    await aexpect(page.locator("#late")).to_be_visible()
    await aexpect(page.locator("#late")).to_have_text("I arrived late")
    try:
        await aexpect(page.locator("#late")).to_have_text("nope", timeout=300)
        failed = "passed"
    except AssertionError as error:
        failed = "nope" in str(error) and "failed"
    mark(1)
    found = await page.wait_for_selector("#late")
    await found.click()
    await aexpect(page.locator("#late-result")).to_have_text("clicked late")
    await page.locator("#late-result").wait_for()
    mark(2)
    await page.goto(site + "/clock")
    await page.wait_for_timeout(150)
    ticking = "() => Number(document.querySelector('#ticks').textContent) > 0"
    handle = await page.wait_for_function(ticking)
    await aexpect(page).to_have_url(re.compile("/clock$"))
    return [failed, await handle.json_value()]


async def devices(page: Any, site: str, mark: Mark) -> Any:
    await page.goto(site + "/canvas")
    await page.mouse.click(10, 20)
    mark(1)
    await page.mouse.click(30, 40)
    await page.locator("#typed").click()
    await page.keyboard.type("ab")
    await page.keyboard.press("Enter")
    keys = await page.locator("#keys").inner_text()
    mark(2)
    await page.mouse.move(5, 5)
    await page.mouse.click(50, 60)
    return [keys]


async def route(page: Any, site: str, mark: Mark) -> Any:
    async def fulfil(handled: Any) -> None:
        await handled.fulfill(status=200, content_type="text/html", body="<h1 id=r>routed</h1>")

    await page.route("**/routed-page", fulfil)
    await page.goto(site + "/routed-page")
    text = await page.locator("#r").inner_text()
    mark(1)
    await page.goto(site + "/popups")
    mark(2)
    return [text, await page.title(), page.url.rsplit("/", 1)[-1]]


# -- sync scenarios ----------------------------------------------------------------------


def sync_popup_link(page: Any, site: str, mark: Mark) -> Any:
    page.goto(site + "/popups")
    mark(1)
    with page.expect_popup() as info:
        page.click("#open-tab")
    popup = info.value
    popup.wait_for_load_state()
    origin = popup.locator("#from").inner_text()
    mark(2)
    popup.click("#confirm-popup")
    return [origin, popup.locator("#done").inner_text(), popup.url.rsplit("/", 1)[-1]]


def sync_dialogs(page: Any, site: str, mark: Mark) -> Any:
    seen: list[list[str]] = []

    def on_dialog(dialog: Any) -> None:
        seen.append([dialog.type, dialog.message])
        if dialog.type == "prompt":
            dialog.accept("Ada")
        elif dialog.type == "confirm" and dialog.message != "Really delete?":
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", on_dialog)
    page.goto(site + "/dialogs")
    page.click("#alert")
    page.click("#confirm")
    shown = [page.locator(f"#{n}-result").inner_text() for n in ("alert", "confirm")]
    mark(1)
    page.click("#prompt")
    page.click("#delete")
    sexpect(page.locator("#delete-result")).to_have_text(re.compile("deleted"))
    shown += [page.locator(f"#{n}-result").inner_text() for n in ("prompt", "delete")]
    mark(2)
    page.goto(site + "/dialogs")
    page.click("#confirm")
    return [seen, shown, page.locator("#confirm-result").inner_text()]


def sync_downloads(page: Any, site: str, mark: Mark) -> Any:
    page.goto(site + "/downloads")
    with page.expect_download() as info:
        page.click("#report")
    report = info.value
    target = Path(tempfile.mkdtemp()) / report.suggested_filename
    report.save_as(target)
    mark(1)
    with page.expect_download() as info:
        page.click("#report-js")
    made = info.value
    made_text = Path(made.path()).read_text()
    mark(2)
    page.goto(site + "/downloads")
    return [report.suggested_filename, target.read_text(), made.suggested_filename, made_text]


def sync_frames_and_devices(page: Any, site: str, mark: Mark) -> Any:
    page.goto(site + "/frames")
    frame = page.frame_locator("#inner")
    frame.locator("#frame-name").fill("Ada")
    mark(1)
    frame.locator("#frame-go").click()
    greeting = frame.locator("#frame-greeting").inner_text()
    frame.get_by_role("button", name="Order").click()
    sexpect(frame.locator("#frame-order-result")).to_have_text(re.compile("ordered"))
    page.goto(site + "/canvas")
    page.mouse.click(10, 20)
    page.locator("#typed").click()
    page.keyboard.type("ab")
    keys = page.locator("#keys").inner_text()
    mark(2)
    page.mouse.click(30, 40)
    page.wait_for_timeout(50)
    return [greeting, keys]


SCENARIOS: dict[str, Any] = {
    "popup_link": popup_link,
    "window_open": window_open,
    "dialogs": dialogs,
    "frames": frames,
    "downloads": downloads,
    "waits": waits,
    "devices": devices,
    "route": route,
    "sync_popup_link": sync_popup_link,
    "sync_dialogs": sync_dialogs,
    "sync_downloads": sync_downloads,
    "sync_frames_and_devices": sync_frames_and_devices,
}


def _mark(n: int) -> None:
    if os.environ.get("STOP_AT") == str(n):
        raise Stop(f"stopped at mark {n}")
    if os.environ.get("KILL_AT") == str(n):
        os.kill(os.getpid(), signal.SIGKILL)


async def _run_async(name: str, store: str, site: str) -> tuple[Any, int]:
    try:
        async with recorder.run(name, store=store, display=False) as run:
            page = await run.new_page()
            result = await SCENARIOS[name](page, site, _mark)
        return result, run.stats.live
    finally:
        await aclose_browser()


def _run_sync(name: str, store: str, site: str) -> tuple[Any, int]:
    try:
        with recorder.run(name, store=store, display=False) as run:
            page = run.new_page()
            result = SCENARIOS[name](page, site, _mark)
        return result, run.stats.live
    finally:
        close_browser()


def main(argv: list[str]) -> int:
    name, store, site = argv
    try:
        if name.startswith("sync_"):
            result, live = _run_sync(name, store, site)
        else:
            result, live = asyncio.run(_run_async(name, store, site))
    except Stop:
        print("STOPPED", flush=True)
        return 3
    print("RESULT", json.dumps(result), flush=True)
    print("LAUNCHES", launch.launches, flush=True)
    print("LIVE", live, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
