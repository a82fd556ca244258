"""Property tests: keys are canonical, and replays are idempotent under interruption.

(a) canonical keys do not depend on dict order and change with any determining field;
(b) for any program of steps, record once then replay k times: identical results and
    zero live executions;
(c) for any program and any interruption point (an exception before, inside or after
    any step), re-running completes with the results of an uninterrupted run, and every
    step finished live exactly once over both attempts.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recorder
from recorder.keys import canonical_json, content_key
from recorder.store import DiskStore, MemoryStore, Store

json_leaves = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
requests = st.dictionaries(st.text(min_size=1, max_size=6), json_values, min_size=1, max_size=6)


@given(requests, st.randoms())
def test_canonical_json_ignores_dict_order(request: dict[str, Any], rnd: random.Random) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert canonical_json(shuffled(request)) == canonical_json(request)
    assert content_key("llm", "m", shuffled(request)) == content_key("llm", "m", request)


@given(requests, st.data())
def test_any_changed_field_changes_the_key(request: dict[str, Any], data: st.DataObject) -> None:
    field_name = data.draw(st.sampled_from(sorted(request)))
    new_value = data.draw(
        json_values.filter(lambda v: canonical_json(v) != canonical_json(request[field_name]))
    )
    changed = {**request, field_name: new_value}
    assert content_key("llm", "m", changed) != content_key("llm", "m", request)
    extra = data.draw(st.text(min_size=1, max_size=6).filter(lambda k: k not in request))
    assert content_key("llm", "m", {**request, extra: 0}) != content_key("llm", "m", request)


# -- programs -------------------------------------------------------------------------

ops = st.one_of(
    st.tuples(st.just("step"), st.sampled_from("abc"), st.integers(0, 3)),
    st.tuples(st.just("fail"), st.sampled_from("ab"), st.integers(0, 3)),
    st.tuples(st.just("now"), st.just(""), st.just(0)),
    st.tuples(st.just("random"), st.just(""), st.just(0)),
    st.tuples(st.just("uuid"), st.just(""), st.just(0)),
)
programs = st.lists(ops, min_size=1, max_size=12)


class Interrupt(Exception):
    """Raised by the harness to interrupt a program."""


@dataclass
class Harness:
    """Runs a program of ops in a run and counts live step executions."""

    started: Counter[int] = field(default_factory=Counter)
    partial: list[Any] = field(default_factory=list)
    finished: Counter[int] = field(default_factory=Counter)
    clock_now: float = 1_700_000_000.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def clock(self) -> float:
        self.clock_now += 0.5
        return self.clock_now

    def execute(
        self,
        store: Store,
        program: list[tuple[str, str, int]],
        stop: tuple[int, str, type[BaseException]] | None = None,
    ) -> list[Any]:
        results: list[Any] = []
        self.partial = results
        with recorder.run("prog", store=store, clock=self.clock, rng=self.rng) as run:
            for index, (kind, name, arg) in enumerate(program):
                if stop is not None and stop[0] == index and stop[1] == "before":
                    raise stop[2]()
                results.append(self._op(run, index, kind, name, arg, stop))
                if stop is not None and stop[0] == index and stop[1] == "after":
                    raise stop[2]()
        return results

    def _op(
        self,
        run: recorder.Run,
        index: int,
        kind: str,
        name: str,
        arg: int,
        stop: tuple[int, str, type[BaseException]] | None,
    ) -> Any:
        def body(x: int) -> Any:
            self.started[index] += 1
            if stop is not None and stop[0] == index and stop[1] == "inside":
                raise stop[2]()
            self.finished[index] += 1
            if kind == "fail":
                raise ValueError(f"{name} fails on {x}")
            return {"name": name, "x": x, "sq": x * x}

        if kind in ("step", "fail"):
            try:
                return run.step(name, body, arg)
            except ValueError as error:
                return f"raised {error}"
        live_before = run.stats.live
        value = getattr(run, kind)()
        if run.stats.live > live_before:
            self.started[index] += 1
            self.finished[index] += 1
        return value


def _stores() -> list[Store]:
    return [MemoryStore()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.integers(1, 3))
def test_record_once_replay_many(program: list[tuple[str, str, int]], k: int) -> None:
    store = MemoryStore()
    harness = Harness()
    first = harness.execute(store, program)
    live_steps = sum(harness.started.values())
    for _ in range(k):
        assert harness.execute(store, program) == first
    assert sum(harness.started.values()) == live_steps  # zero live executions on replay
    history = recorder.load("prog", store=store)
    assert [row["status"] for row in history.rows() if row["attempt"] > 1] == ["replayed"] * (
        k * len(program)
    )


@st.composite
def interrupted_programs(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str, int]], tuple[int, str, type[BaseException]]]:
    program = draw(programs)
    index = draw(st.integers(0, len(program) - 1))
    kind = program[index][0]
    where = draw(
        st.sampled_from(
            ["before", "inside", "after"] if kind in ("step", "fail") else ["before", "after"]
        )
    )
    error = draw(st.sampled_from([KeyboardInterrupt, Interrupt]))
    return program, (index, where, error)


def _timeless(results: list[Any]) -> list[Any]:
    """Results with run.now() values masked: a clock read live after a resume is later
    than it was in the uninterrupted run, as it should be."""
    return ["<now>" if isinstance(r, datetime) else r for r in results]


def _check_interruption(store_factory: Any, case: Any) -> None:
    program, stop = case
    reference = Harness().execute(MemoryStore(), program)
    harness = Harness()
    store = store_factory()
    with pytest.raises(stop[2]):
        harness.execute(store, program, stop)
    finished_before = Counter(harness.finished)
    before = list(harness.partial)
    resumed = harness.execute(store, program)
    assert resumed[: len(before)] == before  # what the first attempt saw replays exactly
    assert _timeless(resumed) == _timeless(reference)
    assert all(harness.finished[i] == 1 for i in range(len(program))), harness.finished
    # what finished in the interrupted attempt replayed: it did not run again
    for index, count in finished_before.items():
        assert harness.finished[index] == count


@settings(max_examples=80, deadline=None)
@given(interrupted_programs())
def test_interrupted_programs_resume_to_the_same_result(case: Any) -> None:
    _check_interruption(MemoryStore, case)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interrupted_programs())
def test_interrupted_programs_resume_on_disk(case: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _check_interruption(lambda: DiskStore(tmp + "/s"), case)


# -- the user's kit, used on a program with effects -------------------------------------


def test_the_property_kit_on_an_agent_with_effects() -> None:
    """``recorder.testing.assert_replay_idempotent`` (the kit users get) on an agent
    mixing steps, effects, a caught step error and recorded values: every interruption
    plan resumes to the same result with each step live exactly once."""
    from recorder.testing import assert_replay_idempotent

    sent: list[str] = []

    def agent(run: recorder.Run, inputs: dict[str, Any]) -> list[Any]:
        out: list[Any] = [run.uuid().hex[:0]]
        for x in inputs["xs"]:
            out.append(run.step("square", lambda v: v * v, x))
            out.append(run.once("notify", lambda v, idempotency_key: sent.append(
                idempotency_key) or v, x))  # fmt: skip
        try:
            run.step("fail", int, "not a number")
        except ValueError as error:
            out.append(str(error))
        return out

    report = assert_replay_idempotent(agent, {"xs": [1, 2, 3]}, max_examples=30)
    assert report.steps == 8 and report.result[1:3] == [1, 1]
    assert len(report.plans) == 30 and any(len(p) >= 2 for p in report.plans)
