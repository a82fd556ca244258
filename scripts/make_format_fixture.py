"""Write ``fixtures/stores/format-<N>/``: a store made by this version of the recorder.

    .venv/bin/python scripts/make_format_fixture.py

Run it once per new store or record format and commit the result; never regenerate an
existing one. ``tests/integration/test_format_fixtures.py`` replays every store kept
there with ``mode="replay"`` (no LLM server, no browser) and checks what it returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import litellm  # noqa: E402

import recorder  # noqa: E402
from fixtures.llm_server import LLMServer  # noqa: E402
from fixtures.site import FixtureSite  # noqa: E402
from recorder.integrations.browser import aclose_browser  # noqa: E402
from recorder.records import RECORD_FORMAT  # noqa: E402
from recorder.store import STORE_FORMAT  # noqa: E402

MESSAGES = [{"role": "user", "content": "Label ticket 7: printer on fire"}]


def program(run: recorder.Run, llm: dict[str, object]) -> dict[str, object]:
    """What the fixture holds; the test runs the same program in replay mode."""
    reply = litellm.completion(messages=MESSAGES, temperature=0, seed=3, **llm)
    chunks = list(litellm.completion(messages=MESSAGES, stream=True, **llm))
    return {
        "text": reply.choices[0].message.content,
        "streamed": "".join(c.choices[0].delta.content or "" for c in chunks),
        "step": run.step("shout", str.upper, "format fixture"),
        "blob": run.step("bytes", lambda: b"\x00\x01binary").hex(),
        "now": run.now().isoformat(),
        "uuid": str(run.uuid()),
    }


async def browser_program(run: recorder.Run, site: str) -> dict[str, object]:
    page = await run.new_page()
    await page.goto(site + "/login")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill("secret")
    await page.locator("#sign-in").click()
    return {"who": await page.locator("#signed-in-as").inner_text(), "title": await page.title()}


def main() -> None:
    target = ROOT / "fixtures" / "stores" / f"format-{STORE_FORMAT}.{RECORD_FORMAT}"
    if target.exists():
        raise SystemExit(f"{target} exists: fixtures of a released format are never rewritten")
    litellm.suppress_debug_info = True
    with LLMServer(mode="echo") as server, FixtureSite() as site:
        llm = {"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "sk-x",
               "num_retries": 0}  # fmt: skip
        with recorder.run("fixture", inputs={"format": RECORD_FORMAT}, store=target) as run:
            result = program(run, llm)

        # The site's URL (with its port) enters the browser keys: expected.json keeps it
        # so the replay asks for exactly the recorded pages.
        async def browse_site() -> dict[str, object]:
            async with recorder.run(
                "fixture-browser", inputs={"site": site.url}, store=target
            ) as run:
                out = await browser_program(run, site.url)
            await aclose_browser()
            return out

        browser_result = asyncio.run(browse_site())
        site_url = site.url
    recorder.store.open_store(target).close()
    con = sqlite3.connect(target / "cache.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for leftover in ("cache.db-wal", "cache.db-shm"):
        (target / leftover).unlink(missing_ok=True)
    expected = {"program": result, "browser": browser_result, "site": site_url}
    (target / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
