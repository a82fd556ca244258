"""Forks: a new run that starts as a copy of another run's first steps (they replay)
and goes live from there."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .journal import Journal
from .options import validate_name
from .records import RunRecord

if TYPE_CHECKING:
    import os as _os

    from .runtime import Run
    from .stores import Store

__all__ = ["copy_fork", "fork", "fork_spec", "fork_target"]


def fork_spec(fork_from: object) -> tuple[str, int] | None:
    """``fork_from=(run, step)`` checked: a run (object, name or id) and a step >= 0."""
    if fork_from is None:
        return None
    if (
        not isinstance(fork_from, tuple)
        or len(fork_from) != 2
        or isinstance(fork_from[1], bool)
        or not isinstance(fork_from[1], int)
        or fork_from[1] < 0
    ):
        raise ConfigError(
            f"fork_from= takes (run, step): a run (or its name or id) and the number of "
            f"its steps to keep (an int >= 0), not {fork_from!r}."
        )
    source, step = fork_from
    run_id = getattr(source, "run_id", None)
    name = run_id if isinstance(run_id, str) else validate_name(source)
    return name, step


def fork(
    source: Run | str,
    step: int,
    name: str,
    *,
    inputs: Any = None,
    store: Store | str | _os.PathLike[str] | None = None,
) -> str:
    """Create run ``name`` (with ``inputs``) as a fork of ``source`` at ``step``, without
    entering it; return its run id. ``recorder.run(name, inputs=...)`` then replays the
    copied steps and goes live after them (what ``recorder fork`` does from a shell)."""
    from .runtime import Run

    new = Run(name, inputs=inputs, store=store, fork_from=(source, step))
    journal = new.journal
    if journal.get_run(new.run_id) is not None:
        raise ConfigError(
            f"run {new.run_id!r} already exists; a fork needs a run of its own: give it "
            "another name or inputs."
        )
    forked = copy_fork(new, journal)
    journal.put_run(
        RunRecord(run_id=new.run_id, name=new.name, inputs_hash=new.inputs_hash,
                  inputs=new._inputs_canonical, created_at=time.time(), forked_from=forked)
    )  # fmt: skip
    return new.run_id


def fork_target(run: Run, journal: Journal) -> dict[str, Any] | None:
    """The lineage ``run`` records: ``{"run": source run id, "step": n}``, or None."""
    if run.fork_from is None:
        return None
    from .history import find_run

    source, step = run.fork_from
    return {"run": find_run(journal, source), "step": step}


def copy_fork(run: Run, journal: Journal) -> dict[str, Any] | None:
    """A new run forked from another: copy its first ``step`` step records (they
    replay; everything after goes live) and return the lineage to record."""
    target = fork_target(run, journal)
    if target is None:
        return None
    source = journal.get_run(target["run"])
    assert source is not None  # find_run found it
    steps = journal.steps(source.run_id, source.generation)
    copied = sorted((s for s in steps if s.seq < target["step"]), key=lambda s: (s.seq, s.attempt))
    # Numbered anew, 0 to k-1: the source's numbers have gaps its own attempts account
    # for, which the fork does not copy (see recorder.sequence).
    renumbered = [dataclasses.replace(s, n=i, replaces=()) for i, s in enumerate(copied)]
    journal.copy_steps(run.run_id, renumbered)
    return target
