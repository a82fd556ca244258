"""Read-only views of what a store holds: one run's history, and the list of runs.

Nothing here imports pandas; :mod:`recorder.export` turns rows into DataFrames.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import AmbiguousRunError, RunNotFoundError
from .journal import Journal
from .keys import canonical, dumps, hash_bytes
from .records import AttemptRecord, RunRecord, StepRecord, TraceEvent
from .stores import Store, open_store

if TYPE_CHECKING:
    import pandas

__all__ = ["TRACE_COLUMNS", "RunHistory", "find_run", "load", "run_rows", "runs"]

TRACE_COLUMNS = (
    "run", "attempt", "seq", "kind", "name", "key", "occurrence", "status", "started_at",
    "duration_s", "recorded_duration_s", "model", "temperature", "seed", "prompt_tokens",
    "completion_tokens", "cost_usd", "error", "generation", "forked_from",
)  # fmt: skip
"""The columns of a trace, in order (integrations may add more after these)."""

_META_COLUMNS = ("model", "temperature", "seed", "prompt_tokens", "completion_tokens", "cost_usd")


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass
class RunHistory:
    """A run's record: its inputs, attempts, step records and per-attempt traces."""

    run: RunRecord
    attempts: list[AttemptRecord]
    steps: list[StepRecord]
    traces: dict[int, list[TraceEvent]]
    journal: Journal | None = field(default=None, repr=False, compare=False)
    """Where the records came from (for blobs: requests, results, screenshots)."""

    @classmethod
    def load(
        cls,
        journal: Journal,
        run_id: str,
        *,
        open_attempt: tuple[AttemptRecord, list[TraceEvent]] | None = None,
    ) -> RunHistory:
        record = journal.get_run(run_id)
        if record is None:
            raise RunNotFoundError(f"no run {run_id!r} in {journal.store.location}.")
        attempts = journal.attempts(run_id)
        steps = journal.steps(run_id)
        traces: dict[int, list[TraceEvent]] = {}
        for attempt in attempts:
            if open_attempt is not None and attempt.number == open_attempt[0].number:
                traces[attempt.number] = sorted(open_attempt[1], key=lambda e: e.seq)
                continue
            trace = journal.trace(run_id, attempt.number)
            if trace is None:  # the attempt never ended cleanly: rebuild what was written
                trace = [_live_event(s) for s in steps if s.attempt == attempt.number]
                trace += journal.events(run_id, attempt.number)
                trace.sort(key=lambda e: e.seq)
            traces[attempt.number] = trace
        if open_attempt is not None:
            attempts = [
                a if a.number != open_attempt[0].number else open_attempt[0] for a in attempts
            ]
        return cls(run=record, attempts=attempts, steps=steps, traces=traces, journal=journal)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def inputs(self) -> Any:
        return self.run.inputs

    @property
    def status(self) -> str:
        """The outcome of the last attempt (``"new"`` before any), or ``"damaged"`` when
        that attempt's trace names steps it recorded or replayed whose records are gone
        (a run half deleted by a ``recorder rm`` of an older release killed part-way:
        ``recorder rm`` deletes it)."""
        if not self.attempts:
            return "new"
        last = self.attempts[-1]
        held = {(s.generation, s.key, s.occurrence) for s in self.steps}
        for event in self.traces.get(last.number, ()):
            if (
                event.status != "failed"
                and (event.generation, event.key, event.occurrence) not in held
            ):
                return "damaged"
        return last.outcome.value

    def current_steps(self) -> list[StepRecord]:
        """The step records a replay would use (the current generation), in run order."""
        current = [s for s in self.steps if s.generation == self.run.generation]
        return sorted(current, key=lambda s: (s.attempt, s.seq))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per step call of every attempt, with :data:`TRACE_COLUMNS`."""
        by_ident = {(s.generation, s.key, s.occurrence): s for s in self.steps}
        fork = self.run.forked_from
        lineage = f"{fork['run']}#{fork['step']}" if fork else None
        out: list[dict[str, Any]] = []
        for attempt in self.attempts:
            for event in self.traces.get(attempt.number, []):
                step = by_ident.get((event.generation, event.key, event.occurrence))
                meta = dict(step.meta) if step is not None else {}
                meta.update(event.meta)
                error = event.error.summary if event.error else None
                row: dict[str, Any] = {
                    "run": self.run.run_id,
                    "attempt": attempt.number,
                    "seq": event.seq,
                    "kind": event.kind,
                    "name": event.name,
                    "key": event.key,
                    "occurrence": event.occurrence,
                    "status": event.status,
                    "started_at": _utc(event.started_at),
                    "duration_s": event.duration_s,
                    "recorded_duration_s": step.duration_s if step is not None else math.nan,
                    "error": error,
                    "generation": event.generation,
                    "forked_from": lineage,
                }
                for column in _META_COLUMNS:
                    row[column] = meta.get(column)
                for extra, value in meta.items():
                    if extra not in row and not extra.startswith("_"):
                        row[extra] = value
                out.append(row)
        return out

    def to_dataframe(self) -> pandas.DataFrame:
        """The trace as a DataFrame (see :func:`recorder.export.trace_frame`)."""
        from .export import trace_frame

        return trace_frame(self.rows())

    _HTML_COLUMNS = ("attempt", "seq", "kind", "name", "status", "selector", "url", "model",
                     "duration_s", "recorded_duration_s", "cost_usd", "error")  # fmt: skip

    def _repr_html_(self) -> str:
        """A notebook shows a run as its summary and its step calls (no widgets)."""
        import html

        summary = self.summary()
        head = "".join(
            f"<th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td>"
            for k, v in summary.items()
            if k in ("run", "status", "attempts", "steps", "last_activity")
        )
        frame = self.to_dataframe()
        columns = [c for c in self._HTML_COLUMNS if c in frame.columns]
        table = frame[columns].to_html(index=False, na_rep="", max_rows=200, escape=True)
        return f"<table class='recorder-run'><tr>{head}</tr></table>{table}"

    def summary(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        activity = None
        if last is not None:
            activity = last.ended_at or last.started_at
            steps_after = [
                s.started_at + s.duration_s for s in self.steps if s.attempt == last.number
            ]
            activity = max([activity, *steps_after])
        return {
            "run": self.run.run_id,
            "name": self.run.name,
            "inputs": dumps(self.run.inputs),
            "attempts": len(self.attempts),
            "steps": len(self.current_steps()),
            "status": self.status,
            "created_at": _utc(self.run.created_at),
            "last_activity": _utc(activity),
        }


def _live_event(step: StepRecord) -> TraceEvent:
    return TraceEvent(
        seq=step.seq,
        key=step.key,
        occurrence=step.occurrence,
        kind=step.kind,
        name=step.name,
        status="failed" if step.error else "live",
        started_at=step.started_at,
        duration_s=step.duration_s,
        generation=step.generation,
        error=step.error,
    )


def find_run(journal: Journal, name: str, *, inputs: Any = None, has_inputs: bool = False) -> str:
    """The run id for ``name``, matched exactly: a run id (``name@hash``), else the one
    run with that name (and these inputs, with ``has_inputs``). A name that matches
    several runs (runs of one name with other inputs, or a run id that is also another
    run's name) is refused with the candidates: a lookup never guesses, since ``rm``
    acts on what it finds."""
    if has_inputs:
        digest = hash_bytes(dumps(canonical(inputs, where="inputs")).encode())
        run_id = f"{name}@{digest[7:19]}"
        if journal.get_run(run_id) is None:
            raise RunNotFoundError(
                f"no run {name!r} with these inputs in {journal.store.location}; "
                "`recorder ls` lists the runs."
            )
        return run_id
    # list_runs matches a prefix: a run named "a@x" has an id that starts with "a@" too
    named = [r.run_id for r in journal.list_runs(name) if r.name == name]
    by_id = [name] if journal.get_run(name) is not None else []
    candidates = sorted(set(by_id + named))
    if not candidates:
        raise RunNotFoundError(
            f"no run named {name!r} in {journal.store.location}; `recorder ls` lists the runs."
        )
    if len(candidates) > 1:
        listed = ", ".join(repr(c) for c in candidates)
        raise AmbiguousRunError(
            f"{name!r} names {len(candidates)} runs in {journal.store.location}: {listed}. "
            "Name one by its full run id (as `recorder ls` shows it), or pass inputs= to "
            "recorder.load."
        )
    return candidates[0]


_NO_INPUTS = object()


def load(
    name: str, *, inputs: Any = _NO_INPUTS, store: Store | str | os.PathLike[str] | None = None
) -> RunHistory:
    """The history of run ``name`` (or run id ``name@hash``) in ``store``. With several
    runs of that name, ``inputs=`` picks one; without it, AmbiguousRunError lists them."""
    journal = Journal(open_store(store))
    has_inputs = inputs is not _NO_INPUTS
    run_id = find_run(
        journal, name, inputs=None if not has_inputs else inputs, has_inputs=has_inputs
    )
    return RunHistory.load(journal, run_id)


def run_rows(journal: Journal) -> list[dict[str, Any]]:
    """A summary dict per run in the store, most recently active first."""
    rows = [RunHistory.load(journal, r.run_id).summary() for r in journal.list_runs()]
    rows.sort(key=lambda r: r["last_activity"] or r["created_at"], reverse=True)
    return rows


def runs(store: Store | str | os.PathLike[str] | None = None) -> pandas.DataFrame:
    """Every run in ``store`` as a DataFrame: run, name, inputs, attempts, steps,
    status, created_at, last_activity."""
    from .export import runs_frame

    return runs_frame(run_rows(Journal(open_store(store))))
