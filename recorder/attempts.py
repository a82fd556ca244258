"""Entering and leaving a run: the start of an attempt (the run's lock, a crashed
attempt found and marked, the recorded steps it may replay) and its end (the outcome,
the trace, the prebuilt forms of its steps, the closers of its resources).

:class:`~recorder.runtime.Run` calls these from ``__enter__``/``__exit__`` and keeps
the state that follows the program (the current run, the open attempt).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import memo
from .call import Attempt, describe_error, write_prebuilt
from .display import step_label
from .errors import ConfigError, RecorderError, StoreError, Suspended, interruption
from .forking import copy_fork, fork_target
from .locks import HOST, RunLock, process_start
from .options import Mode
from .records import AttemptRecord, Outcome, RunRecord, TraceEvent
from .sequence import check_numbering, numbering

if TYPE_CHECKING:
    from .runtime import Run

__all__ = ["call_closers", "cleanup_failed", "end_attempt", "finish_later", "interrupted",
           "is_interrupt", "start_attempt"]  # fmt: skip


def start_attempt(run: Run) -> Attempt:
    """Take the run's lock and write a new attempt; an attempt still ``running`` whose
    process is gone is marked ``crashed`` first. The lock is released if this fails.

    Records lost by the store (:mod:`recorder.sequence`) raise DamagedRecordError
    before anything is written. On a read-only store nothing is written: the lock is
    not taken and the attempt is kept in memory only (it can replay, not record)."""
    journal = run.journal
    now = run._clock()
    lock = RunLock(journal, run.run_id)
    if journal.store.damaged is not None:
        raise journal.store.damaged
    if journal.store.read_only:
        return _start_read_only(run, lock, now)
    lock.acquire(now)
    journal.forget_known_blobs()
    memo.check_store(journal.store)
    try:
        record = journal.get_run(run.run_id)
        if record is None:
            forked = copy_fork(run, journal)
            record = RunRecord(
                run_id=run.run_id,
                name=run.name,
                inputs_hash=run.inputs_hash,
                inputs=run._inputs_canonical,
                created_at=now,
                forked_from=forked,
            )
            journal.put_run(record)
        elif run.fork_from is not None and record.forked_from != fork_target(run, journal):
            was = record.forked_from
            raise ConfigError(
                f"run {run.run_id!r} already exists"
                + (f", forked from {was['run']} at step {was['step']}" if was else "")
                + "; a fork needs a run of its own: give it another name or inputs."
            )
        history = journal.attempts(run.run_id)
        last = history[-1] if history else None
        steps = journal.steps(run.run_id, record.generation)
        state = numbering(steps, history, record.generation)
        if run.mode is not Mode.RECORD:
            check_numbering(state, run.run_id, record.generation, journal.store.location)
        if last is not None and last.outcome is Outcome.RUNNING:
            last = replace(last, outcome=Outcome.CRASHED)
            journal.put_attempt(run.run_id, last)
        if run.mode is Mode.RECORD:
            record = replace(record, generation=record.generation + 1)
            journal.put_run(record)
            steps, state = [], numbering((), (), record.generation)
        recorded = {s.ident: s for s in steps}
        intents = journal.intents(run.run_id, record.generation)
        attempt = AttemptRecord(
            number=(last.number if last else 0) + 1,
            mode=run.mode.value,
            generation=record.generation,
            started_at=now,
            pid=os.getpid(),
            host=HOST,
            process_start=process_start(os.getpid()),
        )
        journal.put_attempt(run.run_id, attempt)
    except BaseException:
        lock.release()
        raise
    return Attempt(record=attempt, recorded=recorded, run_lock=lock, intents=intents,
                   next_n=state.next_n, dropped=list(state.unmarked_gaps),
                   previous=last.outcome if last else None)  # fmt: skip


def _start_read_only(run: Run, lock: RunLock, now: float) -> Attempt:
    """An attempt on a read-only store: checked as any, written nowhere, never live."""
    journal = run.journal
    if run.mode is Mode.RECORD:
        raise StoreError(
            f"{journal.store.location} is read-only, and mode='record' must write: use "
            "mode='replay' (or 'auto', which then only replays), or make the store "
            "writable (`chmod -R u+w DIR`, or copy it to a writable place)."
        )
    memo.check_store(journal.store)
    record = journal.get_run(run.run_id)
    generation = 0 if record is None else record.generation
    history = journal.attempts(run.run_id) if record is not None else []
    steps = journal.steps(run.run_id, generation) if record is not None else []
    state = numbering(steps, history, generation)
    check_numbering(state, run.run_id, generation, journal.store.location)
    attempt = AttemptRecord(
        number=(history[-1].number if history else 0) + 1,
        mode=run.mode.value,
        generation=generation,
        started_at=now,
        pid=os.getpid(),
        host=HOST,
        process_start=process_start(os.getpid()),
    )
    intents = journal.intents(run.run_id, generation) if record is not None else {}
    return Attempt(record=attempt, recorded={s.ident: s for s in steps}, run_lock=lock,
                   intents=intents, next_n=state.next_n, read_only=True)  # fmt: skip


def end_attempt(run: Run, att: Attempt, exc: BaseException | None) -> None:
    """Record how ``att`` ended (``exc`` is what left the ``with`` body, if anything):
    its steps' prebuilt forms, then its outcome and trace. The caller releases the run's
    lock afterwards, whatever this raises."""
    if exc is None:
        outcome, error = Outcome.COMPLETED, None
    elif isinstance(exc, Suspended):
        outcome, error = Outcome.SUSPENDED, None
        if att.view is None and run.display is not False:  # a view shows it; quiet: nothing
            print(f"recorder: {exc}", file=sys.stderr, flush=True)
    elif is_interrupt(exc):
        outcome, error = Outcome.INTERRUPTED, None
    elif isinstance(exc, SystemExit):
        outcome = Outcome.INTERRUPTED
        error = describe_error(exc, att.secrets())
    else:
        outcome = Outcome.FAILED
        error = describe_error(exc, att.secrets())
    att.record = replace(att.record, outcome=outcome, ended_at=run._clock(), error=error)
    if att.view is not None:
        detail = (
            f"waiting for {exc.name!r}" if isinstance(exc, Suspended) and exc.wake_at is None
            else str(exc) if isinstance(exc, Suspended)
            else error.summary if error is not None else ""
        )  # fmt: skip
        try:
            att.view.finished(att.record, att.stats, detail)
        except Exception as failure:  # showing progress never fails a run
            warnings.warn(f"recorder: the live view failed ({failure!r})", stacklevel=4)
    if att.read_only:  # kept in memory only: nothing to retract, build or write
        att.unbuilt.clear()
        return
    if exc is not None:
        _retract_fatal_step(run, att, exc)
    with att.lock:
        trace = sorted(att.events, key=lambda e: e.seq)
        att.record = replace(att.record, high_water=att.next_n, dropped=_dropped(att))
    # The outcome is the attempt's last write: a process killed before it leaves the
    # attempt "running" (seen as crashed), never closed with work still to come.
    try:
        _write_prebuilt(run, att)
    finally:
        run.journal.put_attempt(run.run_id, att.record, trace)


def _write_prebuilt(run: Run, att: Attempt) -> None:
    """The prebuilt forms of the attempt's steps (see :class:`~recorder.call.Prebuilt`):
    derived data, so a store that refuses the write (full, over its limit) leaves those
    steps to replay the slower way, with a warning."""
    if not att.unbuilt:
        return
    try:
        write_prebuilt(run.journal, run.run_id, att.unbuilt)
    except RecorderError as error:
        warnings.warn(
            f"recorder: the prebuilt forms of {len(att.unbuilt)} step(s) of {run.run_id} "
            f"were not written ({error}); they replay by rebuilding their results instead.",
            stacklevel=5,
        )
    finally:
        att.unbuilt.clear()


def _retract_fatal_step(run: Run, att: Attempt, exc: BaseException) -> None:
    """A recorded step error that ended the attempt is retracted: the next attempt runs
    that step again (a retry), while errors the program handled keep replaying so its
    control flow repeats. The trace keeps the failure."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(chain) < 16 and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    doomed = [record for raised, record in att.raised if any(raised is e for e in chain)]
    numbers = [r.n for r in doomed if r.n is not None]
    if numbers:
        # Said before done: an attempt killed between the two must not leave the
        # deleted numbers looking lost.
        with att.lock:
            att.dropped.extend(numbers)
            running = replace(att.record, outcome=Outcome.RUNNING, dropped=_dropped(att))
        run.journal.put_attempt(run.run_id, running)
    for record in doomed:
        run.journal.delete_step(run.run_id, record)


def _dropped(att: Attempt) -> tuple[int, ...]:
    return tuple(sorted(set(att.dropped)))


def call_closers(att: Attempt, quiet: bool = False) -> list[Any]:
    """Call the attempt's closers, newest first; return the awaitables they gave. A
    closer that fails goes to the trace (:func:`cleanup_failed`)."""
    pending = []
    for closer in reversed(att.closers):
        try:
            result = closer()
        except Exception as error:  # never mask the body's own exception
            cleanup_failed(att, error, quiet)
            continue
        if inspect.isawaitable(result):
            pending.append(result)
    att.closers.clear()
    return pending


def cleanup_failed(att: Attempt, error: BaseException, quiet: bool) -> None:
    """A resource of the attempt failed to close. The failure is always in the
    attempt's trace (a ``cleanup`` event with the whole error); it is shown, as one
    line, only if the attempt was not interrupted (``quiet``): a browser context
    closing under a cancelled driver fails because of the interrupt, which is no news."""
    event = TraceEvent(seq=att.seq, key="", occurrence=0, kind="cleanup",
                       name=type(error).__name__, status="failed", started_at=time.time(),
                       duration_s=0.0, error=describe_error(error, att.secrets()))  # fmt: skip
    with att.lock:
        att.events.append(event)
    if not quiet:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        warnings.warn(
            f"recorder: closing a resource of the run failed: {first} (the whole error is "
            "in the run's trace)",
            stacklevel=4,
        )


def interrupted(run: Run, att: Attempt, exc: BaseException, where: str) -> BaseException:
    """The one-line interruption that replaces ``exc`` (a KeyboardInterrupt or a
    CancelledError) once the attempt ended: where it stopped and what a re-run
    replays. ``where`` says how to re-run (``the cell``, ``it``)."""
    call = att.current
    if call is None:
        at = "before its first step"
    else:
        ended = bool(att.events) and att.events[-1].seq == call.seq
        at = f"{'after' if ended else 'at'} step {step_label(call)}"
    try:
        count = len(run.journal.steps(run.run_id, att.record.generation))
    except RecorderError:
        count = len(att.recorded) + att.stats.live
    steps = "step" if count == 1 else "steps"
    message = (
        f"run {run.name!r} interrupted {at}; run {where} again: {count} recorded {steps} "
        "will replay and the rest goes live."
    )
    return interruption(exc, message)


_finishing: set[asyncio.Future[Any]] = set()


def finish_later(pending: Any) -> None:
    """An awaitable cleanup met in a plain ``with`` (an async page used in a sync run
    context, as in a top-level-await notebook cell): hand it to the running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if running:
        task = asyncio.ensure_future(pending)
        _finishing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_finishing.discard)
    elif hasattr(pending, "close"):
        pending.close()
        warnings.warn("a browser context could not be closed: no event loop runs", stacklevel=3)


def is_interrupt(exc: BaseException) -> bool:
    """KeyboardInterrupt (a plain cell interrupted), CancelledError (a top-level-await
    cell interrupted: ipykernel cancels its task) or GeneratorExit."""
    return isinstance(exc, KeyboardInterrupt | GeneratorExit | asyncio.CancelledError)
