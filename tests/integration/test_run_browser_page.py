"""The run browser (``recorder.show``) seen as a person sees it, in headless Chromium.

The browser agent of ``fixtures/agent.py`` books a flight on the fixture site, driven by
the scripted model over real litellm, with a screenshot after every browser step: its
first attempt is stopped at turn 4 (failed), the second replays those steps and
finishes. The viewer's HTML, written to a file, is opened twice: with JavaScript (as
JupyterLab, Notebook 7 and VS Code run a trusted output: keyboard, filter, overlay) and
without (as GitHub shows a notebook: the static layout alone). Screenshots go to /tmp
(``RECORDER_VIEWER_SHOTS`` names another folder).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import recorder
from fixtures.agent import TASK, book_flight, policy
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.integrations.browser import aclose_browser

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SHOTS = Path(os.environ.get("RECORDER_VIEWER_SHOTS", "/tmp"))
VIEWPORT = {"width": 1400, "height": 1000}
CHROMIUM = "/usr/bin/chromium"


class Stop(Exception):
    """Raised by the test to stop the agent's first attempt."""


async def record(store: Path) -> recorder.RunHistory:
    import litellm

    litellm.suppress_debug_info = True

    def stop_at_turn_4(turn: int, tool: str, args: dict[str, str]) -> None:
        if turn == 4:
            raise Stop("stopped by the test at turn 4")

    options = recorder.Browser(screenshots="each_step")
    with FixtureSite() as site, LLMServer(policy=policy) as model:
        llm = {"model": "openai/gpt-4o-mini", "api_base": model.base_url,
               "api_key": "sk-test", "num_retries": 0}  # fmt: skip
        try:
            for on_turn in (stop_at_turn_4, None):
                try:
                    async with recorder.run(
                        "book", inputs={"task": TASK}, store=store, browser=options
                    ) as run:
                        await book_flight(run, site.url, llm, on_turn=on_turn)
                except Stop:
                    pass
        finally:
            await aclose_browser()
    return recorder.load("book", store=store)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("viewer")
    history = asyncio.run(record(folder / "store"))
    assert [a.outcome.value for a in history.attempts] == ["failed", "completed"]
    view = recorder.show(history)
    return view.save(folder / "run.html")  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def chromium(page_file: Path) -> Iterator[Any]:
    """Chromium through Playwright's sync API (started after the recording: while it
    runs, Playwright's own loop counts as running in this thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(chromium: Any, page_file: Path, *, javascript: bool) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport=VIEWPORT, java_script_enabled=javascript)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Nothing leaves the page: it is one file with every image inline.
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
               else (errors.append("request " + r.request.url), r.abort()))  # fmt: skip
    page.goto(page_file.as_uri())
    return context, page, errors


def groups(page: Any) -> list[tuple[str, bool]]:
    """Each attempt group's outcome, and whether it is open."""
    return [  # type: ignore[no-any-return]
        tuple(g)
        for g in page.eval_on_selector_all(
            "details.rv-attempt",
            "gs => gs.map(g => [g.querySelector('summary .rv-outcome').textContent, g.open])",
        )
    ]


def image_sizes(page: Any, selector: str) -> dict[str, float]:
    """An image's natural width, the size it is drawn at (inside its border) and the
    width of the room it has, once it is loaded."""
    page.wait_for_function(
        f"() => {{ const i = document.querySelector({selector!r}); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )
    return page.eval_on_selector(  # type: ignore[no-any-return]
        selector,
        """i => ({natural: i.naturalWidth, width: i.clientWidth, height: i.clientHeight,
                 room: i.parentElement.clientWidth})""",
    )


def column_lefts(page: Any, attempt: int, column: int) -> set[float]:
    """The left edge of one column in every shown row of an attempt (and its head)."""
    return set(
        page.eval_on_selector_all(
            f"details.rv-attempt[data-attempt='{attempt}'] .rv-row",
            f"""rows => rows.filter(r => r.offsetParent)
                .map(r => Math.round(r.children[{column}].getBoundingClientRect().left))""",
        )
    )


def test_the_run_browser_with_javascript(chromium: Any, page_file: Path) -> None:
    context, page, errors = open_page(chromium, page_file, javascript=True)
    try:
        assert groups(page) == [("failed", False), ("completed", True)]
        head = page.locator("details.rv-attempt[data-attempt='1'] .rv-attempt-error")
        assert head.inner_text() == "Stop: stopped by the test at turn 4"
        for column in range(7):  # aligned columns, header included
            assert len(column_lefts(page, 2, column)) == 1, column
        page.screenshot(path=str(SHOTS / "run-browser-overview.png"))

        # j selects the first step of the open attempt, Enter opens it: the screenshot
        # shows at its natural size (the room is wider than the 1280 px page)
        page.focus(".recorder-viewer")
        page.keyboard.press("j")
        first = "details.rv-step[data-row='a2-r0']"
        assert page.eval_on_selector(first, "d => d.classList.contains('rv-sel') && !d.open")
        page.keyboard.press("Enter")
        assert page.eval_on_selector(first, "d => d.open")
        size = image_sizes(page, f"{first} img.rv-shot")
        assert size["natural"] == 1280 and size["room"] > 1280
        assert size["width"] == size["natural"] and size["height"] == 720
        page.keyboard.press(" ")  # Space closes it again
        assert page.eval_on_selector(first, "d => !d.open")

        # k/j move; an LLM call opens on the conversation, with its tool call
        for _ in range(3):
            page.keyboard.press("j")
        page.keyboard.press("k")
        page.keyboard.press("j")
        llm = "details.rv-step[data-row='a2-r3']"
        assert page.eval_on_selector(llm, "d => d.classList.contains('rv-sel')")
        page.keyboard.press("Enter")
        chat = page.locator(f"{llm} .rv-chat").first
        roles = chat.locator(".rv-who").all_inner_texts()
        assert [r.lower() for r in roles] == ["system", "user", "user"]
        reply = page.locator(f"{llm} .rv-role-assistant").inner_text()
        assert "fill" in reply and '"selector": "#email"' in reply
        page.locator(llm).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "run-browser-conversation.png"))
        page.keyboard.press("Enter")

        # A click on a screenshot opens the overlay at natural size; Escape closes it
        shot_row = "details.rv-step[data-row='a2-r20']"
        page.click(f"{shot_row} > summary")
        page.click(f"{shot_row} img.rv-shot")
        overlay = page.locator("dialog.rv-overlay")
        assert overlay.is_visible()
        big = image_sizes(page, "dialog.rv-overlay img")
        assert big["width"] == big["natural"] == 1280
        page.screenshot(path=str(SHOTS / "run-browser-overlay.png"))
        page.keyboard.press("Escape")
        assert not overlay.is_visible()
        page.locator(shot_row).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "run-browser-screenshot.png"))

        # ] and [ move between attempts (opening the older one)
        page.keyboard.press("[")
        assert groups(page) == [("failed", True), ("completed", True)]
        assert page.eval_on_selector("details.rv-sel", "d => d.dataset.row") == "a1-r0"

        # The filter hides the rows that do not match
        page.keyboard.press("/")
        page.keyboard.type("kind:llm")
        shown = page.eval_on_selector_all(
            "details.rv-step", "ds => ds.filter(d => d.offsetParent).map(d => d.dataset.row)"
        )
        kinds = page.eval_on_selector_all(
            "details.rv-step:not(.rv-hidden) .rv-kind", "ks => ks.map(k => k.textContent)"
        )
        assert len(shown) == 17 and set(kinds) == {"llm"}
        assert page.locator(".rv-count").inner_text() == "17 of 69 step calls"
        page.keyboard.press("Escape")
        assert page.eval_on_selector_all("details.rv-step.rv-hidden", "ds => ds.length") == 0
        page.click(".rv-toolbar button[data-term='status:replayed']")
        assert page.locator(".rv-count").inner_text() == "17 of 69 step calls"
        assert errors == []
    finally:
        context.close()


def test_the_run_browser_without_javascript(chromium: Any, page_file: Path) -> None:
    context, page, errors = open_page(chromium, page_file, javascript=False)
    try:
        assert groups(page) == [("failed", False), ("completed", True)]
        assert not page.locator(".rv-toolbar").is_visible()  # no dead controls
        for column in range(7):
            assert len(column_lefts(page, 2, column)) == 1, column
        row = "details.rv-step[data-row='a2-r20']"
        assert not page.locator(f"{row} .rv-detail").is_visible()
        page.click(f"{row} > summary")  # <details> opens without a script
        assert page.locator(f"{row} .rv-detail").is_visible()
        size = image_sizes(page, f"{row} img.rv-shot")
        assert size["width"] == size["natural"] == 1280
        page.locator(row).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "run-browser-static.png"))
        assert errors == []
    finally:
        context.close()
