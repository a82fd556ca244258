"""Traces and run lists as DataFrames (``recorder.export``) and trace files.

Pure tests: a MemoryStore or a DiskStore in a temporary directory, no network. LLM-like
steps are made through ``Run.begin`` with the metadata the litellm adapter would attach.
"""

from __future__ import annotations

import gc
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import recorder
from recorder.export import EXPORT_FORMATS, write_frame
from recorder.history import TRACE_COLUMNS
from recorder.journal import Journal
from recorder.store import DiskStore, MemoryStore

LIVE_SLEEP_S = 0.05


def slow_add(a: int, b: int) -> int:
    """A step body slow enough for its recorded duration to be measurable."""
    time.sleep(LIVE_SLEEP_S)
    return a + b


def boom() -> None:
    raise ValueError("boom")


def fake_llm(run: recorder.Run, prompt: str, *, cost: float = 0.002) -> str:
    """An LLM step as the litellm adapter records it, without any network."""
    meta = {"model": "openai/gpt-4o-mini", "temperature": 0.5}
    call = run.begin("llm", "openai/gpt-4o-mini", {"messages": [prompt]}, meta)
    if call.replayed:
        return str(call.replay())
    answer = f"answer to {prompt}"
    call.commit(answer, meta={"prompt_tokens": 7, "completion_tokens": 3, "cost_usd": cost})
    return answer


def agent(run: recorder.Run) -> None:
    """The body used by most tests: a slow step, an LLM call, a recorded time, and a step
    that raises an error the program handles (so a replay raises it again)."""
    run.step("add", slow_add, 1, 2)
    fake_llm(run, "hello")
    run.now()
    with pytest.raises(ValueError, match="boom"):
        run.step("boom", boom)


def two_attempts(store: Any, clock: Any = None) -> recorder.Run:
    """Run :func:`agent` twice: attempt 1 live, attempt 2 replayed."""
    run = recorder.run("agent", inputs={"ticket": 1}, store=store, clock=clock)
    for _ in range(2):
        with run:
            agent(run)
    assert run.outcome is recorder.Outcome.COMPLETED
    return run


def test_trace_has_the_documented_columns_first_in_order() -> None:
    """The trace starts with exactly TRACE_COLUMNS, in order; extra integration metadata
    comes after them and metadata named ``_...`` is not shown."""
    run = recorder.run("cols", store=MemoryStore())
    with run:
        run.step("add", slow_add, 1, 2)
        call = run.begin("browser", "goto", {"url": "http://x"}, {"url": "http://x", "_tab": 3})
        call.commit("<html>")
    frame = run.to_dataframe()
    assert tuple(frame.columns[: len(TRACE_COLUMNS)]) == TRACE_COLUMNS
    assert list(frame.columns[len(TRACE_COLUMNS) :]) == ["url"]
    assert frame["url"].tolist()[1] == "http://x"


def test_one_row_per_step_call_of_every_attempt(clock: Any) -> None:
    """Every step call of every attempt is a row, live first then replayed, with the
    attempt number, its sequence number and the right status."""
    run = two_attempts(MemoryStore(), clock)
    frame = run.to_dataframe()
    assert len(frame) == 8
    assert list(zip(frame["attempt"], frame["seq"], strict=True)) == [
        (a, s) for a in (1, 2) for s in range(4)
    ]
    assert frame["kind"].tolist() == ["step", "llm", "now", "step"] * 2
    assert frame["status"].tolist() == ["live", "live", "live", "failed"] + ["replayed"] * 4
    assert set(frame["run"]) == {run.run_id}
    assert (frame["generation"] == 0).all()


def test_started_at_is_tz_aware_utc(clock: Any) -> None:
    """``started_at`` is a tz-aware UTC timestamp equal to the run clock's reading."""
    run = two_attempts(MemoryStore(), clock)
    frame = run.to_dataframe()
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert frame["started_at"].iloc[0].tzinfo is not None
    # Every start is a reading of the run's clock (whole seconds from 1_700_000_001).
    readings = {
        pd.Timestamp(datetime.fromtimestamp(t, UTC))
        for t in range(1_700_000_001, int(clock.now) + 1)
    }
    assert set(frame["started_at"]) <= readings
    assert frame["started_at"].is_monotonic_increasing


def test_replayed_rows_carry_the_recorded_duration() -> None:
    """A replayed row's ``recorded_duration_s`` is the live row's ``duration_s`` of the
    same step (so the time saved is their sum), and its own ``duration_s`` is small."""
    run = two_attempts(MemoryStore())
    frame = run.to_dataframe()
    live = frame[frame["attempt"] == 1].set_index("key")
    replayed = frame[frame["attempt"] == 2].set_index("key")
    assert (replayed["recorded_duration_s"] == live.loc[replayed.index, "duration_s"]).all()
    assert (live["recorded_duration_s"] == live["duration_s"]).all()
    assert live.loc[live["name"] == "add", "duration_s"].iloc[0] >= LIVE_SLEEP_S
    assert (replayed["duration_s"] < LIVE_SLEEP_S / 2).all()
    saved = replayed["recorded_duration_s"].sum()
    assert saved >= LIVE_SLEEP_S
    assert saved == pytest.approx(run.stats.saved_s)


def test_a_step_that_raised_is_failed_then_replayed_with_its_error() -> None:
    """A raising step shows ``failed`` with "ValueError: boom"; its replay raises again and
    shows ``replayed`` with the same error. Other rows have no error."""
    frame = two_attempts(MemoryStore()).to_dataframe()
    booms = frame[frame["name"] == "boom"]
    assert booms["status"].tolist() == ["failed", "replayed"]
    assert booms["error"].tolist() == ["ValueError: boom", "ValueError: boom"]
    assert frame.loc[frame["name"] != "boom", "error"].isna().all()


def test_cost_and_llm_metadata_only_on_llm_rows() -> None:
    """``cost_usd`` is NaN for non-LLM steps; an LLM step has model, temperature, tokens
    and cost, on its replayed row too."""
    frame = two_attempts(MemoryStore()).to_dataframe()
    assert frame["cost_usd"].dtype == "float64"
    others = frame[frame["kind"] != "llm"]
    assert others["cost_usd"].isna().all()
    assert others["model"].isna().all()
    assert others["prompt_tokens"].isna().all()
    llm = frame[frame["kind"] == "llm"]
    assert llm["status"].tolist() == ["live", "replayed"]
    assert llm["cost_usd"].tolist() == [0.002, 0.002]
    assert llm["model"].tolist() == ["openai/gpt-4o-mini"] * 2
    assert llm["temperature"].tolist() == [0.5, 0.5]
    assert llm["prompt_tokens"].tolist() == [7, 7]
    assert llm["completion_tokens"].tolist() == [3, 3]


def test_load_after_the_run_object_is_gone_equals_the_live_frame(tmp_path: Path) -> None:
    """``recorder.load(...).to_dataframe()`` read back from disk, with the Run object
    deleted and through a fresh store instance, equals ``run.to_dataframe()``."""
    directory = tmp_path / "store"
    run = two_attempts(str(directory))
    expected = run.to_dataframe()
    del run
    gc.collect()
    fresh = DiskStore(directory)
    try:
        loaded = recorder.load("agent", store=fresh).to_dataframe()
    finally:
        fresh.close()
    pd.testing.assert_frame_equal(loaded, expected)
    by_path = recorder.load("agent", inputs={"ticket": 1}, store=str(directory))
    pd.testing.assert_frame_equal(by_path.to_dataframe(), expected)


def test_an_interrupted_attempt_shows_its_finished_steps() -> None:
    """KeyboardInterrupt ends the attempt ``interrupted``: the steps that finished are in
    the trace, the step that was interrupted is not, and the next attempt replays the
    finished ones and runs the interrupted one live."""
    store = MemoryStore()
    run = recorder.run("stopped", store=store)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), run:
        run.step("one", lambda: 1)
        run.step("two", lambda: 2)
        run.step("three", interrupted)
    assert run.outcome is recorder.Outcome.INTERRUPTED
    frame = recorder.load("stopped", store=store).to_dataframe()
    assert frame["name"].tolist() == ["one", "two"]
    assert frame["status"].tolist() == ["live", "live"]

    with run:
        run.step("one", lambda: 1)
        run.step("two", lambda: 2)
        run.step("three", lambda: 3)
    frame = run.to_dataframe()
    second = frame[frame["attempt"] == 2]
    assert second["status"].tolist() == ["replayed", "replayed", "live"]


def test_runs_lists_every_run_with_counts_and_status(clock: Any) -> None:
    """``recorder.runs`` has one row per run with the documented columns, attempt and
    step counts, the last attempt's outcome and tz-aware times, most recent first."""
    store = MemoryStore()
    ok = recorder.run("ok", inputs={"n": 1}, store=store, clock=clock)
    for _ in range(2):
        with ok:
            ok.step("one", lambda: 1)
            ok.step("two", lambda: 2)
    with pytest.raises(RuntimeError), recorder.run("bad", store=store, clock=clock) as bad:
        bad.step("one", lambda: 1)
        raise RuntimeError("the agent gave up")
    with pytest.raises(KeyboardInterrupt), recorder.run("halt", store=store, clock=clock) as halt:
        halt.step("one", lambda: 1)
        raise KeyboardInterrupt

    frame = recorder.runs(store=store)
    assert list(frame.columns) == [
        "run",
        "name",
        "inputs",
        "attempts",
        "steps",
        "status",
        "created_at",
        "last_activity",
    ]
    assert frame["name"].tolist() == ["halt", "bad", "ok"]
    rows = frame.set_index("name")
    assert rows.loc["ok", "run"] == ok.run_id
    assert json.loads(rows.loc["ok", "inputs"]) == {"n": 1}
    assert rows["attempts"].to_dict() == {"halt": 1, "bad": 1, "ok": 2}
    assert rows["steps"].to_dict() == {"halt": 1, "bad": 1, "ok": 2}
    assert rows["status"].to_dict() == {"halt": "interrupted", "bad": "failed", "ok": "completed"}
    for column in ("created_at", "last_activity"):
        assert str(frame[column].dt.tz) == "UTC"
    assert (frame["last_activity"] >= frame["created_at"]).all()


def test_runs_of_an_empty_store_is_an_empty_frame_with_the_columns() -> None:
    """An empty store lists no runs, with the same columns."""
    frame = recorder.runs(store=MemoryStore())
    assert frame.empty
    assert list(frame.columns)[:2] == ["run", "name"]


def test_same_name_different_inputs_are_two_runs() -> None:
    """Two runs with one name and different inputs are two rows (two run ids);
    ``load(name, inputs=...)`` picks the right one."""
    store = MemoryStore()
    for ticket in (1, 2):
        with recorder.run("triage", inputs={"ticket": ticket}, store=store) as run:
            run.step("echo", lambda t: t, ticket)
    frame = recorder.runs(store=store)
    assert len(frame) == 2
    assert frame["name"].tolist() == ["triage", "triage"]
    assert frame["run"].nunique() == 2
    assert sorted(json.loads(i)["ticket"] for i in frame["inputs"]) == [1, 2]
    first = recorder.load("triage", inputs={"ticket": 1}, store=store)
    second = recorder.load("triage", inputs={"ticket": 2}, store=store)
    assert (first.inputs, second.inputs) == ({"ticket": 1}, {"ticket": 2})
    assert set(frame["run"]) == {first.run_id, second.run_id}
    assert first.to_dataframe()["run"].tolist() == [first.run_id]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_write_frame_round_trips(tmp_path: Path, suffix: str) -> None:
    """``write_frame`` writes csv, parquet and jsonl that read back with every row and
    the trace columns, and returns the format's name."""
    frame = two_attempts(MemoryStore()).to_dataframe()
    target = tmp_path / f"trace{suffix}"
    assert write_frame(frame, target) == EXPORT_FORMATS[suffix]
    if suffix == ".csv":
        back = pd.read_csv(target)
    elif suffix == ".parquet":
        back = pd.read_parquet(target)
        assert str(back["started_at"].dt.tz) == "UTC"
    else:
        back = pd.read_json(target, lines=True)
    assert len(back) == len(frame) == 8
    assert tuple(back.columns[: len(TRACE_COLUMNS)]) == TRACE_COLUMNS
    assert back["status"].tolist() == frame["status"].tolist()
    assert back["error"].fillna("").tolist() == frame["error"].fillna("").tolist()


def test_write_frame_refuses_an_unknown_extension(tmp_path: Path) -> None:
    """``.xlsx`` raises ConfigError naming the valid extensions, and writes nothing."""
    frame = two_attempts(MemoryStore()).to_dataframe()
    target = tmp_path / "trace.xlsx"
    with pytest.raises(recorder.ConfigError) as caught:
        write_frame(frame, target)
    message = str(caught.value)
    assert "trace.xlsx" in message
    for suffix in EXPORT_FORMATS:
        assert suffix in message
    assert not target.exists()


def test_a_replay_that_hits_a_damaged_blob_is_not_traced_as_replayed() -> None:
    """A step whose recorded result blob is damaged raises DamagedRecordError on replay
    (never a live call); the trace shows a failed call with that error, not a replay,
    and the attempt's stats do not count it as replayed."""
    store = MemoryStore()
    run = recorder.run("damaged", store=store)
    with run:
        run.step("big", lambda: "x" * 4096)  # large result: stored as a blob
    (step,) = Journal(store).steps(run.run_id)
    assert step.result_ref is not None
    store.write({"blob/" + step.result_ref: b"garbage"})
    with pytest.raises(recorder.DamagedRecordError, match=r"step #0 \(step 'big'"), run:
        run.step("big", lambda: "x" * 4096)
    assert run.stats.replayed == 0
    row = run.to_dataframe().iloc[-1]
    assert row["attempt"] == 2
    assert row["status"] == "failed"
    assert isinstance(row["error"], str)
    assert row["error"].startswith("DamagedRecordError")
    assert not math.isnan(row["duration_s"])
    assert run.stats.live == 0
