"""``retry=`` for steps, effects and LLM calls, on top of tenacity.

A retried call is still one step: one content key, one record (its final result or
error). Every try that failed before another one is a ``failed`` row in the trace,
written through at once, with its ``try`` number.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Retry", "acall_with_retry", "as_retry", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """How to retry a live call that raised.

    Args:
        attempts: Tries in all (1 means no retry).
        initial: Seconds to wait before the second try; the wait doubles after each
            try, up to ``maximum``, plus up to ``jitter`` seconds at random.
        maximum: Longest wait between two tries.
        jitter: Random extra wait, so that many clients do not retry in step.
        on: Exception types worth another try; anything else fails at once.
            KeyboardInterrupt and cancellation are never retried.
    """

    attempts: int = 3
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError(f"Retry(attempts=) takes an int >= 1, not {self.attempts!r}.")
        if self.attempts < 1:
            raise ConfigError(f"Retry(attempts=) must be at least 1, not {self.attempts}.")
        for name in ("initial", "maximum", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"Retry({name}=) takes seconds >= 0, not {value!r}.")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        for kind in on:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise ConfigError(
                    f"Retry(on=) takes Exception subclasses, not {kind!r} (interrupts and "
                    "cancellation are never retried)."
                )
        object.__setattr__(self, "on", on)

    def _options(self, call: Call) -> dict[str, Any]:
        import tenacity

        def before_sleep(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            if outcome is not None and outcome.failed:
                error = outcome.exception()
                if error is not None:
                    call.failed_try(error, state.attempt_number)

        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": tenacity.wait_exponential(multiplier=self.initial, max=self.maximum)
            + tenacity.wait_random(0, self.jitter),
            "retry": tenacity.retry_if_exception_type(self.on),
            "reraise": True,
            "before_sleep": before_sleep,
        }


def as_retry(value: Retry | int | None) -> Retry | None:
    """``retry=`` as given by the user: a :class:`Retry`, a number of tries, or None."""
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retry(attempts=value)
    raise ConfigError(
        f"retry= takes recorder.Retry(...), a number of tries or None, not {value!r}."
    )


def call_with_retry(spec: Retry | None, call: Call, fn: Callable[[], T]) -> T:
    """``fn()``, tried again as ``spec`` says; failed tries become trace rows."""
    if spec is None or spec.attempts == 1:
        return fn()
    import tenacity

    for attempt in tenacity.Retrying(**spec._options(call)):
        with attempt:
            return fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def acall_with_retry(spec: Retry | None, call: Call, fn: Callable[[], Awaitable[T]]) -> T:
    """:func:`call_with_retry` for a coroutine function."""
    if spec is None or spec.attempts == 1:
        return await fn()
    import tenacity

    async for attempt in tenacity.AsyncRetrying(**spec._options(call)):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
