"""Lost records: every step record of a generation is numbered, so a gap shows.

SQLite in WAL mode keeps recent transactions in the ``-wal`` file until a checkpoint
copies them into the database file. A ``-wal`` deleted or left behind (a store copied
without it) loses them; a checkpoint cut short, then its ``-wal`` lost, leaves pages of
later transactions without earlier ones, so an attempt's outcome can survive while some
of its steps do not. A replay around the gap would run those steps live again, effects
included. So:

- each step record carries ``n`` (:attr:`~recorder.records.StepRecord.n`), its number in
  its generation, given in write order by the attempt holding the run's lock; numbering
  goes on from the highest number present and the newest ended attempt's mark;
- a record that overwrites one of the same key and occurrence names the numbers it
  replaces (:attr:`~recorder.records.StepRecord.replaces`), in the same write;
- each attempt writes, when it ends, its high-water mark (every number below it was
  written) and the numbers it deleted on purpose
  (:attr:`~recorder.records.AttemptRecord.dropped`): a retracted fatal step (written
  before the deletion), a write the store refused, and the gaps an attempt killed
  part-way left above the previous mark (writes in flight that never committed);
- entering a run checks that every number below the newest mark is present, replaced or
  dropped; a missing one raises :class:`~recorder.errors.DamagedRecordError` and nothing
  runs.

Records of older releases have no number and are not checked. A store whose lost
transactions are all after some point (a ``-wal`` lost after a complete checkpoint) is
an earlier state of the store, and no record tells it apart from a run stopped there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import DamagedRecordError
from .records import AttemptRecord, StepRecord

__all__ = ["Numbering", "check_numbering", "numbering"]


@dataclass(frozen=True, slots=True)
class Numbering:
    """What the records of one generation say about its step numbers."""

    next_n: int
    """The number the next step record gets."""
    missing: tuple[int, ...]
    """Numbers below the newest mark that no record holds, replaces or drops: lost."""
    marked_by: AttemptRecord | None
    """The ended attempt whose mark is the newest."""
    unmarked_gaps: tuple[int, ...]
    """Numbers above the newest mark, below the highest present, that no record holds:
    writes of an attempt killed part-way that never committed. The next attempt to end
    records them as dropped."""


def numbering(
    steps: Iterable[StepRecord], attempts: Iterable[AttemptRecord], generation: int
) -> Numbering:
    """The numbering state of ``generation`` from its step records and the run's
    attempt records (those of other generations are ignored)."""
    present: set[int] = set()
    accounted: set[int] = set()
    for step in steps:
        if step.n is not None:
            present.add(step.n)
            accounted.update(step.replaces)
    mark, marked_by = 0, None
    for attempt in attempts:
        if attempt.generation != generation:
            continue
        accounted.update(attempt.dropped)
        if attempt.high_water is not None and attempt.high_water >= mark:
            mark, marked_by = attempt.high_water, attempt
    known = present | accounted
    missing = tuple(n for n in range(mark) if n not in known)
    top = max(present, default=-1) + 1
    gaps = tuple(n for n in range(mark, top) if n not in known)
    return Numbering(max(mark, top), missing, marked_by, gaps)


def check_numbering(state: Numbering, run_id: str, generation: int, location: str) -> None:
    """Raise :class:`DamagedRecordError` if records below the newest mark are missing."""
    if not state.missing or state.marked_by is None:
        return
    missing = state.missing
    shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
    attempt = state.marked_by
    raise DamagedRecordError(
        f"run {run_id!r}: {len(missing)} acknowledged step record(s) of generation "
        f"{generation} are missing from {location} (numbers {shown}; attempt "
        f"{attempt.number}, which ended {attempt.outcome.value}, had written every record "
        f"numbered below {attempt.high_water}). The store lost writes: a deleted or lost "
        "-wal file, a copy taken without it, or a checkpoint cut short. Nothing was run: "
        "replaying around the gap would run those steps, effects included, again. Restore "
        "the store with its -wal file from a backup if you have one; otherwise see what is "
        f"left with `recorder show {run_id}` and `recorder verify`, export it (`recorder "
        f"export {run_id} -o FILE`), then `recorder rm {run_id}` and record it anew, "
        "checking by hand which effects already happened."
    )
