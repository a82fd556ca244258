"""Secrets in browser steps, against the fixture site and a real Chromium: a token in a
URL's query string and a value typed into a password field are redacted from the trace,
the DataFrame, ``recorder show``, CSV/JSONL exports and bundles made without
``--include-secrets``, while a replay and a restore still get the real values from the
owner-only store."""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import recorder
from fixtures.site import PASSWORD, FixtureSite
from recorder.bundle import export_bundle, import_bundle
from recorder.export import write_frame
from recorder.integrations.browser import aclose_browser, launch

pytestmark = [pytest.mark.integration, pytest.mark.browser]
on_module_loop = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
RECORDER_CLI = REPO / ".venv" / "bin" / "recorder"
EMAIL = "ada@example.com"
TOKEN = "TOKEN-8f3a9c1e5b7d"
HINT = "HINT-77aa31"
TYPED_PASSWORD = f'"{PASSWORD}"'.encode()
"""The password as a JSON string: how a request would hold it ("secret" is also a word)."""


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser_closed_at_end() -> AsyncIterator[None]:
    yield
    await aclose_browser()


def _read_everything(store_dir: Path, name: str, tmp_path: Path) -> str:
    """Everything a person reads of the run: DataFrames, exports, ``recorder show``."""
    frame = recorder.load(name, store=store_dir).to_dataframe()
    text = " ".join(str(v) for v in frame.astype(str).to_numpy().ravel())
    for suffix in (".csv", ".jsonl"):
        write_frame(frame, tmp_path / f"trace{suffix}")
        text += (tmp_path / f"trace{suffix}").read_text()
    for command in (["show", name], ["export", name, "-o", str(tmp_path / "cli.csv")]):
        done = subprocess.run(
            [str(RECORDER_CLI), "--store", str(store_dir), *command],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        text += done.stdout + done.stderr
    return text + (tmp_path / "cli.csv").read_text()


@on_module_loop
async def test_url_tokens_and_passwords_are_redacted_and_replay_still_works(
    browser_closed_at_end: None, site: FixtureSite, store_dir: Path, tmp_path: Path
) -> None:
    url = f"{site.url}/login?next=/account&token={TOKEN}&session_hint={HINT}"
    options = {"store": store_dir, "browser": recorder.Browser(secret_params=("session_hint",))}

    async def first_steps(page: Any) -> tuple[str, str]:
        nav = await page.goto(url)
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        return nav.url, page.url

    async with recorder.run("secret-url", **options) as run:
        page = await run.new_page()
        assert await first_steps(page) == (url, url)
        live_frame = run.to_dataframe()

    # A new attempt replays the three steps (no browser, no request) with the real URL,
    # then a new step goes live: the page is restored (the token URL, the typed email
    # and password) and the sign-in works.
    requests, launches = site.requests, launch.launches
    async with recorder.run("secret-url", **options) as run:
        page = await run.new_page()
        assert await first_steps(page) == (url, url)
        assert (site.requests, launch.launches, run.stats.replayed) == (requests, launches, 3)
        await page.locator("#sign-in").click()
        assert await page.locator("#signed-in-as").inner_text() == f"Signed in as {EMAIL}"

    shown = _read_everything(store_dir, "secret-url", tmp_path)
    shown += " ".join(str(v) for v in live_frame.astype(str).to_numpy().ravel())
    assert "token=[redacted]" in shown and "session_hint=[redacted]" in shown
    assert TOKEN not in shown and HINT not in shown

    # In the store, the token and the password are only in blobs kept like checkpoints.
    store = recorder.open_store(store_dir)
    metas = [json.loads(raw)["meta"] for _, raw in store.scan("step/")]
    kept = {m[f] for m in metas for f in ("checkpoint", "hidden") if f in m}
    holders = [
        key
        for key, value in store.scan("")
        if TOKEN.encode() in value or HINT.encode() in value or TYPED_PASSWORD in value
    ]
    assert holders and all(k.startswith("blob/") and k[5:] in kept for k in holders), holders

    # A bundle without secrets holds neither; it still replays, with the redacted URL.
    bundle = export_bundle("secret-url", tmp_path / "run.bundle", store=store_dir)
    with zipfile.ZipFile(bundle) as archive:
        for member in archive.namelist():
            data = archive.read(member)
            assert TOKEN.encode() not in data and HINT.encode() not in data, member
            assert TYPED_PASSWORD not in data, member
    other = tmp_path / "other"
    import_bundle(bundle, store=other)
    requests = site.requests
    async with recorder.run("secret-url", store=other, mode="replay") as run:
        page = await run.new_page()
        nav = await page.goto(url)
        assert "token=[redacted]" in nav.url and "token=[redacted]" in page.url
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
    assert site.requests == requests


FIELDS = """
<input id="plain" type="email">
<input id="upper" type="PASSWORD">
<input id="auto" type="text" autocomplete="current-password">
<input id="pw" type="password">
<input id="keys" type="password">
<input id="gone" type="text" oninput="this.remove()">
"""


@on_module_loop
async def test_typed_text_is_secret_in_password_fields_only(
    browser_closed_at_end: None, site: FixtureSite, store_dir: Path
) -> None:
    """What the recorder takes for a password field: ``type=password`` in any case, an
    ``autocomplete`` naming a password, by locator, by selector and by the keyboard;
    a field gone after the typing counts as one (the page cannot tell)."""
    async with recorder.run("password-fields", store=store_dir) as run:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.evaluate("html => { document.body.innerHTML = html; }", FIELDS)
        await page.locator("#plain").fill("typed-plain")
        await page.locator("#upper").fill("typed-upper")
        await page.get_by_role("textbox").nth(1).fill("typed-auto")  # #auto
        await page.fill("#pw", "typed-pw")
        await page.locator("#keys").focus()
        await page.keyboard.type("typed-keys")
        await page.locator("#gone").fill("typed-gone")
    trace = recorder.load("password-fields", store=store_dir).to_dataframe()
    typed = trace[trace["action"].isin(["fill", "type"])].sort_values("seq")
    assert typed["hidden"].notna().tolist() == [False, True, True, True, True, True]
