"""An executed notebook, rendered with its widget state, seen in a real browser: the
live view's counters and the run browser's list are in the page (issue 5, point 6).

The quickstart notebook runs on a real kernel (nbclient, widget state saved), nbconvert
writes it as HTML, and headless Chromium opens it. The widget renderer (ipywidgets'
html-manager) and require.js come from the npm registry, cached on disk; the page
loads them through routes, and any other request is refused: nothing leaves the
machine but the one registry download.
"""

from __future__ import annotations

import io
import os
import tarfile
import urllib.request
from pathlib import Path

import pytest
from nbconvert import HTMLExporter
from test_notebooks import execute

from recorder.integrations.browser.launch import find_chromium, launch_args

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ASSETS = "https://assets.invalid/"
PACKAGES = {  # served name: (npm package, version, member of its tarball)
    "embed-amd.js": ("@jupyter-widgets/html-manager", "1.0.15", "package/dist/embed-amd.js"),
    "require.js": ("requirejs", "2.3.7", "package/require.js"),
}


def asset(name: str) -> bytes:
    """A widget-rendering script from the npm registry (cached after the first run)."""
    package, version, member = PACKAGES[name]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recorder-tests"
    path = cache / f"{package.replace('/', '_')}-{version}-{name}"
    if not path.exists():
        tarball = f"https://registry.npmjs.org/{package}/-/{package.split('/')[-1]}-{version}.tgz"
        with urllib.request.urlopen(tarball, timeout=120) as response:
            data = response.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            extracted = archive.extractfile(member)
            assert extracted is not None, f"{member} missing from {tarball}"
            content = extracted.read()
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path.read_bytes()


def test_the_executed_quickstart_renders_its_live_views_and_run_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    book = execute(REPO / "notebooks" / "quickstart.ipynb", tmp_path / "store")
    exporter = HTMLExporter(widget_renderer_url=ASSETS + "embed-amd.js",
                            require_js_url=ASSETS + "require.js")  # fmt: skip
    body, _ = exporter.from_notebook_node(book)
    page_file = tmp_path / "quickstart.html"
    page_file.write_text(body)
    scripts = {name: asset(name) for name in PACKAGES}
    refused: list[str] = []

    def route(request_route: object) -> None:
        request = request_route.request  # type: ignore[attr-defined]
        url = request.url
        if url.startswith(ASSETS):
            request_route.fulfill(  # type: ignore[attr-defined]
                body=scripts[url[len(ASSETS) :]], content_type="application/javascript"
            )
        elif url.startswith("file://"):
            request_route.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(url)
            request_route.abort()  # type: ignore[attr-defined]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=launch_args())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.goto(page_file.as_uri())
            page.wait_for_selector(".recorder-outcome", timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('.recorder-outcome').length >= 3", timeout=60_000
            )
            views = page.eval_on_selector_all(
                "table.recorder-live",
                """tables => tables.map(t => Object.fromEntries(
                    ['replayed', 'live', 'failed', 'outcome'].map(
                        c => [c, t.querySelector('.recorder-' + c).textContent])))""",
            )
            options = page.eval_on_selector_all(
                "select option", "os => os.map(o => o.text.replaceAll('\\u00a0', ' '))"
            )
            detail = page.eval_on_selector_all(
                ".recorder-step", "ts => ts.map(t => t.textContent).join(' ')"
            )
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
    assert len(options) == 15 and options[0].startswith("a1 #0") and "replayed" in options[-1]
    assert "Idea #0 for refunds" in detail
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    # Only nbconvert's MathJax (no formula here) was asked for and refused.
    assert all("mathjax" in u for u in refused), refused
