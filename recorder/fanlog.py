"""What a fan-out's records say: its parent run's log (the latest ``inputs`` step and
the latest ``child`` step of each key, over every call), each child's row filled from
it, and the children's statuses as the command line shows them (the parent's word,
unless a child's own records are newer). Read-only: :mod:`recorder.fanout` writes.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

from .locks import holder_alive
from .records import Outcome, StepRecord
from .values import decode

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["children_of", "fill_row", "is_fan_out", "may_go_on", "read_log"]


def fill_row(row: dict[str, Any], doc: dict[str, Any]) -> None:
    for column in (
        "result",
        "error",
        "started_at",
        "duration_s",
        "llm_calls",
        "live_llm_calls",
        "cost_usd",
        "cost_saved_usd",
    ):
        if doc.get(column) is not None:
            row[column] = doc[column]
    if doc.get("attempt") is not None:
        row["attempts"] = doc["attempt"]
    suspension = doc.get("suspension")
    if isinstance(suspension, dict):
        row["waiting_for"] = suspension.get("name")


def may_go_on(journal: Journal, run_id: str, doc: dict[str, Any] | None) -> bool:
    """Whether a suspended child has what it waited for (if unknown: let it try)."""
    why = (doc or {}).get("suspension")
    if not isinstance(why, dict):
        return True
    if why.get("reason") == "timer" and isinstance(why.get("wake_at"), int | float):
        return time.time() >= float(why["wake_at"])
    if why.get("reason") == "signal" and isinstance(why.get("signals_seen"), int):
        seen: int = why["signals_seen"]
        return len(journal.signals(run_id, str(why.get("name")))) > seen
    return True


def is_fan_out(inputs: Any) -> bool:
    """Whether a run with these inputs is the parent run of a fan-out."""
    return isinstance(inputs, dict) and list(inputs) == ["fan_out"]


def children_of(journal: Journal, run_id: str) -> list[dict[str, Any]]:
    """The children of the fan-out whose parent run is ``run_id``, as its records say
    now (for the command line): ``key``, ``run``, ``status``, ``attempts``, ``error``.

    The inputs are those of the fan-out's latest call. A child's status is the one the
    parent recorded, unless the child's own records are newer: ``running`` (its lock is
    held by a live process), ``crashed`` (left running by a dead one), the outcome of
    a later attempt, or ``not started``."""
    listed = read_log(journal, run_id, "inputs").get("inputs")
    if not isinstance(listed, list):
        return []
    log = read_log(journal, run_id)
    rows: list[dict[str, Any]] = []
    for item in listed:
        key, child = str(item["key"]), str(item["run"])
        doc = log.get(key)
        if doc is not None and doc.get("run") != child:
            doc = None
        last = journal.last_attempt(child)
        held = journal.get_lock(child)
        status = "not started" if doc is None else str(doc.get("status"))
        error = None if doc is None else doc.get("error")
        if held is not None and holder_alive(json.loads(held), journal.store, child):
            status = "running"
        elif last is not None and (doc is None or last.number > (doc.get("attempt") or 0)):
            status = "crashed" if last.outcome is Outcome.RUNNING else last.outcome.value
            error = last.error.summary if last.error else None
        rows.append({"key": key, "run": child, "status": status,
                     "attempts": last.number if last else 0, "error": error})  # fmt: skip
    return rows


def read_log(journal: Journal, run_id: str, kind: str = "child") -> dict[str, Any]:
    """The latest ``child`` step of each key over every call of the fan-out (or the
    latest step of another ``kind``, by name)."""
    steps = [s for s in journal.steps(run_id) if s.kind == kind and s.error is None]
    steps.sort(key=lambda s: (s.generation, s.attempt, s.seq))
    latest: dict[str, StepRecord] = {}
    for step in steps:
        latest[step.name] = step
    refs = [s.result_ref for s in latest.values() if s.result_ref is not None]
    read = journal.read_blobs(refs) if refs else {}
    found: dict[str, Any] = {}
    for key, step in latest.items():
        where = f"the fan-out record of child {key!r}"
        if step.result_ref is not None:
            data = journal.blob(step.result_ref, step=where, read=read.get(step.result_ref))
            value = json.loads(data)
        else:
            value = step.result
        if not step.plain:
            value = decode(value, functools.partial(_blob, journal, where))
        if isinstance(value, dict) or kind != "child":
            found[key] = value
    return found


def _blob(journal: Journal, where: str, ref: str) -> bytes:
    return journal.blob(ref, step=where)
