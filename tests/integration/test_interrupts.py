"""KeyboardInterrupt at every step boundary and inside every kind of step leaves a
consistent store and a run that resumes correctly (issue 4, point 8).

Inside a step means: in a step's function, in an effect's function after the effect
happened (an ambiguous effect, settled by the user's check), while litellm waits for
the server (the interrupt arrives from a timer signal, as Ctrl-C does), between the
chunks of an LLM stream, and during a Playwright action (sync API: a signal; async
API: the cell's task cancelled, as Jupyter does).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import litellm
import pytest

import recorder
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.integrations.browser import aclose_browser, close_browser
from recorder.journal import Journal
from recorder.store import DiskStore

pytestmark = pytest.mark.integration

POINTS = [f"{where}:{op}" for op in range(5) for where in ("before", "inside")] + ["before:5"]
"""Where the interrupt lands: before each of the five operations, inside each, and
after the last one (before the run exits)."""


class Interrupter:
    """Raises KeyboardInterrupt when the program reaches the chosen point."""

    def __init__(self, target: str | None) -> None:
        self.target = target

    def __call__(self, point: str) -> None:
        if point == self.target:
            self.target = None
            raise KeyboardInterrupt(point)


@pytest.fixture
def slow_llm() -> Iterator[LLMServer]:
    """Echo answers after 0.3 s: long enough for a timer to interrupt the wait."""
    with LLMServer(mode="echo", delay_s=0.3) as server:
        yield server


@pytest.fixture
def interrupt_timer() -> Iterator[Callable[[float], None]]:
    """``arm(s)``: a KeyboardInterrupt arrives in ``s`` seconds, like Ctrl-C."""

    def fire(*_: Any) -> None:
        raise KeyboardInterrupt("timer")

    previous = signal.signal(signal.SIGALRM, fire)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def program(
    run: recorder.Run,
    server: LLMServer,
    sent: list[str],
    at: Interrupter,
    arm: Callable[[float], None],
    *,
    check: Callable[[str], Any] | None = None,
) -> list[Any]:
    """Five operations: a step, an LLM call, an LLM stream, an effect, a step."""
    llm = {"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "sk-x",
           "num_retries": 0}  # fmt: skip
    out: list[Any] = []

    def plan(topic: str) -> str:
        at("inside:0")
        return topic.upper()

    at("before:0")
    out.append(run.step("plan", plan, "rome"))
    at("before:1")
    if at.target == "inside:1":
        at.target = None
        arm(0.1)  # arrives while litellm waits for the answer
    reply = litellm.completion(messages=[{"role": "user", "content": out[0]}], **llm)
    out.append(reply.choices[0].message.content)
    at("before:2")
    chunks = []
    for chunk in litellm.completion(
        messages=[{"role": "user", "content": "stream " + out[1]}], stream=True, **llm
    ):
        chunks.append(chunk.choices[0].delta.content or "")
        if len(chunks) == 2:
            at("inside:2")
    out.append("".join(chunks))
    at("before:3")

    def send(text: str, *, idempotency_key: str) -> str:
        sent.append(idempotency_key)
        at("inside:3")  # after the effect happened: ambiguous
        return f"sent {len(text)}"

    out.append(run.once("notify", send, out[2], check=check))
    at("before:4")
    out.append(run.step("stamp", lambda parts: "|".join(parts), out[:4]))
    if at.target == "inside:4":
        at("inside:4")
    at("before:5")
    return out


def store_is_consistent(store: Path) -> None:
    disk = DiskStore(store)
    try:
        assert disk.integrity_check() == []
        assert Journal(disk).verify() == []
    finally:
        disk.close()


@pytest.mark.parametrize("point", POINTS)
def test_keyboard_interrupt_anywhere_resumes(
    point: str,
    tmp_path: Path,
    slow_llm: LLMServer,
    interrupt_timer: Callable[[float], None],
) -> None:
    never = Interrupter(None)
    sent: list[str] = []
    with recorder.run("reference", store=tmp_path / "ref") as run:
        expected = program(run, slow_llm, sent, never, interrupt_timer)

    store = tmp_path / "store"
    sent.clear()
    with pytest.raises(KeyboardInterrupt), recorder.run("agent", store=store) as run:
        program(run, slow_llm, sent, Interrupter(point), interrupt_timer)
    assert run.outcome == "interrupted"
    store_is_consistent(store)
    recorded = len(recorder.load("agent", store=store).to_dataframe().query("status == 'live'"))

    def check(key: str) -> Any:  # the user's own check of the notification
        return f"sent {len(expected[2])}" if key in sent else False

    with recorder.run("agent", store=store) as run:
        assert program(run, slow_llm, sent, never, interrupt_timer, check=check) == expected
    assert run.stats.replayed >= recorded, "every step recorded before the interrupt replays"
    assert len(sent) == 1, "the effect happened exactly once"
    store_is_consistent(store)
    requests = slow_llm.requests
    with recorder.run("agent", store=store) as run:
        assert program(run, slow_llm, sent, never, interrupt_timer) == expected
    assert run.stats.live == 0 and slow_llm.requests == requests and len(sent) == 1


# -- during a browser action -------------------------------------------------------------


@pytest.mark.browser
def test_interrupt_during_a_sync_browser_action(
    tmp_path: Path, interrupt_timer: Callable[[float], None]
) -> None:
    """Ctrl-C while Playwright (sync API) waits for a slow page. The sync browser is
    closed at the end: while it runs, its event loop blocks asyncio.run in this thread."""
    try:
        with FixtureSite(slow_s=1.5) as site:

            def visit(run: recorder.Run) -> str:
                page = run.new_page()
                page.goto(site.url + "/login")
                if run.attempt == 1:
                    interrupt_timer(0.3)
                page.goto(site.url + "/slow")
                return str(page.locator("#slow").inner_text())

            with pytest.raises(KeyboardInterrupt), recorder.run("b", store=tmp_path) as run:
                visit(run)
            store_is_consistent(tmp_path)
            with recorder.run("b", store=tmp_path) as run:
                assert visit(run) == "Slow page loaded"
            assert run.stats.replayed == 1 and run.stats.live == 2
            requests = site.requests
            with recorder.run("b", store=tmp_path) as run:
                assert visit(run) == "Slow page loaded"
            assert run.stats.live == 0 and site.requests == requests
    finally:
        close_browser()


@pytest.mark.browser
def test_cancelled_cell_during_an_async_browser_action(tmp_path: Path) -> None:
    """Jupyter interrupts a top-level-await cell by cancelling its task."""
    with FixtureSite(slow_s=1.5) as site:

        async def visit() -> str:
            async with recorder.run("c", store=tmp_path) as run:
                page = await run.new_page()
                await page.goto(site.url + "/login")
                await page.goto(site.url + "/slow")
                return str(await page.locator("#slow").inner_text())

        async def interrupted() -> None:
            task = asyncio.ensure_future(visit())
            await asyncio.sleep(1.0)  # well inside the slow page's 1.5 s
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        async def main() -> list[str]:
            await interrupted()
            store_is_consistent(tmp_path)
            return [await visit(), await visit()]

        async def closing() -> list[str]:
            try:
                return await main()
            finally:
                await aclose_browser()

        # A thread of its own: Playwright's sync API, used by an earlier test, leaves its
        # event loop marked as running in the main thread.
        with ThreadPoolExecutor(1) as pool:
            visits = pool.submit(asyncio.run, closing()).result(timeout=300)
        assert visits == ["Slow page loaded"] * 2
        outcomes = [a.outcome for a in recorder.load("c", store=tmp_path).attempts]
        assert outcomes == ["interrupted", "completed", "completed"]
