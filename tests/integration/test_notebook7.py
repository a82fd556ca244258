"""The saved quickstart notebook in Jupyter Notebook 7, seen in headless Chromium with
no kernel running (issue 14, points 5 and 6: the views work in Notebook 7 too).

Untrusted (as a notebook someone sent you), Notebook 7 sanitizes outputs and runs no
script: the live views and the run browser's static layout still show, and a step opens
by a click on its row. Trusted (signed, as a notebook you saved yourself): the run
browser's script runs: its filter box is there and ``j`` then Enter opens a step.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_notebooks import execute

from recorder.integrations.browser.launch import find_chromium, launch_args

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
JUPYTER = Path(sys.executable).with_name("jupyter")
OWN_ERROR = "Cannot read properties of undefined (reading 'schema')"
"""Notebook 7.6's own page error, on any notebook (an empty one too): not the views'."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if shutil.which("jupyter-notebook", path=str(JUPYTER.parent)) is None:
        pytest.fail("Notebook 7 is missing: the dev extra installs it (notebook>=7)")
    root = tmp_path_factory.mktemp("nb7")
    book = execute(REPO / "notebooks" / "quickstart.ipynb", root / "store")
    nbformat.write(book, root / "trusted.ipynb")
    book.metadata["copy"] = "sent by someone"  # other bytes: the signature is by content
    nbformat.write(book, root / "untrusted.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "config"),
           "JUPYTER_DATA_DIR": str(root / "data"),
           "JUPYTER_RUNTIME_DIR": str(root / "run")}  # fmt: skip
    subprocess.run([str(JUPYTER), "trust", str(root / "trusted.ipynb")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    port, token = _free_port(), secrets.token_hex(12)
    process = subprocess.Popen(
        [str(JUPYTER), "notebook", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.3)
        yield lambda name: f"{base}/notebooks/{name}.ipynb?token={token}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _open(url: str, look: Any) -> tuple[Any, list[str]]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=launch_args())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.wait_for_selector("table.recorder-live", timeout=90_000)
            page.wait_for_selector(".recorder-viewer", timeout=90_000)
            seen = look(page)
        finally:
            browser.close()
    return seen, [e for e in errors if OWN_ERROR not in e]


def test_an_untrusted_notebook_shows_the_static_views(server: Any) -> None:
    def look(page: Any) -> dict[str, Any]:
        views = page.locator("table.recorder-live .recorder-outcome").all_text_contents()
        rows = page.locator(".recorder-viewer details.rv-step > summary:visible")
        visible = rows.count()
        rows.first.click()
        detail = page.locator(".recorder-viewer details.rv-step[open] .rv-detail").inner_text()
        script = page.locator(".recorder-viewer input").count()
        return {"views": views, "visible": visible, "detail": detail, "script": script}

    seen, errors = _open(server("untrusted"), look)
    assert seen["views"] == ["interrupted", "completed", "completed"], seen
    assert seen["visible"] == 6 and "Idea #" in seen["detail"], seen
    assert seen["script"] == 0, "an untrusted notebook runs no output script"
    assert errors == []


def test_a_trusted_notebook_runs_the_run_browser_s_script(server: Any) -> None:
    def look(page: Any) -> dict[str, Any]:
        viewer = page.locator(".recorder-viewer").first
        viewer.scroll_into_view_if_needed()
        viewer.click(position={"x": 5, "y": 5})
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_selector(".recorder-viewer details.rv-step[open]", timeout=10_000)
        return {"filter": page.locator(".recorder-viewer input").count(),
                "open": page.locator(".recorder-viewer details.rv-step[open]").count()}  # fmt: skip

    seen, errors = _open(server("trusted"), look)
    assert seen == {"filter": 1, "open": 1}, seen
    assert errors == []
