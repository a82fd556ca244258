"""An executed notebook, exported by nbconvert and seen in a real browser with no kernel
and no widget manager: the live views' final counts and the run browser are in the page
(issue 5, point 6; issue 14, point 5: every view leaves a static snapshot).

The quickstart notebook runs on a real kernel (nbclient), nbconvert writes it as HTML,
and headless Chromium opens it with every request but the file itself refused: the
views need nothing from outside.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nbconvert import HTMLExporter
from test_notebooks import execute

from recorder.integrations.browser.launch import find_chromium, launch_args

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_the_executed_quickstart_renders_its_live_views_and_run_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    book = execute(REPO / "notebooks" / "quickstart.ipynb", tmp_path / "store")
    body, _ = HTMLExporter().from_notebook_node(book)
    page_file = tmp_path / "quickstart.html"
    page_file.write_text(body)
    refused: list[str] = []
    errors: list[str] = []

    def route(request_route: object) -> None:
        request = request_route.request  # type: ignore[attr-defined]
        if request.url.startswith("file://"):
            request_route.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(request.url)
            request_route.abort()  # type: ignore[attr-defined]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=launch_args())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route("**/*", route)
            page.goto(page_file.as_uri())
            page.wait_for_selector(".recorder-outcome", timeout=60_000)
            views = page.eval_on_selector_all(
                "table.recorder-live",
                """tables => tables.map(t => Object.fromEntries(
                    ['replayed', 'live', 'failed', 'outcome'].map(
                        c => [c, t.querySelector('.recorder-' + c).textContent])))""",
            )
            steps = page.locator(".recorder-viewer details.rv-step")
            count = steps.count()
            shown = page.locator(".recorder-viewer details.rv-step > summary:visible")
            visible = shown.count()
            shown.first.click()
            detail = page.locator(".recorder-viewer details.rv-step[open] .rv-detail").inner_text()
            shot = page.locator(".recorder-live").first.screenshot()
            target = os.environ.get("RECORDER_DOCS_SCREENSHOT")
            if target:
                page.locator(".recorder-live").first.scroll_into_view_if_needed()
                page.screenshot(path=target, full_page=False)
        finally:
            browser.close()
    assert [(v["replayed"], v["live"], v["failed"], v["outcome"]) for v in views] == [
        ("0", "3", "0", "interrupted"),
        ("3", "3", "0", "completed"),
        ("6", "0", "0", "completed"),
    ]
    assert visible == 6 and count > 6, "every attempt's calls; the last attempt's shown"
    assert "Idea #" in detail and "refunds" in detail
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == []
    # Only nbconvert's own template scripts (MathJax, require.js) were asked for and
    # refused: the views need nothing from outside.
    assert all("mathjax" in u.lower() or "require" in u for u in refused), refused
