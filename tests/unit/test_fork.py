"""Fork and time travel: a new run that replays another run up to a step, then goes
live (``recorder.run(..., fork_from=(run, step))``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

import recorder


class Counter:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, x: Any) -> dict[str, Any]:
        self.calls.append(x)
        return {"x": x, "n": len(self.calls)}


def program(run: recorder.Run, fn: Counter, last: str = "e") -> list[Any]:
    return [run.step("s", fn, x) for x in ["a", "b", "c", "d", last]]


def test_a_fork_replays_up_to_the_step_and_goes_live_after(store_dir: Path) -> None:
    source_fn = Counter()
    with recorder.run("original", store=store_dir) as source:
        original = program(source, source_fn)
    fork_fn = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divergence: the fork owns only what it copied
        with recorder.run("what-if", store=store_dir, fork_from=("original", 3)) as run:
            forked = program(run, fork_fn, last="E")
    assert forked[:3] == original[:3], "the first three steps replay the original's results"
    assert fork_fn.calls == ["d", "E"] and run.stats.replayed == 3 and run.stats.live == 2
    frame = run.to_dataframe()
    assert set(frame["forked_from"]) == {f"{source.run_id}#3"}
    assert set(recorder.load("original", store=store_dir).to_dataframe()["forked_from"].isna())
    with recorder.run("what-if", store=store_dir, fork_from=(source, 3)) as run:
        assert program(run, fork_fn, last="E") == forked
    assert run.stats.live == 0 and len(fork_fn.calls) == 2
    why = recorder.diff("original", "what-if", store=store_dir)  # where the branch begins
    assert why.first_divergence == 4  # the first step whose key differs
    assert [s.seq for s in why.steps] == [3, 4]  # step 3 ran live again: another result


def test_fork_arguments_are_checked(store_dir: Path) -> None:
    with recorder.run("original", store=store_dir) as source:
        program(source, Counter())
    for bad in [("original",), ("original", -1), ("original", True), "original", ("../x", 1)]:
        with pytest.raises(recorder.ConfigError):
            recorder.run("f", store=store_dir, fork_from=bad)  # type: ignore[arg-type]
    orphan = recorder.run("f", store=store_dir, fork_from=("nobody", 1))
    with pytest.raises(recorder.RunNotFoundError), orphan:
        pass
    with recorder.run("f2", store=store_dir, fork_from=("original", 1)):
        pass
    elsewhere = recorder.run("f2", store=store_dir, fork_from=("original", 2))
    with pytest.raises(recorder.ConfigError, match="forked from"), elsewhere:
        pass


def test_fork_without_entering_then_run_it(store_dir: Path) -> None:
    """``recorder.fork`` (what ``recorder fork`` runs) creates the forked run; entering
    it later by name replays the copied steps."""
    with recorder.run("original", store=store_dir) as source:
        original = program(source, Counter())
    run_id = recorder.fork("original", 2, "later", inputs={"v": 2}, store=store_dir)
    assert run_id.startswith("later@")
    fn = Counter()
    with recorder.run("later", inputs={"v": 2}, store=store_dir) as run:
        assert program(run, fn)[:2] == original[:2]
    assert fn.calls == ["c", "d", "e"]
    with pytest.raises(recorder.ConfigError, match="already exists"):
        recorder.fork("original", 2, "later", inputs={"v": 2}, store=store_dir)
