"""Which process holds a run: a lock row in the store, taken and released atomically.

The lock value names its holder (host, pid, the pid's start time, a random token).
A lock whose holder is dead (no such pid on this host, or the pid was reused by a
process that started later) is stale and is taken over; so is a lock of this very
process whose attempt is no longer in flight (its exit began: an exit interrupted half
way must not lock the run until the kernel restarts). A live holder makes the next
entry fail with :class:`~recorder.errors.RunLockedError` naming it.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from .errors import RunLockedError
from .journal import Journal

__all__ = ["HOST", "RunLock", "process_start"]

HOST = socket.gethostname()
_held: dict[str, RunLock] = {}
"""The locks this process holds, by token."""


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (clock ticks since boot), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _state(pid: int) -> bytes | None:
    """The process state letter from ``/proc`` (``R``, ``S``, ``Z``...), if readable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the process a lock names still runs (another host: assumed so)."""
    if holder.get("host") != HOST:
        return True
    pid = int(holder.get("pid", -1))
    if pid == os.getpid():
        mine = _held.get(str(holder.get("token")))
        return mine is not None and not mine.ending
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _state(pid) in (b"Z", b"X"):  # killed, not yet reaped by its parent: it holds nothing
        return False
    started = holder.get("process_start")
    return started is None or process_start(pid) in (None, started)


class RunLock:
    """The lock of one run, held by this process between :meth:`acquire` and
    :meth:`release`."""

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self.value: bytes | None = None
        self.taken_from: dict[str, Any] | None = None
        self.ending = False
        """Set when the attempt holding it starts to end: from then on another entry of
        the run in this process may take the lock over."""

    def acquire(self, now: float) -> None:
        token = uuid.uuid4().hex
        pid = os.getpid()
        mine = json.dumps(
            {
                "pid": pid,
                "host": HOST,
                "process_start": process_start(pid),
                "since": now,
                "token": token,
            }
        ).encode()
        journal, run_id = self.journal, self.run_id
        for _ in range(20):
            held = journal.get_lock(run_id)
            if held is None:
                if journal.swap_lock(run_id, None, mine):
                    break
                continue
            holder = json.loads(held)
            if holder_alive(holder):
                since = datetime.fromtimestamp(holder.get("since", 0), UTC).isoformat()
                raise RunLockedError(
                    f"run {run_id!r} is open in process {holder.get('pid')} on "
                    f"{holder.get('host')} since {since}. Wait for it to finish or stop that "
                    "process; a lock left by a dead process is taken over automatically."
                )
            if journal.swap_lock(run_id, held, mine):
                self.taken_from = holder
                break
        else:
            raise RunLockedError(f"run {run_id!r}: could not take its lock; try again.")
        _held[token] = self
        self.value = mine

    def forget(self) -> None:
        """Drop the lock without touching the store (its row was deleted with the run)."""
        if self.value is not None:
            _held.pop(json.loads(self.value)["token"], None)
            self.value = None

    def release(self) -> None:
        if self.value is None:
            return
        value, self.value = self.value, None
        _held.pop(json.loads(value)["token"], None)
        if not self.journal.swap_lock(self.run_id, value, None):
            warnings.warn(
                f"run {self.run_id!r}: its lock was taken over by another process while this "
                "attempt ran; records written meanwhile may interleave.",
                RuntimeWarning,
                stacklevel=3,
            )
