"""Integration tests for ``fixtures.site`` with a real headless Chromium (Debian's build).

Most tests use Playwright's async API and share one browser per module (a module-scoped
fixture on a module-scoped event loop); each test gets a fresh browser context and a
fresh :class:`FixtureSite`, so counters start at zero. One test uses the sync API.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    async_playwright,
    expect,
)
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect as sync_expect
from playwright.sync_api import sync_playwright

from fixtures.site import CATALOGUE, PASSWORD, PER_PAGE, REPORT_CSV, FixtureSite
from recorder.integrations.browser.launch import find_chromium, launch_args

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# The test command installs a browser: a missing one fails here, saying how to get one,
# rather than skipping the module.
CHROMIUM = find_chromium()
LAUNCH_ARGS = launch_args()
REPO_ROOT = Path(__file__).resolve().parents[2]
EMAIL = "ada@example.com"
ZEROED_STATS: dict[str, Any] = {
    "requests": 0,
    "hits": {},
    "submissions": 0,
    "orders": [],
    "notifications": [],
    "popup_actions": 0,
    "deletions": 0,
    "frame_orders": 0,
    "downloads": 0,
    "canvas_clicks": [],
    "cart": [],
}

# Async tests run on the module's event loop, the one the shared browser lives on.
on_module_loop = pytest.mark.asyncio(loop_scope="module")


# -- helpers -------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[str, str, int, int]]:
    """``{pid: (comm, state, ppid, pgrp)}`` from /proc (Linux)."""
    table: dict[int, tuple[str, str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        table[int(entry)] = (comm, state, int(ppid), int(pgrp))
    return table


def _our_chromium_groups() -> set[int]:
    """Process groups of live Chromium processes descended from this test process.

    Playwright starts Chromium in a process group of its own, so the group id finds the
    browser's helpers (zygotes, renderers, utilities) even after they are re-parented,
    without confusing them with Chromium processes that other people run meanwhile.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (_, _, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups: set[int] = set()
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        comm, state, _, pgrp = table[pid]
        if comm.startswith("chrom") and state != "Z":
            groups.add(pgrp)
        todo.extend(children.get(pid, []))
    return groups


def _assert_groups_gone(groups: set[int], timeout_s: float = 5.0) -> None:
    """Wait until no live (non-zombie) process remains in ``groups``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [
            pid
            for pid, (_, state, _, pgrp) in _proc_table().items()
            if pgrp in groups and state != "Z"
        ]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not alive, f"Chromium processes left behind: {alive}"


def _get(url: str) -> tuple[int, str]:
    """GET ``url`` with urllib; return ``(status, body)`` also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post(url: str, data: bytes = b"", content_type: str = "") -> tuple[int, Any]:
    """POST ``data`` with urllib; return ``(status, JSON or text body)``, errors included."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers
    if kind.get_content_type() == "application/json":
        return status, json.loads(raw)
    return status, raw.decode()


async def _stats(page: Page, site: FixtureSite) -> dict[str, Any]:
    """Read ``/__stats`` through the browser context's request API."""
    response = await page.request.get(site.url + "/__stats")
    assert response.ok
    return dict(await response.json())


async def _sign_in(page: Page, site: FixtureSite, email: str = EMAIL) -> None:
    await page.goto(site.url + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(site.url + "/account")


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    """A fresh site per test (fast: a thread and a socket), with a short ``/slow``."""
    with FixtureSite(slow_s=0.4, flaky_every=2) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Debian Chromium for the whole module; checks that it exits cleanly."""
    before = _our_chromium_groups()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        groups = _our_chromium_groups() - before
        assert len(groups) == 1, groups
        try:
            yield launched
        finally:
            await launched.close()
    _assert_groups_gone(groups)


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh, isolated browser context (cookies, storage) per test."""
    ctx = await browser.new_context()
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext) -> Page:
    """A page in the per-test context."""
    return await context.new_page()


# -- plain (no browser) ----------------------------------------------------------------


def test_api_lifecycle_and_loopback_only() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com", ""):
        with pytest.raises(ValueError):
            FixtureSite(host=host)
    site = FixtureSite()
    with pytest.raises(RuntimeError):
        _ = site.url
    assert site.start() is site
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", site.url)
        assert site.start() is site  # idempotent
        assert _get(site.url + "/")[0] == 200
    finally:
        site.stop()
    site.stop()  # idempotent
    assert not site.running
    with FixtureSite(port=0) as other:
        assert other.running and other.port > 0
    assert not other.running


def test_catalogue_is_deterministic() -> None:
    assert len(CATALOGUE) == 23
    assert CATALOGUE[0].label == "Paris -> Rome, 09:00, EUR 120"
    assert [f.id for f in CATALOGUE] == list(range(1, 24))
    assert len({f.title for f in CATALOGUE}) == 23


# -- async API -------------------------------------------------------------------------


@on_module_loop
async def test_login_sets_cookie_and_account_shows_email(
    page: Page, context: BrowserContext, site: FixtureSite
) -> None:
    await page.goto(site.url + "/account")
    await expect(page).to_have_url(site.url + "/login")  # not signed in yet

    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill("wrong")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Invalid email or password")
    await expect(page.get_by_label("Email")).to_have_value(EMAIL)
    assert await context.cookies() == []

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(site.url + "/account")
    await expect(page.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as {EMAIL}")
    (cookie,) = await context.cookies()
    assert cookie["name"] == "session" and len(cookie["value"]) == 32
    assert cookie["httpOnly"] is True and cookie["path"] == "/"

    await page.get_by_role("link", name="Sign out").click()
    await expect(page).to_have_url(site.url + "/login")
    assert await context.cookies() == []
    await page.goto(site.url + "/account")
    await expect(page).to_have_url(site.url + "/login")


@on_module_loop
async def test_search_and_pagination(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/search")
    results = page.get_by_test_id("result")
    await expect(results).to_have_count(PER_PAGE)
    await expect(page.get_by_test_id("result-count")).to_have_text("23 results")

    # Walk every page of the unfiltered catalogue with the Next link.
    seen: list[str] = []
    while True:
        seen += [text.strip() for text in await results.all_inner_texts()]
        next_link = page.locator("a[rel=next]")
        if await next_link.count() == 0:
            break
        await next_link.click()
    assert seen == [f.label for f in CATALOGUE]
    await expect(page.get_by_test_id("page-info")).to_have_text("Page 5 of 5")

    # Search, then page forward and back; the query survives pagination.
    await page.get_by_placeholder("Search flights").fill("paris")
    await page.locator("#search").click()
    await expect(page).to_have_url(re.compile(r"/search\?q=paris$"))
    paris = [f.label for f in CATALOGUE if "paris" in f.title.lower()]
    assert len(paris) == 6
    await expect(results).to_have_text(paris[:5])
    await expect(page.get_by_test_id("page-info")).to_have_text("Page 1 of 2")
    await expect(page.get_by_role("link", name="Previous")).to_have_count(0)
    await page.get_by_role("link", name="Next").click()
    await expect(page).to_have_url(re.compile(r"q=paris&page=2"))
    await expect(results).to_have_text(paris[5:])
    await page.get_by_role("link", name="Previous").click()
    await expect(results).to_have_text(paris[:5])

    await page.get_by_role("searchbox", name="Search flights").fill("Atlantis")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("No flights found")).to_be_visible()


@on_module_loop
async def test_detail_and_order_flow_submits_once(
    page: Page, context: BrowserContext, site: FixtureSite
) -> None:
    await _sign_in(page, site)
    await page.goto(site.url + "/search?q=rome")
    await page.get_by_test_id("result").first.get_by_role("link").click()
    await expect(page).to_have_url(site.url + "/item/1")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Paris -> Rome")
    await expect(page.get_by_test_id("price")).to_have_text("EUR 120")
    await page.get_by_role("button", name="Book").click()
    await expect(page).to_have_url(site.url + "/order/1")

    await page.get_by_label("Full name").fill("Ada Lovelace")
    await page.get_by_label("Seats").select_option("3")
    await page.get_by_label("Business").check()
    await page.get_by_label("Travel date").fill("2030-05-01")
    await page.get_by_label("Attachment (optional)").set_input_files(
        files=[{"name": "passport.txt", "mimeType": "text/plain", "buffer": b"P<ADA"}]
    )
    # Without the terms the order is refused and nothing is counted.
    await page.get_by_role("button", name="Place order").click()
    await expect(page.get_by_role("alert")).to_have_text("You must accept the terms")
    assert site.submissions == 0
    await expect(page.get_by_label("Full name")).to_have_value("Ada Lovelace")

    await page.get_by_label("I accept the terms").check()
    await page.get_by_label("Attachment (optional)").set_input_files(
        files=[{"name": "passport.txt", "mimeType": "text/plain", "buffer": b"P<ADA"}]
    )
    await page.get_by_role("button", name="Place order").click()
    await expect(page).to_have_url(site.url + "/confirmation/1")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Order 1 confirmed")
    await page.reload()  # post/redirect/get: reloading does not resubmit
    await expect(page.get_by_text("Order 1 confirmed")).to_be_visible()

    assert site.submissions == 1
    (order,) = site.orders
    assert order == {
        "order_no": 1,
        "item_id": 1,
        "title": "Paris -> Rome",
        "price": 120,
        "email": EMAIL,
        "name": "Ada Lovelace",
        "seats": 3,
        "fare": "business",
        "date": "2030-05-01",
        "terms": True,
        "attachment": "passport.txt",
        "attachment_size": 5,
    }
    assert (await _stats(page, site))["submissions"] == 1

    # Signed out, the POST is sent to /login (and comes back to the form afterwards).
    await context.clear_cookies()
    await page.goto(site.url + "/order/2")
    await page.get_by_label("I accept the terms").check()
    await page.get_by_role("button", name="Place order").click()
    await expect(page).to_have_url(site.url + "/login?next=/order/2")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(site.url + "/order/2")
    assert site.submissions == 1


@on_module_loop
async def test_storage_page_writes_and_reads_web_storage(
    browser: Browser, page: Page, context: BrowserContext, site: FixtureSite
) -> None:
    local, session = page.locator("#local-value"), page.locator("#session-value")
    await page.goto(site.url + "/storage")
    await expect(local).to_have_text("(none)")
    await expect(session).to_have_text("(none)")

    await page.get_by_label("Cart item").fill("flight-7")
    await page.get_by_role("button", name="Save to storage").click()
    await expect(local).to_have_text("flight-7")
    await expect(session).to_have_text("checkout")
    assert await page.evaluate("localStorage.getItem('cart')") == "flight-7"

    await page.reload()  # same tab: both survive
    await expect(local).to_have_text("flight-7")
    await expect(session).to_have_text("checkout")

    other = await context.new_page()  # new tab: localStorage only
    await other.goto(site.url + "/storage")
    await expect(other.locator("#local-value")).to_have_text("flight-7")
    await expect(other.locator("#session-value")).to_have_text("(none)")

    # storage_state() captures localStorage; a new context restores it from there.
    state = await context.storage_state()
    (origin,) = state["origins"]
    assert {"name": "cart", "value": "flight-7"} in origin["localStorage"]
    restored = await browser.new_context(storage_state=state)
    try:
        fresh = await restored.new_page()
        await fresh.goto(site.url + "/storage")
        await expect(fresh.locator("#local-value")).to_have_text("flight-7")
        await expect(fresh.locator("#session-value")).to_have_text("(none)")
        await fresh.get_by_role("button", name="Clear storage").click()
        await expect(fresh.locator("#local-value")).to_have_text("(none)")
    finally:
        await restored.close()


@on_module_loop
async def test_slow_page_obeys_slow_s(page: Page, site: FixtureSite) -> None:
    assert site.slow_s == 0.4
    started = time.monotonic()
    response = await page.goto(site.url + "/slow")
    elapsed = time.monotonic() - started
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", name="Slow page loaded")).to_be_visible()
    assert 0.4 <= elapsed < 5

    with pytest.raises(PlaywrightTimeoutError):
        await page.goto(site.url + "/slow", timeout=100)

    site.slow_s = 0.0  # adjustable while running
    started = time.monotonic()
    await page.goto(site.url + "/slow")
    assert time.monotonic() - started < 0.4


@on_module_loop
async def test_flaky_fails_every_nth_request(page: Page, site: FixtureSite) -> None:
    statuses = []
    for _ in range(4):
        response = await page.goto(site.url + "/flaky")
        assert response is not None
        statuses.append(response.status)
    assert statuses == [200, 500, 200, 500]
    await expect(page.get_by_role("alert")).to_have_text("Server error (request 4)")

    site.reset()  # restarts the cycle
    response = await page.goto(site.url + "/flaky")
    assert response is not None and response.status == 200

    with FixtureSite(flaky_every=3) as every_third, FixtureSite(flaky_every=0) as never:
        assert [_get(every_third.url + "/flaky")[0] for _ in range(6)] == [
            200,
            200,
            500,
            200,
            200,
            500,
        ]
        assert {_get(never.url + "/flaky")[0] for _ in range(4)} == {200}


@on_module_loop
async def test_request_counter_counts_everything_but_stats(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/")
    # The page and its stylesheet; the data: icon keeps Chromium off /favicon.ico.
    expected_hits = {"/": 1, "/static/site.css": 1}
    for _ in range(3):  # polling /__stats does not disturb the counters
        stats = await _stats(page, site)
        assert stats["requests"] == 2
        assert stats["hits"] == expected_hits
    assert site.requests == 2 and site.hits == expected_hits

    await page.request.get(site.url + "/favicon.ico")
    not_found = await page.goto(site.url + "/no/such/page")
    assert not_found is not None and not_found.status == 404
    await page.goto(site.url + "/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(site.url + "/account")
    stats = await _stats(page, site)
    assert stats["hits"] == {
        "/": 1,
        "/favicon.ico": 1,
        "/no/such/page": 1,
        "/login": 2,  # GET form + POST
        "/account": 1,  # the redirect target
        "/static/site.css": 4,  # one per HTML page: /, 404, /login, /account
    }
    assert stats["requests"] == sum(stats["hits"].values()) == 10 == site.requests

    reset = await page.request.post(site.url + "/__reset")
    assert reset.ok and await reset.json() == {"ok": True}
    assert await _stats(page, site) == ZEROED_STATS


@on_module_loop
async def test_hover_reveals_text(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/hover")
    reveal = page.get_by_test_id("hover-reveal")
    await expect(reveal).to_be_hidden()
    await page.get_by_text("Hover over me").hover()
    await expect(reveal).to_be_visible()
    await expect(page.get_by_role("tooltip")).to_have_text("Hidden treasure revealed")
    await page.get_by_role("heading", name="Hover").hover()
    await expect(reveal).to_be_hidden()


@on_module_loop
async def test_drag_and_drop(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/drag")
    status = page.get_by_role("status")
    await expect(status).to_have_text("Nothing dropped")
    await page.get_by_test_id("drag-source").drag_to(page.get_by_test_id("drop-target"))
    await expect(status).to_have_text("Dropped drag-source")
    await expect(page.get_by_test_id("drop-target")).to_have_text("Dropped!")


@on_module_loop
async def test_double_click(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/dblclick")
    target, status = page.get_by_test_id("dbl-target"), page.get_by_test_id("dbl-status")
    await target.click()
    await expect(status).to_have_text("Not double-clicked")
    await target.dblclick()
    await expect(status).to_have_text("Double-clicked 1 time")
    await target.dblclick()
    await expect(status).to_have_text("Double-clicked 2 times")


@on_module_loop
async def test_keyboard(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/keyboard")
    box = page.get_by_placeholder("Type and press Enter")
    await box.press_sequentially("hello")
    await expect(page.get_by_test_id("last-key")).to_have_text("o")
    await expect(page.get_by_role("status")).to_have_text("Nothing submitted")
    await box.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("You typed: hello")
    await page.get_by_label("Message").press("Shift+A")
    await expect(page.get_by_test_id("last-key")).to_have_text("A")


@on_module_loop
async def test_concurrent_requests_are_counted_exactly(site: FixtureSite) -> None:
    def fetch(path: str) -> int:
        return _get(site.url + path)[0]

    site.slow_s = 0.3
    started = time.monotonic()
    paths = ["/slow"] * 4 + ["/search?page=2"] * 20
    statuses = await asyncio.gather(*(asyncio.to_thread(fetch, p) for p in paths))
    assert set(statuses) == {200}
    assert time.monotonic() - started < 1.2  # the slow requests ran in parallel
    assert site.requests == 24 and site.hits == {"/slow": 4, "/search": 20}


# -- event-driven pages (async API) ------------------------------------------------------


@on_module_loop
async def test_popups_open_target_and_post_action(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/popups")
    async with page.expect_popup() as tab_info:  # target=_blank (noopener) link
        await page.get_by_role("link", name="Open in a new tab").click()
    tab = await tab_info.value
    await expect(tab).to_have_url(site.url + "/popup-target?from=link")
    await expect(tab.get_by_role("heading", level=1)).to_have_text("Popup target")
    await expect(tab.locator("#from")).to_have_text("link")
    await tab.locator("#confirm-popup").click()
    await expect(tab.locator("#done")).to_have_text("Popup action done")
    assert site.popup_actions == 1

    async with page.expect_popup() as window_info:  # window.open(...)
        await page.locator("#open-window").click()
    window = await window_info.value
    await expect(window.locator("#from")).to_have_text("window")
    assert await window.opener() == page
    await window.get_by_role("button", name="Confirm").click()
    await expect(window.locator("#done")).to_be_visible()
    assert site.popup_actions == 2
    assert len(page.context.pages) == 3
    assert site.hits["/popup-target"] == 2 and site.hits["/popup-action"] == 2


@on_module_loop
async def test_dialogs_alert_confirm_prompt_and_delete(page: Page, site: FixtureSite) -> None:
    # Each planned answer: accept (with an optional prompt text) or dismiss.
    plan: list[tuple[bool, str | None]] = []
    seen: list[tuple[str, str, str]] = []

    async def answer(dialog: Dialog) -> None:
        seen.append((dialog.type, dialog.message, dialog.default_value))
        accept, text = plan.pop(0)
        if not accept:
            await dialog.dismiss()
        elif text is None:
            await dialog.accept()
        else:
            await dialog.accept(text)

    page.on("dialog", answer)
    await page.goto(site.url + "/dialogs")

    async def run(button: str, *answers: tuple[bool, str | None]) -> None:
        plan.extend(answers)
        await page.locator(f"#{button}").click()

    await run("alert", (True, None))
    await expect(page.locator("#alert-result")).to_have_text("alerted")
    await run("confirm", (True, None))
    await expect(page.locator("#confirm-result")).to_have_text("confirmed")
    await run("confirm", (False, None))
    await expect(page.locator("#confirm-result")).to_have_text("cancelled")
    await run("prompt", (True, "Ada"))
    await expect(page.locator("#prompt-result")).to_have_text("Ada")
    await run("prompt", (False, None))
    await expect(page.locator("#prompt-result")).to_have_text("(cancelled)")
    await run("delete", (False, None))
    await expect(page.locator("#delete-result")).to_have_text("kept")
    assert site.deletions == 0
    await run("delete", (True, None))
    await expect(page.locator("#delete-result")).to_have_text("deleted 1")
    await run("delete", (True, None))
    await expect(page.locator("#delete-result")).to_have_text("deleted 2")
    assert site.deletions == 2 and site.hits["/dialogs/delete"] == 2
    assert plan == []
    assert seen == [
        ("alert", "Hello from the site", ""),
        ("confirm", "Delete the draft?", ""),
        ("confirm", "Delete the draft?", ""),
        ("prompt", "Your name?", "guest"),
        ("prompt", "Your name?", "guest"),
        ("confirm", "Really delete?", ""),
        ("confirm", "Really delete?", ""),
        ("confirm", "Really delete?", ""),
    ]


@on_module_loop
async def test_frames_greeting_and_order(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/frames")
    inner = page.frame_locator("#inner")
    await inner.get_by_label("Name").fill("Ada")
    await inner.get_by_role("button", name="Greet").click()
    await expect(inner.locator("#frame-greeting")).to_have_text("Hello, Ada")
    assert site.frame_orders == 0  # the greeting is client-side only

    await inner.get_by_role("button", name="Order").click()
    await expect(inner.locator("#frame-order-result")).to_have_text("ordered 1")
    await inner.locator("#frame-order").click()
    await expect(inner.locator("#frame-order-result")).to_have_text("ordered 2")
    assert site.frame_orders == 2

    frame = page.frame(name="inner")
    assert frame is not None and frame.url == site.url + "/frame-inner"
    assert frame.parent_frame == page.main_frame
    assert await frame.locator("#frame-greeting").text_content() == "Hello, Ada"


@on_module_loop
async def test_downloads_report_and_blob(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/downloads")
    async with page.expect_download() as report_info:
        await page.get_by_role("link", name="Download the report").click()
    report = await report_info.value
    assert report.suggested_filename == "report.csv"
    assert report.url == site.url + "/download/report.csv"
    assert (await report.path()).read_bytes() == REPORT_CSV
    assert site.downloads == 1
    await expect(page).to_have_url(site.url + "/downloads")  # an attachment: no navigation

    async with page.expect_download() as blob_info:
        await page.locator("#report-js").click()
    blob = await blob_info.value
    assert blob.suggested_filename == "blob.csv"
    assert blob.url.startswith("blob:")
    assert (await blob.path()).read_bytes() == b"a,b\n1,2\n"
    assert site.downloads == 1  # made in the page, no request

    with urllib.request.urlopen(site.url + "/download/report.csv", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/csv"
        assert response.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
        assert response.read() == REPORT_CSV
    assert site.downloads == 2


@on_module_loop
async def test_canvas_clicks_and_keys(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/canvas")
    box = await page.locator("#pad").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 400, "height": 300}  # the top-left corner

    points = [(10, 20), (200, 150), (390, 290)]
    for x, y in points:
        async with page.expect_response("**/canvas/click") as response_info:
            await page.mouse.click(x, y)
        assert (await response_info.value).ok
    async with page.expect_response("**/canvas/click"):
        await page.locator("#pad").click(position={"x": 5, "y": 7})
    await expect(page.locator("#clicks")).to_have_text("10,20; 200,150; 390,290; 5,7")
    assert site.canvas_clicks == [{"x": x, "y": y} for x, y in [*points, (5, 7)]]
    alpha = await page.evaluate(
        "document.getElementById('pad').getContext('2d').getImageData(10, 20, 1, 1).data[3]"
    )
    assert alpha > 0  # a dot was drawn

    typed = page.get_by_label("Type here")
    await typed.press_sequentially("ab")
    await typed.press("Enter")
    await typed.press("Shift+C")
    await expect(page.locator("#keys")).to_have_text("a b Enter Shift C")
    await expect(page.locator("#typed")).to_have_value("abC")


@on_module_loop
async def test_late_element_appears(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/late?delay_ms=300")
    started = time.monotonic()
    late = page.get_by_role("button", name="I arrived late")
    assert await late.count() == 0
    await late.click()  # auto-waits for the element
    assert time.monotonic() - started > 0.15
    await expect(page.locator("#late-result")).to_have_text("clicked late")

    status, body = _get(site.url + "/late")
    assert status == 200 and "appears 500 ms after" in body  # the default delay
    assert "appears 0 ms after" in _get(site.url + "/late?delay_ms=-5")[1]


@on_module_loop
async def test_clock_ticks(page: Page, context: BrowserContext, site: FixtureSite) -> None:
    before = datetime.now(UTC)
    await page.goto(site.url + "/clock")
    rendered = datetime.fromisoformat(await page.locator("#now").inner_text())
    assert rendered.tzinfo is not None
    assert abs((rendered - before).total_seconds()) < 5
    ticks = page.locator("#ticks")
    first = await ticks.inner_text()
    await expect(ticks).not_to_have_text(first)
    await page.wait_for_function("Number(document.getElementById('ticks').textContent) >= 3")

    # With Playwright's fake clock, paused, the timer is deterministic.
    frozen = await context.new_page()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    await frozen.clock.install(time=start)
    await frozen.clock.pause_at(start + timedelta(seconds=1))
    await frozen.goto(site.url + "/clock")
    await frozen.wait_for_timeout(250)  # real time passes, page time does not
    await expect(frozen.locator("#ticks")).to_have_text("0")
    await frozen.clock.run_for(1000)
    await expect(frozen.locator("#ticks")).to_have_text("10")


@on_module_loop
async def test_marks_cart_and_checkout(page: Page, site: FixtureSite) -> None:
    await page.goto(site.url + "/marks")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Shop")
    cards = page.locator(".card")
    await expect(cards).to_have_count(5)
    await expect(cards.get_by_role("heading", level=2)).to_have_text(
        [f"Item {k}" for k in range(1, 6)]
    )
    # Generic markup: nothing interactive carries an id or a test id.
    assert await page.locator("button, a").count() == 6
    assert await page.locator(":is(button, a):is([id], [data-testid])").count() == 0

    count = page.locator(".cart-count")
    await expect(count).to_have_text("0")
    for n, item in enumerate([2, 5, 2], start=1):
        await cards.filter(has_text=f"Item {item}").get_by_role("button").click()
        await expect(count).to_have_text(str(n))
    assert site.cart == [2, 5, 2]

    await page.get_by_role("link", name="Checkout").click()
    await expect(page).to_have_url(site.url + "/marks/checkout")
    await expect(page.locator("#checkout")).to_have_text("Items: 2, 5, 2")
    # The cart is site-wide: a cookie-less client sees it too.
    assert '<span class="cart-count">3</span>' in _get(site.url + "/marks")[1]


# -- event-driven pages (plain HTTP) -----------------------------------------------------


def test_event_counters_in_stats_and_reset(site: FixtureSite) -> None:
    url = site.url
    assert site.stats() == ZEROED_STATS
    status, body = _post(url + "/popup-action", b"from=link", "application/x-www-form-urlencoded")
    assert status == 200 and '<p id="done">Popup action done</p>' in body
    assert _post(url + "/dialogs/delete") == (200, {"deleted": 1})
    assert _post(url + "/frame-order") == (200, {"orders": 1})
    assert _post(url + "/frame-order") == (200, {"orders": 2})
    click = json.dumps({"x": 3, "y": 4}).encode()
    assert _post(url + "/canvas/click", click, "application/json") == (200, {"clicks": 1})
    assert _post(url + "/canvas/click", b"x=5&y=6", "application/x-www-form-urlencoded") == (
        200,
        {"clicks": 2},
    )
    assert _post(url + "/canvas/click", b'{"x": "a"}', "application/json")[0] == 400
    assert _post(url + "/marks/add?item=4") == (200, {"count": 1})
    assert _post(url + "/marks/add?item=6")[0] == 400
    assert _post(url + "/marks/add")[0] == 400
    assert _get(url + "/download/report.csv") == (200, REPORT_CSV.decode())
    assert _get(url + "/popup-action")[0] == 405  # POST only
    assert '<p id="from">a&lt;b</p>' in _get(url + "/popup-target?from=a%3Cb")[1]
    assert '<p id="checkout">Items: 4</p>' in _get(url + "/marks/checkout")[1]

    stats = json.loads(_get(url + "/__stats")[1])
    expected = {
        "popup_actions": 1,
        "deletions": 1,
        "frame_orders": 2,
        "downloads": 1,
        "canvas_clicks": [{"x": 3, "y": 4}, {"x": 5, "y": 6}],
        "cart": [4],
    }
    assert {key: stats[key] for key in expected} == expected
    assert (site.popup_actions, site.deletions, site.frame_orders, site.downloads) == (
        1,
        1,
        2,
        1,
    )
    assert site.canvas_clicks == expected["canvas_clicks"] and site.cart == [4]

    assert _post(url + "/__reset") == (200, {"ok": True})
    assert site.stats() == ZEROED_STATS
    assert '<p id="checkout">Items: </p>' in _get(url + "/marks/checkout")[1]


# -- sync API --------------------------------------------------------------------------


def test_sync_api_home_links_lead_to_their_pages(site: FixtureSite) -> None:
    headings = {"Sign in": "Sign in", "Search flights": "Find a flight", "Storage": "Storage"}
    before = _our_chromium_groups()  # the module's async browser may be running
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        groups = _our_chromium_groups() - before
        assert len(groups) == 1
        try:
            page = browser.new_page()
            for link, heading in headings.items():
                page.goto(site.url + "/")
                page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
                sync_expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            page.goto(site.url + "/account")
            sync_expect(page).to_have_url(site.url + "/login")
        finally:
            browser.close()
    _assert_groups_gone(groups)
    assert site.hits["/"] == len(headings)


# -- command line ----------------------------------------------------------------------


def test_command_line_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fixtures.site", "--port", "0", "--slow", "0.05"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"LISTENING (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, f"unexpected first line: {line!r}"
        url = match.group(1)
        assert int(match.group(2)) > 0
        status, body = _get(url + "/slow")
        assert status == 200 and "Slow page loaded" in body
        assert _get(url + "/flaky")[0] == 200
        assert _get(url + "/flaky")[0] == 500
        stats = json.loads(_get(url + "/__stats")[1])
        assert stats["requests"] == 3
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line in all
    assert err == ""


def test_notifications_are_counted_with_duplicates(site: FixtureSite) -> None:
    """``POST /api/notify`` keeps every notification (a repeated one is visible), and
    ``GET /api/notify?key=K`` answers how many arrived with that key."""

    def post(key: str) -> dict[str, Any]:
        data = urllib.parse.urlencode({"key": key, "text": "hi"}).encode()
        with urllib.request.urlopen(site.url + "/api/notify", data=data, timeout=10) as r:
            return dict(json.loads(r.read()))

    assert post("k1") == {"ok": True, "count": 1}
    assert post("k1") == {"ok": True, "count": 2}
    with urllib.request.urlopen(site.url + "/api/notify?key=k1", timeout=10) as response:
        assert json.loads(response.read()) == {"count": 2}
    assert [n["key"] for n in site.notifications] == ["k1", "k1"]
    site.reset()
    assert site.notifications == []
