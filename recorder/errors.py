"""Every error the recorder raises on purpose.

All of them derive from :class:`RecorderError`, so ``except recorder.RecorderError``
catches anything the recorder decided to refuse. Errors that are also a standard kind
of mistake carry that base too (a bad argument is a ``ValueError``)::

    RecorderError
    ├── ConfigError (ValueError)            a bad argument: unknown mode, bad run name
    ├── NotSerializableError (TypeError)    a step result or key part is not JSON-representable
    ├── ReplayMissError                     mode="replay" and the step is not recorded
    ├── DivergenceError                     on_divergence="raise" and the run asked for a new step
    │                                       while recorded steps were left unused
    ├── RunLockedError                      another live process holds the run
    ├── RecordedStepError                   replay of a recorded error whose type cannot be rebuilt
    ├── AmbiguousEffectError                an effect started (intent marker) but never finished
    ├── FanOutError                         children of a fan-out failed (raise_on_failure=True);
    │   │                                   ``df`` holds its rows
    │   └── EngineLostError                 the engine running the children went away as a
    │                                       whole (a Dask scheduler died); ``df`` as it was
    ├── StoreError                          the store cannot be used as asked
        ├── StoreFormatError                written by a newer recorder, or not a recorder store
        ├── UnsafeStoreError                a pickled row, or a directory others can write to
        ├── DamagedRecordError              a blob or record is missing or fails its hash
        ├── QuotaExceededError              a write would pass the store's max_store_bytes
        ├── RunNotFoundError (LookupError)  no run by that name in the store
        └── AmbiguousRunError (LookupError) a name that matches several runs

    DivergenceWarning (UserWarning)         on_divergence="warn": the same news as a warning

    Suspended (BaseException)               not an error: the attempt waits for a signal or a
                                            timer; ``with run:`` ends it cleanly as suspended
    Interrupted (KeyboardInterrupt)         Ctrl-C or a notebook's stop button ended the work;
    Cancelled (asyncio.CancelledError)      its task was cancelled. Both say in one line
                                            what was kept and how to resume, and show as
                                            that line in a notebook, with no traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AmbiguousEffectError",
    "AmbiguousRunError",
    "Cancelled",
    "ConfigError",
    "DamagedRecordError",
    "DivergenceError",
    "DivergenceWarning",
    "EngineLostError",
    "FanOutError",
    "Interrupted",
    "NotSerializableError",
    "QuotaExceededError",
    "RecordedStepError",
    "RecorderError",
    "ReplayMissError",
    "RunLockedError",
    "RunNotFoundError",
    "StoreError",
    "StoreFormatError",
    "Suspended",
    "UnsafeStoreError",
    "interruption",
]


class RecorderError(Exception):
    """Base of every error the recorder raises on purpose."""


class ConfigError(RecorderError, ValueError):
    """An argument has a value the recorder cannot use."""


class NotSerializableError(RecorderError, TypeError):
    """A value that must be recorded (a step result, a key part, the run's inputs)
    cannot be represented as JSON. Raised before anything is written."""


class _StepMismatch(RecorderError):
    """A step the run asked for that the record does not hold, with the nearest candidate."""

    def __init__(
        self,
        message: str,
        *,
        step: Mapping[str, Any],
        candidate: Mapping[str, Any] | None = None,
        differences: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.step = dict(step)
        self.candidate = dict(candidate) if candidate is not None else None
        self.differences = dict(differences or {})


class ReplayMissError(_StepMismatch):
    """``mode="replay"`` and the run asked for a step that is not recorded.

    ``step`` describes what was asked, ``candidate`` the nearest recorded step (or
    ``None``) and ``differences`` maps each differing field to ``(recorded, asked)``.
    """


class DivergenceError(_StepMismatch):
    """The run asked for a step that is not recorded while recorded steps remain unused,
    and ``on_divergence="raise"``. Same attributes as :class:`ReplayMissError`."""


class RunLockedError(RecorderError):
    """Another live process (or another open context in this one) holds the run."""


class RecordedStepError(RecorderError):
    """Replay of a step that raised, whose exception type cannot be rebuilt here.

    ``type_name`` is the recorded ``module.QualName`` and ``message`` its ``str()``.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class AmbiguousEffectError(RecorderError):
    """An effect's intent marker is recorded but its completion is not: the process
    died (or was interrupted) inside it, so whether it happened is unknown.

    ``effect`` is its name, ``started_at`` the UNIX time its intent was written,
    ``attempt`` the attempt that wrote it and ``idempotency_key`` the key it was given.
    """

    def __init__(
        self,
        message: str,
        *,
        effect: str,
        started_at: float | None = None,
        attempt: int | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.effect = effect
        self.started_at = started_at
        self.attempt = attempt
        self.idempotency_key = idempotency_key


class FanOutError(RecorderError):
    """Children of a fan-out made with ``raise_on_failure=True`` failed (or the failure
    budget stopped it). ``df`` is its DataFrame, one row per input, as it ended."""

    def __init__(self, message: str, *, df: Any) -> None:
        super().__init__(message)
        self.df = df


class EngineLostError(FanOutError):
    """The engine running a fan-out's children went away as a whole (the Dask
    scheduler died, or could not be reached). ``df`` holds the rows as the fan-out saw
    them (``None`` while the error travels from the engine to the fan-out); the same
    call against a running cluster resumes the unfinished children."""

    def __init__(self, message: str, *, df: Any = None) -> None:
        super().__init__(message, df=df)


class StoreError(RecorderError):
    """The store cannot be used as asked."""


class StoreFormatError(StoreError):
    """The store was written by a newer recorder, or is not a recorder store."""


class UnsafeStoreError(StoreError):
    """The store holds something the recorder refuses to read (a pickled row), or its
    directory can be written by other users."""


class DamagedRecordError(StoreError):
    """A blob or record is missing or does not match its content hash.

    Never treated as a miss: running the step live again would silently repeat work
    the record says was done.
    """


class QuotaExceededError(StoreError):
    """A write would make the store larger than its ``max_store_bytes``. Nothing is
    evicted to make room: delete runs (``recorder rm``) or raise the quota."""


class RunNotFoundError(StoreError, LookupError):
    """No run with that name (or id) in the store."""


class AmbiguousRunError(StoreError, LookupError):
    """A run name that matches several runs (other inputs, or another run's id): name
    one by its full run id."""


class DivergenceWarning(UserWarning):
    """A re-run asked for a step that is not recorded while recorded steps remain
    unused; it goes live. Issued once per attempt (``on_divergence="warn"``)."""


class Suspended(BaseException):
    """The attempt cannot go on yet: it waits for a signal (``run.wait_for``) or a
    durable timer (``run.sleep``). Raised from inside the run; ``with run:`` catches it,
    ends the attempt as *suspended* and does not re-raise. A BaseException, so that
    ``except Exception`` in user code does not swallow it.

    ``reason`` is ``"signal"`` or ``"timer"``, ``name`` the signal or timer name and
    ``wake_at`` the UNIX time a timer wakes (``None`` for a signal).
    """

    def __init__(self, message: str, *, reason: str, name: str, wake_at: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.name = name
        self.wake_at = wake_at


class _OneLine:
    """IPython shows ``_render_traceback_()`` instead of a traceback: the message alone,
    since what the interrupt stopped is the user's own code, not news."""

    def _render_traceback_(self) -> list[str]:
        return [f"recorder: {self}"]


class Interrupted(_OneLine, KeyboardInterrupt):
    """Ctrl-C (or a notebook's stop button) interrupted the work; the message says what
    was kept and how to resume. Still a KeyboardInterrupt: nothing that stops on one
    goes on."""


class Cancelled(_OneLine, asyncio.CancelledError):
    """The task running the work was cancelled (a notebook's stop button in a cell that
    awaits, a timeout); the message says what was kept and how to resume. Still a
    CancelledError, so ``asyncio.wait_for`` and task groups treat it as theirs."""


def interruption(stop: BaseException, message: str) -> Interrupted | Cancelled:
    """The one-line form of ``stop`` (a KeyboardInterrupt or a CancelledError): of the
    same kind, saying ``message``."""
    if isinstance(stop, asyncio.CancelledError):
        return Cancelled(message)
    return Interrupted(message)
