"""Durable waits: a run suspends until a signal arrives or a recorded wake time
passes, and goes on when it is re-run after that. The methods of :class:`Run` call
these; :func:`signal` sends a value to a run from anywhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, Suspended
from .journal import Journal
from .keys import canonical
from .options import validate_name
from .stores import Store, open_store

if TYPE_CHECKING:
    import os as _os

    from .runtime import Run

__all__ = ["signal", "sleep", "sleep_until", "wait_for"]


def wait_for(run: Run, name: str) -> Any:
    """The value sent to ``run`` as signal ``name``, or :class:`Suspended` (see
    :meth:`Run.wait_for`)."""
    name = validate_name(name)
    call = run.begin("signal", name, None)
    if call.replayed:
        return call.replay()
    sent = run.journal.signals(run.run_id, name)
    if len(sent) > call.occurrence:
        signal = sent[call.occurrence]
        call.commit(signal.get("value"), meta={"sent_at": signal.get("sent_at")})
        return signal.get("value")
    call.abandon()
    raise Suspended(
        f"run {run.run_id!r} is waiting for {name!r} (suspended, nothing lost): deliver "
        f"it with recorder.signal({run.name!r}, {name!r}, value) or `recorder signal "
        f"{run.name} {name} VALUE`, then re-run.",
        reason="signal",
        name=name,
    )


def sleep_until(run: Run, when: datetime | float) -> None:
    """Suspend ``run`` until ``when`` (see :meth:`Run.sleep_until`)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ConfigError(
                "sleep_until() needs an aware datetime (with a timezone), e.g. "
                "datetime.now(timezone.utc) + timedelta(hours=1)."
            )
        wake = when.timestamp()
    elif isinstance(when, int | float) and not isinstance(when, bool):
        wake = float(when)
    else:
        raise ConfigError(f"sleep_until() takes a datetime or epoch seconds, not {when!r}.")
    _timer(run, {"until": wake}, lambda: wake)


def sleep(run: Run, seconds: float) -> None:
    """Suspend ``run`` for ``seconds`` from the first time (see :meth:`Run.sleep`)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise ConfigError(f"sleep() takes seconds >= 0, not {seconds!r}.")
    _timer(run, {"seconds": float(seconds)}, lambda: run._clock() + float(seconds))


def _timer(run: Run, request: dict[str, float], wake_at: Callable[[], float]) -> None:
    call = run.begin("timer", "sleep", request)
    if call.replayed:
        wake = float(call.replay()["wake_at"])
    else:
        wake = wake_at()
        call.commit({"wake_at": wake})
    if run._clock() < wake:
        when = datetime.fromtimestamp(wake, UTC).isoformat(timespec="seconds")
        raise Suspended(
            f"run {run.run_id!r} sleeps until {when} (suspended, nothing lost): re-run "
            "it after that time to go on.",
            reason="timer",
            name="sleep",
            wake_at=wake,
        )


def signal(
    run: Run | str,
    name: str,
    value: Any = None,
    *,
    store: Store | str | _os.PathLike[str] | None = None,
) -> int:
    """Send ``value`` to the run's ``wait_for(name)``; return the signal's number.

    ``run`` is a :class:`Run`, a run id (``name@hash``) or a run name (its most recently
    active run). The value must have a JSON form. A suspended run goes on when it is
    re-run; signals sent before the run waits are kept for it, in order.
    """
    from .history import find_run

    name = validate_name(name)
    if not isinstance(run, str):
        journal, run_id = run.journal, run.run_id
    else:
        journal = Journal(open_store(store))
        run_id = find_run(journal, validate_name(run))
    doc = {"value": canonical(value, where=f"the value of signal {name!r}"), "sent_at": time.time()}
    return journal.put_signal(run_id, name, doc)
