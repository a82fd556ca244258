"""``@recorder.step``: a function that is a recorded step whenever it is called inside
a run, and itself outside one."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from .runtime import current_run

__all__ = ["step"]

P = ParamSpec("P")
T = TypeVar("T")


@overload
def step(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def step(*, name: str | None = None) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


def step(fn: Callable[P, T] | None = None, /, *, name: str | None = None) -> Any:
    """Make ``fn`` a recorded step whenever it is called inside a run.

    ``@recorder.step`` or ``@recorder.step(name="plan")``; the name defaults to the
    function's qualified name. Outside a run the function is called as it is.
    """

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        label = name or func.__qualname__
        if inspect.iscoroutinefunction(func):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                current = current_run()
                if current is None:
                    return await func(*args, **kwargs)
                return await current.astep(label, func, *args, **kwargs)

            return wraps_as(cast(Any, func), async_wrapper)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = current_run()
            if current is None:
                return func(*args, **kwargs)
            return current.step(label, func, *args, **kwargs)

        return wraps_as(func, wrapper)

    return decorate(fn) if fn is not None else decorate


def wraps_as(func: Callable[P, T], wrapper: Callable[..., Any]) -> Callable[P, T]:
    return cast("Callable[P, T]", functools.update_wrapper(wrapper, func))
