"""The terminal view of a fan-out: one tqdm line over the inputs with counts by status,
throughput, elapsed and time left, cost so far and saved; ``display=False`` shows
nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest

import recorder
from recorder.display import FanOutLine


async def agent(run: recorder.Run, x: int) -> int:
    return int(await run.astep("double", lambda v: 2 * v, x))


async def test_the_line_counts_children_by_status(capsys: pytest.CaptureFixture[str]) -> None:
    store = recorder.MemoryStore()
    fan = recorder.fan_out(agent, range(5), name="view", key=int, store=store, display=True)
    await fan
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("recorder view: 100%") and "5/5" in last
    assert "5 completed" in last and "spent" in last and "saved" in last
    assert "child/s" in last or "s/child" in last  # throughput

    fan = recorder.fan_out(agent, range(6), name="view", key=int, store=store, display=True)
    await fan  # five come back replayed, one runs
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "6/6" in last and "1 completed, 5 replayed" in last


async def test_display_false_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    fan = recorder.fan_out(agent, range(3), name="quiet", key=int,
                           store=recorder.MemoryStore(), display=False)  # fmt: skip
    await fan
    assert capsys.readouterr().err == ""


def test_the_line_redraws_at_most_every_tenth_of_a_second() -> None:
    stream = io.StringIO()
    line = FanOutLine("many", 10_000, 0, stream=stream)
    asked: list[Any] = []

    def summary() -> str:
        asked.append(1)
        return "counts"

    for _ in range(10_000):
        line.advance(summary)
    line.close("done")
    assert len(asked) < 50  # the counts are not recomputed per child
    assert stream.getvalue().count("\r") < 100 and "10000/10000" in stream.getvalue()
