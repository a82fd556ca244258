"""How big a store may grow, and what a write that cannot fit says.

``max_store_bytes`` (or ``$RECORDER_MAX_STORE_BYTES``) caps a store: a write past it is
refused with :class:`~recorder.errors.QuotaExceededError` (nothing is ever evicted).
A disk that is full, or a file size limit, refuses a write with a clear
:class:`~recorder.errors.StoreError` instead of SQLite's bare error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

from ..errors import ConfigError, QuotaExceededError, StoreError

__all__ = ["COUNT_SPACING", "MAX_BYTES_ENV", "VERSION_INTERVAL", "Quota", "check_limit",
           "entry_size", "out_of_space", "quota_error", "resolve_limit"]  # fmt: skip

MAX_BYTES_ENV = "RECORDER_MAX_STORE_BYTES"

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}  # fmt: skip
_SIZE = re.compile(r"\s*(\d[\d_]*(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def entry_size(key: str, value: bytes) -> int:
    """What an entry counts against a quota: its key's UTF-8 bytes plus its value's."""
    return len(value) + (len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass")))


def check_limit(limit: object) -> int | None:
    """``max_store_bytes`` as given: ``None`` or a positive int, else ConfigError."""
    if limit is None:
        return None
    if type(limit) is not int or limit < 1:
        raise ConfigError(
            f"max_store_bytes must be a positive number of bytes or None, not {limit!r}."
        )
    return limit


def resolve_limit(limit: int | None) -> int | None:
    """The argument if given, else ``$RECORDER_MAX_STORE_BYTES`` (bytes, or with a unit:
    ``500MB``, ``2GiB``), else no limit. A value that is not a size is a ConfigError."""
    if limit is not None:
        return check_limit(limit)
    text = os.environ.get(MAX_BYTES_ENV, "")
    if not text.strip():
        return None
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match[2].lower()) if match else None
    value = int(Decimal(match[1].replace("_", "")) * unit) if match and unit else 0
    if value < 1:
        raise ConfigError(
            f"{MAX_BYTES_ENV}={text!r} is not a store size: set it to a positive number of "
            "bytes, optionally with a unit (500MB, 2GiB), or unset it."
        )
    return value


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n:,} bytes ({n / scale:,.1f} {unit})"
    return f"{n:,} bytes"


def quota_error(location: str, limit: int, size: int, needed: int) -> QuotaExceededError:
    return QuotaExceededError(
        f"{location}: this write needs {_bytes(needed)} more, but the store already holds "
        f"{_bytes(size)} of keys and values and its limit (max_store_bytes) is "
        f"{_bytes(limit)}. Nothing of the write was recorded and nothing is evicted to make "
        "room: delete runs you no longer need with `recorder rm RUN` (their blobs go too), "
        f"or raise the limit (max_store_bytes= or ${MAX_BYTES_ENV}), then run again; the "
        "steps recorded so far replay."
    )


COUNT_SPACING = 100
"""A count refreshed because another connection wrote is redone no sooner than this many
times its own duration later: at most ~1% of the time goes to counting."""
VERSION_INTERVAL = 0.01
"""Seconds between two looks at ``data_version`` (~9 us each, half a write's overhead)."""


class Quota:
    """A DiskStore's limit and its count of the bytes stored (keys' UTF-8 + values).

    ``size`` is exact right after a count (one SUM over the table) and an upper bound
    after: each write adds its full size, even where it replaces a row or adds a blob
    that was present. So the count never lets a write pass the limit unless another
    connection wrote; that shows in SQLite's ``data_version`` (per connection, so
    ``seen`` keeps one per thread), which marks the count ``stale``. Before refusing a
    write the store always counts again, so deletes (its own or another process's)
    make room at once."""

    __slots__ = ("limit", "lock", "next_count", "next_look", "seen", "size", "stale")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size: int | None = None
        self.stale = True
        self.seen: dict[int, int] = {}
        self.next_count = 0.0
        self.next_look = 0.0
        self.lock = threading.Lock()


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})
# SQLite reports ENOSPC as SQLITE_FULL, but any other failed write (EFBIG past a file
# size limit, EDQUOT) as one of these I/O errors; the OS error number is not exposed.
_GROWTH_IOERRS = frozenset({"SQLITE_IOERR_WRITE", "SQLITE_IOERR_TRUNCATE", "SQLITE_IOERR_SHMSIZE"})


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY or soft < 0 else soft


def out_of_space(directory: Path, error: BaseException, database: str) -> StoreError | None:
    """A clear StoreError if ``error`` says the store's files (``database`` and its
    journals, in ``directory``) could not grow."""
    full = False
    if isinstance(error, OSError):
        if error.errno not in _FULL_ERRNOS:
            return None
        full = error.errno != errno.EFBIG
        what = str(error)
    elif isinstance(error, sqlite3.DatabaseError):
        name = getattr(error, "sqlite_errorname", "")
        full = name == "SQLITE_FULL" or "is full" in str(error)
        if not full and name not in _GROWTH_IOERRS:
            return None
        what = f"SQLite: {error}" + (f", {name}" if name else "")
    else:
        return None
    facts: list[str] = []
    with contextlib.suppress(OSError, AttributeError):  # no statvfs on Windows
        info = os.statvfs(directory)
        free = info.f_bavail * info.f_frsize
        full = full or free < 2**20
        facts.append(f"{_bytes(free)} free on its file system")
    headline, advice = "the store could not grow", "Free space there or check the device"
    if full:
        headline, advice = "the disk is full", "Free space on that file system"
    fsize = _file_size_limit()
    if fsize is not None:
        sizes = {p.name: p.stat().st_size for p in directory.glob(database + "*") if p.is_file()}
        largest = max(sizes, key=sizes.__getitem__, default="")
        if largest and sizes[largest] >= fsize:
            headline = f"{largest} reached this process's file size limit (`ulimit -f`)"
            advice = "Raise the file size limit"
        facts.append(f"files may not grow past {_bytes(fsize)} (`ulimit -f`)")
    return StoreError(
        f"{directory}: {headline}, so the write was refused ({what}; "
        f"{'; '.join(facts) or 'no more is known'}). Nothing of this write was recorded; "
        f"everything recorded before it is intact. {advice}, then run again: the steps "
        "recorded so far replay (`recorder verify` checks the store)."
    )
