"""Step records are numbered per generation (recorder/sequence.py): a record lost below an
ended attempt's mark stops the next entry, and what is deleted or refused on purpose
never looks lost."""

from __future__ import annotations

import pytest

import recorder
from recorder.errors import DamagedRecordError, QuotaExceededError
from recorder.journal import Journal
from recorder.records import AttemptRecord, Outcome, StepRecord
from recorder.sequence import numbering
from recorder.store import MemoryStore


def _steps(run: recorder.Run, count: int) -> list[str]:
    return [run.step("s", str.upper, f"v{i}") for i in range(count)]


def test_numbers_run_in_write_order_and_go_on_across_attempts() -> None:
    store = MemoryStore()
    with recorder.run("n", store=store, display=False) as run:
        _steps(run, 3)
    with recorder.run("n", store=store, display=False) as run:
        _steps(run, 5)
    journal = Journal(store)
    steps = journal.steps(run.run_id, 0)
    assert sorted(s.n for s in steps if s.n is not None) == [0, 1, 2, 3, 4]
    assert [a.high_water for a in journal.attempts(run.run_id)] == [3, 5]


def test_a_record_lost_below_the_mark_stops_the_next_entry() -> None:
    store = MemoryStore()
    with recorder.run("lost", store=store, display=False) as run:
        _steps(run, 4)
    journal = Journal(store)
    victim = next(s for s in journal.steps(run.run_id, 0) if s.n == 1)
    store.write(deletes=[f"step/{run.run_id}/0000/{victim.key}/{victim.occurrence:06d}"])
    calls: list[str] = []
    with (
        pytest.raises(DamagedRecordError, match=r"1 acknowledged step record.*attempt 1"),
        recorder.run("lost", store=store, display=False) as run,
    ):
        run.step("s", calls.append, "v0")
    assert calls == []
    # mode="record" starts a new generation: allowed, everything runs live anyway.
    with recorder.run("lost", store=store, mode="record", display=False) as run:
        _steps(run, 1)


def test_a_retracted_fatal_step_is_not_a_loss() -> None:
    store = MemoryStore()

    def boom(x: int) -> int:
        raise ValueError(x)

    with pytest.raises(ValueError), recorder.run("r", store=store, display=False) as run:
        _steps(run, 2)
        run.step("b", boom, 1)  # ends the attempt: its record is retracted
    with recorder.run("r", store=store, display=False) as run:
        _steps(run, 2)
        assert run.step("b", abs, 1) == 1  # the retry: a new number
    for _ in range(2):  # entered again and again: nothing looks lost
        with recorder.run("r", store=store, display=False) as run:
            _steps(run, 2)
            run.step("b", abs, 1)
    journal = Journal(store)
    attempts = journal.attempts(run.run_id)
    state = numbering(journal.steps(run.run_id, 0), attempts, 0)
    assert state.missing == () and any(a.dropped for a in attempts)


def test_a_write_the_store_refused_is_dropped_not_lost() -> None:
    store = MemoryStore()
    with recorder.run("q", store=store, display=False) as run:
        _steps(run, 2)
        store.max_store_bytes = store._size + 10  # the next step record does not fit
        with pytest.raises(QuotaExceededError):
            run.step("big", str.upper, "x" * 2000)
        store.max_store_bytes = None
        run.step("after", str.upper, "y")
    with recorder.run("q", store=store, display=False) as run:
        _steps(run, 2)
        run.step("after", str.upper, "y")
    assert Journal(store).attempts(run.run_id)[0].dropped == (2,)


def test_gaps_a_killed_attempt_left_above_the_mark_are_settled() -> None:
    """An attempt killed part-way may leave numbers that never committed (a write in
    flight in another thread): no ended attempt vouched for them, so they are not lost."""
    steps = [
        StepRecord(key=f"k{n}", occurrence=0, kind="step", name="s", generation=0, attempt=2,
                   seq=n, started_at=0.0, duration_s=0.0, n=n)
        for n in (0, 1, 2, 4)
    ]  # fmt: skip
    ended = AttemptRecord(number=1, mode="auto", generation=0, started_at=0.0, pid=1,
                          host="h", outcome=Outcome.COMPLETED, high_water=2)  # fmt: skip
    state = numbering(steps, [ended], 0)
    assert state.missing == () and state.unmarked_gaps == (3,) and state.next_n == 5


def test_a_fork_is_numbered_anew() -> None:
    store = MemoryStore()

    def boom(x: int) -> int:
        raise ValueError(x)

    with pytest.raises(ValueError), recorder.run("src", store=store, display=False) as run:
        _steps(run, 3)
        run.step("b", boom, 1)
    with recorder.run("src", store=store, display=False) as run:
        _steps(run, 3)
        run.step("b", abs, 1)
        _steps(run, 5)
    for _ in range(2):
        with recorder.run("fork", store=store, fork_from=("src", 6), display=False) as fork:
            _steps(fork, 3)
            fork.step("b", abs, 1)
            _steps(fork, 5)
    assert fork.stats.live == 0
