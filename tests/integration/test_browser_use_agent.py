"""The browser-use style agent (``fixtures/browser_use_agent.py``) under interruption.

Its clicks name elements by marks that a script (``page.evaluate``) wrote into the DOM:
no checkpoint holds them, so a resumed run must put them back before a click by mark can
find its element. Real Chromium, the fixture site, the fixture LLM server over real
litellm HTTP, real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import recorder
from fixtures.browser_use_agent import KILL_AFTER_MARKS, RUN_NAME, TASK, policy, run_agent
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.integrations.browser import aclose_browser, launch

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ANSWER = "Items: 2, 4"
TURNS = 4  # add Item 2, add Item 4, open Checkout, done
STEPS = 1 + 5 * (TURNS - 1) + 4  # goto; per turn mark, tree, shot, LLM, act; last: no act


class Stop(Exception):
    """Raised by the test to interrupt the agent after a chosen turn."""


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


async def run_in_process(
    store: Path, site: FixtureSite, llm: dict[str, Any], *, stop_after: int | None = None
) -> str:
    """One attempt in this process; fails on any warning of the recorder or the agent
    (third-party ones aside: under pytest pydantic warns about a litellm type)."""

    def on_turn(turn: int, tool: str, args: dict[str, Any]) -> None:
        if turn == stop_after:
            raise Stop("interrupted by the test")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            async with recorder.run(RUN_NAME, inputs={"task": TASK}, store=store) as run:
                answer = await run_agent(run, site.url, llm, on_turn=on_turn)
        finally:
            ours = [f"{w.category.__name__}: {w.message}" for w in caught if _ours(w)]
            assert ours == []
    return answer


def _ours(warning: warnings.WarningMessage) -> bool:
    path = Path(warning.filename)
    return warning.category.__module__.startswith(("recorder", "fixtures")) or any(
        path.is_relative_to(REPO / part) for part in ("recorder", "fixtures", "tests")
    )


def statuses(store: Path, attempt: int) -> list[tuple[str, str, str]]:
    frame = recorder.load(RUN_NAME, store=store).to_dataframe()
    rows = frame[frame["attempt"] == attempt]
    return list(zip(rows["kind"], rows["name"], rows["status"], strict=True))


async def test_an_uninterrupted_run_adds_both_items_and_reports_the_checkout(
    store_dir: Path, site: FixtureSite, model: LLMServer, llm_kwargs: dict[str, Any]
) -> None:
    assert await run_in_process(store_dir, site, llm_kwargs) == ANSWER
    assert site.cart == [2, 4]
    assert model.requests == TURNS
    # every request carried the screenshot as an image part and the marks as text
    for body in model.bodies:
        parts = body["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url"]
        assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    first = model.bodies[0]["messages"][-1]["content"][0]["text"]
    assert "button 'Add to cart' (in: Item 2)" in first


async def test_a_full_replay_uses_no_browser_no_site_no_llm(
    store_dir: Path, site: FixtureSite, model: LLMServer, llm_kwargs: dict[str, Any]
) -> None:
    assert await run_in_process(store_dir, site, llm_kwargs) == ANSWER
    await aclose_browser()
    before = (launch.launches, site.requests, model.requests)
    assert await run_in_process(store_dir, site, llm_kwargs) == ANSWER
    assert (launch.launches, site.requests, model.requests) == before
    steps = statuses(store_dir, 2)
    assert len(steps) == STEPS and {s for *_, s in steps} == {"replayed"}
    assert site.cart == [2, 4]


async def test_an_exception_mid_run_then_a_resume_adds_each_item_once(
    store_dir: Path, site: FixtureSite, model: LLMServer, llm_kwargs: dict[str, Any]
) -> None:
    """Stopped after turn 2 (both items added): the resume replays the two turns, goes
    live at turn 3's marking and adds nothing again."""
    with pytest.raises(Stop):
        await run_in_process(store_dir, site, llm_kwargs, stop_after=2)
    assert site.cart == [2, 4]
    llm_before = model.requests
    assert await run_in_process(store_dir, site, llm_kwargs) == ANSWER
    assert site.cart == [2, 4]
    assert model.requests - llm_before == TURNS - 2
    steps = statuses(store_dir, 2)
    replayed = 1 + 5 * 2
    assert [s for *_, s in steps[:replayed]] == ["replayed"] * replayed
    assert "replayed" not in [s for *_, s in steps[replayed:]]
    assert [s for kind, _, s in steps if kind == "llm"] == ["replayed"] * 2 + ["live"] * 2


def _command(site: FixtureSite, model: LLMServer, store: Path) -> list[str]:
    return [sys.executable, "-m", "fixtures.browser_use_agent", site.url, model.base_url,
            str(store), "openai/gpt-4o-mini"]  # fmt: skip


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RECORDER_CRASH_AT", KILL_AFTER_MARKS)}
    return {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


def _run_child(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False
    )


def _result(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr[-1200:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return str(json.loads(line[len("RESULT ") :]))


def _killed(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-1200:])
    assert done.stderr == ""


@pytest.mark.slow
def test_sigkill_between_marking_and_clicking_then_resume(
    store_dir: Path, site: FixtureSite, model: LLMServer
) -> None:
    """The agent process dies between marking the page and clicking by mark, twice: in a
    fresh process right before turn 2's click (Item 4's "Add to cart") goes live, then in
    the resumed process right after turn 3's marking returned. Each time the same command
    again resumes, and the page it brings back must carry the marks for the click to find
    its element. The final result equals the uninterrupted run's, each item was added
    once, and no process writes anything on stderr (no warnings)."""
    command = _command(site, model, store_dir)
    # 1. the 11th step about to go live is turn 2's click: recorded are the goto, turn
    # 1's five steps and turn 2's mark, tree, screenshot and LLM call
    _killed(_run_child(command, _child_env(RECORDER_CRASH_AT="before_live:11")))
    assert site.cart == [2]
    first = statuses(store_dir, 1)
    assert len(first) == 1 + 5 + 4 and first[-1][0] == "llm"
    assert model.requests == 2

    # 2. resumed: turn 2's click goes live on the restored page (it needs the marks),
    # then the process dies right after its 3rd marking (turn 3's, the first one live)
    _killed(_run_child(command, _child_env(**{KILL_AFTER_MARKS: "3"})))
    assert site.cart == [2, 4]
    second = statuses(store_dir, 2)  # a killed attempt's trace holds its live steps
    assert second == [("browser", "click", "live"), ("browser", "evaluate", "live")]
    assert model.requests == 2  # turn 2's model call was recorded before the first kill

    # 3. resumed again: the Checkout link is clicked by its mark on the restored page
    resumed = _run_child(command, _child_env())
    assert _result(resumed) == ANSWER
    assert resumed.stderr == ""
    assert site.cart == [2, 4]
    assert model.requests == TURNS  # turns 3 and 4 only
    history = recorder.load(RUN_NAME, store=store_dir)
    outcomes = [a.outcome.value for a in history.attempts]
    assert outcomes == ["crashed", "crashed", "completed"]
    third = statuses(store_dir, 3)
    recorded = len(first) + len(second)
    assert [s for *_, s in third[:recorded]] == ["replayed"] * recorded
    assert "replayed" not in [s for *_, s in third[recorded:]]
