"""Where two runs, or two attempts of one run, diverge.

A side is named ``RUN`` (a run id, or the latest run of that name) or
``RUN@attempt:N``. ``RUN`` stands for the step records a replay would use (the current
generation, in run order); ``RUN@attempt:N`` for the step calls of that attempt's
trace. Step calls are aligned by ``seq``; for each seq where the content keys differ,
or the outcome (result or error) differs, :func:`diff` reports the request's
field-by-field differences and the result's.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .differences import field_differences
from .errors import RunNotFoundError
from .history import RunHistory, find_run
from .journal import Journal, step_label
from .records import StepRecord
from .stores import Store, open_store

__all__ = ["RunDiff", "StepDiff", "StepSide", "diff", "format_diff", "parse_side"]

_ATTEMPT = re.compile(r"(.+)@attempt:(\d+)")


@dataclass(frozen=True, slots=True)
class StepSide:
    """One side's step call at a seq."""

    seq: int
    kind: str
    name: str
    key: str
    occurrence: int
    status: str
    """``ok`` or ``error`` for the outcome the record holds; ``missing`` when the call
    has no step record (a failed call not recorded, or an attempt that crashed)."""
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True, slots=True)
class StepDiff:
    """A seq where the two sides differ. ``request`` and ``result`` map each differing
    field path to ``(value in a, value in b)``; a side without a call there is None."""

    seq: int
    a: StepSide | None
    b: StepSide | None
    request: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    result: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def same_key(self) -> bool:
        return (
            self.a is not None
            and self.b is not None
            and (self.a.key, self.a.occurrence) == (self.b.key, self.b.occurrence)
        )


@dataclass(frozen=True, slots=True)
class RunDiff:
    """The result of :func:`diff`: ``first_divergence`` is the first seq whose content
    keys differ (``None``: the keys agree everywhere), ``steps`` every differing seq."""

    a: str
    b: str
    compared: int
    first_divergence: int | None
    steps: list[StepDiff]

    @property
    def identical(self) -> bool:
        return not self.steps


@dataclass(frozen=True, slots=True)
class _Call:
    side: StepSide
    record: StepRecord | None


def parse_side(text: str) -> tuple[str, int | None]:
    """``"triage@1a2b3c4d5e6f@attempt:2"`` -> ``("triage@1a2b3c4d5e6f", 2)``."""
    match = _ATTEMPT.fullmatch(text)
    return (match[1], int(match[2])) if match else (text, None)


def _calls(journal: Journal, text: str) -> tuple[str, dict[int, _Call]]:
    name, attempt = parse_side(text)
    run_id = find_run(journal, name)
    history = RunHistory.load(journal, run_id)
    calls: dict[int, _Call] = {}
    if attempt is None:
        for record in history.current_steps():  # later attempts win a shared seq
            calls[record.seq] = _Call(_side_of(record), record)
        return run_id, calls
    if attempt not in history.traces:
        numbers = ", ".join(str(a.number) for a in history.attempts) or "none"
        raise RunNotFoundError(f"run {run_id} has no attempt {attempt}; its attempts: {numbers}.")
    by_ident = {(s.generation, s.key, s.occurrence): s for s in history.steps}
    for event in history.traces[attempt]:
        found = by_ident.get((event.generation, event.key, event.occurrence))
        if found is not None:
            side = _side_of(found, seq=event.seq)
        else:
            error = event.error.summary if event.error else None
            side = StepSide(event.seq, event.kind, event.name, event.key, event.occurrence,
                            "missing", error)  # fmt: skip
        calls[event.seq] = _Call(side, found)
    return f"{run_id}@attempt:{attempt}", calls


def _side_of(record: StepRecord, *, seq: int | None = None) -> StepSide:
    error = record.error.summary if record.error else None
    return StepSide(
        record.seq if seq is None else seq,
        record.kind,
        record.name,
        record.key,
        record.occurrence,
        "error" if error else "ok",
        error,
    )


def _result(journal: Journal, record: StepRecord | None) -> Any:
    if record is None:
        return None
    if record.error is not None:
        return {"error": record.error.summary}
    if record.result_ref is not None:
        return {"result": json.loads(journal.blob(record.result_ref, step=step_label(record)))}
    return {"result": record.result}


def diff(a: str, b: str, *, store: Store | str | os.PathLike[str] | None = None) -> RunDiff:
    """Compare two runs (or ``RUN@attempt:N`` attempts) of ``store`` step by step.

    Requests come from the records' request blobs (``Journal.request``) and are compared
    with :func:`recorder.diff.field_differences` (at most a dozen fields per step);
    results are compared as recorded (encoded JSON, or the error's summary)."""
    journal = Journal(open_store(store, create=False))
    label_a, calls_a = _calls(journal, a)
    label_b, calls_b = _calls(journal, b)
    steps: list[StepDiff] = []
    first: int | None = None
    seqs = sorted(calls_a.keys() | calls_b.keys())
    for seq in seqs:
        ca, cb = calls_a.get(seq), calls_b.get(seq)
        if ca is None or cb is None:
            if first is None:
                first = seq
            steps.append(StepDiff(seq, ca.side if ca else None, cb.side if cb else None))
            continue
        same_key = (ca.side.key, ca.side.occurrence) == (cb.side.key, cb.side.occurrence)
        if not same_key and first is None:
            first = seq
        request: dict[str, tuple[Any, Any]] = {}
        if not same_key:
            req_a = journal.request(ca.record) if ca.record else None
            req_b = journal.request(cb.record) if cb.record else None
            request = field_differences(
                {"kind": ca.side.kind, "name": ca.side.name, "request": req_a},
                {"kind": cb.side.kind, "name": cb.side.name, "request": req_b},
            )
        result = field_differences(_result(journal, ca.record), _result(journal, cb.record))
        if request or result or not same_key or ca.side.status != cb.side.status:
            steps.append(StepDiff(seq, ca.side, cb.side, request, result))
    return RunDiff(label_a, label_b, len(seqs), first, steps)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) and value == "<absent>" else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_diff(result: RunDiff) -> str:
    """The readable table ``recorder diff`` prints."""
    lines = [f"a: {result.a}", f"b: {result.b}"]
    if result.identical:
        lines.append(f"no differences in {result.compared} step calls")
        return "\n".join(lines)
    first = "none (same keys)" if result.first_divergence is None else result.first_divergence
    lines.append(
        f"{len(result.steps)} of {result.compared} step calls differ; first divergence "
        f"(keys differ) at seq {first}"
    )
    rows = [("seq", "a", "b", "differs")]
    for step in result.steps:
        what = []
        if not step.same_key:
            what.append("key")
        if step.result or (step.a and step.b and step.a.status != step.b.status):
            what.append("result")
        rows.append(
            (
                str(step.seq),
                f"{step.a.label} [{step.a.status}]" if step.a else "-",
                f"{step.b.label} [{step.b.status}]" if step.b else "-",
                ", ".join(what) or "-",
            )
        )
    widths = [min(40, max(len(r[i]) for r in rows)) for i in range(4)]
    for row in rows:
        lines.append("  ".join(c[:40].ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for step in result.steps:
        if not (step.request or step.result):
            continue
        lines.append(f"seq {step.seq}:")
        for where, fields in (("request", step.request), ("result", step.result)):
            for path, (va, vb) in fields.items():
                lines.append(f"  {where} {path}: {_short(va)} -> {_short(vb)}")
    return "\n".join(lines)
