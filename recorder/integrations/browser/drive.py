"""One implementation for Playwright's sync and async APIs.

The recording logic is written once, as generators that ``yield`` zero-argument
callables (``lambda: page.click("#go")``). A driver runs the generator: the async
driver awaits what each callable returns, the sync driver takes it as it is, and both
send the value (or throw the exception) back into the generator. Playwright's two APIs
have the same method names, so the same generator serves both.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar, cast

__all__ = ["Op", "Parallel", "Steps", "drive_async", "drive_sync", "together"]

T = TypeVar("T")
Op = Callable[[], Any]
Steps = Generator[Op, Any, T]


class Parallel:
    """Ops whose results are independent: the async driver runs them concurrently, the
    sync driver one after the other; the generator receives a tuple of results (with
    ``settled``, of ``(True, result)`` or ``(False, exception)`` pairs, once every op
    has finished)."""

    def __init__(self, *ops: Op, settled: bool = False) -> None:
        self.ops = ops
        self.settled = settled

    def __call__(self) -> Any:
        if not self.settled:
            return tuple(op() for op in self.ops)
        outcomes: list[tuple[bool, Any]] = []
        for op in self.ops:
            try:
                outcomes.append((True, op()))
            except Exception as exc:
                outcomes.append((False, exc))
        return tuple(outcomes)


def together(*parts: Op | Steps[Any]) -> Steps[tuple[Any, ...]]:
    """Ops and step generators run side by side: each round sends the next op of every
    unfinished part out as one :class:`Parallel`, and each part gets its own result or
    error back. Returns the parts' results in order; when parts raised, raises the
    first one's error once all have finished."""
    runs = [part if isinstance(part, Generator) else _one(part) for part in parts]
    results: list[Any] = [None] * len(runs)
    errors: dict[int, Exception] = {}
    replies: dict[int, tuple[bool, Any]] = dict.fromkeys(range(len(runs)), (True, None))
    while replies:
        ops: dict[int, Op] = {}
        for index, (ok, value) in replies.items():
            run = runs[index]
            try:
                ops[index] = run.send(value) if ok else run.throw(cast(Exception, value))
            except StopIteration as stop:
                results[index] = stop.value
            except Exception as exc:
                errors[index] = exc
        if not ops:
            break
        outcomes = yield Parallel(*ops.values(), settled=True)
        replies = dict(zip(ops, outcomes, strict=True))
    if errors:
        raise errors[min(errors)]
    return tuple(results)


def _one(op: Op) -> Steps[Any]:
    return (yield op)


def drive_sync(steps: Steps[T]) -> T:
    """Run ``steps`` with Playwright's sync API (or no Playwright call at all)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = op()
            if inspect.isawaitable(value):
                raise TypeError(
                    "an async Playwright object was used from sync code; use `async with "
                    "recorder.run(...)` and `await` the page's methods"
                )
        except BaseException as exc:  # handed to the generator, which decides
            error, value = exc, None


async def _awaited(op: Op) -> Any:
    if isinstance(op, Parallel):
        return await _gathered(op)
    value = op()
    return await value if inspect.isawaitable(value) else value


async def _gathered(parallel: Parallel) -> tuple[Any, ...]:
    runs = (_awaited(op) for op in parallel.ops)
    if not parallel.settled:
        return tuple(await asyncio.gather(*runs))
    outcomes: list[tuple[bool, Any]] = []
    for value in await asyncio.gather(*runs, return_exceptions=True):
        if isinstance(value, BaseException) and not isinstance(value, Exception):
            raise value  # a cancellation or an interrupt is not an op's error
        outcomes.append((not isinstance(value, Exception), value))
    return tuple(outcomes)


async def drive_async(steps: Steps[T]) -> T:
    """Run ``steps`` with Playwright's async API."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if isinstance(op, Parallel):
                value = await _gathered(op)
            else:
                value = op()
                if inspect.isawaitable(value):
                    value = await value
        except BaseException as exc:
            error, value = exc, None
