"""The interrupt story, for real: a Jupyter kernel (nbclient) runs the browser agent's
cell, is interrupted part-way (or restarted: a crash), and the same cell run again
resumes: the finished steps replay with no LLM call, the result equals an uninterrupted
run, and no Chromium process is left behind (issue 5, point 5).

ipykernel raises KeyboardInterrupt in a plain cell but cancels a top-level-await cell
(CancelledError); the agent's cell awaits, and a plain cell of LLM calls is interrupted
too. Either way the run re-raises the interrupt as one line (recorder.Interrupted /
recorder.Cancelled, of the same kinds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from test_browser_surface import chromium_processes

from fixtures.agent import policy
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

SETUP = """\
import json, os, sys
sys.path.insert(0, os.environ["REPO"])
import litellm, recorder
from fixtures.agent import TASK, book_flight
litellm.suppress_debug_info = True
LLM = dict(model="openai/fixture-agent", api_base=os.environ["LLM_URL"], api_key="sk-x",
           num_retries=0)
SITE = os.environ["SITE_URL"]"""

AGENT_CELL = """\
async with recorder.run("story", inputs={"task": TASK}, store=os.environ["STORE"]) as run:
    result = await book_flight(run, SITE, LLM)
print("RESULT " + json.dumps(result))
print("STATS " + json.dumps({"replayed": run.stats.replayed, "live": run.stats.live}))"""

UNINTERRUPTED = {"answer": "Order 1 confirmed", "turns": 13}
"""What the agent returns on the fixture site (tests/integration/test_browser_agent.py
checks it against a run that was never interrupted)."""

PLAIN_CELL = """\
import time
with recorder.run("plain", store=os.environ["STORE"]) as run:
    answers = []
    for i in range(8):
        reply = litellm.completion(messages=[{"role": "user", "content": f"q{i}"}], **LLM)
        answers.append(reply.choices[0].message.content)
        time.sleep(0.2)
print("RESULT " + json.dumps(answers))
print("STATS " + json.dumps({"replayed": run.stats.replayed, "live": run.stats.live}))"""


def line(cell: Any, tag: str) -> Any:
    text = "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")
    found = [x for x in text.splitlines() if x.startswith(tag + " ")]
    assert found, f"no {tag} line in {cell.outputs}"
    return json.loads(found[-1][len(tag) + 1 :])


def errors(cell: Any) -> list[str]:
    return [o["ename"] for o in cell.outputs if o["output_type"] == "error"]


def one_line(cell: Any) -> str:
    """The interruption a cell ended with: IPython shows the recorder's one line (its
    ``_render_traceback_``), not a traceback."""
    (error,) = [o for o in cell.outputs if o["output_type"] == "error"]
    assert len(error["traceback"]) == 1, error["traceback"]
    return str(error["traceback"][0])


class Kernel:
    """A real kernel running cells of one notebook, with the fixture URLs in its env."""

    def __init__(self, site: FixtureSite, llm: LLMServer, store: Path, marker: str) -> None:
        self.book = new_notebook()
        self.client = NotebookClient(
            self.book, timeout=300, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(REPO)}},
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
        env.update(REPO=str(REPO), LLM_URL=llm.base_url, SITE_URL=site.url, STORE=str(store),
                   LITELLM_LOCAL_MODEL_COST_MAP="True", RECORDER_TEST_MARKER=marker)  # fmt: skip
        self.env = env

    def session(self) -> Any:
        """The kernel, started with the fixture URLs in its environment."""
        return self.client.async_setup_kernel(env=self.env)

    async def run(self, source: str) -> Any:
        cell = new_code_cell(source)
        self.book.cells.append(cell)
        await self.client.async_execute_cell(cell, len(self.book.cells) - 1)
        if source == SETUP:
            assert errors(cell) == [], cell.outputs
        return cell

    async def run_until(
        self, source: str, ready: Callable[[], bool], action: Any, *, abandon: bool = False
    ) -> Any:
        """Run a cell; once ``ready()``, do ``action()`` (interrupt, restart). With
        ``abandon`` the cell's reply is not awaited (a restarted kernel never sends it)."""
        cell = new_code_cell(source)
        self.book.cells.append(cell)
        task = asyncio.ensure_future(self.client.async_execute_cell(cell, len(self.book.cells) - 1))
        deadline = time.monotonic() + 120
        while not ready() and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not task.done(), "the cell finished before it could be interrupted"
        await action()
        if abandon:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return cell
        try:
            await asyncio.wait_for(task, 120)
        except Exception as error:  # a restart ends the cell with a dead-kernel error
            return error
        return cell


@pytest.fixture
def servers() -> Any:
    with FixtureSite() as site, LLMServer(policy) as llm:
        yield site, llm


def recorded_llm_steps(store: Path, name: str) -> int:
    import recorder

    frame = recorder.load(name, store=store).to_dataframe()
    return int(((frame["kind"] == "llm") & (frame["status"] == "live")).sum())


def step_records(store: Path, run_name: str) -> int:
    """Step records of run ``run_name`` written so far (read while the kernel writes)."""
    from recorder.store import open_store

    return len(open_store(store, create=False).keys(f"step/{run_name}@"))


async def settle_processes(marker: str, want: Callable[[int], bool]) -> int:
    deadline = time.monotonic() + 10
    count = chromium_processes(marker)
    while not want(count) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = chromium_processes(marker)
    return count


def in_own_thread(story: Callable[[], Any]) -> None:
    """asyncio.run in a thread of its own: an earlier test's sync Playwright may have
    left this thread's event loop marked as running."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, story()).result(timeout=600)


def test_an_interrupted_cell_resumes_in_the_same_kernel(servers: Any, tmp_path: Path) -> None:
    site, llm = servers
    marker = f"recorder-nb-{uuid.uuid4().hex}"

    async def story() -> None:
        store = tmp_path / "store"
        kernel = Kernel(site, llm, store, marker)
        async with kernel.session():
            await kernel.run(SETUP)
            start = llm.requests
            cut = await kernel.run_until(
                AGENT_CELL, lambda: llm.requests >= start + 6, kernel.client.km.interrupt_kernel
            )
            # one line (issue 14): recorder.Cancelled for an awaiting cell, where it stopped
            assert errors(cut) in (["Cancelled"], ["Interrupted"]), cut.outputs
            assert one_line(cut).startswith("recorder: run 'story' interrupted "), cut.outputs
            recorded = recorded_llm_steps(store, "story")
            assert recorded >= 5
            # Jupyter signals the kernel's whole process group: Playwright's driver and its
            # Chromium die with the interrupt. Nothing may linger: back to where it started.
            assert await settle_processes(marker, lambda n: n == 0) == 0
            before = llm.requests
            again = await kernel.run(AGENT_CELL)
            assert errors(again) == []
            assert line(again, "RESULT") == UNINTERRUPTED
            stats = line(again, "STATS")
            assert stats["replayed"] > 0
            total = recorded_llm_steps(store, "story")
            assert llm.requests - before == total - recorded, "a finished LLM call ran again"
            assert len(site.orders) == 1
            assert chromium_processes(marker) > 0, "the resumed run started a browser again"

            # A plain (not awaiting) cell is interrupted with KeyboardInterrupt, once three
            # answers are recorded (the server's count would also see a call in flight,
            # which the interrupt may cut: that one is rightly asked again).
            plain = await kernel.run_until(
                PLAIN_CELL, lambda: step_records(store, "plain") >= 3,
                kernel.client.km.interrupt_kernel,
            )  # fmt: skip
            assert errors(plain) == ["Interrupted"], plain.outputs
            assert one_line(plain).startswith("recorder: run 'plain' interrupted "), plain.outputs
            finished = step_records(store, "plain")
            resumed = await kernel.run(PLAIN_CELL)
            assert errors(resumed) == []
            assert line(resumed, "STATS")["replayed"] == finished >= 3
        assert await settle_processes(marker, lambda n: n == 0) == 0, "orphaned Chromium"

    in_own_thread(story)


def test_a_kernel_restarted_mid_step_resumes_from_the_top(servers: Any, tmp_path: Path) -> None:
    site, llm = servers
    marker = f"recorder-nb-{uuid.uuid4().hex}"
    store = tmp_path / "store"

    async def story() -> None:
        kernel = Kernel(site, llm, store, marker)
        async with kernel.session():
            await kernel.run(SETUP)
            start = llm.requests

            async def crash() -> None:
                await kernel.client.km.restart_kernel(now=True)

            await kernel.run_until(
                AGENT_CELL, lambda: llm.requests >= start + 5, crash, abandon=True
            )
            recorded = recorded_llm_steps(store, "story")
            before = llm.requests
            await kernel.run(SETUP)  # a fresh kernel: from the top
            again = await kernel.run(AGENT_CELL)
            assert errors(again) == [], again.outputs
            assert line(again, "RESULT") == UNINTERRUPTED
            total = recorded_llm_steps(store, "story")
            assert llm.requests - before == total - recorded
            assert len(site.orders) == 1

        import recorder

        outcomes = [a.outcome.value for a in recorder.load("story", store=store).attempts]
        assert outcomes == ["crashed", "completed"]
        assert await settle_processes(marker, lambda n: n == 0) == 0, "orphaned Chromium"

    in_own_thread(story)
