"""One child of a fan-out, run in whatever process or thread the engine chose.

A child is a durable run named ``spec.run_name`` over ``spec.inputs``: each try is an
attempt of that run, so a retry (up to ``spec.retries`` more attempts, in place)
replays the steps the failed attempt finished and redoes only the rest. Errors a retry
cannot fix are not retried: ReplayMissError, DivergenceError, ConfigError,
AmbiguousEffectError, NotSerializableError and store errors. The agent is called as
``agent(run, input)``; what it returns must have a JSON form (bytes allowed), like any
step result, and is checked inside the attempt (so a result that cannot be recorded
fails the attempt).

Whatever happens, this returns a :class:`~recorder.engines.base.ChildOutcome`: an
interruption (cancellation, KeyboardInterrupt) ends the attempt as interrupted and is
reported, never raised, so that one interrupted fan-out gives one interruption.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any

from .. import limits as _limits
from ..attempts import is_interrupt
from ..errors import (
    AmbiguousEffectError,
    ConfigError,
    DivergenceError,
    NotSerializableError,
    ReplayMissError,
    RunLockedError,
    StoreError,
)
from ..records import Outcome
from ..runtime import Run
from ..values import encode
from .base import ChildOutcome, ChildSpec

__all__ = ["NOT_RETRIED", "arun_child", "run_child"]

NOT_RETRIED: tuple[type[BaseException], ...] = (
    ReplayMissError,
    DivergenceError,
    ConfigError,
    AmbiguousEffectError,
    NotSerializableError,
    StoreError,
)
"""Errors another attempt would meet again: the child fails at once."""


def _check_result(value: Any, spec: ChildSpec) -> None:
    encode(value, {}, where=f"the result of child {spec.key!r}")


class _Tally:
    """What the attempts of one child in this call add up to."""

    def __init__(self, spec: ChildSpec, run_id: str) -> None:
        self.outcome = ChildOutcome(key=spec.key, run=run_id, status="running")
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.outcome.started_at = self.started
        self.first: int | None = None

    def add(self, run: Run, error: BaseException | None, value: Any) -> bool:
        """Count the attempt ``run`` just made; whether another attempt may follow."""
        out = self.outcome
        if run.attempt is None:  # it never began: the run's lock is held elsewhere, a bad store
            out.status = "running elsewhere" if isinstance(error, RunLockedError) else "failed"
            out.error = _summary(error)
            out.retryable = False
            return False
        out.attempts += 1
        out.attempt = run.attempt
        if self.first is None:
            self.first = run.attempt
        stats = run.stats
        llm = [e for e in run.events if e.kind == "llm"]
        out.llm_calls = sum(1 for e in llm if e.status in ("live", "replayed"))
        live = [e for e in llm if e.status != "replayed"]
        out.live_llm_calls += len(live)
        out.cost_usd += sum(
            float(c) for e in live if isinstance(c := e.meta.get("cost_usd"), int | float)
        )
        out.cost_saved_usd = stats.saved_cost_usd
        out.live_steps += stats.live
        outcome = run.outcome
        out.error = _summary(error) if error is not None else None
        if outcome is Outcome.COMPLETED:
            # replayed: recorded before this call, and nothing went live in it
            redone = out.live_steps == 0 and (self.first or 1) > 1
            out.status = "replayed" if redone else "completed"
            out.result = value
            return False
        if outcome is Outcome.SUSPENDED:
            out.status = "suspended"
            out.suspension = _suspension(run)
            return False
        if outcome is Outcome.INTERRUPTED or (error is not None and is_interrupt(error)):
            out.status = "interrupted"
            return False
        out.status = "failed"
        out.retryable = error is None or not isinstance(error, NOT_RETRIED)
        return out.retryable

    def done(self) -> ChildOutcome:
        self.outcome.duration_s = time.perf_counter() - self.t0
        return self.outcome


def _summary(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _suspension(run: Run) -> dict[str, Any] | None:
    why = run.suspension
    if why is None:
        return None
    found: dict[str, Any] = {"reason": why.reason, "name": why.name, "wake_at": why.wake_at}
    if why.reason == "signal":  # it goes on once more signals of that name than now exist
        found["signals_seen"] = len(run.journal.signals(run.run_id, why.name))
    return found


def _new_run(spec: ChildSpec) -> Run:
    return Run(spec.run_name, inputs=spec.inputs, store=spec.store.resolve(), display=False)


def _gates(
    spec: ChildSpec, limits: Mapping[str, _limits.Gate] | None
) -> Token[Mapping[str, _limits.Gate] | None]:
    if limits is not None:
        return _limits.use(limits)
    return _limits.use(_limits.shared(spec.scope, spec.limits) if spec.limits else None)


async def arun_child(
    spec: ChildSpec,
    agent: Callable[..., Any] | None = None,
    *,
    limits: Mapping[str, _limits.Gate] | None = None,
) -> ChildOutcome:
    """Run the child of an async agent (in the current event loop). ``limits``: the
    gates its live calls hold (default: this process's limits of the fan-out)."""
    fn = agent or spec.agent.resolve()
    token = _gates(spec, limits)
    run = _new_run(spec)
    tally = _Tally(spec, run.run_id)
    try:
        for number in range(spec.retries + 1):
            run = run if number == 0 else _new_run(spec)
            value, error = None, None
            try:
                async with run:
                    value = await fn(run, spec.inputs)
                    _check_result(value, spec)
            except Exception as raised:
                error = raised
            except BaseException as stop:  # cancelled or Ctrl-C: the attempt ended interrupted
                tally.add(run, stop, None)
                tally.outcome.status = "interrupted"
                tally.outcome.stopped = not _is_cancel(stop)
                break
            if not tally.add(run, error, value):
                break
    finally:
        _limits.reset(token)
    return tally.done()


def run_child(
    spec: ChildSpec,
    agent: Callable[..., Any] | None = None,
    guard: Callable[[bool], None] | None = None,
    *,
    limits: Mapping[str, _limits.Gate] | None = None,
) -> ChildOutcome:
    """Run the child of a plain (sync) agent in this thread. ``guard(True)`` is called
    when the child may be interrupted (an engine may then raise KeyboardInterrupt in
    this thread) and ``guard(False)`` when it no longer may. ``limits`` as for
    :func:`arun_child`."""
    fn = agent or spec.agent.resolve()
    token = _gates(spec, limits)
    run = _new_run(spec)
    tally = _Tally(spec, run.run_id)
    try:
        if guard is not None:
            guard(True)
        try:
            for number in range(spec.retries + 1):
                run = run if number == 0 else _new_run(spec)
                value, error = None, None
                try:
                    with run:
                        value = fn(run, spec.inputs)
                        _check_result(value, spec)
                except Exception as raised:
                    error = raised
                if not tally.add(run, error, value):
                    break
        finally:
            if guard is not None:
                guard(False)
    except KeyboardInterrupt as stop:
        tally.add(run, stop, None)
        tally.outcome.status = "interrupted"
    finally:
        _limits.reset(token)
    return tally.done()


def _is_cancel(stop: BaseException) -> bool:
    import asyncio

    return isinstance(stop, asyncio.CancelledError)
