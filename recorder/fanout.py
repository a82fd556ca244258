"""Fan-out: one agent over many inputs, each input its own durable run.

``recorder.fan_out(agent, inputs, name=...)`` returns a :class:`FanOut`; ``await fan``
(or ``fan.wait()`` in plain code) runs it and returns a DataFrame with one row per
input. Running the same call again resumes only the children that did not finish.

The records (docs/fanout.md has the whole contract):

- each input is a *child*: the run ``"<name>:<key>"`` over that input, with its own
  attempts, steps, checkpoints and effects (``recorder.load("<name>:<key>")`` opens it);
- the fan-out itself is the *parent* run ``<name>`` over ``{"fan_out": <name>}``, entered
  once per call with ``mode="record"`` (each call is a new generation: its steps are
  observations, not results to replay). Each call writes one ``inputs`` step (every
  key, child run and input) and one ``child`` step per child that ran, holding how it
  ended (status, attempt, result, error, counts, cost, what it waits for), and a
  ``budget`` step if the failure budget stopped it.

On a new call, a child whose latest ``child`` step says it completed comes back as a
*replayed* row read from that step: its agent is not called, no run is entered, no LLM
call is made, no browser starts. Every other child is looked up in its own records (its
lock and last attempt): a failed child stays failed (unless ``retry_failed``), a
suspended one runs again only once its signal arrived or its timer passed, one whose
lock a live process holds is reported as ``running elsewhere``, and the rest are
submitted. A child whose run completed while the parent missed it (the process died
between the two writes) is submitted too: it replays every step and completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .attempts import is_interrupt
from .display import in_notebook
from .errors import ConfigError, EngineLostError, FanOutError, RecorderError, interruption
from .fanlog import children_of, fill_row, is_fan_out, may_go_on, read_log
from .keys import canonical, dumps, hash_bytes
from .locks import holder_alive
from .options import validate_name
from .records import Outcome
from .runtime import Run
from .stores import Store, open_store

if TYPE_CHECKING:
    import os as _os

    import pandas

    from .engines.base import ChildOutcome, ChildSpec, Engine
    from .engines.choice import EngineChoice
    from .fanview import FanOutView
    from .journal import Journal

__all__ = ["COLUMNS", "FanOut", "FanOutWarning", "child_name", "children_of", "fan_out",
           "is_fan_out"]  # fmt: skip
# children_of and is_fan_out live in recorder.fanlog (what the records say); named here too

COLUMNS = ("key", "run", "status", "attempts", "result", "error", "started_at", "duration_s",
           "llm_calls", "live_llm_calls", "cost_usd", "cost_saved_usd", "waiting_for")  # fmt: skip
"""The columns of a fan-out's DataFrame, in order."""

_DONE = ("completed", "replayed")


class FanOutWarning(UserWarning):
    """Children of a fan-out failed (and, past ``max_failures``, the rest were skipped)."""


def child_name(name: str, key: str) -> str:
    """The run name of the child ``key`` of fan-out ``name``."""
    return f"{name}:{key}"


def _default_key(value: Any) -> str:
    return hash_bytes(dumps(canonical(value, where="a fan-out input")).encode())[7:19]


@dataclass
class _Child:
    index: int
    key: str
    input: Any
    run_id: str
    row: dict[str, Any] = field(default_factory=dict)


def _blank_row(child: _Child) -> dict[str, Any]:
    return {"key": child.key, "run": child.run_id, "status": "pending", "attempts": 0,
            "result": None, "error": None, "started_at": None, "duration_s": math.nan,
            "llm_calls": 0, "live_llm_calls": 0, "cost_usd": 0.0, "cost_saved_usd": 0.0,
            "waiting_for": None}  # fmt: skip


def _utc(ts: Any) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if isinstance(ts, int | float) else None


class FanOut:
    """A fan-out of ``agent`` over ``inputs`` (see :func:`fan_out`). Await it (``df =
    await fan``) or call :meth:`wait`; :attr:`df` shows the rows at any moment and
    :attr:`suspended` the children waiting for a signal or a timer."""

    def __init__(
        self,
        agent: Callable[..., Any],
        inputs: Iterable[Any],
        *,
        name: str,
        key: Callable[[Any], Any] | None = None,
        concurrency: int = 8,
        retries: int = 0,
        max_failures: int | float | None = None,
        limits: dict[str, int] | None = None,
        retry_failed: bool = False,
        raise_on_failure: bool = False,
        store: Store | str | _os.PathLike[str] | None = None,
        display: bool | None = None,
        engine: EngineChoice = None,
    ) -> None:
        from .engines.base import AgentRef
        from .engines.choice import check_engine

        self.name = validate_name(name)
        self.concurrency = _positive("concurrency", concurrency)
        self.retries = _count("retries", retries)
        self.max_failures = _budget(max_failures)
        from .limits import check

        self.limits = check(limits or {})
        self.retry_failed = bool(retry_failed)
        self.raise_on_failure = bool(raise_on_failure)
        self.display = display
        self._agent = AgentRef.of(agent)
        self._engine_choice = check_engine(engine)
        self._store = open_store(store)
        self._parent_inputs = {"fan_out": self.name}
        self.run_id = Run(self.name, inputs=self._parent_inputs).run_id
        """The parent run's id."""
        self._children = self._plan(list(inputs), key)
        self._by_key = {c.key: c for c in self._children}
        for child in self._children:
            child.row = _blank_row(child)
        self._running = False
        self._view: FanOutView | None = None
        self.stopped: str | None = None
        """Why the failure budget stopped the last call (``None`` if it did not)."""

    def __repr__(self) -> str:
        counts = Counter(c.row["status"] for c in self._children)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"<recorder.FanOut {self.name!r}: {len(self._children)} children ({shown})>"

    # -- the inputs --------------------------------------------------------------------

    def _plan(self, inputs: list[Any], key: Callable[[Any], Any] | None) -> list[_Child]:
        children: list[_Child] = []
        seen: dict[str, list[int]] = {}
        for index, value in enumerate(inputs):
            made = _default_key(value) if key is None else key(value)
            if not isinstance(made, str | int) or isinstance(made, bool):
                raise ConfigError(
                    f"key= gave {made!r} for input {index}; a key is a str or an int."
                )
            text = str(made)
            try:
                run_name = validate_name(child_name(self.name, text))
            except ConfigError as error:
                raise ConfigError(
                    f"the key {text!r} of input {index} cannot name a run: {error}"
                ) from None
            run_id = Run(run_name, inputs=value).run_id  # refuses inputs with no JSON form
            seen.setdefault(text, []).append(index)
            children.append(_Child(index, text, value, run_id))
        twice = {k: v for k, v in seen.items() if len(v) > 1}
        if twice:
            listed = "; ".join(
                f"{k!r}: inputs {', '.join(map(str, v))}" for k, v in list(twice.items())[:10]
            )
            more = f" (and {len(twice) - 10} more keys)" if len(twice) > 10 else ""
            why = "identical inputs" if key is None else "key= gives them the same key"
            raise ConfigError(
                f"fan-out {self.name!r}: {len(twice)} key(s) are shared by several inputs "
                f"({why}), and each child needs a key of its own: {listed}{more}. Nothing ran."
            )
        return children

    # -- what it shows -----------------------------------------------------------------

    @property
    def df(self) -> pandas.DataFrame:
        """One row per input (see :data:`COLUMNS`), as things stand now."""
        import pandas

        rows = [dict(c.row) for c in self._children]
        for row in rows:
            row["started_at"] = _utc(row["started_at"])
        frame = pandas.DataFrame(rows, columns=list(COLUMNS))
        frame["started_at"] = pandas.to_datetime(frame["started_at"], utc=True)
        return frame

    @property
    def suspended(self) -> list[str]:
        """The run ids of the children waiting for a signal or a timer: send one with
        ``recorder.signal(run_id, name, value)``, then run the fan-out again."""
        return [c.run_id for c in self._children if c.row["status"] == "suspended"]

    @property
    def counts(self) -> dict[str, int]:
        """How many children are in each status."""
        return dict(Counter(c.row["status"] for c in self._children))

    # -- running -----------------------------------------------------------------------

    def __await__(self) -> Any:
        return self._drive().__await__()

    def wait(self) -> pandas.DataFrame:
        """Run the fan-out from plain code and return its DataFrame. In a thread where an
        event loop already runs (a notebook cell that does not ``await``), the fan-out
        runs on an event loop of its own in another thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._drive())
        return _run_in_thread(self._drive)

    async def _drive(self) -> pandas.DataFrame:
        if self._running:
            raise RecorderError(f"fan-out {self.name!r} is already running: await it once.")
        self._running = True
        try:
            await self._call()
        finally:
            self._running = False
        return self._finish()

    async def _call(self) -> None:
        self.stopped = None
        for child in self._children:
            child.row = _blank_row(child)
        parent = Run(
            self.name, inputs=self._parent_inputs, store=self._store, mode="record", display=False
        )
        with parent:
            log = read_log(parent.journal, parent.run_id)
            _commit(
                parent,
                "inputs",
                "inputs",
                None,
                [{"key": c.key, "run": c.run_id, "input": c.input} for c in self._children],
            )
            todo = deque(self._sort(parent.journal, log))
            from .fanview import TICK_S, make_fan_view

            self._view = make_fan_view(self.display, self.name, self._rows)
            ticker = asyncio.ensure_future(_tick(self._view, TICK_S)) if self._view else None
            engine = self._make_engine()
            try:
                await self._schedule(parent, engine, todo)
            except BaseException as stop:
                outcomes = await engine.cancel()
                for outcome in outcomes:
                    self._record(parent, outcome)
                for child in todo:
                    child.row["status"] = "interrupted" if is_interrupt(stop) else "skipped"
                if is_interrupt(stop):
                    raise self._interrupted(stop) from None
                self._close_view("failed", f"{type(stop).__name__}: {stop}")
                if isinstance(stop, EngineLostError):
                    raise self._lost(stop) from None
                raise
            finally:
                if ticker is not None:
                    ticker.cancel()
                self._close_view("stopped" if self.stopped else "finished", self.stopped or "")
                await engine.close()
                from .limits import forget

                forget(parent.run_id)

    def _rows(self) -> list[dict[str, Any]]:
        return [c.row for c in self._children]

    def _close_view(self, outcome: str, note: str = "") -> None:
        if self._view is not None:
            self._view.close(outcome, note)
            self._view = None

    def show(self, key: Any) -> Any:
        """Open the child of input key ``key`` in the run browser (as
        :func:`recorder.show` does for any run)."""
        from .integrations.viewer import show

        child = self._by_key.get(str(key))
        if child is None:
            known = ", ".join(repr(k) for k in list(self._by_key)[:5])
            raise ConfigError(
                f"fan-out {self.name!r} has no child with the key {key!r} (keys such as "
                f"{known}); fan.df lists them all."
            )
        return show(child.run_id, store=self._store)

    def _make_engine(self) -> Engine:
        from .engines.choice import make_engine

        return make_engine(self._engine_choice, concurrency=self.concurrency)

    def _sort(self, journal: Journal, log: dict[str, dict[str, Any]]) -> list[_Child]:
        """Fill the rows of the children that do not run in this call; return the others."""
        todo: list[_Child] = []
        for child in self._children:
            doc = log.get(child.key)
            if doc is not None and doc.get("run") != child.run_id:
                doc = None  # that key had other inputs then: another run
            row = child.row
            if doc is not None and doc.get("status") in _DONE:
                fill_row(row, doc)
                row.update(
                    status="replayed",
                    live_llm_calls=0,
                    cost_usd=0.0,
                    cost_saved_usd=doc.get("cost_usd", 0.0) + doc.get("cost_saved_usd", 0.0),
                )
                continue
            held = journal.get_lock(child.run_id)
            if held is not None and holder_alive(json.loads(held), journal.store, child.run_id):
                row["status"] = "running elsewhere"
                continue
            last = journal.last_attempt(child.run_id)
            if last is None:
                todo.append(child)
                continue
            if last.outcome is Outcome.FAILED and not self.retry_failed:
                fill_row(row, doc or {})
                row.update(
                    status="failed",
                    attempts=last.number,
                    error=row["error"] or (last.error.summary if last.error else None),
                )
                continue
            if last.outcome is Outcome.SUSPENDED and not may_go_on(journal, child.run_id, doc):
                fill_row(row, doc or {})
                row.update(status="suspended", attempts=last.number)
                continue
            todo.append(child)
        return todo

    async def _schedule(self, parent: Run, engine: Engine, todo: deque[_Child]) -> None:
        by_key = self._by_key

        def fill() -> None:
            while todo and engine.in_flight < self.concurrency and self.stopped is None:
                child = todo.popleft()
                engine.submit(self._spec(child))
                child.row.update(status="running", started_at=time.time())

        self._check_budget(parent, todo)
        if todo:
            await engine.start(self._spec(todo[0]))
            if self._view is not None and engine.dashboard:
                self._view.dashboard = engine.dashboard
        fill()
        outcomes = engine.as_completed()
        try:
            async for outcome in outcomes:
                self._record(parent, outcome)
                if outcome.stopped:
                    raise KeyboardInterrupt(f"child {outcome.key!r} was interrupted")
                if by_key[outcome.key].row["status"] == "failed":
                    self._check_budget(parent, todo)
                fill()
        finally:
            closing = getattr(outcomes, "aclose", None)
            if closing is not None:
                await closing()

    def _spec(self, child: _Child) -> ChildSpec:
        from .engines.base import ChildSpec, StoreRef

        return ChildSpec(
            key=child.key,
            run_name=child_name(self.name, child.key),
            inputs=child.input,
            agent=self._agent,
            store=StoreRef.of(self._store),
            retries=self.retries,
            limits=self.limits,
            scope=self.run_id,
        )

    def _record(self, parent: Run, outcome: ChildOutcome) -> None:
        child = self._by_key[outcome.key]
        row = child.row
        row.update(
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            started_at=outcome.started_at,
            duration_s=outcome.duration_s,
            llm_calls=outcome.llm_calls,
            live_llm_calls=outcome.live_llm_calls,
            cost_usd=outcome.cost_usd,
            cost_saved_usd=outcome.cost_saved_usd,
            waiting_for=(outcome.suspension or {}).get("name"),
        )
        if outcome.attempt is not None:
            row["attempts"] = outcome.attempt
        if self._view is not None:
            self._view.advance()
        doc = {
            "run": child.run_id,
            "status": outcome.status,
            "attempt": outcome.attempt,
            "attempts_now": outcome.attempts,
            "result": outcome.result,
            "error": outcome.error,
            "started_at": outcome.started_at,
            "duration_s": outcome.duration_s,
            "llm_calls": outcome.llm_calls,
            "live_llm_calls": outcome.live_llm_calls,
            "cost_usd": outcome.cost_usd,
            "cost_saved_usd": outcome.cost_saved_usd,
            "suspension": outcome.suspension,
        }
        _commit(
            parent,
            "child",
            child.key,
            {"key": child.key, "run": child.run_id, "attempt": outcome.attempt},
            doc,
        )

    def _check_budget(self, parent: Run, todo: deque[_Child]) -> None:
        if self.max_failures is None or self.stopped is not None:
            return
        failed = sum(1 for c in self._children if c.row["status"] == "failed")
        allowed = self.max_failures
        if isinstance(allowed, float):
            allowed = allowed * len(self._children)
        if failed <= allowed:
            return
        self.stopped = (
            f"{failed} of {len(self._children)} children failed, more than max_failures="
            f"{self.max_failures!r} allows"
            + (f" ({allowed:g})" if isinstance(self.max_failures, float) else "")
            + f": no new child started, {len(todo)} skipped"
        )
        for child in todo:
            child.row["status"] = "skipped"
        todo.clear()
        _commit(
            parent,
            "budget",
            "max_failures",
            None,
            {"reason": self.stopped, "failed": failed, "max_failures": self.max_failures},
        )

    def _interrupted(self, stop: BaseException) -> BaseException:
        """Close the view on the interrupt and make the one-line exception that ends the
        call, of the kind ``stop`` was (printed on a terminal, where Python adds its
        traceback)."""
        counts = self.counts
        done = sum(counts.get(s, 0) for s in _DONE)
        message = (
            f"fan-out {self.name!r} interrupted: {done} of {len(self._children)} children "
            f"done, {counts.get('interrupted', 0)} interrupted or not started; run the same "
            "call again to resume the unfinished."
        )
        shown = self._view is not None
        self._close_view("interrupted", "run the same call again to resume the unfinished")
        if not shown or not in_notebook():
            print(f"recorder: {message}", file=sys.stderr, flush=True)
        return interruption(stop, message)

    def _lost(self, lost: EngineLostError) -> EngineLostError:
        """The error that ends a call whose engine went away, with the rows as they are."""
        counts = self.counts
        done = sum(counts.get(s, 0) for s in _DONE)
        return EngineLostError(
            f"fan-out {self.name!r} stopped: {lost} {done} of {len(self._children)} "
            "children are done (error.df has the rows); run the same call again, against a "
            "running cluster, to resume the unfinished.",
            df=self.df,
        )

    def _finish(self) -> pandas.DataFrame:
        frame = self.df
        failed = [c for c in self._children if c.row["status"] == "failed"]
        if not failed and self.stopped is None:
            return frame
        first = failed[0].row if failed else None
        message = (
            f"fan-out {self.name!r}: "
            + (
                self.stopped
                if self.stopped
                else f"{len(failed)} of {len(self._children)} children failed"
            )
            + (f"; first: {first['key']!r}: {first['error']}" if first else "")
            + ". The rows say which (status, error); run the call again with "
            "retry_failed=True to retry them."
        )
        if self.raise_on_failure:
            raise FanOutError(message, df=frame)
        warnings.warn(message, FanOutWarning, stacklevel=3)
        return frame


def _commit(parent: Run, kind: str, name: str, request: Any, value: Any) -> None:
    parent.begin(kind, name, request).commit(value)


def _run_in_thread(drive: Callable[[], Any]) -> Any:
    """``asyncio.run(drive())`` in a thread of its own; Ctrl-C here cancels it there."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    def main() -> None:
        loop = asyncio.new_event_loop()
        try:
            box["task"] = task = loop.create_task(drive())
            box["loop"] = loop
            ready.set()
            box["result"] = loop.run_until_complete(task)
        except BaseException as error:
            box["error"] = error
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=main, name="recorder-fan-out", daemon=True)
    thread.start()
    ready.wait()
    interrupted = False
    while thread.is_alive():
        try:
            thread.join(0.1)
        except KeyboardInterrupt:
            interrupted = True
            loop, task = box.get("loop"), box.get("task")
            if loop is not None and task is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(task.cancel)
    error = box.get("error")
    if interrupted and (error is None or isinstance(error, asyncio.CancelledError)):
        raise KeyboardInterrupt
    if error is not None:
        raise error
    return box.get("result")


async def _tick(view: FanOutView, every: float) -> None:
    """Redraw ``view`` about every ``every`` seconds, so that time moves on screen."""
    while True:
        await asyncio.sleep(every)
        view.tick()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"fan_out({name}=) takes an int >= 1, not {value!r}.")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"fan_out({name}=) takes an int >= 0, not {value!r}.")
    return value


def _budget(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"fan_out(max_failures=) takes a count or a fraction, not {value!r}.")
    if isinstance(value, float):
        if not 0 <= value < 1:
            raise ConfigError(
                f"fan_out(max_failures={value!r}): a fraction is >= 0 and < 1 (a share of "
                "the inputs); give a count as an int."
            )
        return value
    if value < 0:
        raise ConfigError(f"fan_out(max_failures=) takes a count >= 0, not {value!r}.")
    return value


def fan_out(
    agent: Callable[..., Any],
    inputs: Iterable[Any],
    *,
    name: str,
    key: Callable[[Any], Any] | None = None,
    concurrency: int = 8,
    retries: int = 0,
    max_failures: int | float | None = None,
    limits: dict[str, int] | None = None,
    retry_failed: bool = False,
    raise_on_failure: bool = False,
    store: Store | str | _os.PathLike[str] | None = None,
    display: bool | None = None,
    engine: EngineChoice = None,
) -> FanOut:
    """Run ``agent(run, input)`` over every input, each as its own durable run.

    ``agent`` is an async or plain function taking the child's :class:`~recorder.Run`
    and one input; what it returns must have a JSON form. ``name`` names the fan-out
    (the parent run) and, with each input's key, its children (``"<name>:<key>"``).
    ``key(input)`` gives a str or int key (default: a short hash of the canonical
    input); duplicate keys are refused before anything runs.

    ``concurrency``: children in flight at most. ``retries``: further attempts of a
    failed child in the same call (each replays what the failed one finished).
    ``max_failures``: a count, or a fraction of the inputs; once more children failed,
    no new child starts and the rest are ``skipped``. ``limits={"llm": n}`` caps the
    live LLM calls of all children at once (replayed calls take no slot).
    ``retry_failed`` runs children that failed in an earlier call again.
    ``raise_on_failure`` raises :class:`~recorder.FanOutError` (carrying ``df``)
    instead of warning when a child failed. ``store`` as for :func:`recorder.run`.
    ``engine`` runs the children: ``"local"`` (the default: this process, see
    :class:`~recorder.engines.LocalEngine`), ``"dask"`` (a ``distributed.LocalCluster`` of
    worker processes, started and closed by the call), a ``distributed.Client`` (its
    cluster, left running), or a function that makes an
    :class:`~recorder.engines.Engine`. If the engine goes away as a whole (a Dask
    scheduler dies), :class:`~recorder.EngineLostError` carries ``df``.

    Returns a :class:`FanOut`: ``df = await fan`` or ``df = fan.wait()``.
    """
    return FanOut(
        agent,
        inputs,
        name=name,
        key=key,
        concurrency=concurrency,
        retries=retries,
        max_failures=max_failures,
        limits=limits,
        retry_failed=retry_failed,
        raise_on_failure=raise_on_failure,
        store=store,
        display=display,
        engine=engine,
    )
