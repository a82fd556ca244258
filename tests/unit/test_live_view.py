"""The live view as a person reads it (issue 14, points 1, 2, 3, 7): an interrupt ends
in one line that says where and what a re-run replays; closing errors caused by the
interrupt stay in the trace; elapsed time ticks during a long step; the end of a
replayed burst and the step in flight are drawn at once, named once; numbers are for
people; a long outcome is one line with the rest on demand."""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import display
from recorder.display import LineView, Snapshot, step_label


def test_an_interrupt_ends_in_one_line_that_says_what_replays(store_dir: Path) -> None:
    run = recorder.run("cut", store=store_dir, display=False)
    with pytest.raises(KeyboardInterrupt) as caught, run:
        run.step("one", str.upper, "a")
        run.step("two", str.upper, "b")
        raise KeyboardInterrupt
    assert isinstance(caught.value, recorder.Interrupted)
    assert caught.value.__suppress_context__  # no chain of frames through the recorder
    assert caught.value._render_traceback_() == [
        "recorder: run 'cut' interrupted after step #1 step two; run it again: 2 recorded "
        "steps will replay and the rest goes live."
    ]
    assert recorder.load("cut", store=store_dir).status == "interrupted"


async def test_a_cancelled_task_stays_a_cancelled_error(store_dir: Path) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with recorder.run("cancel", store=store_dir, display=False) as run:
            await run.astep("first", lambda: 1)
            started.set()
            await run.astep("slow", asyncio.sleep, 30)

    task = asyncio.ensure_future(body())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    assert isinstance(caught.value, recorder.Cancelled)
    assert "interrupted at step #1 step slow; run it again: 1 recorded step will" in str(
        caught.value
    )


async def test_closing_errors_of_an_interrupt_stay_in_the_trace(store_dir: Path) -> None:
    async def broken() -> None:
        raise RuntimeError("Target closed\n=== logs ===\n" + "chromium noise\n" * 200)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(asyncio.CancelledError):
            async with recorder.run("closing", store=store_dir, display=False) as run:
                run.add_closer(broken)
                raise asyncio.CancelledError
        assert caught == []  # nothing on screen: the interrupt's own doing
        with pytest.warns(UserWarning, match=r"failed: Target closed \(the whole error"):
            async with recorder.run("closing2", store=store_dir, display=False) as run:
                run.add_closer(broken)
    for name in ("closing", "closing2"):
        trace = recorder.load(name, store=store_dir).to_dataframe()
        cleanup = trace[trace["kind"] == "cleanup"]
        assert list(cleanup["status"]) == ["failed"]


def test_steps_are_named_once() -> None:
    class FakeCall:
        def __init__(self, kind: str, name: str, meta: dict[str, Any]) -> None:
            self.kind, self.name, self.meta, self.seq = kind, name, meta, 4

    call: Any = FakeCall("llm", "gpt-4o-mini", {"model": "gpt-4o-mini"})
    assert step_label(call) == "#4 llm gpt-4o-mini"
    call = FakeCall("browser", "click", {"action": "click", "selector": "#go"})
    assert step_label(call) == "#4 browser click #go"


def test_elapsed_ticks_during_a_long_step(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "TICK_S", 0.2)
    stream = io.StringIO()
    monkeypatch.setattr(display.sys, "stderr", stream)
    with recorder.run("ticks", store=store_dir, display=True) as run:
        run.step("slow", time.sleep, 1.2)
    frames = [f for f in stream.getvalue().replace("\n", "\r").split("\r") if "slow" in f]
    elapsed = {f.split(" | ")[4] for f in frames}
    assert len(elapsed) >= 4, frames  # drawn while the step ran, each time later
    assert all("#0 step slow" in f for f in frames)


@pytest.mark.filterwarnings("ignore::recorder.DivergenceWarning")
def test_the_end_of_a_replayed_burst_is_drawn_at_once(store_dir: Path) -> None:
    for attempt in range(2):
        stream = io.StringIO()
        with recorder.run("burst", store=store_dir, display=False) as run:
            run._attempt.view = view = LineView("burst", 1, stream, run._attempt.stats)  # type: ignore[union-attr]
            for i in range(18):
                run.step("fast", str, i)
            view._drawn = time.monotonic()  # as if it had just drawn: throttled
            run.step("new", str, f"live {attempt}")  # goes live on the second pass too
    frames = stream.getvalue().split("\r")
    assert "18 replayed" in frames[-2] and "#18 step new" in frames[-2], frames


def test_numbers_and_long_outcomes_for_people() -> None:
    snap = Snapshot(run="r", attempt=2, replayed=3, saved_s=75.0, saved_cost_usd=3.6e-06,
                    outcome="failed", detail="ReplayMissError: step #4 is not recorded\n"
                    + "the closest recorded steps:\n" * 5)  # fmt: skip
    page = snap.html()
    assert "$0.0000" not in page and "&lt;$0.0001" in page and "1 min 15 s" in page
    assert "<details" in page
    assert "failed: ReplayMissError: step #4 is not recorded</summary>" in page
    assert snap.line().endswith("| failed (ReplayMissError: step #4 is not recorded)")


def test_a_crashed_attempt_shows_in_the_next_view(store_dir: Path) -> None:
    from recorder.journal import Journal
    from recorder.records import Outcome

    with recorder.run("crash", store=store_dir, display=False) as run:
        run.step("a", str, 1)
    journal = Journal(recorder.open_store(store_dir))
    last = journal.last_attempt(run.run_id)
    assert last is not None
    from dataclasses import replace

    journal.put_attempt(run.run_id, replace(last, outcome=Outcome.RUNNING, pid=2**22 + 7))
    stream = io.StringIO()
    with recorder.run("crash", store=store_dir, display=False) as again:
        note = recorder.runtime._follows(again._attempt)  # type: ignore[arg-type]
        view = LineView("crash", 2, stream)
        view.snapshot.note = note
    assert note == "attempt 1 crashed (its process died); 1 recorded step replay"
    outcomes = [a.outcome.value for a in recorder.load("crash", store=store_dir).attempts]
    assert outcomes == ["crashed", "completed"]
