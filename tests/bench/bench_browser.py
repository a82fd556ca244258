"""Browser-step benchmark: what recording and replaying Playwright steps cost.

    python tests/bench/bench_browser.py [--json FILE]

Everything runs in one process against the fixture site on 127.0.0.1 with Debian's (or
Playwright's) Chromium; timings are medians of repeated measurements and the targets
are ratios inside this one run (machines here are noisy; absolute numbers are not).

Rows:
- bare Playwright: launch, new context + page, goto, click, fill, storage_state, and a
  context restored from a saved state + goto;
- ``replayed browser step`` vs ``replayed LLM call``: per-step cost of a replay;
- ``replay 100 browser steps``: a whole recorded run of 100 steps, and whether it
  launched a browser;
- ``replayed <event step>`` vs ``replayed click``: dialogs, popups, frames, downloads and
  ``expect`` in a full replay (which must launch no browser and send no request);
- ``resume to first live step`` vs ``bare start + launch + restore``: a crashed run
  reopened, replayed, and its page brought to state (checkpoint, then the in-page steps
  since the last navigation run again) at its first live browser step, against doing
  the same browser work by hand;
- ``recording overhead``: a live step through the recorder (state read included) minus
  the same Playwright call made directly, interleaved pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import recorder
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.integrations.browser import aclose_browser, launch
from recorder.integrations.browser.launch import find_chromium, launch_args


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f} ms" if seconds >= 0.001 else f"{seconds * 1e6:9.1f} us"


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def bare_playwright(site: FixtureSite, rounds: int) -> dict[str, float]:
    from playwright.async_api import async_playwright

    out: dict[str, list[float]] = {}
    executable = find_chromium()
    for _ in range(rounds):
        pw = await async_playwright().start()
        t = time.perf_counter()
        browser = await pw.chromium.launch(executable_path=executable, args=launch_args())
        out.setdefault("launch", []).append(time.perf_counter() - t)
        t = time.perf_counter()
        context = await browser.new_context()
        page = await context.new_page()
        out.setdefault("new context + page", []).append(time.perf_counter() - t)
        for label, action in (
            ("goto", functools.partial(page.goto, site.url + "/login")),
            ("fill", functools.partial(page.locator("#email").fill, "a@b.c")),
            ("fill", functools.partial(page.locator("#password").fill, "secret")),
            ("click", page.locator("#sign-in").click),
        ):
            out.setdefault(label, []).append(await timed(action))
        t = time.perf_counter()
        state = await context.storage_state()
        out.setdefault("storage_state", []).append(time.perf_counter() - t)
        t = time.perf_counter()
        restored = await browser.new_context(storage_state=state)
        again = await restored.new_page()
        await again.goto(site.url + "/account")
        out.setdefault("restore context + goto", []).append(time.perf_counter() - t)
        await browser.close()
        await pw.stop()
    return {k: statistics.median(v) for k, v in out.items()}


async def record_browser_run(store: Path, site: FixtureSite, steps: int) -> None:
    async with recorder.run("bench-100", store=store) as run:
        page = await run.new_page()
        await page.goto(site.url + "/keyboard")
        for i in range(steps - 1):
            if i % 2:
                await page.locator("#key-input").fill(f"text {i}")
            else:
                await page.locator("#key-input").input_value()


async def replay_browser_run(
    store: Path, site: FixtureSite, steps: int
) -> tuple[float, list[float]]:
    per_step: list[float] = []
    start = time.perf_counter()
    async with recorder.run("bench-100", store=store, mode="replay") as run:
        page = await run.new_page()
        await page.goto(site.url + "/keyboard")
        for i in range(steps - 1):
            t = time.perf_counter()
            if i % 2:
                await page.locator("#key-input").fill(f"text {i}")
            else:
                await page.locator("#key-input").input_value()
            per_step.append(time.perf_counter() - t)
    return time.perf_counter() - start, per_step


def replayed_llm_per_call(store: Path, calls: int) -> float:
    import litellm

    litellm.suppress_debug_info = True
    with LLMServer(mode="echo") as server:
        kw = {"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "sk-x",
              "num_retries": 0}  # fmt: skip
        for _ in range(2):
            times = []
            with recorder.run("bench-llm", store=store):
                for i in range(calls):
                    t = time.perf_counter()
                    litellm.completion(messages=[{"role": "user", "content": f"q {i}"}], **kw)
                    times.append(time.perf_counter() - t)
    return statistics.median(times)


MARKS_JS = """() => { let i = 0; for (const e of document.querySelectorAll('a, button, input'))
  e.setAttribute('data-mark', String(i++)); return i; }"""


async def event_steps(store: Path, site: FixtureSite, rounds: int) -> dict[str, list[float]]:
    """Per-call replay cost of event-driven steps (dialogs, popups, frames, downloads,
    ``expect``) and of a plain click, in one recorded run replayed ``rounds`` times
    (the first pass records it)."""
    from playwright.async_api import expect

    times: dict[str, list[float]] = {}

    async def t(kind: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        value = await fn()
        times.setdefault(kind, []).append(time.perf_counter() - start)
        return value

    async def expect_popup(page: Any) -> Any:
        async with page.expect_popup() as info:
            await page.click("#open-tab")
        return await info.value

    async def expect_download(page: Any) -> Any:
        async with page.expect_download() as info:
            await page.click("#report")
        return await info.value

    async def body(run: recorder.Run) -> None:
        page = await run.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(site.url + "/late?delay_ms=0")
        for _ in range(10):
            await t("click", lambda: page.click("#late"))
            await t(
                "expect",
                lambda: expect(page.locator("#late-result")).to_have_text("clicked late"),
            )
        await page.goto(site.url + "/dialogs")
        for _ in range(10):
            await t("click raising a dialog", lambda: page.click("#confirm"))
        await page.goto(site.url + "/frames")
        frame = page.frame_locator("#inner")
        for i in range(10):
            await t("fill in a frame", lambda i=i: frame.locator("#frame-name").fill(f"n{i}"))
        await page.goto(site.url + "/popups")
        for _ in range(3):
            await t("expect_popup + click", lambda: expect_popup(page))
        await page.goto(site.url + "/downloads")
        for _ in range(3):
            await t("expect_download + click", lambda: expect_download(page))

    for round_ in range(rounds + 1):
        async with recorder.run("events", store=store, display=False) as run:
            await body(run)
        if round_ == 0:
            times.clear()
            await aclose_browser()
            launched, requests = launch.launches, site.requests
    times["$launches"] = [launch.launches - launched]
    times["$requests"] = [site.requests - requests]
    return times


async def resume_to_live(store: Path, site: FixtureSite, rounds: int) -> tuple[float, float]:
    """Median time from entering a crashed run (20 recorded steps, then a new one) to
    the end of its first live step, and the bare cost of the same browser work."""
    from playwright.async_api import async_playwright

    async def body(run: recorder.Run, extra: bool) -> None:
        page = await run.new_page()
        await page.goto(site.url + "/login")
        await page.get_by_label("Email").fill("ada@example.com")
        await page.get_by_label("Password").fill("secret")
        await page.locator("#sign-in").click()
        await page.goto(site.url + "/search")
        await page.locator("#q").fill("rome")  # in-page steps a restore runs again
        await page.evaluate(MARKS_JS)
        for _ in range(16):
            await page.locator("#q").input_value()
        if extra:
            await page.goto(site.url + "/storage")

    ours, bare = [], []
    for round_ in range(rounds):
        name = f"resume-{round_}"
        async with recorder.run(name, store=store) as run:
            await body(run, extra=False)
        await aclose_browser()
        t = time.perf_counter()
        async with recorder.run(name, store=store) as run:
            await body(run, extra=True)
        ours.append(time.perf_counter() - t)
        await aclose_browser()

        state_source = recorder.load(name, store=store)
        del state_source
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(executable_path=find_chromium(), args=launch_args())
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(site.url + "/login")
        await page.locator("#email").fill("ada@example.com")
        await page.locator("#password").fill("secret")
        await page.locator("#sign-in").click()
        state = await context.storage_state()
        await browser.close()
        await pw.stop()

        t = time.perf_counter()
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(executable_path=find_chromium(), args=launch_args())
        context = await browser.new_context(storage_state=state)
        page = await context.new_page()
        await page.goto(site.url + "/search")
        await page.locator("#q").fill("rome")
        await page.evaluate(MARKS_JS)
        await page.goto(site.url + "/storage")
        bare.append(time.perf_counter() - t)
        await browser.close()
        await pw.stop()
    return statistics.median(ours), statistics.median(bare)


async def recording_overhead(
    store: Path, site: FixtureSite, pairs: int
) -> tuple[float, float, float]:
    """Median live step through the recorder, the same call made directly on the real
    page, and the median of per-pair differences."""
    ours, direct, diffs = [], [], []
    async with recorder.run("overhead", store=store, mode="record") as run:
        page = await run.new_page()
        await page.goto(site.url + "/keyboard")
        real = await page.unwrap()
        for i in range(pairs):
            a = await timed(lambda i=i: page.locator("#key-input").fill(f"recorded {i}"))
            b = await timed(lambda i=i: real.locator("#key-input").fill(f"direct {i}"))
            ours.append(a)
            direct.append(b)
            diffs.append(a - b)
    return statistics.median(ours), statistics.median(direct), statistics.median(diffs)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with FixtureSite() as site, tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        results["bare"] = await bare_playwright(site, rounds=3)

        await record_browser_run(store / "b", site, 100)
        await aclose_browser()
        launches, requests = launch.launches, site.requests
        totals, per_steps = [], []
        for _ in range(5):
            total, per_step = await replay_browser_run(store / "b", site, 100)
            totals.append(total)
            per_steps.extend(per_step)
        results["replay_100_total"] = statistics.median(totals)
        results["replayed_browser_step"] = statistics.median(per_steps)
        results["replay_launched"] = launch.launches - launches
        results["replay_site_requests"] = site.requests - requests

        results["replayed_llm_call"] = replayed_llm_per_call(store / "llm", 200)

        events = await event_steps(store / "events", site, rounds=5)
        results["event_launches"] = events.pop("$launches")[0]
        results["event_requests"] = events.pop("$requests")[0]
        results["event_steps"] = {k: statistics.median(v) for k, v in events.items()}

        ours, bare = await resume_to_live(store / "resume", site, rounds=3)
        results["resume_to_first_live"], results["bare_start_restore"] = ours, bare

        rec, direct, diff = await recording_overhead(store / "over", site, pairs=40)
        results["live_recorded_step"], results["live_direct_step"] = rec, direct
        results["recording_overhead"] = diff
        await aclose_browser()
    return results


def report(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    def own(kind: str, value: float) -> float:
        """An expectation's own cost: its ``with`` block less the click inside it."""
        return value - r["event_steps"]["click"] if kind.endswith(" + click") else value

    checks = [
        ("replayed browser step within 2x a replayed LLM call",
         r["replayed_browser_step"] <= 2 * r["replayed_llm_call"],
         f"{r['replayed_browser_step'] / r['replayed_llm_call']:.2f}x"),
        ("replay of 100 browser steps under 0.1 s", r["replay_100_total"] < 0.1,
         f"{r['replay_100_total'] * 1000:.1f} ms"),
        ("replay starts no browser and sends no request",
         r["replay_launched"] == 0 and r["replay_site_requests"] == 0,
         f"{r['replay_launched']} launches, {r['replay_site_requests']} requests"),
        ("full replay of popups, dialogs, frames, downloads, expect: no browser, no request",
         r["event_launches"] == 0 and r["event_requests"] == 0,
         f"{r['event_launches']} launches, {r['event_requests']} requests"),
        *[(f"replayed {kind.removesuffix(' + click')} within 2x a replayed click",
           own(kind, value) <= 2 * r["event_steps"]["click"],
           f"{own(kind, value) / r['event_steps']['click']:.2f}x")
          for kind, value in r["event_steps"].items() if kind != "click"],
        ("resume brought to state (checkpoint + in-page steps) within 1.3x of bare "
         "start+launch+restore+goto+the same in-page steps",
         r["resume_to_first_live"] <= 1.3 * r["bare_start_restore"],
         f"{r['resume_to_first_live'] / r['bare_start_restore']:.2f}x"),
        ("recording adds under 10 ms to a live browser step (state read included)",
         r["recording_overhead"] < 0.010, ms(r["recording_overhead"]).strip()),
    ]  # fmt: skip
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print("| measurement | median |\n| --- | ---: |")
    for name, value in results["bare"].items():
        print(f"| bare Playwright: {name} | {ms(value)} |")
    for name, value in results["event_steps"].items():
        print(f"| replayed {name} | {ms(value)} |")
    for key, label in [
        ("replayed_llm_call", "replayed LLM call"),
        ("replayed_browser_step", "replayed browser step"),
        ("replay_100_total", "replay of a 100-step browser run (total)"),
        ("resume_to_first_live", "resume a crashed run to its first live browser step"),
        (
            "bare_start_restore",
            "bare: start Playwright + launch + restore context + goto + the in-page steps",
        ),
        ("live_direct_step", "live fill, Playwright directly"),
        ("live_recorded_step", "live fill, recorded (with the state read after it)"),
        ("recording_overhead", "recording overhead per live step (median of pairs)"),
    ]:
        print(f"| {label} | {ms(results[key])} |")
    print("\n| target | result | measured |\n| --- | --- | ---: |")
    for label, ok, measured in report(results):
        print(f"| {label} | {'PASS' if ok else 'FAIL'} | {measured} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
