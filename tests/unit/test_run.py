"""The run policy: attempts, modes, occurrences, divergence, errors, context."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import Outcome
from recorder.store import DiskStore, MemoryStore


class Counter:
    """A step function that counts its live executions."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Any = None) -> Any:
        self.calls += 1
        return {"x": x, "n": self.calls}


def test_rerun_replays_without_executing(store_dir: Path) -> None:
    fn = Counter()
    results = []
    for _ in range(3):
        with recorder.run("r", inputs={"a": 1}, store=store_dir) as run:
            results.append([run.step("f", fn, 1), run.step("f", fn, 2)])
    assert fn.calls == 2
    assert results[0] == results[1] == results[2]
    assert run.attempt == 3 and run.outcome is Outcome.COMPLETED
    assert run.stats.replayed == 2 and run.stats.live == 0


def test_same_call_twice_is_two_steps(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        first, second = run.step("f", fn, 1), run.step("f", fn, 1)
    assert first != second
    with recorder.run("r", store=store_dir) as run:
        assert [run.step("f", fn, 1), run.step("f", fn, 1)] == [first, second]
    assert fn.calls == 2


def test_interrupted_attempt_resumes_where_the_record_ends(store_dir: Path) -> None:
    fn = Counter()
    with pytest.raises(KeyboardInterrupt), recorder.run("r", store=store_dir) as run:
        run.step("f", fn, 1)
        raise KeyboardInterrupt
    assert run.outcome is Outcome.INTERRUPTED
    with recorder.run("r", store=store_dir) as run:
        run.step("f", fn, 1)
        run.step("f", fn, 2)
    assert fn.calls == 2
    assert (run.stats.replayed, run.stats.live) == (1, 1)


def test_outcomes(store_dir: Path) -> None:
    with pytest.raises(ValueError), recorder.run("r", store=store_dir) as run:
        raise ValueError("no")
    assert run.outcome is Outcome.FAILED

    async def cancelled() -> None:
        async with recorder.run("r", store=store_dir):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    history = recorder.load("r", store=store_dir)
    assert [a.outcome for a in history.attempts] == [Outcome.FAILED, Outcome.INTERRUPTED]
    assert history.attempts[0].error is not None and history.attempts[0].error.message == "no"


def test_async_with_and_astep(store_dir: Path) -> None:
    calls = 0

    async def fetch(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return x * 10

    async def main() -> list[int]:
        async with recorder.run("a", store=store_dir) as run:
            return list(await asyncio.gather(*(run.astep("fetch", fetch, i) for i in range(5))))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert calls == 5


def test_mode_typos_are_refused_with_the_valid_values() -> None:
    with pytest.raises(recorder.ConfigError, match="'auto', 'replay', 'record'"):
        recorder.run("r", mode="replya")
    with pytest.raises(recorder.ConfigError, match="'warn', 'raise'"):
        recorder.run("r", on_divergence="ignore")
    assert recorder.Mode("replay") is recorder.Mode.REPLAY


def test_replay_mode_never_goes_live(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        run.step("f", fn, {"city": "Paris", "days": 2})
    with recorder.run("r", store=store_dir, mode="replay") as run:
        run.step("f", fn, {"city": "Paris", "days": 2})
        with pytest.raises(recorder.ReplayMissError) as caught:
            run.step("f", fn, {"city": "Rome", "days": 2})
    assert fn.calls == 1
    error = caught.value
    assert "step #1 (step 'f')" in str(error)
    assert "Nearest recorded: step #0" in str(error)
    assert error.differences == {"args[0].city": ("Paris", "Rome")}
    assert error.candidate is not None and error.candidate["seq"] == 0


def test_record_mode_runs_everything_live_as_the_new_truth(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        old = run.step("f", fn)
    with recorder.run("r", store=store_dir, mode="record") as run:
        new = run.step("f", fn)
    assert old != new and fn.calls == 2
    with recorder.run("r", store=store_dir) as run:
        assert run.step("f", fn) == new
    assert fn.calls == 2
    history = recorder.load("r", store=store_dir)
    assert {s.generation for s in history.steps} == {0, 1}  # the old record is kept


def test_divergence_warns_once_then_goes_live(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        for i in range(3):
            run.step("f", fn, i)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recorder.run("r", store=store_dir) as run:
            run.step("f", fn, 0)
            run.step("f", fn, 99)
            run.step("f", fn, 98)
    divergences = [w for w in caught if issubclass(w.category, recorder.DivergenceWarning)]
    assert len(divergences) == 1
    message = str(divergences[0].message)
    assert "2 recorded step(s) are unused so far" in message
    assert "changed since it was recorded" in message and "deterministic" not in message
    assert "args[0]: 1 -> 99" in message
    assert divergences[0].filename == __file__  # the program's line, not the recorder's
    assert fn.calls == 5


def test_divergence_can_raise(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        run.step("f", fn, 1)
        run.step("g", fn, 2)
    with recorder.run("r", store=store_dir, on_divergence="raise") as run:
        with pytest.raises(recorder.DivergenceError) as caught:
            run.step("f", fn, 3)
        assert caught.value.differences == {"args[0]": (1, 3)}
    assert fn.calls == 2


def test_no_divergence_when_the_record_is_used_up(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        run.step("f", fn, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with recorder.run("r", store=store_dir, on_divergence="raise") as run:
            run.step("f", fn, 1)
            run.step("f", fn, 2)


def test_a_step_that_raised_replays_the_same_error(store_dir: Path) -> None:
    calls = 0

    def bad(x: int) -> None:
        nonlocal calls
        calls += 1
        raise KeyError(f"missing {x}")

    for _ in range(2):
        with recorder.run("r", store=store_dir) as run, pytest.raises(KeyError) as caught:
            run.step("bad", bad, 3)
        assert str(caught.value) == "'missing 3'"
    assert calls == 1
    assert any("replayed" in note for note in caught.value.__notes__)


def test_an_error_whose_type_cannot_be_rebuilt(store_dir: Path) -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(a + b)

        def __str__(self) -> str:
            return "odd!"

    def bad() -> None:
        raise Odd(1, 2)

    with recorder.run("r", store=store_dir) as run, pytest.raises(Odd):
        run.step("bad", bad)
    with recorder.run("r", store=store_dir) as run, pytest.raises(recorder.RecordedStepError) as e:
        run.step("bad", bad)
    assert "Odd: odd!" in str(e.value)


def test_unserializable_results_are_refused_before_recording(store_dir: Path) -> None:
    fn = Counter()

    def make() -> object:
        fn()
        return object()

    for _ in range(2):
        with (
            recorder.run("r", store=store_dir) as run,
            pytest.raises(recorder.NotSerializableError, match="the result of step #0"),
        ):
            run.step("obj", make)
    assert fn.calls == 2
    assert recorder.load("r", store=store_dir).steps == []


def test_bytes_results_replay(store_dir: Path) -> None:
    for _ in range(2):
        with recorder.run("r", store=store_dir) as run:
            assert run.step("b", lambda: {"png": b"\x89PNG" * 1000}) == {"png": b"\x89PNG" * 1000}


def test_now_random_uuid_are_recorded(store_dir: Path, clock: Any) -> None:
    with recorder.run("r", store=store_dir, clock=clock) as run:
        first = (run.now(), run.random(), run.uuid(), run.now())
    with recorder.run("r", store=store_dir) as run:
        again = (run.now(), run.random(), run.uuid(), run.now())
    assert first == again
    assert first[0].tzinfo is not None and first[0] != first[3]


def test_decorator_records_inside_runs_only(store_dir: Path) -> None:
    fn = Counter()

    @recorder.step
    def plan(x: int) -> Any:
        return fn(x)

    @recorder.step(name="fetch")
    async def fetch(x: int) -> Any:
        return fn(x)

    plan(1)
    assert fn.calls == 1
    for _ in range(2):
        with recorder.run("r", store=store_dir):
            plan(1)
            asyncio.run(fetch(2))
    assert fn.calls == 3
    names = {s.name for s in recorder.load("r", store=store_dir).steps}
    assert names == {"test_decorator_records_inside_runs_only.<locals>.plan", "fetch"}


def test_nested_steps_are_part_of_the_outer_result(store_dir: Path) -> None:
    inner = Counter()

    def outer(run: recorder.Run) -> Any:
        return [run.step("inner", inner, 1), run.now().year > 2000]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divergence on the re-run
        for _ in range(2):
            with recorder.run("r", store=store_dir) as run:
                run.step("outer", lambda: outer(run))
                run.step("after", inner, 2)
    assert inner.calls == 2
    assert [s.name for s in recorder.load("r", store=store_dir).current_steps()] == [
        "outer",
        "after",
    ]


def test_the_current_run_follows_tasks_and_threads(store_dir: Path) -> None:
    seen: dict[str, Any] = {}
    with recorder.run("r", store=store_dir) as run:
        thread = threading.Thread(target=lambda: seen.update(thread=recorder.current_run()))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(1) as pool:
            seen["pool"] = pool.submit(recorder.current_run).result()

        async def in_task() -> Any:
            return await asyncio.create_task(asyncio.sleep(0, recorder.current_run()))

        seen["task"] = asyncio.run(in_task())
    assert seen == {"thread": run, "pool": run, "task": run}
    assert recorder.current_run() is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "a/b",
        "a\\b",
        "nul\x00",
        "x" * 300,
        "a\uff0fb",
        "a\u2215b",
        "a\u29f8b",
        " padded",
        "zero\u200bwidth",
        "\uff0e\uff0e",
    ],
)
def test_bad_run_names_are_refused(name: str) -> None:
    with pytest.raises(recorder.ConfigError, match="run name"):
        recorder.run(name)


def test_inputs_are_part_of_the_identity_and_recorded(store_dir: Path) -> None:
    with recorder.run("r", inputs={"t": 1}, store=store_dir) as one:
        pass
    with recorder.run("r", inputs={"t": 2}, store=store_dir) as two:
        pass
    assert one.run_id != two.run_id
    assert recorder.load("r", inputs={"t": 1}, store=store_dir).inputs == {"t": 1}
    with pytest.raises(recorder.NotSerializableError, match="inputs"):
        recorder.run("r", inputs={"bad": object()})


def test_a_run_cannot_be_entered_twice_at_once(store_dir: Path) -> None:
    with recorder.run("r", store=store_dir) as run:
        with pytest.raises(recorder.RunLockedError, match="already open"), run:
            pass
        with (
            pytest.raises(recorder.RunLockedError, match="is open in process"),
            recorder.run("r", store=store_dir),
        ):
            pass
    with recorder.run("r", store=store_dir):  # released after exit
        pass


def test_an_attempt_left_by_a_dead_process_is_seen_as_crashed(store_dir: Path) -> None:
    script = (
        "import os, recorder\n"
        f"run = recorder.run('r', store={str(store_dir)!r})\n"
        "run.__enter__()\n"
        "run.step('f', lambda: 1)\n"
        "os._exit(0)\n"  # no __exit__: like a killed kernel
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with recorder.run("r", store=store_dir) as run:
        assert run.step("f", lambda: 2) == 1
    history = recorder.load("r", store=store_dir)
    assert [a.outcome for a in history.attempts] == [Outcome.CRASHED, Outcome.COMPLETED]
    rows = history.rows()
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "live"), (2, "replayed")]


def test_a_damaged_record_is_an_error_not_a_live_rerun(store_dir: Path) -> None:
    fn = Counter()
    with recorder.run("r", store=store_dir) as run:
        run.step("big", lambda: fn("x" * 2000))
    (step,) = recorder.load("r", store=store_dir).steps
    assert step.result_ref is not None
    DiskStore(store_dir).write({"blob/" + step.result_ref: b"{}"})
    with recorder.run("r", store=store_dir) as run, pytest.raises(recorder.DamagedRecordError):
        run.step("big", lambda: fn("x" * 2000))
    assert fn.calls == 1


def test_memory_store_runs() -> None:
    store = MemoryStore()
    fn = Counter()
    for _ in range(2):
        with recorder.run("m", store=store) as run:
            run.step("f", fn)
    assert fn.calls == 1


def test_steps_outside_an_open_run_are_an_error(store_dir: Path) -> None:
    run = recorder.run("r", store=store_dir)
    with pytest.raises(recorder.RecorderError, match="not open"):
        run.step("f", Counter())


def test_a_step_error_that_ended_the_attempt_is_retried(store_dir: Path) -> None:
    outcomes = iter([RuntimeError("flaky page"), None])

    def flaky() -> str:
        error = next(outcomes)
        if error:
            raise error
        return "ok"

    with pytest.raises(RuntimeError), recorder.run("r", store=store_dir) as run:
        run.step("flaky", flaky)
    with recorder.run("r", store=store_dir) as run:
        assert run.step("flaky", flaky) == "ok"
    rows = recorder.load("r", store=store_dir).rows()
    assert [(r["attempt"], r["status"], r["error"]) for r in rows] == [
        (1, "failed", "RuntimeError: flaky page"),
        (2, "live", None),
    ]


def test_a_cancel_during_the_async_exit_still_ends_the_attempt(store_dir: Path) -> None:
    """The notebook's stop button lands while ``async with`` closes a resource (a
    browser context): the attempt still ends (outcome written, lock released), the
    cancellation goes on, and the next run of the cell is not locked out by its own
    process."""

    async def cell(closing: asyncio.Event) -> None:
        async def slow_close() -> None:
            closing.set()
            await asyncio.sleep(30)

        async with recorder.run("exit", store=store_dir) as run:
            run.step("a", lambda: 1)
            run.add_closer(slow_close)

    async def main() -> int:
        closing = asyncio.Event()
        task = asyncio.create_task(cell(closing))
        await closing.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with recorder.run("exit", store=store_dir) as run:
            return int(run.step("a", lambda: 2))

    assert asyncio.run(main()) == 1
    outcomes = [a.outcome for a in recorder.load("exit", store=store_dir).attempts]
    assert outcomes == [Outcome.COMPLETED, Outcome.COMPLETED]


def test_a_lock_of_this_process_whose_attempt_is_ending_is_taken_over(store_dir: Path) -> None:
    """A lock left by an attempt of this process that began to end (its exit was cut
    short) is taken over; one whose attempt is in flight is refused."""
    from recorder.locks import RunLock

    run = recorder.run("held", store=store_dir)
    journal = run.journal
    first = RunLock(journal, run.run_id)
    first.acquire(0.0)
    with pytest.raises(recorder.RunLockedError, match="is open in process"):
        RunLock(journal, run.run_id).acquire(1.0)
    first.ending = True
    second = RunLock(journal, run.run_id)
    second.acquire(2.0)
    assert second.taken_from is not None
    second.release()


def test_an_awaitable_closer_met_by_a_plain_with_finishes_on_the_loop(store_dir: Path) -> None:
    """A plain ``with`` in a running loop (an async page in a top-level-await cell)
    hands an awaitable cleanup to the loop, which finishes it; with no loop running
    it is closed unawaited, with a warning that says so."""
    closed: list[str] = []

    async def close() -> None:
        await asyncio.sleep(0)
        closed.append("on the loop")

    async def cell() -> None:
        with recorder.run("mixed", store=store_dir) as run:
            run.add_closer(close)
        assert closed == []
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(cell())
    assert closed == ["on the loop"]

    warned = pytest.warns(UserWarning, match="could not be closed: no event loop runs")
    with warned, recorder.run("mixed", store=store_dir) as run:
        run.add_closer(close)
    assert closed == ["on the loop"]
