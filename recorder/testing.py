"""A property kit for your own agents: hypothesis strategies and a helper that proves a
recorded agent replays idempotently.

>>> from recorder.testing import assert_replay_idempotent
>>> def agent(run, inputs):
...     total = 0
...     for x in inputs["xs"]:
...         total += run.step("double", lambda v: 2 * v, x)
...     return total
>>> report = assert_replay_idempotent(agent, {"xs": [1, 2, 3]}, max_examples=10)
>>> report.steps
3

:func:`assert_replay_idempotent` records the agent once, uninterrupted; then, for each
interruption plan hypothesis generates (a sequence of step numbers: the first attempt
is interrupted before its n-th step goes live, the next one at the next number, and so
on), it records the agent again from nothing, interrupting and re-running until it
completes, and checks: the same result as the uninterrupted run, every step executed
live exactly once over all attempts (none lost, none repeated, so no effect repeated),
and a final re-run that replays everything with no live call.

Needs hypothesis (a test dependency, not one of the recorder's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .keys import dumps
from .runtime import Run, run
from .stores import MemoryStore, Store

__all__ = [
    "Interrupted",
    "ReplayReport",
    "assert_replay_idempotent",
    "interruption_plans",
    "json_values",
]


class Interrupted(BaseException):
    """What the kit raises to interrupt an attempt (before a step goes live)."""


@dataclass
class ReplayReport:
    """What :func:`assert_replay_idempotent` checked."""

    result: Any
    steps: int
    plans: list[list[int]] = field(default_factory=list)
    attempts: int = 0


def json_values(max_leaves: int = 12) -> Any:
    """A hypothesis strategy of JSON values (what steps take and return)."""
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                   max_size=4),
        max_leaves=max_leaves,
    )  # fmt: skip


def interruption_plans(steps: int, max_cuts: int = 3) -> Any:
    """A strategy of interruption plans for an agent of ``steps`` live steps: sorted
    step numbers, each the step before which one attempt is interrupted."""
    from hypothesis import strategies as st

    if steps == 0:
        return st.just([])
    return st.lists(st.integers(0, steps - 1), max_size=max_cuts).map(sorted)


@contextmanager
def _interrupting(plan: list[int]) -> Iterator[dict[str, int]]:
    """Patch :meth:`Run.begin`: the attempt raises :class:`Interrupted` when its live
    step number ``plan[0]`` is about to run, the next attempt at ``plan[1]``..."""
    original = Run.begin
    state = {"live": 0, "executed": 0}
    pending = list(plan)

    def begin(self: Run, *args: Any, **kwargs: Any) -> Any:
        call = original(self, *args, **kwargs)
        if not call.replayed:
            if pending and state["live"] == pending[0]:
                pending.pop(0)
                call.abandon()
                raise Interrupted(f"interrupted before live step {state['live']}")
            state["live"] += 1
        return call

    Run.begin = begin  # type: ignore[method-assign]
    try:
        yield state
    finally:
        Run.begin = original  # type: ignore[method-assign]


def _executed(attempt: Run) -> int:
    """Steps that ran live and were recorded in this attempt (results and errors)."""
    stats = attempt.stats
    return stats.live + stats.failed


def assert_replay_idempotent(
    agent: Callable[[Run, Any], Any],
    inputs: Any = None,
    *,
    name: str = "property",
    store: Callable[[], Store] = MemoryStore,
    max_examples: int = 25,
    max_cuts: int = 3,
    **run_options: Any,
) -> ReplayReport:
    """Check that ``agent(run, inputs)`` resumes to the same result under interruptions
    and replays with no live call (see the module docs). ``store`` makes a fresh store
    for each recording (default: in memory); ``run_options`` go to
    :func:`recorder.run`. Raises AssertionError with the plan that broke it."""
    from hypothesis import HealthCheck, given, settings

    reference_store = store()
    with run(name, inputs=inputs, store=reference_store, display=False, **run_options) as first:
        expected = agent(first, inputs)
    steps = _executed(first)
    report = ReplayReport(result=expected, steps=steps)

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(interruption_plans(steps, max_cuts))
    def check(plan: list[int]) -> None:
        fresh = store()
        lives = 0
        result: Any = None
        with _interrupting(plan):
            for _ in range(len(plan) + 1):
                try:
                    with run(name, inputs=inputs, store=fresh, display=False,
                             **run_options) as attempt:  # fmt: skip
                        result = agent(attempt, inputs)
                except Interrupted:
                    lives += _executed(attempt)
                    continue
                lives += _executed(attempt)
                break
            else:
                raise AssertionError(f"plan {plan}: the agent never completed")
        assert dumps(result) == dumps(expected), (
            f"plan {plan}: resumed to {result!r:.200}, not {expected!r:.200}"
        )
        assert lives == steps, (
            f"plan {plan}: {lives} live step executions over all attempts, not {steps}: "
            "a step was lost or repeated"
        )
        with run(name, inputs=inputs, store=fresh, display=False, **run_options) as again:
            replayed = agent(again, inputs)
        assert dumps(replayed) == dumps(expected) and again.stats.live == 0, (
            f"plan {plan}: a full replay went live {again.stats.live} time(s)"
        )
        report.plans.append(plan)
        report.attempts += len(plan) + 2

    check()
    return report
