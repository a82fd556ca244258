"""The side-effect ledger: ``run.once`` records intent before an effect and completion
after it, so that a resumed run never repeats an effect silently.

States of one effect call (one content key and occurrence, as for any step)::

    nothing --intent marker (fsync'd)--> started --record (same write drops the marker)--> done
                                            |                                          or failed
                                            +-- the process dies or is interrupted --> ambiguous

A done effect replays its recorded result and ``fn`` is not called. A failed one (its
function raised) replays its error like any step; if that error ended the attempt it
is retracted, and the next attempt tries the effect again. An ambiguous one raises
:class:`~recorder.errors.AmbiguousEffectError` unless ``on_ambiguous`` or ``check=``
says what to do. Each effect has an idempotency key that is the same on every re-run
(it depends on the run, the effect's content key and its occurrence), passed to ``fn``
when it has an ``idempotency_key`` parameter, so that a server can de-duplicate.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from . import faults
from .call import Call
from .errors import AmbiguousEffectError, ConfigError
from .journal import intent_key
from .retry import Retry, acall_with_retry, as_retry, call_with_retry

if TYPE_CHECKING:
    from .call import Attempt
    from .runtime import Run

__all__ = [
    "Compensation", "OnAmbiguous", "acompensate", "aonce", "compensate", "guard",
    "idempotency_key", "is_async", "once",
]  # fmt: skip


class OnAmbiguous(StrEnum):
    """What a re-run does with an effect that started and never finished.

    - ``raise``: stop with AmbiguousEffectError (the default: a human decides);
    - ``retry``: call it again (with the same idempotency key);
    - ``assume_done``: skip it; its result is ``None``.
    """

    RAISE = "raise"
    RETRY = "retry"
    ASSUME_DONE = "assume_done"

    @classmethod
    def _missing_(cls, value: object) -> OnAmbiguous:
        valid = ", ".join(repr(m.value) for m in cls)
        raise ConfigError(f"on_ambiguous={value!r} is not valid; use one of {valid}.")


Check = Callable[[str], Any]
"""``check(idempotency_key)``: ``False``/``None`` if the effect did not happen (it is
run again), ``True`` if it did (result ``None``), or any other value: it did, and that
value is its result."""


@dataclass(frozen=True)
class Compensation:
    """A done effect's undo, kept for a saga run that fails."""

    name: str
    fn: Callable[..., Any]
    result: Any


def idempotency_key(run_id: str, key: str, occurrence: int) -> str:
    """The effect's key for servers that de-duplicate: the same on every re-run."""
    digest = hashlib.sha256(f"{run_id}\n{key}\n{occurrence}".encode()).hexdigest()
    return "rec-" + digest[:40]


def _accepts_key(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    found = parameters.get("idempotency_key")
    return found is not None and found.kind is not inspect.Parameter.POSITIONAL_ONLY


class _Effect:
    """One ``once`` call between its begin and its record."""

    def __init__(
        self,
        run: Run,
        name: str,
        call: Call,
        fn: Callable[..., Any] | None,
        kwargs: dict[str, Any],
        *,
        on_ambiguous: OnAmbiguous | str | None,
        check: Check | None = None,
        compensate: Callable[..., Any] | None = None,
        retry: Retry | int | None = None,
        record_errors: bool = True,
    ) -> None:
        if check is not None and not callable(check):
            raise ConfigError(f"check= takes a callable, not {check!r}.")
        if compensate is not None and not callable(compensate):
            raise ConfigError(f"compensate= takes a callable, not {compensate!r}.")
        self.run, self.name, self.call = run, name, call
        self.policy = OnAmbiguous(on_ambiguous or run.on_ambiguous)
        self.check, self.compensate = check, compensate
        self.retry = as_retry(retry)
        self.record_errors = record_errors
        self.key = idempotency_key(run.run_id, call.key, call.occurrence)
        self.fn, self.given = fn, kwargs
        self.attempt: Attempt = run._require_open()
        self.where = intent_key(
            run.run_id, self.attempt.record.generation, call.key, call.occurrence
        )
        self.marker = self.attempt.intents.get((call.key, call.occurrence))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``fn`` is called with (live only: a signature lookup)."""
        if self.fn is not None and _accepts_key(self.fn):
            return {**self.given, "idempotency_key": self.key}
        return self.given

    @classmethod
    def begin(
        cls,
        run: Run,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **options: Any,
    ) -> _Effect:
        if not callable(fn):
            raise ConfigError(f"run.once({name!r}, fn): fn must be callable, not {fn!r}.")
        call = run.begin("effect", name, {"args": args, "kwargs": kwargs}, {"effect": name})
        return cls(run, name, call, fn, kwargs, **options)

    # -- before ------------------------------------------------------------------------

    def ambiguous_error(self) -> AmbiguousEffectError:
        marker = self.marker or {}
        started = marker.get("started_at")
        when = (
            datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
            if isinstance(started, int | float)
            else "an unknown time"
        )
        return AmbiguousEffectError(
            f"run {self.run.run_id!r}: effect {self.name!r} (step #{self.call.seq}) started at "
            f"{when} in attempt {marker.get('attempt', '?')} (pid {marker.get('pid', '?')}) "
            "and never finished: the process died or was interrupted inside it, so whether "
            "it happened is unknown, and it is not run again silently. Find out (its "
            f"idempotency key is {self.key!r}), then re-run with on_ambiguous='retry' (call "
            "it again with the same idempotency key), on_ambiguous='assume_done' (skip "
            "it) or check=callable (your own check: given the idempotency key, True if it "
            "happened).",
            effect=self.name,
            started_at=started if isinstance(started, int | float) else None,
            attempt=marker.get("attempt"),
            idempotency_key=self.key,
        )

    def settle_without_check(self) -> tuple[bool, Any]:
        """For an ambiguous effect with no check: ``(True, result)`` if it is settled
        without running, ``(False, None)`` to run it; raises for ``raise``."""
        if self.policy is OnAmbiguous.RAISE:
            error = self.ambiguous_error()
            self.call.fail(error, record=False)
            raise error
        if self.policy is OnAmbiguous.ASSUME_DONE:
            return True, self.done(None, resolved="assume_done")
        return False, None

    def settle_with(self, verdict: Any) -> tuple[bool, Any]:
        """What the user's check said: not done (run it) or done (with a result)."""
        if verdict is False or verdict is None:
            return False, None
        return True, self.done(None if verdict is True else verdict, resolved="check")

    def start(self) -> None:
        """Write the intent marker durably, right before the function runs."""
        att = self.attempt
        marker = {
            "effect": self.name,
            "attempt": att.record.number,
            "seq": self.call.seq,
            "started_at": self.run._clock(),
            "pid": os.getpid(),
            "idempotency_key": self.key,
        }
        faults.reach("before_intent")
        self.run.journal.put_intent(self.where, marker)
        faults.reach("after_intent")
        att.intents[self.call.key, self.call.occurrence] = marker
        self.call.clears = (self.where,)

    # -- after -------------------------------------------------------------------------

    def done(self, result: Any, *, resolved: str | None = None) -> Any:
        if resolved is None:
            faults.reach("after_effect")
        meta: dict[str, Any] = {"idempotency_key": self.key}
        if resolved is not None:
            meta["resolved"] = resolved
        self.call.clears = (self.where,)
        self.call.commit(result, meta=meta)
        self.attempt.intents.pop((self.call.key, self.call.occurrence), None)
        self.remember(result)
        return result

    def failed(self) -> None:
        """The function raised. A recorded error took the intent marker away with it;
        an unrecorded one (a compensation, tried again on every re-run) drops it here:
        the effect did not happen, nothing is ambiguous."""
        if not self.record_errors:
            self.run.journal.store.write(deletes=[self.where])
        self.attempt.intents.pop((self.call.key, self.call.occurrence), None)

    def remember(self, result: Any) -> None:
        if self.compensate is not None:
            self.attempt.compensations.append(Compensation(self.name, self.compensate, result))


def once(
    run: Run,
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    on_ambiguous: OnAmbiguous | str | None = None,
    check: Check | None = None,
    compensate: Callable[..., Any] | None = None,
    retry: Retry | int | None = None,
    record_errors: bool = True,
) -> Any:
    """The body of ``run.once`` for a plain function (see the module docs)."""
    effect = _Effect.begin(
        run, name, fn, args, kwargs, on_ambiguous=on_ambiguous, check=check,
        compensate=compensate, retry=retry, record_errors=record_errors,
    )  # fmt: skip
    call = effect.call
    if call.replayed:
        result = call.replay()
        effect.remember(result)
        return result
    if effect.marker is not None:
        if check is None:
            settled, result = effect.settle_without_check()
        else:
            verdict = check(effect.key)
            if inspect.isawaitable(verdict):
                raise ConfigError(
                    f"check= of effect {name!r} returned an awaitable: use `await run.once(...)` "
                    "with an async function, or a plain check."
                )
            settled, result = effect.settle_with(verdict)
        if settled:
            return result
    effect.start()
    try:
        with call.live(record_errors=record_errors):
            kwargs = effect.kwargs
            result = call_with_retry(effect.retry, call, lambda: fn(*args, **kwargs))
    except Exception:
        effect.failed()
        raise
    return effect.done(result)


async def aonce(
    run: Run,
    name: str,
    fn: Callable[..., Awaitable[Any] | Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    on_ambiguous: OnAmbiguous | str | None = None,
    check: Check | None = None,
    compensate: Callable[..., Any] | None = None,
    retry: Retry | int | None = None,
    record_errors: bool = True,
) -> Any:
    """:func:`once` for a coroutine function (``check`` may be async too)."""
    effect = _Effect.begin(
        run, name, fn, args, kwargs, on_ambiguous=on_ambiguous, check=check,
        compensate=compensate, retry=retry, record_errors=record_errors,
    )  # fmt: skip
    call = effect.call
    if call.replayed:
        result = call.replay()
        effect.remember(result)
        return result
    if effect.marker is not None:
        if check is None:
            settled, result = effect.settle_without_check()
        else:
            verdict = check(effect.key)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            settled, result = effect.settle_with(verdict)
        if settled:
            return result
    effect.start()

    kwargs = effect.kwargs

    async def invoke() -> Any:
        value = fn(*args, **kwargs)
        return await value if inspect.isawaitable(value) else value

    try:
        with call.live(record_errors=record_errors):
            result = await acall_with_retry(effect.retry, call, invoke)
    except Exception:
        effect.failed()
        raise
    return effect.done(result)


def guard(run: Run, call: Call, name: str) -> tuple[bool, Any]:
    """Put a live call of another kind (a browser action given ``effect=name``) under
    the ledger: settle an ambiguous earlier try by the run's ``on_ambiguous`` and write
    the intent marker. ``(True, result)`` means settled without running it."""
    effect = _Effect(run, name, call, None, {}, on_ambiguous=None)
    if effect.marker is not None:
        settled, result = effect.settle_without_check()
        if settled:
            return True, result
    effect.start()
    call.meta = {**call.meta, "effect": name, "idempotency_key": effect.key}
    return False, None


def _compensation_steps(att: Attempt) -> list[Compensation]:
    pending = list(reversed(att.compensations))
    att.compensations.clear()
    return pending


def compensate(run: Run, att: Attempt) -> None:
    """A saga run failed: undo its done effects, newest first, each as an effect of
    its own (``compensate:<name>``), so each undo runs once across re-runs."""
    for entry in _compensation_steps(att):
        try:
            once(run, f"compensate:{entry.name}", entry.fn, (entry.result,), {},
                 on_ambiguous=OnAmbiguous.RETRY, record_errors=False)  # fmt: skip
        except Exception as error:  # the other compensations still run
            warnings.warn(
                f"run {run.run_id!r}: compensating effect {entry.name!r} failed: {error!r}; "
                "it is recorded as failed and retried when the run is re-run.",
                stacklevel=3,
            )


async def acompensate(run: Run, att: Attempt) -> None:
    """:func:`compensate` where compensations may be coroutine functions."""
    for entry in _compensation_steps(att):
        try:
            await aonce(run, f"compensate:{entry.name}", entry.fn, (entry.result,), {},
                        on_ambiguous=OnAmbiguous.RETRY, record_errors=False)  # fmt: skip
        except Exception as error:
            warnings.warn(
                f"run {run.run_id!r}: compensating effect {entry.name!r} failed: {error!r}; "
                "it is recorded as failed and retried when the run is re-run.",
                stacklevel=3,
            )


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` must be awaited (a coroutine function, also behind partial)."""
    while hasattr(fn, "func"):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
