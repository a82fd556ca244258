"""Which process holds a run: a lock row in the store, taken and released atomically.

The lock value names its holder (host, pid, the pid's start time, a random token).
A lock whose holder is dead (no such pid on this host, or the pid was reused by a
process that started later) is stale and is taken over; so is a lock of this very
process whose attempt is no longer in flight (its exit began: an exit interrupted half
way must not lock the run until the kernel restarts). A live holder makes the next
entry fail with :class:`~recorder.errors.RunLockedError` naming it.

A store with session locks (Postgres: :meth:`Store.hold_lock`) decides who is alive on
every host: the run's session lock is taken first and held as long as the row, and it
dies with its holder's connection. So a row whose holder's session lock is free is
stale whatever host it names, and a run whose session lock another process holds is
refused with the host and pid of its row. On the other stores a holder on another host
is assumed alive.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from .errors import RunLockedError
from .journal import Journal
from .stores import NO_HOLD, LockHold, Store

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


def _mine(holder: dict[str, Any]) -> bool:
    return holder.get("host") == HOST and int(holder.get("pid", -1)) == os.getpid()


def holder_alive(
    holder: dict[str, Any], store: Store | None = None, run_id: str | None = None
) -> bool:
    """Whether the process a lock names still runs. With the ``store`` and ``run_id``
    of a store with session locks, its session lock says so, on any host; otherwise a
    holder on another host is assumed alive."""
    if _mine(holder):
        mine = _held.get(str(holder.get("token")))
        return mine is not None and not mine.ending
    if store is not None and run_id is not None:
        alive = store.lock_alive(run_id)
        if alive is not None:
            return alive
    if holder.get("host") != HOST:
        return True
    pid = int(holder.get("pid", -1))
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
        self.hold: LockHold = NO_HOLD
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
        hold = self._hold()
        try:
            for _ in range(20):
                held = journal.get_lock(run_id)
                if held is None:
                    if journal.swap_lock(run_id, None, mine):
                        break
                    continue
                holder = json.loads(held)
                # Holding the session lock, we know any other process's row is stale.
                if (hold is NO_HOLD or _mine(holder)) and holder_alive(holder):
                    raise _locked(run_id, holder)
                if journal.swap_lock(run_id, held, mine):
                    self.taken_from = holder
                    break
            else:
                raise RunLockedError(f"run {run_id!r}: could not take its lock; try again.")
        except BaseException:
            hold.release()
            raise
        _held[token] = self
        self.value = mine
        self.hold = hold

    def _hold(self) -> LockHold:
        """The run's session lock (see :meth:`Store.hold_lock`); RunLockedError naming
        the holder if another live process has it."""
        journal, run_id = self.journal, self.run_id
        deadline = time.monotonic() + 2.0
        while True:
            hold = journal.store.hold_lock(run_id)
            if hold is not None:
                return hold
            held = journal.get_lock(run_id)
            if held is not None:
                raise _locked(run_id, json.loads(held))
            # Its holder is writing its row, or has just deleted it and is letting go.
            if time.monotonic() > deadline:
                raise RunLockedError(
                    f"run {run_id!r} is open in another process, which has not written "
                    "its lock row yet. Try again in a moment."
                )
            time.sleep(0.01)

    def forget(self) -> None:
        """Drop the lock without touching the store (its row was deleted with the run)."""
        if self.value is not None:
            _held.pop(json.loads(self.value)["token"], None)
            self.value = None
            hold, self.hold = self.hold, NO_HOLD
            hold.release()

    def release(self) -> None:
        if self.value is None:
            return
        value, self.value = self.value, None
        hold, self.hold = self.hold, NO_HOLD
        _held.pop(json.loads(value)["token"], None)
        try:
            swapped = self.journal.swap_lock(self.run_id, value, None)
        finally:
            hold.release()  # after the row: a process that takes it over finds none
        if not swapped:
            warnings.warn(
                f"run {self.run_id!r}: its lock was taken over by another process while this "
                "attempt ran; records written meanwhile may interleave.",
                RuntimeWarning,
                stacklevel=3,
            )


def _locked(run_id: str, holder: dict[str, Any]) -> RunLockedError:
    since = datetime.fromtimestamp(holder.get("since", 0), UTC).isoformat()
    return RunLockedError(
        f"run {run_id!r} is open in process {holder.get('pid')} on "
        f"{holder.get('host')} since {since}. Wait for it to finish or stop that "
        "process; a lock left by a dead process is taken over automatically."
    )
