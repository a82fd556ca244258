"""recorder.fan_out: children as durable runs, resumed, capped, retried, budgeted,
suspended and interrupted (pure: in-memory and tmp stores, no network)."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.fanout import FanOutWarning
from recorder.journal import Journal
from recorder.limits import Limit


class Counter:
    """Counts calls per input and children in flight (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[Any, int] = {}
        self.live: dict[Any, int] = {}
        self.now = 0
        self.peak = 0

    def enter(self, x: Any) -> None:
        with self.lock:
            self.calls[x] = self.calls.get(x, 0) + 1
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

    def step(self, x: Any) -> None:
        with self.lock:
            self.live[x] = self.live.get(x, 0) + 1


def lock_free(store: recorder.Store, names: list[str]) -> bool:
    journal = Journal(store)
    return all(journal.get_lock(name) is None for name in names)


# -- keys ------------------------------------------------------------------------------


async def test_default_keys_are_stable_under_reordered_inputs() -> None:
    inputs = [{"id": i, "name": f"acct-{i}"} for i in range(6)]

    async def agent(run: recorder.Run, x: dict[str, Any]) -> int:
        return int(x["id"])

    first = await recorder.fan_out(agent, inputs, name="keys", store=recorder.MemoryStore())
    second = await recorder.fan_out(
        agent, list(reversed(inputs)), name="keys", store=recorder.MemoryStore()
    )
    by_key = dict(zip(first["key"], first["run"], strict=True))
    assert dict(zip(second["key"], second["run"], strict=True)) == by_key
    assert list(second["result"]) == [5, 4, 3, 2, 1, 0]  # rows follow the inputs' order
    assert all(len(k) == 12 for k in by_key)


def test_duplicate_keys_are_refused_before_anything_runs() -> None:
    store = recorder.MemoryStore()
    called: list[Any] = []

    def agent(run: recorder.Run, x: Any) -> Any:
        called.append(x)
        return x

    with pytest.raises(recorder.ConfigError, match=r"'a': inputs 0, 2.*'b': inputs 1, 3"):
        recorder.fan_out(agent, ["a1", "b1", "a2", "b2", "c"], name="dup", store=store,
                         key=lambda s: s[0])  # fmt: skip
    with pytest.raises(recorder.ConfigError, match="identical inputs"):
        recorder.fan_out(agent, [{"x": 1}, {"x": 1}], name="dup", store=store)
    assert called == []
    assert recorder.runs(store).empty


def test_a_key_that_cannot_name_a_run_is_refused() -> None:
    with pytest.raises(recorder.ConfigError, match="cannot name a run"):
        recorder.fan_out(lambda r, x: x, ["a/b"], name="bad", key=str,
                         store=recorder.MemoryStore())  # fmt: skip


# -- children are runs; resume only the unfinished -------------------------------------


async def test_children_are_runs_and_a_rerun_submits_only_the_unfinished() -> None:
    store = recorder.MemoryStore()
    seen = Counter()
    broken = {2, 5}

    async def agent(run: recorder.Run, x: int) -> dict[str, int]:
        seen.enter(x)
        try:
            doubled = await run.astep("double", lambda a: (seen.step(a), a * 2)[1], x)
            if x in broken:
                raise ValueError(f"no account {x}")
            return {"x": x, "doubled": doubled}
        finally:
            seen.leave()

    with pytest.warns(FanOutWarning, match="2 of 6 children failed"):
        df = await recorder.fan_out(agent, range(6), name="acct", key=int, store=store)
    assert list(df["status"]) == ["completed"] * 2 + ["failed"] + ["completed"] * 2 + ["failed"]
    assert df.loc[2, "error"] == "ValueError: no account 2"
    assert df.loc[0, "result"] == {"x": 0, "doubled": 0}
    history = recorder.load("acct:3", store=store)  # a child opens by its name
    assert history.status == "completed" and len(history.current_steps()) == 1

    # Same call again, with two inputs appended: only the new ones run.
    seen.calls.clear()
    with pytest.warns(FanOutWarning):
        df = await recorder.fan_out(agent, range(8), name="acct", key=int, store=store)
    assert seen.calls == {6: 1, 7: 1}
    assert list(df["status"]) == (["replayed"] * 2 + ["failed"] + ["replayed"] * 2
                                  + ["failed", "completed", "completed"])  # fmt: skip
    assert df.loc[0, "result"] == {"x": 0, "doubled": 0}
    assert df.loc[5, "error"] == "ValueError: no account 5"

    # retry_failed: the failed ones run again (their step replays), and now succeed.
    broken.clear()
    seen.calls.clear()
    seen.live.clear()
    df = await recorder.fan_out(agent, range(8), name="acct", key=int, store=store,
                                retry_failed=True)  # fmt: skip
    assert seen.calls == {2: 1, 5: 1} and seen.live == {}
    assert df.loc[2, "status"] == "replayed" and df.loc[2, "attempts"] == 2
    assert set(df["status"]) == {"replayed"}

    # The parent run recorded its inputs and every child's outcome.
    parent = recorder.load("acct", store=store).to_dataframe()
    assert list(parent[parent["attempt"] == 1]["kind"]) == ["inputs"] + ["child"] * 6
    assert list(parent[parent["attempt"] == 3]["name"]) == ["inputs", "2", "5"]


async def test_a_child_running_elsewhere_is_reported_not_started() -> None:
    store = recorder.MemoryStore()
    seen = Counter()

    async def agent(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        return x

    holder = recorder.run("busy:1", inputs=1, store=store)
    with holder:  # this process holds child 1's lock, as another process would
        df = await recorder.fan_out(agent, [0, 1, 2], name="busy", key=int, store=store)
    assert list(df["status"]) == ["completed", "running elsewhere", "completed"]
    assert 1 not in seen.calls
    df = await recorder.fan_out(agent, [0, 1, 2], name="busy", key=int, store=store)
    # child 1 now runs: the other holder's attempt completed it, so nothing goes live
    assert list(df["status"]) == ["replayed"] * 3 and seen.calls[1] == 1


def test_sync_agents_run_in_threads_and_wait_works_without_a_loop(tmp_path: Path) -> None:
    seen = Counter()
    threads: set[str] = set()

    def agent(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        try:
            threads.add(threading.current_thread().name)
            time.sleep(0.02)
            return int(run.step("square", lambda a: a * a, x))
        finally:
            seen.leave()

    fan = recorder.fan_out(agent, range(8), name="sq", key=int, store=tmp_path, concurrency=3)
    df = fan.wait()
    assert list(df["result"]) == [x * x for x in range(8)]
    assert seen.peak <= 3 and all(t.startswith("recorder-child") for t in threads)
    assert set(fan.df["status"]) == {"completed"}
    assert set(recorder.fan_out(agent, range(8), name="sq", key=int, store=tmp_path)
               .wait()["status"]) == {"replayed"}  # fmt: skip


# -- concurrency and limits -------------------------------------------------------------


async def test_never_more_than_concurrency_children_in_flight() -> None:
    seen = Counter()

    async def agent(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        try:
            await asyncio.sleep(0.01)
            return x
        finally:
            seen.leave()

    fan = recorder.fan_out(agent, range(20), name="cap", key=int, concurrency=4,
                           store=recorder.MemoryStore())  # fmt: skip
    df = await fan
    assert seen.peak == 4
    assert set(df["status"]) == {"completed"}


async def test_a_limit_caps_holders_across_threads_and_tasks() -> None:
    limit = Limit("llm", 3)
    held = Counter()

    def in_thread() -> None:
        limit.acquire()
        try:
            held.enter(None)
            time.sleep(0.01)
            held.leave()
        finally:
            limit.release()

    async def in_task() -> None:
        await limit.aacquire()
        try:
            held.enter(None)
            await asyncio.sleep(0.01)
            held.leave()
        finally:
            limit.release()

    threads = [threading.Thread(target=in_thread) for _ in range(6)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(in_task() for _ in range(10)))
    for thread in threads:
        thread.join()
    assert held.peak <= 3 and limit.peak == 3 and limit.in_use == 0


async def test_a_cancelled_wait_for_a_limit_gives_its_slot_back() -> None:
    limit = Limit("llm", 1)
    await limit.aacquire()
    waiter = asyncio.ensure_future(limit.aacquire())
    await asyncio.sleep(0)
    waiter.cancel()
    limit.release()
    await asyncio.sleep(0.01)
    assert limit.in_use == 0
    await asyncio.wait_for(limit.aacquire(), 1)
    limit.release()


def test_bad_arguments_are_refused() -> None:
    store = recorder.MemoryStore()
    for options, match in (
        ({"concurrency": 0}, "concurrency"),
        ({"retries": -1}, "retries"),
        ({"max_failures": 1.5}, "fraction"),
        ({"limits": {"gpu": 2}}, "limits known"),
        ({"limits": {"llm": 0}}, "int >= 1"),
    ):
        with pytest.raises(recorder.ConfigError, match=match):
            recorder.fan_out(lambda r, x: x, [1], name="bad", store=store, **options)


# -- retries and the failure budget -------------------------------------------------------


async def test_a_retry_replays_the_finished_steps_and_redoes_only_the_failed_part() -> None:
    store = recorder.MemoryStore()
    live = Counter()
    tries: dict[int, int] = {}

    async def agent(run: recorder.Run, x: int) -> list[int]:
        a = await run.astep("one", lambda v: (live.step(("one", v)), v + 1)[1], x)
        b = await run.astep("two", lambda v: (live.step(("two", v)), v + 2)[1], x)
        tries[x] = tries.get(x, 0) + 1
        if tries[x] < 3:
            raise ConnectionError("flaky")
        return [a, b]

    df = await recorder.fan_out(agent, [10], name="retry", key=int, retries=3, store=store)
    row = df.iloc[0]
    assert row["status"] == "completed" and row["attempts"] == 3
    assert row["result"] == [11, 12]
    assert live.live == {("one", 10): 1, ("two", 10): 1}  # each step live once, then replayed
    outcomes = [a.outcome.value for a in recorder.load("retry:10", store=store).attempts]
    assert outcomes == ["failed", "failed", "completed"]


async def test_errors_a_retry_cannot_fix_are_not_retried() -> None:
    store = recorder.MemoryStore()

    async def agent(run: recorder.Run, x: int) -> Any:
        if x == 0:
            raise recorder.ConfigError("bad setting")
        return object()  # no JSON form: the attempt fails, and so would the next

    with pytest.warns(FanOutWarning):
        df = await recorder.fan_out(agent, [0, 1], name="fatal", key=int, retries=5, store=store)
    assert list(df["attempts"]) == [1, 1]
    assert df.loc[0, "error"] == "ConfigError: bad setting"
    assert "NotSerializableError" in df.loc[1, "error"]


@pytest.mark.parametrize("budget", [2, 0.2])
async def test_the_failure_budget_counts_exactly_and_skips_the_rest(budget: float) -> None:
    store = recorder.MemoryStore()
    seen = Counter()

    async def agent(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        if x in (1, 3, 4, 6):
            raise ValueError(f"bad {x}")
        return x

    # concurrency 1: children end in input order, so the third failure (input 4) is the
    # one past a budget of 2 (or 0.2 x 10 inputs)
    with pytest.warns(FanOutWarning, match=r"3 of 10 children failed, more than max_failures"):
        df = await recorder.fan_out(agent, range(10), name="budget", key=int, concurrency=1,
                                    max_failures=budget, store=store)  # fmt: skip
    assert (
        list(df["status"])
        == ["completed", "failed", "completed", "failed", "failed"] + ["skipped"] * 5
    )
    assert sorted(seen.calls) == [0, 1, 2, 3, 4]
    parent = recorder.load("budget", store=store).to_dataframe()
    assert list(parent["kind"]).count("budget") == 1

    with pytest.raises(recorder.FanOutError, match="more than max_failures") as raised:
        await recorder.fan_out(agent, range(10), name="budget", key=int, concurrency=1,
                               max_failures=budget, store=store, raise_on_failure=True)  # fmt: skip
    # the recorded failures already exceed the budget: nothing new starts
    assert list(raised.value.df["status"]).count("skipped") == 5
    assert sorted(seen.calls) == [0, 1, 2, 3, 4]


async def test_within_the_budget_every_child_runs() -> None:
    async def agent(run: recorder.Run, x: int) -> int:
        if x == 3:
            raise ValueError("bad")
        return x

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = await recorder.fan_out(agent, range(6), name="ok", key=int, max_failures=1,
                                    store=recorder.MemoryStore())  # fmt: skip
    assert list(df["status"]).count("completed") == 5
    assert next(str(w.message) for w in caught if w.category is FanOutWarning).startswith(
        "fan-out 'ok': 1 of 6 children failed"
    )


# -- human waits ---------------------------------------------------------------------------


async def test_a_suspended_child_frees_its_slot_and_resumes_after_its_signal() -> None:
    store = recorder.MemoryStore()
    seen = Counter()

    async def agent(run: recorder.Run, x: int) -> dict[str, Any]:
        seen.enter(x)
        await run.astep("prepare", lambda v: (seen.step(v), v)[1], x)
        approval = await run.wait_for("approval") if x == 0 else None
        return {"x": x, "approval": approval}

    fan = recorder.fan_out(agent, range(4), name="approve", key=int, concurrency=1, store=store)
    df = await fan
    assert list(df["status"]) == ["suspended", "completed", "completed", "completed"]
    assert df.loc[0, "waiting_for"] == "approval"
    assert fan.suspended == [df.loc[0, "run"]]

    seen.calls.clear()
    df = await fan  # no signal yet: nothing runs
    assert seen.calls == {} and df.loc[0, "status"] == "suspended"

    recorder.signal(fan.suspended[0], "approval", "yes", store=store)
    df = await fan
    assert seen.calls == {0: 1} and seen.live == {0: 1, 1: 1, 2: 1, 3: 1}
    assert df.loc[0, "status"] == "completed"  # its step replayed, the signal recorded live
    assert df.loc[0, "attempts"] == 2  # the call before found no signal and did not run it
    assert df.loc[0, "result"] == {"x": 0, "approval": "yes"}
    assert fan.suspended == []


# -- interrupts ------------------------------------------------------------------------------


async def test_cancelling_a_fan_out_interrupts_every_child_cleanly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = recorder.MemoryStore()
    started = asyncio.Event()
    seen = Counter()

    async def agent(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        if x >= 2:
            started.set()
            await asyncio.sleep(30)
        return x

    fan = recorder.fan_out(agent, range(8), name="stop", key=int, concurrency=4, store=store)
    task = asyncio.ensure_future(fan._drive())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    err = capsys.readouterr().err
    assert err.count("recorder: fan-out 'stop' interrupted") == 1 and "Traceback" not in err
    statuses = dict(zip(fan.df["key"], fan.df["status"], strict=True))
    assert [statuses[k] for k in ("0", "1")] == ["completed", "completed"]
    assert all(statuses[k] == "interrupted" for k in ("2", "3", "4", "5", "6", "7"))
    for key in ("2", "3", "4", "5"):  # those in flight ended their attempt as interrupted
        assert recorder.load(f"stop:{key}", store=store).status == "interrupted"
    assert recorder.load("stop", store=store).status == "interrupted"
    names = [r for r in fan.df["run"]] + [fan.run_id]
    assert lock_free(store, names)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("recorder child")] == []

    seen.calls.clear()

    async def quick(run: recorder.Run, x: int) -> int:
        seen.enter(x)
        return x

    df = await recorder.fan_out(quick, range(8), name="stop", key=int, store=store)
    assert sorted(seen.calls) == [2, 3, 4, 5, 6, 7]
    # 2-5 had an attempt and now complete with nothing live: replayed, as 0 and 1
    assert list(df["status"]) == ["replayed"] * 6 + ["completed"] * 2


async def test_cancelling_interrupts_sync_children_in_their_threads() -> None:
    store = recorder.MemoryStore()
    started = threading.Event()

    def agent(run: recorder.Run, x: int) -> int:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # Python code: the interruption lands here
            time.sleep(0.005)
        return x

    fan = recorder.fan_out(agent, range(3), name="threads", key=int, concurrency=3, store=store)
    task = asyncio.ensure_future(fan._drive())
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t0 < 5
    assert set(fan.df["status"]) == {"interrupted"}
    for key in ("0", "1", "2"):
        assert recorder.load(f"threads:{key}", store=store).status == "interrupted"
    assert lock_free(store, [*fan.df["run"], fan.run_id])


# -- speed ---------------------------------------------------------------------------------------


async def test_a_fully_recorded_fan_out_comes_back_without_running_its_agent(
    tmp_path: Path,
) -> None:
    calls = Counter()

    async def agent(run: recorder.Run, x: int) -> dict[str, int]:
        calls.enter(x)
        total = 0
        for i in range(3):
            total += await run.astep(f"s{i}", lambda a, b: a + b, x, i)
        return {"total": total}

    await recorder.fan_out(agent, range(200), name="fast", key=int, store=tmp_path)
    calls.calls.clear()
    t0 = time.perf_counter()
    df = await recorder.fan_out(agent, range(200), name="fast", key=int, store=tmp_path)
    elapsed = time.perf_counter() - t0
    assert calls.calls == {} and set(df["status"]) == {"replayed"}
    assert df.loc[7, "result"] == {"total": 24}
    assert elapsed < 2.0


# -- choosing an engine ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "said"),
    [
        ("spark", "names no engine; the engines are 'local'"),
        (42, "takes 'local', 'dask', a distributed.Client or a function"),
        (None, None),
        ("local", None),
    ],
)
def test_engine_takes_a_name_a_client_or_a_factory(engine: Any, said: str | None) -> None:
    if said is None:
        recorder.fan_out(_same, [1], name="engines", engine=engine)
        return
    with pytest.raises(recorder.ConfigError, match=said):
        recorder.fan_out(_same, [1], name="engines", engine=engine)


def test_an_engine_object_is_refused_for_a_factory() -> None:
    from recorder.engines import LocalEngine

    with pytest.raises(recorder.ConfigError, match=r"engine=lambda: LocalEngine\(...\)"):
        recorder.fan_out(_same, [1], name="engines", engine=LocalEngine())


async def test_a_factory_that_makes_no_engine_is_refused() -> None:
    fan = recorder.fan_out(_same, [1], name="engines", engine=lambda: "local",
                           store=recorder.MemoryStore())  # fmt: skip
    with pytest.raises(recorder.ConfigError, match=r"must return a recorder\.engines\.Engine"):
        await fan


def test_the_core_does_not_import_dask() -> None:
    import subprocess
    import sys

    code = ("import sys, recorder, recorder.fanout, recorder.engines; "
            "recorder.fan_out(lambda r, x: x, [1], name='x', engine='dask'); "
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('dask', 'distributed')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def _same(run: recorder.Run, value: Any) -> Any:
    return value
