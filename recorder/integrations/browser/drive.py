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
from typing import Any, TypeVar

__all__ = ["Op", "Parallel", "Steps", "drive_async", "drive_sync"]

T = TypeVar("T")
Op = Callable[[], Any]
Steps = Generator[Op, Any, T]


class Parallel:
    """Ops whose results are independent: the async driver runs them concurrently, the
    sync driver one after the other; the generator receives a tuple of results."""

    def __init__(self, *ops: Op) -> None:
        self.ops = ops

    def __call__(self) -> Any:
        return tuple(op() for op in self.ops)


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
    value = op()
    return await value if inspect.isawaitable(value) else value


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
                value = tuple(await asyncio.gather(*(_awaited(o) for o in op.ops)))
            else:
                value = op()
                if inspect.isawaitable(value):
                    value = await value
        except BaseException as exc:
            error, value = exc, None
