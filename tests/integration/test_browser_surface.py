"""The recorded Playwright surface, end to end, against the fixture site and a real Chromium.

Most tests record a run live, then run the same code again in a new attempt and check
what the recorder promises: the same values, no request to the site, no browser launch;
keys that follow each page's history; trace columns and screenshots; unrecorded methods
that reach the real page; ``run.wrap``; the sync API; secrets that stay in the store's
database; ``browser_resume="reexecute"``; and no leaked Chromium processes.

Async tests share the module's event loop, so one Chromium launch serves several tests
(a launch costs about two seconds). A test that needs "no browser is running" closes it
itself, and sits right after a test that closed it, only to save launches. The sync
tests come last: while the sync API's browser runs, Playwright marks its own loop as
running in the main thread, which would stop pytest-asyncio from running the module's
loop; each sync test closes that browser. One FixtureSite serves the module, with its
counters zeroed before each test.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import json
import os
import re
import stat
import subprocess
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
from playwright.async_api import Page as AsyncPage
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from playwright.async_api import async_playwright
from playwright.sync_api import Page as SyncPage

import recorder
from fixtures.site import CATALOGUE, PASSWORD, PER_PAGE, FixtureSite
from recorder.export import write_frame
from recorder.integrations.browser import (
    BrowserReexecutionError,
    NavigationResult,
    RecordedPage,
    UnrecordedWarning,
    aclose_browser,
    close_browser,
    launch,
)
from recorder.integrations.browser.launch import find_chromium, launch_args

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# The test command installs a browser: a missing one fails here, saying how to get one,
# rather than skipping the module.
CHROMIUM = find_chromium()
LAUNCH_ARGS = launch_args()
REPO = Path(__file__).resolve().parents[2]
RECORDER_CLI = REPO / ".venv" / "bin" / "recorder"
EMAIL = "ada@example.com"
PNG = b"\x89PNG\r\n\x1a\n"
SHORT = 250
"""Milliseconds for an element that must be missing."""
PATIENT = 15_000
"""Milliseconds for an element that must be there (a slow CI machine is not a failure)."""
"""Milliseconds: the timeout of steps that are expected to fail."""

# Async tests run on the module's event loop, the one the shared browser lives on.
on_module_loop = pytest.mark.asyncio(loop_scope="module")


Scenario = Callable[[Any], Awaitable[Any]]


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_site() -> Iterator[FixtureSite]:
    with FixtureSite() as site:
        yield site


@pytest.fixture
def site(shared_site: FixtureSite) -> FixtureSite:
    """The module's site with its counters zeroed."""
    shared_site.reset()
    return shared_site


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser_closed_at_end() -> AsyncIterator[None]:
    """Close the async API's shared browser when the module's tests are done."""
    yield
    await aclose_browser()


@pytest.fixture
def aio(browser_closed_at_end: None) -> None:
    """Requested by every async test: the shared browser is closed after the module."""


# -- helpers -----------------------------------------------------------------------------


def last_attempt(store_dir: Path, name: str) -> pd.DataFrame:
    """The trace rows of the run's last attempt."""
    frame = recorder.load(name, store=store_dir).to_dataframe()
    return frame[frame["attempt"] == frame["attempt"].max()].reset_index(drop=True)


async def live_then_replay(
    scenario: Scenario,
    site: FixtureSite,
    store_dir: Path,
    name: str,
    *,
    fresh_browser: bool = False,
    **options: Any,
) -> tuple[Any, Any]:
    """Run ``scenario`` on a recorded page live, then again in a new attempt, which must
    replay every step: no request to the site, no Chromium launch, no live step, and a
    page that never started. With ``fresh_browser`` the shared browser is closed before
    the replay, so that a replay needing one would have to launch it (each launch costs
    about two seconds, so most tests rely on the page never starting instead)."""
    async with recorder.run(name, store=store_dir, **options) as run:
        page = await run.new_page()
        live = await scenario(page)
        recorded = run.stats.live
    assert recorded > 0
    if fresh_browser:
        await aclose_browser()
    requests, launches = site.requests, launch.launches
    async with recorder.run(name, store=store_dir, **options) as run:
        page = await run.new_page()
        replayed = await scenario(page)
        stats = run.stats
    assert site.requests == requests, "the replay sent requests to the site"
    assert launch.launches == launches, "the replay launched Chromium"
    assert (stats.live, stats.failed, stats.replayed) == (0, 0, recorded)
    assert "not started" in repr(page)
    assert set(last_attempt(store_dir, name)["status"]) == {"replayed"}
    return live, replayed


async def sign_in(page: Any, site: FixtureSite, email: str = EMAIL) -> None:
    await page.goto(site.url + "/login")
    await page.get_by_label("Email").fill(email)
    await page.fill("#password", PASSWORD)
    await page.locator("#sign-in").click()


def chromium_processes(marker: str) -> int:
    """Live (not zombie) processes whose command line names chromium and that belong to
    a browser launched with ``marker`` in its environment: the marked processes (the
    browser, and its crash handlers even once orphaned) and their descendants (zygotes,
    GPU, utility and renderer processes, which Chromium starts with another environment).
    Chromium processes of other sessions on the machine are not counted."""
    table: dict[int, tuple[int, bool, bool, bool]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        base = Path("/proc") / entry
        try:
            cmdline = (base / "cmdline").read_bytes()
            environ = (base / "environ").read_bytes()
            status = dict(line.split(":", 1) for line in (base / "status").read_text().splitlines())
        except (OSError, ValueError):
            continue
        table[int(entry)] = (
            int(status["PPid"]),
            b"chromium" in cmdline,
            marker.encode() in environ,
            status["State"].split()[0] == "Z",
        )

    def marked(pid: int) -> bool:
        seen = set()
        while pid in table and pid not in seen:
            seen.add(pid)
            parent, _, has_marker, _ = table[pid]
            if has_marker:
                return True
            pid = parent
        return False

    return sum(
        1
        for pid, (_, chromium, _, zombie) in table.items()
        if chromium and not zombie and marked(pid)
    )


async def settle(marker: str, want: Callable[[int], bool], timeout: float = 5.0) -> int:
    """Poll the process count until ``want(count)`` (processes exit asynchronously)."""
    deadline = time.monotonic() + timeout
    count = chromium_processes(marker)
    while not want(count) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = chromium_processes(marker)
    return count


# -- replaying every recorded method: same values, nothing sent, nothing launched ----------


@on_module_loop
async def test_navigation_methods_replay_their_values(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """goto, reload, go_back, go_forward, wait_for_url, wait_for_load_state and the url
    property return the same values replayed, with no request and no launch (the
    browser is closed before the replay, so a replay needing one would launch it)."""
    search, item = site.url + "/search?q=paris", site.url + "/item/1"

    async def scenario(page: Any) -> dict[str, Any]:
        return {
            "goto": await page.goto(search),
            "url after goto": page.url,
            "goto again": await page.goto(item),
            "go_back": await page.go_back(),
            "url after go_back": page.url,
            "go_forward": await page.go_forward(),
            "reload": await page.reload(),
            "wait_for_load_state": await page.wait_for_load_state("domcontentloaded"),
            "wait_for_url": await page.wait_for_url(re.compile(r".*/item/1$")),
            "url": page.url,
        }

    live, replayed = await live_then_replay(
        scenario, site, store_dir, "navigation", fresh_browser=True
    )
    assert replayed == live
    assert replayed == {
        "goto": NavigationResult(search, 200, True, "OK"),
        "url after goto": search,
        "goto again": NavigationResult(item, 200, True, "OK"),
        "go_back": NavigationResult(search, 200, True, "OK"),
        "url after go_back": search,
        "go_forward": NavigationResult(item, 200, True, "OK"),
        "reload": NavigationResult(item, 200, True, "OK"),
        "wait_for_load_state": None,
        "wait_for_url": None,
        "url": item,
    }


# -- Chromium processes (runs while no browser is up, after the test above) ----------------


@on_module_loop
async def test_interrupted_reruns_leak_no_chromium(
    aio: None, site: FixtureSite, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-running an interrupted run five times (each interrupted after one live step)
    leaves no more live Chromium processes than the first run; closing the browser
    brings the count back to where it started."""
    await aclose_browser()
    marker = f"RECORDER_SURFACE_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    monkeypatch.setenv(key, value)  # inherited by the driver and Chromium launched below
    start = await settle(marker, lambda n: n == 0)
    assert start == 0

    async def attempt() -> None:
        async with recorder.run("procs", store=store_dir) as run:
            page = await run.new_page()
            await page.goto(site.url + "/search")
            for word in ("paris", "rome", "berlin", "madrid", "lisbon", "vienna"):
                before = run.stats.live
                await page.locator("#q").fill(word)
                if run.stats.live > before:
                    raise KeyboardInterrupt

    counts: list[int] = []
    for _ in range(6):
        with pytest.raises(KeyboardInterrupt):
            await attempt()
        counts.append(chromium_processes(marker))
    first = counts[0]
    assert first > 0
    after = await settle(marker, lambda n: n <= first)
    assert after <= first, counts
    trace = last_attempt(store_dir, "procs")
    assert trace["status"].tolist() == ["replayed"] * 6 + ["live"]
    await aclose_browser()
    assert await settle(marker, lambda n: n == start) == start


@on_module_loop
async def test_pages_going_live_at_once_share_one_chromium(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """Eight pages whose first live steps run at the same moment start one Chromium,
    and every context (with its popups) is closed when the attempt ends."""
    await aclose_browser()
    before = launch.launches
    async with recorder.run("many", store=store_dir) as run:
        pages = [await run.new_page() for _ in range(8)]
        await asyncio.gather(*(page.goto(site.url + "/popups") for page in pages))
        async with pages[0].expect_popup() as info:
            await pages[0].click("#open-tab")
        popup = await info.value
        await popup.wait_for_load_state()
        browser = launch._shared["async"].browser
        assert len(browser.contexts) == 8
    assert launch.launches == before + 1
    assert browser.contexts == []
    assert popup.is_closed()
    await aclose_browser()


# -- unwrap (runs while no browser is up, after the test above) ----------------------------


@on_module_loop
async def test_unwrap_starts_the_browser_and_returns_the_real_page(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """``await page.unwrap()`` launches Chromium when none runs and returns the real
    Playwright page, which the recorded page then follows."""
    await aclose_browser()
    launches = launch.launches
    async with recorder.run("unwrap", store=store_dir) as run:
        page = await run.new_page()
        assert "not started" in repr(page)
        real = await page.unwrap()
        assert isinstance(real, AsyncPage)
        assert launch.launches == launches + 1
        await real.goto(site.url + "/item/2")
        assert page.url == site.url + "/item/2"
        assert await page.locator("#title").inner_text() == CATALOGUE[1].title
        assert await page.unwrap() is real


# -- replaying every recorded method, continued --------------------------------------------


@on_module_loop
async def test_text_input_actions_replay(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """fill, type and press, on locators and on the page, replay their results (and the
    reads that see their effect) with no request and no launch."""

    async def scenario(page: Any) -> list[Any]:
        await page.goto(site.url + "/keyboard")
        field = page.locator("#key-input")
        out = [
            await field.fill("hello"),
            await field.type(" world"),
            await field.press("Enter"),
            await page.locator("#typed").inner_text(),
            await page.fill("#key-input", "again"),
            await page.type("#key-input", "!"),
            await page.press("#key-input", "Enter"),
            await page.inner_text("#typed"),
        ]
        return out

    live, replayed = await live_then_replay(scenario, site, store_dir, "text-input")
    assert replayed == live
    assert replayed == [None] * 3 + ["You typed: hello world"] + [None] * 3 + ["You typed: again!"]


@on_module_loop
async def test_pointer_actions_replay(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """click, dblclick, hover, locator.drag_to and page.drag_and_drop, on locators and
    on the page, replay with the reads that see their effects, with no request and no
    launch."""

    async def scenario(page: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        await page.goto(site.url + "/search")
        await page.locator("#q").fill("rome")
        out["locator.click"] = await page.locator("#search").click()
        out["url after locator.click"] = page.url
        out["page.click"] = await page.click("#next")
        out["url after page.click"] = page.url
        await page.goto(site.url + "/dblclick")
        out["locator.dblclick"] = await page.get_by_test_id("dbl-target").dblclick()
        out["page.dblclick"] = await page.dblclick("#dbl-target")
        out["dbl-status"] = await page.locator("#dbl-status").inner_text()
        await page.goto(site.url + "/hover")
        out["revealed before hover"] = await page.is_visible("#hover-reveal")
        out["hover"] = await page.get_by_test_id("hover-target").hover()
        out["revealed after hover"] = await page.is_visible("#hover-reveal")
        await page.goto(site.url + "/drag")
        target = page.get_by_test_id("drop-target")
        out["drag_to"] = await page.get_by_test_id("drag-source").drag_to(target)
        out["status after drag_to"] = await page.locator("#drag-status").inner_text()
        await page.reload()
        out["drag_and_drop"] = await page.drag_and_drop("#drag-source", "#drop-target")
        out["status after drag_and_drop"] = await page.text_content("#drag-status")
        return out

    live, replayed = await live_then_replay(scenario, site, store_dir, "pointer")
    assert replayed == live
    assert replayed == {
        "locator.click": None,
        "url after locator.click": site.url + "/search?q=rome",
        "page.click": None,
        "url after page.click": site.url + "/search?q=rome&page=2",
        "locator.dblclick": None,
        "page.dblclick": None,
        "dbl-status": "Double-clicked 2 times",
        "revealed before hover": False,
        "hover": None,
        "revealed after hover": True,
        "drag_to": None,
        "status after drag_to": "Dropped drag-source",
        "drag_and_drop": None,
        "status after drag_and_drop": "Dropped drag-source",
    }


@on_module_loop
async def test_form_control_actions_replay(
    aio: None, site: FixtureSite, store_dir: Path, tmp_path: Path
) -> None:
    """check, uncheck, select_option and set_input_files (a real temporary file, as a
    str and as a Path), on locators and on the page, replay their results and the reads
    that see them (is_checked, input_value) with no request and no launch."""
    upload = tmp_path / "ticket.txt"
    upload.write_text("boarding pass")

    async def scenario(page: Any) -> dict[str, Any]:
        await page.goto(site.url + "/order/1")
        terms = page.locator("#terms")
        return {
            "locator.select_option": await page.locator("#seats").select_option("3"),
            "page.select_option": await page.select_option("#seats", label="2"),
            "seats": await page.input_value("#seats"),
            "locator.check radio": await page.get_by_label("Business").check(),
            "business checked": await page.is_checked("#fare-business"),
            "page.check": await page.check("#terms"),
            "page.uncheck": await page.uncheck("#terms"),
            "terms after page.uncheck": await terms.is_checked(),
            "locator.check": await terms.check(),
            "terms after locator.check": await page.is_checked("#terms"),
            "locator.uncheck": await terms.uncheck(),
            "terms after locator.uncheck": await terms.is_checked(),
            "locator.set_input_files": await page.locator("#attachment").set_input_files(
                str(upload)
            ),
            "file after locator.set_input_files": await page.locator("#attachment").input_value(),
            "page.set_input_files": await page.set_input_files("#attachment", upload),
            "file after page.set_input_files": await page.input_value("#attachment"),
        }

    live, replayed = await live_then_replay(scenario, site, store_dir, "form")
    assert replayed == live
    assert replayed == {
        "locator.select_option": ["3"],
        "page.select_option": ["2"],
        "seats": "2",
        "locator.check radio": None,
        "business checked": True,
        "page.check": None,
        "page.uncheck": None,
        "terms after page.uncheck": False,
        "locator.check": None,
        "terms after locator.check": True,
        "locator.uncheck": None,
        "terms after locator.uncheck": False,
        "locator.set_input_files": None,
        "file after locator.set_input_files": "C:\\fakepath\\ticket.txt",
        "page.set_input_files": None,
        "file after page.set_input_files": "C:\\fakepath\\ticket.txt",
    }


@on_module_loop
async def test_read_methods_replay(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """content, title, url, inner_text, text_content, input_value, get_attribute,
    is_visible, evaluate (page and locator), count, all_inner_texts, all_text_contents
    and aria_snapshot return the same values replayed, with no request and no launch
    (is_checked is in the form controls test)."""
    paris = [f.label for f in CATALOGUE if "paris" in f.title.lower()]
    pages = -(-len(paris) // PER_PAGE)

    async def scenario(page: Any) -> dict[str, Any]:
        await page.goto(site.url + "/search?q=paris")
        results = page.locator("li.result")
        return {
            "content": await page.content(),
            "title": await page.title(),
            "url": page.url,
            "inner_text": await page.locator("#result-count").inner_text(),
            "page.inner_text": await page.inner_text("#result-count"),
            "text_content": await page.locator("#page-info").text_content(),
            "page.text_content": await page.text_content("#page-info"),
            "input_value": await page.locator("#q").input_value(),
            "page.input_value": await page.input_value("#q"),
            "get_attribute": await page.locator("#next").get_attribute("href"),
            "page.get_attribute": await page.get_attribute("#next", "rel"),
            "is_visible": await page.locator("#results").is_visible(),
            "page.is_visible": await page.is_visible("#no-results"),
            "evaluate": await page.evaluate("() => document.querySelectorAll('li').length"),
            "evaluate with arg": await page.evaluate("([a, b]) => ({sum: a + b})", [2, 3]),
            "locator.evaluate": await page.locator("#q").evaluate("el => el.placeholder"),
            "count": await results.count(),
            "all_inner_texts": await results.all_inner_texts(),
            "all_text_contents": await results.all_text_contents(),
            "aria_snapshot": await page.locator("#results").aria_snapshot(),
        }

    live, replayed = await live_then_replay(scenario, site, store_dir, "reads")
    assert replayed == live
    assert "<h1>Find a flight</h1>" in replayed.pop("content")
    snapshot = replayed.pop("aria_snapshot")
    assert snapshot.startswith("- list") and "- listitem:" in snapshot and paris[0] in snapshot
    assert replayed == {
        "title": "Search flights",
        "url": site.url + "/search?q=paris",
        "inner_text": f"{len(paris)} results",
        "page.inner_text": f"{len(paris)} results",
        "text_content": f"Page 1 of {pages}",
        "page.text_content": f"Page 1 of {pages}",
        "input_value": "paris",
        "page.input_value": "paris",
        "get_attribute": "/search?q=paris&page=2",
        "page.get_attribute": "next",
        "is_visible": True,
        "page.is_visible": False,
        "evaluate": PER_PAGE,
        "evaluate with arg": {"sum": 5},
        "locator.evaluate": "Search flights",
        "count": PER_PAGE,
        "all_inner_texts": paris[:PER_PAGE],
        "all_text_contents": paris[:PER_PAGE],
    }


@on_module_loop
async def test_screenshots_replay_identical_bytes(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """page.screenshot and locator.screenshot return PNG bytes; the replay returns the
    very same bytes with no request and no launch."""

    async def scenario(page: Any) -> list[Any]:
        await page.goto(site.url + "/item/1")
        return [await page.screenshot(), await page.locator("#title").screenshot()]

    live, replayed = await live_then_replay(scenario, site, store_dir, "shots")
    assert replayed == live
    for shot in replayed:
        assert isinstance(shot, bytes) and shot.startswith(PNG)
    assert len(replayed[1]) < len(replayed[0])


@on_module_loop
async def test_screenshot_path_is_written_on_replay(
    aio: None, site: FixtureSite, store_dir: Path, tmp_path: Path
) -> None:
    """screenshot(path=...) writes the file live and, from the record, on replay too."""
    page_png, title_png = tmp_path / "page.png", tmp_path / "title.png"

    async def scenario(page: Any) -> list[Any]:
        await page.goto(site.url + "/item/1")
        return [
            await page.screenshot(path=page_png),
            await page.locator("#title").screenshot(path=str(title_png)),
        ]

    async with recorder.run("shot-path", store=store_dir) as run:
        live = await scenario(await run.new_page())
    assert page_png.read_bytes() == live[0] and title_png.read_bytes() == live[1]
    page_png.unlink()
    title_png.unlink()
    requests = site.requests
    async with recorder.run("shot-path", store=store_dir) as run:
        replayed = await scenario(await run.new_page())
        assert run.stats.live == 0
    assert site.requests == requests
    assert replayed == live
    assert page_png.read_bytes() == live[0] and title_png.read_bytes() == live[1]


@on_module_loop
async def test_locator_chains_replay(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """locator, get_by_role, get_by_text, get_by_label, get_by_placeholder,
    get_by_test_id, nth, first, last, filter(has_text=, has=, has_not=), and_, or_,
    chains of them and ``await locator.all()`` find the same elements live and
    replayed."""
    every = [f for f in CATALOGUE if "paris" in f.title.lower()]
    paris = every[:PER_PAGE]

    async def scenario(page: Any) -> dict[str, Any]:
        await page.goto(site.url + "/search?q=paris")
        results = page.locator("li.result")
        items = await results.all()
        out = {
            "first": await results.first.inner_text(),
            "last": await results.last.inner_text(),
            "nth": await results.nth(1).inner_text(),
            "get_by_role": await page.get_by_role("button", name="Search").inner_text(),
            "get_by_role regex": await page.get_by_role(
                "link", name=re.compile("^Next")
            ).get_attribute("href"),
            "get_by_text regex": await page.get_by_text(re.compile(r"^\d+ results$")).inner_text(),
            "get_by_placeholder": await page.get_by_placeholder("Search flights").input_value(),
            "get_by_test_id": await page.get_by_test_id("page-info").inner_text(),
            "filter has_text": await results.filter(has_text="Rome").all_inner_texts(),
            "filter has": await results.filter(has=page.locator("a[href='/item/1']")).get_attribute(
                "data-id"
            ),
            "filter has_not": await results.filter(
                has_not=page.locator("a[href='/item/1']")
            ).count(),
            "and_": await page.get_by_role("button").and_(page.get_by_text("Search")).inner_text(),
            "or_": await page.locator("#missing").or_(page.locator("#search")).inner_text(),
            "chain": await page.locator("#results").get_by_role("link").last.inner_text(),
            "all types": [type(item).__name__ for item in items],
            "all ids": [await item.get_attribute("data-id") for item in items],
        }
        await page.goto(site.url + "/login")
        out["get_by_label"] = await page.get_by_label("Email").get_attribute("type")
        return out

    live, replayed = await live_then_replay(scenario, site, store_dir, "locators")
    assert replayed == live
    assert replayed == {
        "first": paris[0].label,
        "last": paris[-1].label,
        "nth": paris[1].label,
        "get_by_role": "Search",
        "get_by_role regex": "/search?q=paris&page=2",
        "get_by_text regex": f"{len(every)} results",
        "get_by_placeholder": "paris",
        "get_by_test_id": f"Page 1 of {-(-len(every) // PER_PAGE)}",
        "filter has_text": [f.label for f in paris if "Rome" in f.label],
        "filter has": "1",
        "filter has_not": len(paris) - 1,
        "and_": "Search",
        "or_": "Search",
        "chain": paris[-1].label,
        "all types": ["RecordedLocator"] * len(paris),
        "all ids": [str(f.id) for f in paris],
        "get_by_label": "email",
    }


# -- keys follow the page's history --------------------------------------------------------


@on_module_loop
async def test_changed_step_sends_the_rest_of_the_page_live(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """Changing one early browser step makes it and every later step on the page go
    live, even later steps identical to the record, with one DivergenceWarning."""

    async def scenario(page: Any, text: str) -> list[Any]:
        await page.goto(site.url + "/keyboard")
        await page.locator("#key-input").fill(text)
        await page.locator("#key-input").press("Enter")
        return [
            await page.locator("#last-key").inner_text(),
            await page.locator("#typed").inner_text(),
            await page.title(),
        ]

    async with recorder.run("history", store=store_dir) as run:
        assert await scenario(await run.new_page(), "hello") == [
            "Enter", "You typed: hello", "Keyboard"
        ]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with recorder.run("history", store=store_dir) as run:
            again = await scenario(await run.new_page(), "world")
    assert again == ["Enter", "You typed: world", "Keyboard"]
    divergences = [w for w in caught if issubclass(w.category, recorder.DivergenceWarning)]
    assert len(divergences) == 1
    trace = last_attempt(store_dir, "history")
    assert trace["name"].tolist() == ["goto", "fill", "press", "inner_text", "inner_text", "title"]
    assert trace["status"].tolist() == ["replayed"] + ["live"] * 5


# -- the trace -----------------------------------------------------------------------------


@on_module_loop
async def test_trace_rows_have_url_action_selector_and_screenshot(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """Browser rows carry the page URL after the step, the action and the selector as
    written; a screenshot step's row names the screenshot's blob."""
    async with recorder.run("trace", store=store_dir) as run:
        page = await run.new_page()
        await sign_in(page, site)
        shot = await page.locator("#signed-in-as").screenshot()
    trace = last_attempt(store_dir, "trace")
    assert {"url", "action", "selector", "screenshot"} <= set(trace.columns)
    rows = trace[["kind", "action", "selector", "url"]].to_dict("records")
    assert [(r["kind"], r["action"]) for r in rows] == [
        ("browser", "goto"),
        ("browser", "fill"),
        ("browser", "fill"),
        ("browser", "click"),
        ("browser", "screenshot"),
    ]
    assert [r["selector"] for r in rows[1:]] == [
        'get_by_label("Email")',
        "#password",
        'locator("#sign-in")',
        'locator("#signed-in-as")',
    ]
    assert pd.isna(rows[0]["selector"])
    assert [r["url"] for r in rows] == [site.url + "/login"] * 3 + [site.url + "/account"] * 2
    assert trace["screenshot"].isna().tolist() == [True] * 4 + [False]
    ref = trace["screenshot"].iloc[-1]
    assert run.journal.blob(ref) == shot


@on_module_loop
async def test_each_step_screenshots_every_live_step(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """With screenshots="each_step" every live browser step's row names a PNG blob."""
    async with recorder.run(
        "each", store=store_dir, browser=recorder.Browser(screenshots="each_step")
    ) as run:
        page = await run.new_page()
        await sign_in(page, site)
        await page.locator("#signed-in-as").inner_text()
    trace = last_attempt(store_dir, "each")
    assert len(trace) == 5 and set(trace["status"]) == {"live"}
    assert trace["screenshot"].notna().all()
    for ref in trace["screenshot"]:
        assert run.journal.blob(ref).startswith(PNG)


@on_module_loop
async def test_screenshots_off_takes_none(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """With screenshots="off" no row has a screenshot, not even a failed step's."""
    async with recorder.run(
        "off", store=store_dir, browser=recorder.Browser(screenshots="off")
    ) as run:
        page = await run.new_page()
        await sign_in(page, site)
        with pytest.raises(PlaywrightTimeoutError):
            await page.locator("#missing").click(timeout=SHORT)
    trace = last_attempt(store_dir, "off")
    assert trace["status"].tolist() == ["live"] * 4 + ["failed"]
    assert "screenshot" not in trace.columns or trace["screenshot"].isna().all()


@on_module_loop
async def test_failed_step_is_screenshotted_and_replays_its_error(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """By default (on_error) only a failing step is screenshotted; its row is "failed"
    with the TimeoutError, and a replay raises the same Playwright TimeoutError."""

    async def scenario(page: Any) -> str:
        await page.goto(site.url + "/login")
        with pytest.raises(PlaywrightTimeoutError) as failure:
            await page.locator("#missing").click(timeout=SHORT)
        assert type(failure.value) is PlaywrightTimeoutError
        await page.get_by_label("Email").fill(EMAIL)
        return str(failure.value)

    async with recorder.run("on-error", store=store_dir) as run:
        live = await scenario(await run.new_page())
    trace = last_attempt(store_dir, "on-error")
    assert trace["status"].tolist() == ["live", "failed", "live"]
    assert trace["screenshot"].notna().tolist() == [False, True, False]
    assert run.journal.blob(trace["screenshot"].iloc[1]).startswith(PNG)
    assert trace["error"].iloc[1].startswith("TimeoutError: ")
    assert trace["url"].iloc[1] == site.url + "/login"
    assert trace["selector"].iloc[1] == 'locator("#missing")'

    requests = site.requests
    async with recorder.run("on-error", store=store_dir) as run:
        replayed = await scenario(await run.new_page())
        assert run.stats.live == 0
    assert site.requests == requests
    assert replayed == live


# -- what is not recorded ------------------------------------------------------------------


@on_module_loop
async def test_unrecorded_methods_warn_once_and_reach_the_real_page(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """page.evaluate_handle is not recorded: it warns once per call site with
    UnrecordedWarning (saying the page goes live there), runs on the real page, and
    leaves no trace row; waits are recorded steps."""
    async with recorder.run("unrecorded", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/keyboard")
        await page.wait_for_timeout(10)
        assert await page.locator("#key-input").wait_for(state="visible") is None
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for _ in range(3):  # one call site: one warning
                handle = await page.evaluate_handle("() => document.title")
        unrecorded = [str(w.message) for w in seen if w.category is UnrecordedWarning]
        assert len(unrecorded) == 1, unrecorded
        assert "page.evaluate_handle is not recorded: the page goes live here" in unrecorded[0]
        assert await handle.json_value() == "Keyboard"
    names = last_attempt(store_dir, "unrecorded")["name"].tolist()
    assert names == ["goto", "wait_for_timeout", "wait_for"]


@on_module_loop
async def test_async_keyboard_is_recorded(aio: None, site: FixtureSite, store_dir: Path) -> None:
    """page.keyboard and page.mouse are recorded: live they type into the real page; a
    replay gives the same reads with no browser and no request."""

    async def scenario(page: Any) -> Any:
        await page.goto(site.url + "/keyboard")
        await page.locator("#key-input").click()
        await page.keyboard.type("hi")
        await page.keyboard.press("Shift+A")
        return await page.locator("#key-input").input_value()

    live, replayed = await live_then_replay(scenario, site, store_dir, "async-keyboard")
    assert live == replayed == "hiA"
    names = last_attempt(store_dir, "async-keyboard")["action"].tolist()
    assert names[2:4] == ["type", "press"]


@on_module_loop
async def test_async_page_on_an_unrecorded_event_registers_the_handler(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """page.on("console", handler) is not recorded: it warns and registers the handler
    on the real page (the page goes live at its next step)."""
    messages: list[str] = []
    async with recorder.run("async-on", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/keyboard")
        with pytest.warns(UnrecordedWarning, match=r"page.on\('console'"):
            page.on("console", lambda message: messages.append(message.text))
        await page.evaluate("() => console.log('hello')")
        for _ in range(20):
            if messages:
                break
            await asyncio.sleep(0.05)
        assert messages == ["hello"]


@on_module_loop
async def test_event_handlers_wait_for_event_and_new_pages_replay(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """page.on("popup"/"download"), page.once("dialog"), wait_for_event and
    context.new_page: the handlers get the same objects live and replayed (a popup is
    one recorded page), a once-handler runs once, and a dialog nobody answers is
    dismissed, as Playwright does."""

    async def scenario(page: Any) -> Any:
        popups: list[Any] = []
        downloads: list[str] = []
        dialogs: list[str] = []
        page.on("popup", popups.append)
        page.on("download", lambda download: downloads.append(download.suggested_filename))
        page.once("dialog", lambda dialog: dialogs.append(dialog.message))
        await page.goto(site.url + "/popups")
        await page.click("#open-window")
        popup = await page.wait_for_event("popup")
        await popup.wait_for_load_state()
        await page.goto(site.url + "/downloads")
        await page.click("#report")
        download = await page.wait_for_event("download")
        await page.goto(site.url + "/dialogs")
        await page.click("#confirm")
        await page.click("#confirm")
        other = await page.context.new_page()
        await other.goto(site.url + "/clock")
        return [
            len(popups), popups[0] is popup, await popup.locator("#from").inner_text(),
            downloads, download.suggested_filename, dialogs,
            await page.locator("#confirm-result").inner_text(),
            len(page.context.pages), await other.title(),
        ]  # fmt: skip

    live, replayed = await live_then_replay(scenario, site, store_dir, "handlers")
    assert live == replayed
    assert live[:6] == [1, True, "window", ["report.csv"], "report.csv", ["Delete the draft?"]]
    assert live[6:8] == ["cancelled", 3]


@on_module_loop
async def test_unwrap_before_any_step_then_resume(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """unwrap() first (the old workaround for page.on): the page is live from the start
    on every run, so an interrupted run resumes with the real page where the code
    moves it, not stuck at about:blank."""

    async def attempt(interrupt: bool) -> Any:
        async with recorder.run("unwrap-first", store=store_dir) as run:
            page = await run.new_page()
            real = await page.unwrap()
            await page.goto(site.url + "/keyboard")
            assert real.url == page.url == site.url + "/keyboard"
            await page.locator("#key-input").fill("x")
            if interrupt:
                raise KeyboardInterrupt
            return await page.locator("#key-input").input_value(), run.stats.live

    with pytest.raises(KeyboardInterrupt):
        await attempt(True)
    assert await attempt(False) == ("x", 3)


@on_module_loop
async def test_a_state_a_restore_cannot_rebuild_is_reported_at_once(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """What a click changed inside a page is not rebuilt by the default resume: the
    evaluate run again after the restore gives another result, and the run stops at
    once naming the step and the option that rebuilds it, which then works."""

    async def scenario(run: recorder.Run, interrupt: bool) -> Any:
        page = await run.new_page()
        await page.goto(site.url + "/dialogs")
        await page.click("#alert")
        shown = await page.evaluate("() => document.querySelector('#alert-result').textContent")
        if interrupt:
            raise KeyboardInterrupt
        await page.click("#confirm")
        return shown

    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("unrebuildable", store=store_dir) as run:
            await scenario(run, True)
    started = time.monotonic()
    with pytest.raises(BrowserReexecutionError) as raised:
        async with recorder.run("unrebuildable", store=store_dir) as run:
            await scenario(run, False)
    assert time.monotonic() - started < 20  # a report, not a 30 s timeout
    message = str(raised.value)
    assert "step #2 (evaluate" in message and "'alerted'" in message
    assert "Browser(resume='reexecute')" in message
    options = {"store": store_dir, "browser": recorder.Browser(resume="reexecute")}
    async with recorder.run("unrebuildable", **options) as run:
        assert await scenario(run, False) == "alerted"


# -- run.wrap ------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def own_browser() -> AsyncIterator[Any]:
    """A Chromium launched by the tests themselves, not through the recorder."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@on_module_loop
async def test_wrapped_page_records_and_replays(
    aio: None, site: FixtureSite, store_dir: Path, own_browser: Any
) -> None:
    """Steps on a page you launched yourself, wrapped with run.wrap, are recorded and
    replay with no request (and no launch by the recorder); the replay leaves your
    page untouched."""

    async def scenario(page: Any) -> list[Any]:
        await sign_in(page, site)
        return [await page.locator("#signed-in-as").inner_text()]

    launches = launch.launches
    own = await own_browser.new_page()
    async with recorder.run("wrapped", store=store_dir) as run:
        live = await scenario(run.wrap(own))
        assert run.stats.live == 5
    assert live == [f"Signed in as {EMAIL}"]
    assert own.url == site.url + "/account"
    requests = site.requests
    fresh = await own_browser.new_page()
    async with recorder.run("wrapped", store=store_dir) as run:
        replayed = await scenario(run.wrap(fresh))
        assert (run.stats.live, run.stats.replayed) == (0, 5)
    assert replayed == live
    assert site.requests == requests
    assert fresh.url == "about:blank"
    assert launch.launches == launches


@on_module_loop
async def test_wrapped_page_url_replays_the_recorded_url(
    aio: None, site: FixtureSite, store_dir: Path, own_browser: Any
) -> None:
    """page.url on a wrapped page is the same live and replayed."""
    async with recorder.run("wrapped-url", store=store_dir) as run:
        page = run.wrap(await own_browser.new_page())
        await sign_in(page, site)
        live = page.url
    assert live == site.url + "/account"
    async with recorder.run("wrapped-url", store=store_dir) as run:
        page = run.wrap(await own_browser.new_page())
        await sign_in(page, site)
        assert run.stats.live == 0
        assert page.url == live


@pytest.fixture(params=["devtools", "page script"])
def leaving_word(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """How a watched page says it is leaving: its DevTools session (Chromium), or, where
    none opens (another browser, faked here), the script installed in its documents."""
    if request.param == "page script":
        from playwright.async_api import BrowserContext

        async def refused(self: Any, page: Any) -> Any:
            raise RuntimeError("CDP session is only available in Chromium")

        monkeypatch.setattr(BrowserContext, "new_cdp_session", refused)
    return str(request.param)


@on_module_loop
async def test_a_navigation_the_step_queued_lands_in_its_checkpoint(
    aio: None, site: FixtureSite, store_dir: Path, leaving_word: str
) -> None:
    """Playwright may return from a step before the navigation it queued lands (here a
    script navigates from a zero-delay timer, to a response held back 300 ms). The
    checkpoint waits for it, so the step's URL is the new one and a resumed run is
    restored there, without running the script again. In Chromium the recorder adds no
    script to the page for this; elsewhere it does."""

    async def held_back(route: Any) -> None:
        await asyncio.sleep(0.3)
        await route.continue_()

    script = "() => { setTimeout(() => { location.href = '/search?q=held' }, 0) }"
    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("queued-navigation", store=store_dir) as run:
            page = await run.new_page()
            await page.goto(site.url + "/login")
            await (await page.unwrap()).route("**/search*", held_back)
            await page.evaluate(script)
            real = await page.unwrap()
            added = await real.evaluate("() => typeof window.__recorderNavigation")
            assert added == ("object" if leaving_word == "page script" else "undefined")
            raise KeyboardInterrupt
    assert last_attempt(store_dir, "queued-navigation")["url"].tolist() == [
        site.url + "/login",
        site.url + "/search?q=held",
    ]
    searches = site.hits.get("/search", 0)
    async with recorder.run("queued-navigation", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.evaluate(script)
        assert "Search flights" in await page.title()  # live, on the restored page
    # The restore loads the checkpoint's URL once; the script that navigated is not run
    # again on it (it would queue the same navigation a second time).
    assert site.hits.get("/search", 0) - searches == 1


@on_module_loop
async def test_the_navigation_watch_hears_navigations_without_subscribing(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """The checkpoint's navigation watch hears a page's navigation requests (Playwright's
    driver sends them unasked) from start to landing, without subscribing to the page's
    requests: the program's own ``page.on("request")`` still subscribes and hears every
    request, the stylesheet too."""
    heard: list[str] = []

    async def held_back(route: Any) -> None:
        await asyncio.sleep(0.3)
        await route.continue_()

    async with recorder.run("watch", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        real = await page.unwrap()
        watch = page._state.watch
        assert watch is not None
        real.on("request", lambda request: heard.append(request.url))
        await real.route("**/search*", held_back)
        seen = watch.seen
        await real.evaluate("() => { location.href = '/search?q=held'; }")
        for _ in range(100):
            if watch.pending:
                break
            await asyncio.sleep(0.01)
        assert watch.pending and watch.seen == seen + 1, "the navigation was not heard"
        await real.wait_for_url("**/search?q=held")
        assert not watch.pending
        # The page's own word that it is leaving comes on the session the state is read
        # through, ahead of the answer to anything that runs after it: no race.
        assert watch.session is not None and watch.leaving is None
        await watch.session.send("Runtime.evaluate", {"expression": "location.href = '/login'"})
        assert watch.leaving == site.url + "/login"
        await real.wait_for_url("**/login")
        await watch.session.send("Runtime.evaluate", {"expression": "1"})  # in the new one
        assert watch.leaving is None
    assert site.url + "/static/site.css" in heard, heard


@on_module_loop
async def test_a_navigation_answered_with_no_content_is_not_waited_for(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """A step whose navigation gets a 204 answer leaves the page where it was: the
    page's word that it was leaving is taken back when its loading stops, so the step's
    checkpoint does not wait for a document that never comes (nor do later steps)."""
    async with recorder.run("no-content", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        real = await page.unwrap()
        await real.route("**/no-content", lambda route: route.fulfill(status=204))
        watch = page._state.watch
        assert watch is not None and watch.session is not None
        await page.evaluate("() => { setTimeout(() => { location.href = '/no-content' }, 0) }")
        assert page.url == site.url + "/login"
        assert watch.leaving is None and not watch.pending
        await page.locator("#email").fill("a@example.com")
        assert watch.leaving is None


async def resumed(
    name: str,
    store_dir: Path,
    steps: Callable[[Any], Awaitable[Any]],
    live: Callable[[Any], Awaitable[Any]],
) -> tuple[Any, Any, Any]:
    """``steps(page)`` in a run interrupted right after them, then the resumed run: the
    same steps (replayed), then ``live(their result or the page)``, its first live step.
    Gives what the steps gave recorded, replayed, and what ``live`` gave."""
    with pytest.raises(KeyboardInterrupt):
        async with recorder.run(name, store=store_dir) as run:
            recorded = await steps(await run.new_page())
            raise KeyboardInterrupt
    async with recorder.run(name, store=store_dir) as run:
        page = await run.new_page()
        replayed = await steps(page)
        return recorded, replayed, await live(page if replayed is None else replayed)


INCREMENT = "() => { localStorage.n = String((+localStorage.n || 0) + 1); return localStorage.n; }"


@pytest.mark.parametrize("click_first", [False, True], ids=["after-goto", "after-click"])
@on_module_loop
async def test_a_restore_applies_an_in_page_step_once(
    aio: None, site: FixtureSite, store_dir: Path, click_first: bool
) -> None:
    """An ``evaluate`` that changed localStorage is re-applied on restore (it may have
    left marks in the DOM); the state it is re-applied on must be the one from before
    it, or its effect lands twice (the restore would see the evaluate give '2' where
    the record has '1', and stop). Before it: a ``goto`` (which takes no checkpoint:
    the restore loads its URL) or a click on the page (which takes one)."""

    async def steps(page: Any) -> None:
        await page.goto(site.url + "/login")
        if click_first:
            await page.locator("label[for=email]").click()
        assert await page.evaluate(INCREMENT) == "1"

    def read(page: Any) -> Awaitable[Any]:
        return page.evaluate("() => localStorage.n")

    assert (await resumed("applied-once", store_dir, steps, read))[2] == "1"


@on_module_loop
async def test_a_restore_loads_a_visited_url_once(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """A ``goto`` that was not redirected takes no checkpoint: the restore loads its URL
    on the state from before it, so what the page does on load (here its script counts
    visits in localStorage) happens once, as when it was recorded, not on top of a
    state that already holds it."""

    async def steps(page: Any) -> Any:
        await page.goto(site.url + "/visits")
        assert await page.inner_text("#visits") == "1"

    def read(page: Any) -> Awaitable[Any]:
        return page.inner_text("#visits")

    assert (await resumed("visits", store_dir, steps, read))[2] == "1"
    assert site.hits["/visits"] == 2  # recorded once, restored once
    steps_meta = [s.meta for s in recorder.load("visits", store=store_dir).steps]
    assert "checkpoint" not in steps_meta[0], "a plain goto takes no checkpoint"


@on_module_loop
async def test_a_sign_in_link_is_not_followed_again_on_resume(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """A redirected ``goto`` keeps its checkpoint: a one-time sign-in link sets the
    session cookie and redirects, and the restore puts the cookie back and loads the
    page it led to, without following the spent link again."""
    link = site.sign_in_link("ada@example.com")

    async def steps(page: Any) -> None:
        await page.goto(link)
        assert await page.inner_text("#signed-in-as") == "Signed in as ada@example.com"

    def read(page: Any) -> Awaitable[Any]:
        return page.inner_text("#signed-in-as")

    live = (await resumed("sign-in-link", store_dir, steps, read))[2]
    assert live == "Signed in as ada@example.com"
    assert site.hits["/magic"] == 1


@on_module_loop
async def test_a_page_is_restored_with_its_context_latest_cookies(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """Cookies belong to the context: a page that goes live after another page of its
    context signed in gets the session, even though its own last checkpoint is older;
    its sessionStorage is its own."""

    async def steps(page: Any) -> Any:
        await page.goto(site.url + "/login")
        other = await page.context.new_page()
        await other.goto(site.url + "/storage")
        await other.click("#save")  # its own checkpoint: signed out, step=checkout
        await page.fill("#email", "ada@example.com")
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await page.wait_for_url("**/account")
        return other

    def read(other: Any) -> Awaitable[Any]:  # the first live step is the other page's
        return other.evaluate(
            "async () => [await (await fetch('/account')).text(), sessionStorage.step]"
        )

    account = (await resumed("context-cookies", store_dir, steps, read))[2]
    assert "Signed in as ada@example.com" in account[0]
    assert account[1] == "checkout"


@on_module_loop
async def test_wrapped_page_resumes_from_the_checkpoint(
    aio: None, site: FixtureSite, store_dir: Path, own_browser: Any
) -> None:
    """An interrupted run on a wrapped page resumes: the first live step after the
    replayed ones sees the page the record left (signed in, on /account)."""
    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("wrapped-resume", store=store_dir) as run:
            await sign_in(run.wrap(await own_browser.new_page()), site)
            raise KeyboardInterrupt
    async with recorder.run("wrapped-resume", store=store_dir) as run:
        page = run.wrap(await own_browser.new_page())
        await sign_in(page, site)
        text = await page.locator("#signed-in-as").inner_text(timeout=PATIENT)
    assert text == f"Signed in as {EMAIL}"


# -- secrets -------------------------------------------------------------------------------


@on_module_loop
async def test_cookies_and_storage_stay_in_the_database(
    aio: None, site: FixtureSite, store_dir: Path, tmp_path: Path
) -> None:
    """The session cookie and web-storage values are captured in checkpoints but appear
    nowhere else: not in the DataFrame, the CSV/JSONL exports or ``recorder show``;
    only in the store's database files, which are mode 0600."""
    local_canary, session_canary = "CANARY-LOCAL-123", "CANARY-SESSION-456"
    async with recorder.run("secrets", store=store_dir) as run:
        page = await run.new_page()
        await sign_in(page, site)
        await page.goto(site.url + "/storage")
        await page.locator("#cart-item").fill(local_canary)
        await page.locator("#save").click()
        await page.evaluate("v => sessionStorage.setItem('token', v)", session_canary)
        assert await page.locator("#local-value").inner_text() == local_canary
        cookies = await (await page.unwrap()).context.cookies()
        frame = run.to_dataframe()
    session = next(c["value"] for c in cookies if c["name"] == "session")
    assert re.fullmatch(r"[0-9a-f]{32}", session)
    secrets = [session, local_canary, session_canary]

    cells = " ".join(str(v) for v in frame.astype(str).to_numpy().ravel())
    cells += " ".join(frame.columns)
    loaded = recorder.load("secrets", store=store_dir).to_dataframe()
    cells += " ".join(str(v) for v in loaded.astype(str).to_numpy().ravel())
    exports = tmp_path / "exports"
    exports.mkdir()
    write_frame(loaded, exports / "trace.csv")
    write_frame(loaded, exports / "trace.jsonl")
    with (exports / "trace.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(loaded)
    assert len((exports / "trace.jsonl").read_text().splitlines()) == len(loaded)
    shown = subprocess.run(
        [str(RECORDER_CLI), "--store", str(store_dir), "show", "secrets"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert "click" in shown.stdout
    for secret in secrets:
        assert secret not in cells
        assert secret not in shown.stdout + shown.stderr
        for exported in exports.iterdir():
            assert secret.encode() not in exported.read_bytes(), exported.name

    holders: dict[str, set[str]] = {}
    for path in store_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                if secret.encode() in data:
                    holders.setdefault(secret, set()).add(path.name)
                    assert path.name.startswith("cache.db"), path
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert set(holders) == set(secrets), "the checkpoints should hold every secret"
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700

    # Row by row: the cookie the site set lives only in checkpoint blobs (the typed and
    # evaluated values are also in their steps' requests: they are the user's input).
    steps = recorder.open_store(store_dir).scan("step/")
    checkpoints = {json.loads(raw)["meta"].get("checkpoint") for _, raw in steps}
    rows = [
        key for key, value in recorder.open_store(store_dir).scan("") if session.encode() in value
    ]
    assert rows and all(k.startswith("blob/") and k[5:] in checkpoints for k in rows), rows


# -- resuming: restore and reexecute -------------------------------------------------------


async def interrupted_after_fill(store_dir: Path, site: FixtureSite, name: str) -> None:
    """Record goto + fill, then interrupt the attempt as a stopped cell would."""
    with pytest.raises(KeyboardInterrupt):
        async with recorder.run(name, store=store_dir) as run:
            page = await run.new_page()
            await page.goto(site.url + "/login")
            await page.get_by_label("Email").fill("typed@example.com")
            raise KeyboardInterrupt


@on_module_loop
async def test_reexecute_rebuilds_the_typed_value(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """With browser_resume="reexecute" the re-run's first live step sees the value an
    earlier attempt typed, because the recorded goto and fill were run again."""
    await interrupted_after_fill(store_dir, site, "reexecute")
    async with recorder.run(
        "reexecute", store=store_dir, browser=recorder.Browser(resume="reexecute")
    ) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.get_by_label("Email").fill("typed@example.com")
        value = await page.get_by_label("Email").input_value()
    assert value == "typed@example.com"
    assert last_attempt(store_dir, "reexecute")["status"].tolist() == ["replayed"] * 2 + ["live"]
    assert site.hits["/login"] == 2  # the recorded goto ran again


@on_module_loop
async def test_restore_puts_back_the_typed_value(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """The default browser_resume="restore" reloads the checkpoint's URL, then re-applies
    the form inputs replayed since the page last changed URL (a checkpoint does not hold
    typed values); inputs made on an earlier URL are not re-applied."""
    await interrupted_after_fill(store_dir, site, "restore")
    async with recorder.run("restore", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.get_by_label("Email").fill("typed@example.com")
        value = await page.get_by_label("Email").input_value()
    assert value == "typed@example.com"
    assert last_attempt(store_dir, "restore")["status"].tolist() == ["replayed"] * 2 + ["live"]

    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("restore-moved", store=store_dir) as run:
            page = await run.new_page()
            await page.goto(site.url + "/login")
            await page.get_by_label("Email").fill("typed@example.com")
            await page.goto(site.url + "/search")
            raise KeyboardInterrupt
    async with recorder.run("restore-moved", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.get_by_label("Email").fill("typed@example.com")
        await page.goto(site.url + "/search")
        assert await page.locator("#q").input_value() == ""  # live, on /search


@on_module_loop
async def test_restore_brings_back_cookies_and_web_storage(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """With the default "restore", the re-run's first live step sees the checkpoint's
    URL, session cookie, localStorage and sessionStorage, without redoing the sign-in."""

    async def scenario(run: recorder.Run) -> Any:
        page = await run.new_page()
        await sign_in(page, site)
        await page.goto(site.url + "/storage")
        await page.locator("#cart-item").fill("flight-7")
        await page.locator("#save").click()
        return page

    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("restored", store=store_dir) as run:
            await scenario(run)
            raise KeyboardInterrupt
    site.reset()
    async with recorder.run("restored", store=store_dir) as run:
        page = await scenario(run)
        values = [
            await page.locator("#local-value").inner_text(),
            await page.locator("#session-value").inner_text(),
        ]
        await page.goto(site.url + "/account")
        values.append(await page.locator("#signed-in-as").inner_text())
    assert values == ["flight-7", "checkout", f"Signed in as {EMAIL}"]
    assert site.hits.get("/login", 0) == 0
    assert site.hits["/storage"] == 1


@on_module_loop
async def test_reexecute_refuses_a_read_that_now_differs(aio: None, store_dir: Path) -> None:
    """When a re-executed read gives another value than the record (the site changed),
    the re-run raises BrowserReexecutionError naming the step and both values."""
    with FixtureSite(flaky_every=0) as counting:  # /flaky shows how often it was requested

        async def scenario(run: recorder.Run) -> Any:
            page = await run.new_page()
            await page.goto(counting.url + "/flaky")
            heading = await page.locator("h1").inner_text()
            assert heading == "Flaky page OK (request 1)"
            return page

        with pytest.raises(KeyboardInterrupt):
            async with recorder.run("differs", store=store_dir) as run:
                await scenario(run)
                raise KeyboardInterrupt
        options: dict[str, Any] = {
            "store": store_dir,
            "browser": recorder.Browser(resume="reexecute"),
        }
        with pytest.raises(BrowserReexecutionError) as raised:
            async with recorder.run("differs", **options) as run:
                page = await scenario(run)
                await page.title()
    message = str(raised.value)
    assert 'inner_text locator("h1")' in message
    assert "Flaky page OK (request 2)" in message and "Flaky page OK (request 1)" in message
    assert "mode='record'" in message


@on_module_loop
async def test_reexecute_expects_a_recorded_failure(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """A failed (and caught) step in the history is re-executed as a failure: the
    re-run continues past it and its next live step runs."""

    async def scenario(run: recorder.Run) -> Any:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        with pytest.raises(PlaywrightTimeoutError):
            await page.locator("#missing").click(timeout=SHORT)
        await page.get_by_label("Email").fill("typed@example.com")
        return page

    with pytest.raises(KeyboardInterrupt):
        async with recorder.run("reexec-failure", store=store_dir) as run:
            await scenario(run)
            raise KeyboardInterrupt
    async with recorder.run(
        "reexec-failure", store=store_dir, browser=recorder.Browser(resume="reexecute")
    ) as run:
        page = await scenario(run)
        value = await page.get_by_label("Email").input_value()
    assert value == "typed@example.com"


# -- the sync API (last: a running sync browser blocks the asyncio tests' loop) ------------


def test_sync_keyboard_is_recorded_and_unwrap_goes_live(site: FixtureSite, store_dir: Path) -> None:
    """On a sync recorded page, page.keyboard is recorded and replays with no browser;
    page.unwrap() is the real sync Playwright page, at the recorded URL, and the page's
    later steps run live."""

    def scenario(run: recorder.Run) -> str:
        page = run.new_page()
        page.goto(site.url + "/keyboard")
        page.locator("#key-input").click()
        page.keyboard.type("hi")
        page.keyboard.press("Enter")
        return str(page.locator("#typed").inner_text())

    try:
        with recorder.run("sync-keyboard", store=store_dir) as run:
            assert scenario(run) == "You typed: hi"
        requests, launches = site.requests, launch.launches
        with recorder.run("sync-keyboard", store=store_dir) as run:
            assert scenario(run) == "You typed: hi"
            assert run.stats.live == 0
        assert (site.requests, launch.launches) == (requests, launches)
        with recorder.run("sync-keyboard", store=store_dir) as run:
            page = run.new_page()
            page.goto(site.url + "/keyboard")
            real = page.unwrap()
            assert isinstance(real, SyncPage)
            assert real.url == site.url + "/keyboard"
            with pytest.warns(recorder.DivergenceWarning):  # the rest of the record is unused
                page.locator("#key-input").fill("yo")
            assert run.stats.live == 1
    finally:
        close_browser()


def test_sync_api_records_and_replays(site: FixtureSite, store_dir: Path) -> None:
    """In plain sync code, ``with recorder.run(...)`` gives a sync recorded page whose
    steps replay with no request and no launch (the sync browser is closed before the
    replay, so that the next test starts with no sync browser running)."""

    def scenario(run: recorder.Run) -> list[Any]:
        page = run.new_page()
        result = page.goto(site.url + "/search?q=rome")
        return [
            result,
            page.url,
            page.locator("#result-count").inner_text(),
            page.get_by_test_id("result").first.inner_text(),
            [item.get_attribute("data-id") for item in page.locator("li.result").all()],
        ]

    rome = [f for f in CATALOGUE if "rome" in f.title.lower()]
    try:
        with recorder.run("sync", store=store_dir) as run:
            live = scenario(run)
            assert run.stats.live > 0
        assert live == [
            NavigationResult(site.url + "/search?q=rome", 200, True, "OK"),
            site.url + "/search?q=rome",
            f"{len(rome)} results",
            rome[0].label,
            [str(f.id) for f in rome[:PER_PAGE]],
        ]
        close_browser()
        requests, launches = site.requests, launch.launches
        with recorder.run("sync", store=store_dir) as run:
            replayed = scenario(run)
            assert (run.stats.live, run.stats.replayed) == (0, 4 + len(live[4]))
        assert replayed == live
        assert (site.requests, launch.launches) == (requests, launches)
    finally:
        close_browser()


def test_sync_rerun_gets_a_sync_page_while_the_browser_runs(
    site: FixtureSite, store_dir: Path
) -> None:
    """Re-running sync code in the same process, with the shared sync browser still
    up from the first run, gives a sync recorded page again (and replays)."""
    try:
        with recorder.run("sync-rerun", store=store_dir) as run:
            run.new_page().goto(site.url + "/login")
        with recorder.run("sync-rerun", store=store_dir) as run:
            page = run.new_page()
            try:
                assert isinstance(page, RecordedPage), f"new_page() gave {page!r}"
                assert page.goto(site.url + "/login").status == 200
                assert run.stats.live == 0
            finally:
                if inspect.iscoroutine(page):
                    page.close()
    finally:
        close_browser()


# -- browser actions as effects ------------------------------------------------------------


async def place_order(page: Any, site: FixtureSite, **click: Any) -> None:
    await sign_in(page, site)
    await page.goto(f"{site.url}/order/{CATALOGUE[0].id}")
    await page.fill("#name", "Ada Lovelace")
    await page.check("#terms")
    await page.locator("#place-order").click(effect="place-order", **click)


@on_module_loop
async def test_a_browser_action_can_be_an_effect(
    aio: None, site: FixtureSite, store_dir: Path
) -> None:
    """``click(effect=...)`` goes through the ledger: done once, then replayed; a click
    interrupted inside is ambiguous and never repeated silently."""
    orders = len(site.orders)
    for _ in range(2):
        async with recorder.run("effect-click", store=store_dir) as run:
            await place_order(await run.new_page(), site)
    assert len(site.orders) == orders + 1
    row = last_attempt(store_dir, "effect-click").iloc[-1]
    assert (row["kind"], row["action"], row["status"]) == ("browser", "click", "replayed")

    # Interrupted inside the click (here: cancelled while it waits for the button).
    with pytest.raises(TimeoutError):
        async with recorder.run("effect-cut", store=store_dir) as run:
            page = await run.new_page()
            await sign_in(page, site)
            await page.goto(f"{site.url}/order/{CATALOGUE[0].id}")
            await asyncio.wait_for(page.locator("#not-yet").click(effect="pay"), 0.5)
    with pytest.raises(recorder.AmbiguousEffectError, match="'pay'"):
        async with recorder.run("effect-cut", store=store_dir) as run:
            page = await run.new_page()
            await sign_in(page, site)
            await page.goto(f"{site.url}/order/{CATALOGUE[0].id}")
            await page.locator("#not-yet").click(effect="pay")
    async with recorder.run("effect-cut", store=store_dir, on_ambiguous="assume_done") as run:
        page = await run.new_page()
        await sign_in(page, site)
        await page.goto(f"{site.url}/order/{CATALOGUE[0].id}")
        assert await page.locator("#not-yet").click(effect="pay") is None
    with pytest.raises(recorder.ConfigError):
        async with recorder.run("effect-bad", store=store_dir) as run:
            await (await run.new_page()).click("#x", effect="")
