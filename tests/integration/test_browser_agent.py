"""The browser agent under interruption: real Chromium, real litellm, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import recorder
from fixtures import agent
from fixtures.agent import TASK, book_flight, policy
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.integrations.browser import aclose_browser, launch

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"answer": "Order 1 confirmed", "turns": 13}


class Stop(Exception):
    """Raised by the test to interrupt the agent at a chosen turn."""


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as running:
        yield running


@pytest.fixture
def model() -> Iterator[LLMServer]:
    with LLMServer(policy=policy) as running:
        yield running


@pytest.fixture
def llm_kwargs(model: LLMServer) -> dict[str, Any]:
    import litellm

    litellm.suppress_debug_info = True
    return {"model": "openai/gpt-4o-mini", "api_base": model.base_url, "api_key": "sk-test",
            "num_retries": 0}  # fmt: skip


@pytest_asyncio.fixture(autouse=True)
async def _close_browser() -> AsyncIterator[None]:
    yield
    await aclose_browser()


async def run_agent(
    store: Path, site: FixtureSite, llm: dict[str, Any], *, stop: tuple[int, type] | None = None
) -> dict[str, Any]:
    def on_turn(turn: int, tool: str, args: dict[str, str]) -> None:
        if stop is not None and turn == stop[0]:
            raise stop[1]("interrupted by the test")

    async with recorder.run("book", inputs={"task": TASK}, store=store) as run:
        return await book_flight(run, site.url, llm, on_turn=on_turn)


def statuses(store: Path, attempt: int) -> list[tuple[str, str]]:
    frame = recorder.load("book", store=store).to_dataframe()
    rows = frame[frame["attempt"] == attempt]
    return list(zip(rows["kind"], rows["status"], strict=True))


async def test_a_recorded_agent_replays_with_no_browser_no_site_no_llm(
    store_dir: Path, site: FixtureSite, model: LLMServer, llm_kwargs: dict[str, Any]
) -> None:
    """52 steps (39 browser, 13 LLM) recorded, then replayed with zero launches and
    zero requests to the site or the model."""
    assert await run_agent(store_dir, site, llm_kwargs) == EXPECTED
    await aclose_browser()
    launches, site_requests, llm_requests = launch.launches, site.requests, model.requests
    assert await run_agent(store_dir, site, llm_kwargs) == EXPECTED
    assert (launch.launches, site.requests, model.requests) == (
        launches,
        site_requests,
        llm_requests,
    )
    steps = statuses(store_dir, 2)
    assert len(steps) == 52 and {s for _, s in steps} == {"replayed"}
    assert sum(1 for kind, _ in steps if kind == "browser") >= 15
    assert site.submissions == 1


@pytest.mark.parametrize("error", [Stop, KeyboardInterrupt])
@pytest.mark.parametrize("turn", [3, 9, 12])
async def test_an_interrupted_agent_resumes_to_the_same_result(
    store_dir: Path,
    site: FixtureSite,
    model: LLMServer,
    llm_kwargs: dict[str, Any],
    error: type[BaseException],
    turn: int,
) -> None:
    """Interrupted after turn 3 (signed in), 9 or 12 (after the order was placed): the
    re-run replays every finished step, restores the browser and submits once."""
    with pytest.raises(error):
        await run_agent(store_dir, site, llm_kwargs, stop=(turn, error))
    submitted_before = site.submissions
    llm_before = model.requests
    assert await run_agent(store_dir, site, llm_kwargs) == EXPECTED
    assert site.submissions == 1
    assert submitted_before == (1 if turn >= 12 else 0)
    assert model.requests - llm_before == 13 - turn  # the finished turns' calls replayed
    steps = statuses(store_dir, 2)
    replayed = [s for s in steps if s[1] == "replayed"]
    assert len(replayed) == 4 * turn + 1 and steps[: len(replayed)] == replayed


async def test_the_browser_is_restored_from_the_checkpoint(
    store_dir: Path, site: FixtureSite
) -> None:
    """After a resume the signed-in cookie, the URL, localStorage and sessionStorage
    are back, and no replayed step reached the site."""

    async def steps(stop: bool) -> tuple[str, str, str, str]:
        async with recorder.run("restore", store=store_dir) as run:
            page = await run.new_page()
            await page.goto(site.url + "/login")
            await page.get_by_label("Email").fill("ada@example.com")
            await page.get_by_label("Password").fill("secret")
            await page.locator("#sign-in").click()
            await page.goto(site.url + "/storage")
            await page.locator("#cart-item").fill("flight-7")
            await page.locator("#save").click()
            if stop:
                raise KeyboardInterrupt
            url = page.url
            local = await page.locator("#local-value").inner_text()
            session = await page.locator("#session-value").inner_text()
            await page.goto(site.url + "/account")
            return url, local, session, await page.locator("#signed-in-as").inner_text()

    with pytest.raises(KeyboardInterrupt):
        await steps(stop=True)
    site.reset()
    url, local, session, who = await steps(stop=False)
    assert url.endswith("/storage")
    assert (local, session) == ("flight-7", "checkout")
    assert who == "Signed in as ada@example.com"
    assert site.hits.get("/login", 0) == 0 and site.submissions == 0  # nothing replayed live


async def test_a_changed_selector_sends_later_browser_steps_live_but_llm_calls_replay(
    store_dir: Path,
    site: FixtureSite,
    model: LLMServer,
    llm_kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The "Book" click now uses another selector for the same element: that browser step
    and every later one go live (the chain broke), while the LLM calls, whose prompts
    are unchanged, replay; only the last prompt (it shows the new order's number) is new."""
    assert await run_agent(store_dir, site, llm_kwargs) == EXPECTED
    original = agent.act

    async def act(page: Any, url: str, name: str, args: dict[str, str]) -> str:
        if args.get("selector") == "#book":
            args = {**args, "selector": "a#book"}
        return await original(page, url, name, args)

    monkeypatch.setattr(agent, "act", act)
    llm_before = model.requests
    with pytest.warns(recorder.DivergenceWarning):
        result = await run_agent(store_dir, site, llm_kwargs)
    assert result == {**EXPECTED, "answer": "Order 2 confirmed"}
    assert model.requests == llm_before + 1
    steps = statuses(store_dir, 2)
    first_live = next(i for i, (_, status) in enumerate(steps) if status == "live")
    assert first_live == 4 * 8  # the action of turn 8
    assert all(s == "replayed" for _, s in steps[:first_live])
    assert all(s == "live" for kind, s in steps[first_live:] if kind == "browser")
    llm_statuses = [s for kind, s in steps if kind == "llm"]
    assert llm_statuses == ["replayed"] * 12 + ["live"]


def _agent_command(site: FixtureSite, model: LLMServer, store: Path) -> list[str]:
    return [sys.executable, "-m", "fixtures.demo", "--agent", site.url, model.base_url,
            str(store), "openai/gpt-4o-mini"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [4, 12])
def test_sigkill_of_the_agent_process_then_resume(
    store_dir: Path, site: FixtureSite, model: LLMServer, kill_after: int
) -> None:
    """A child process is SIGKILLed after turn N; the same command resumes it with
    the finished turns replayed, the order placed once and the same answer."""
    child = subprocess.Popen(
        _agent_command(site, model, store_dir), stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(f"TURN {kill_after} "):
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    llm_before = model.requests
    done = subprocess.run(
        _agent_command(site, model, store_dir), capture_output=True, text=True, cwd=REPO,
        check=True, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )  # fmt: skip
    result = json.loads(
        next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:]
    )
    assert result == EXPECTED
    assert site.submissions == 1
    assert model.requests - llm_before <= 13 - kill_after
    history = recorder.load("book-flight", store=store_dir)
    assert [a.outcome.value for a in history.attempts] == ["crashed", "completed"]
