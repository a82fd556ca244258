"""The default store: one SQLite database in a directory, through diskcache.

:class:`DiskStore` keeps everything in one SQLite database through ``diskcache``, with
these changes to its defaults: values are raw bytes only (a pickled row is refused on
read, never loaded), eviction is off, all values stay inside the database (no loose
value files to lose), the directory is created 0700 and the database files are 0600,
and a directory that other users can write to, or that another user owns, is refused.
So is a directory on a network file system (NFS, SMB, ...): SQLite's locks are not safe
there; many hosts share a Postgres store instead (:mod:`recorder.stores.postgres`).

Size: a store may be given ``max_store_bytes`` (or ``$RECORDER_MAX_STORE_BYTES``), a
limit on the bytes of its keys and values. A write that would pass it raises
:class:`~recorder.errors.QuotaExceededError` before anything is written; nothing is
evicted, deletes always pass. A write the disk refuses (full, or past the process's file
size limit) raises :class:`~recorder.errors.StoreError` saying so; SQLite keeps such a
write out entirely, so everything written before stays readable.

A store this process cannot write (``chmod -R a-w``, a read-only mount) is opened
read-only (:attr:`Store.read_only`): reads work, writes raise StoreError. A database
file SQLite finds damaged (truncated) raises :class:`~recorder.errors.DamagedRecordError`
saying how to recover what still reads, never "not a recorder store".
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import diskcache

from ..errors import (
    ConfigError,
    DamagedRecordError,
    StoreError,
    StoreFormatError,
    UnsafeStoreError,
)
from ..switching import prompt_handback
from .base import SWAP_SLACK, Store, check_item, prefix_end
from .network import refuse_network_directory
from .quota import (
    COUNT_SPACING,
    VERSION_INTERVAL,
    Quota,
    check_limit,
    entry_size,
    out_of_space,
    quota_error,
    resolve_limit,
)

__all__ = ["STORE_FORMAT", "DiskStore", "check_directory_safe", "damaged_database"]

STORE_FORMAT = 1
_FORMAT_KEY = "recorder/store-format"
_DB_NAME = diskcache.core.DBNAME


class _RawDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache serialization that only ever stores and returns raw bytes.

    diskcache's own ``Disk`` pickles anything that is not bytes/str/int/float and
    unpickles such rows on read, so a planted row could run code. This one refuses to
    write anything but ``str`` keys and ``bytes`` values and refuses to read any row
    that is not a raw value inside the database.
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeStoreError(
                f"{self._directory}: a row has a pickled key; the recorder never unpickles. "
                "The store was written by another program: move it aside."
            )
        return key

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"store values are bytes, got {type(value).__name__}")
        return 0, diskcache.core.MODE_RAW, None, sqlite3.Binary(value)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> bytes:
        return _raw_value(self._directory, mode, filename, value)


def _raw_value(directory: str, mode: int, filename: str | None, value: Any) -> bytes:
    if mode != diskcache.core.MODE_RAW or filename is not None or not isinstance(value, bytes):
        kind = {4: "pickled"}.get(mode, f"mode-{mode}")
        raise UnsafeStoreError(
            f"{directory}: refused a {kind} row; the recorder stores raw bytes only and never "
            "unpickles. Someone or something else wrote to this store: run `recorder verify` "
            "and move the store aside."
        )
    return value


def check_directory_safe(path: Path) -> None:
    """Refuse a store directory another user owns or can write to."""
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} is not a directory; point store= or RECORDER_DIR at one.")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise UnsafeStoreError(
            f"{path} is owned by uid {info.st_uid}, not you (uid {os.getuid()}); records there "
            "could have been planted. Use a store directory you own."
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeStoreError(
            f"{path} can be written by other users (mode {stat.filemode(info.st_mode)}); records "
            f"there could have been planted. Fix it with `chmod 700 {path}` if you trust it."
        )


_COLUMNS = (
    "(key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, "
    "filename, value)"
)
_ROW = f"(?, 1, ?, NULL, ?, 0, ?, 0, {diskcache.core.MODE_RAW}, NULL, ?)"
_MAX_ROWS = 1000
_DELETE = "DELETE FROM Cache WHERE key = ? AND raw = 1"
_GET = "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"


_MANY = 250
"""Keys per statement of :meth:`DiskStore.get_many` (SQLite binds at most 32,766)."""


@functools.lru_cache(maxsize=16)
def _get_many(count: int) -> str:
    marks = ",".join("?" * count)
    return f"SELECT key, mode, filename, value FROM Cache WHERE key IN ({marks}) AND raw = 1"


@functools.lru_cache(maxsize=64)
def _upsert(rows: int) -> str:
    """One statement writing ``rows`` rows of (key, time, time, add-flag, value): a row
    flagged as an add (content-addressed data) leaves an existing key as it is, any other
    row replaces it."""
    return (
        f"INSERT INTO Cache {_COLUMNS} VALUES {', '.join([_ROW] * rows)} "
        "ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time, "
        "access_time = excluded.access_time, value = excluded.value, mode = excluded.mode, "
        "filename = NULL, size = 0, tag = NULL WHERE excluded.tag IS NULL"
    )


_ENTRY_SQL = "length(CAST(key AS BLOB)) + COALESCE(length(value), size, 0)"
_COUNT_SQL = f"SELECT COALESCE(SUM({_ENTRY_SQL}), 0) FROM Cache"


class DiskStore(Store):
    """The default store: one SQLite database (through diskcache) in ``directory``.

    ``max_store_bytes`` (default ``$RECORDER_MAX_STORE_BYTES``, else none) limits the
    bytes of keys and values it holds; see :attr:`Store.max_store_bytes`. The SQLite
    file is larger than that count by its index and page overhead."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_store_bytes: int | None = None,
        timeout: float = 60.0,
        create: bool = True,
        read_only: bool | None = None,
    ) -> None:
        limit = resolve_limit(max_store_bytes)
        path = Path(directory).expanduser().absolute()
        refuse_network_directory(path)
        if not create and not (path / _DB_NAME).is_file():
            raise StoreFormatError(
                f"no recorder store at {path} (it has no {_DB_NAME}); point --store or "
                "RECORDER_DIR at the directory a run recorded into."
            )
        self.directory = path
        self.location = str(path)
        self._quota: Quota | None = None
        if read_only is None:
            read_only = _cannot_write(path)
        self.read_only = read_only
        if read_only:
            self._open_read_only(path, timeout)
            return
        try:
            if not path.exists():
                try:
                    path.mkdir(mode=0o700, parents=True)
                    path.chmod(0o700)  # mkdir's mode is filtered by the umask
                except FileExistsError:  # another process made it first: checked below
                    pass
            check_directory_safe(path)
            self._cache = diskcache.Cache(
                str(path),
                timeout=timeout,
                disk=_RawDisk,
                eviction_policy="none",
                size_limit=2**62,
                cull_limit=0,
                statistics=0,
                disk_min_file_size=2**62,
            )
        except (sqlite3.DatabaseError, OSError) as error:
            full = out_of_space(path, error, _DB_NAME)
            if full is not None:
                raise full from error
            if not isinstance(error, sqlite3.DatabaseError):
                raise
            if _is_damage(error, path / _DB_NAME):
                # Opened read-only, for what still reads: `recorder ls`, `export` and
                # `verify` work on it; entering a run raises (see start_attempt).
                self.damaged = damaged_database(self.location, error)
                self.read_only = True
                self._open_read_only(path, timeout)
                return
            raise StoreFormatError(
                f"{path} holds a file that is not a recorder store ({error}). "
                "Point store= or RECORDER_DIR at another directory."
            ) from error
        for name in (_DB_NAME, _DB_NAME + "-wal", _DB_NAME + "-shm"):
            if (path / name).is_file():
                (path / name).chmod(0o600)
        self._check_format()
        self.max_store_bytes = limit

    def _open_read_only(self, path: Path, timeout: float) -> None:
        if not (path / _DB_NAME).is_file():
            raise StoreFormatError(
                f"no recorder store at {path} (it has no {_DB_NAME}), and the directory is "
                "read-only, so none can be created there: point store= or RECORDER_DIR at "
                "a writable directory."
            )
        check_directory_safe(path)
        self._cache = _ReadOnlyCache(path / _DB_NAME, timeout)
        try:
            self._check_format()
        except BaseException:
            self._cache.close()
            raise

    def _refuse_write(self) -> None:
        if self.damaged is not None:
            raise self.damaged
        if self.read_only:
            raise StoreError(
                f"{self.location} is opened read-only (its files or its file system cannot "
                "be written): it can be replayed, verified and exported, not written. Make "
                "it writable (`chmod -R u+w DIR`) or copy it to a writable place."
            )

    @property
    def max_store_bytes(self) -> int | None:
        quota = self._quota
        return None if quota is None else quota.limit

    @max_store_bytes.setter
    def max_store_bytes(self, limit: int | None) -> None:
        limit = check_limit(limit)
        self._quota = None if limit is None else Quota(limit)

    def _check_format(self) -> None:
        raw = self.get(_FORMAT_KEY)
        if raw is None and self.read_only:
            raise StoreFormatError(
                f"{self.location} holds no recorder store format key, so it is not a "
                "recorder store (or an empty one); it is read-only, so it cannot become one."
            )
        if raw is None:
            # Claim an empty database in one transaction, so that processes creating the
            # same new store at once agree; rows without the format key are a foreign
            # diskcache directory.
            with self._cache.transact(retry=True):
                raw = self.get(_FORMAT_KEY)
                if raw is None:
                    if self._cache._sql("SELECT 1 FROM Cache LIMIT 1").fetchone() is not None:
                        raise StoreFormatError(
                            f"{self.location} is a diskcache directory but not a recorder "
                            "store; point store= or RECORDER_DIR at another directory."
                        )
                    self._cache._sql(
                        f"INSERT OR IGNORE INTO Cache {_COLUMNS} VALUES {_ROW}",
                        (_FORMAT_KEY, time.time(), time.time(), None,
                         str(STORE_FORMAT).encode()),
                    )  # fmt: skip
                    return
        try:
            found = int(raw)
        except ValueError:
            found = -1
        if found > STORE_FORMAT or found < 1:
            raise StoreFormatError(
                f"{self.location} has store format {raw.decode(errors='replace')!r}; this "
                f"recorder reads format {STORE_FORMAT}. Upgrade recorder to read it."
            )

    def get(self, key: str) -> bytes | None:
        # The row as scan() reads it: diskcache's get() adds expiry and eviction
        # bookkeeping this store never uses, a third of a replayed blob's read.
        try:
            row = self._cache._sql(_GET, (key,)).fetchone()
        except sqlite3.DatabaseError as error:
            raise self._read_error(error, f"reading {key!r}") from error
        return None if row is None else _raw_value(self.location, *row)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _MANY):
            batch = list(keys[start : start + _MANY])
            try:
                rows = self._cache._sql(_get_many(len(batch)), batch).fetchall()
            except sqlite3.DatabaseError as error:
                raise self._read_error(error, f"reading {len(batch)} keys") from error
            for key, *row in rows:
                found[key] = _raw_value(self.location, *row)
        return found

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        # diskcache has no prefix query; its (key, raw) unique index serves a range scan.
        try:
            rows = self._cache._sql(
                "SELECT key, mode, filename, value FROM Cache WHERE key >= ? AND key < ? "
                "AND raw = 1 ORDER BY key",
                (prefix, prefix_end(prefix)),
            ).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._read_error(error, f"reading the keys under {prefix!r}") from error
        return [(k, _raw_value(self.location, m, f, v)) for k, m, f, v in rows]

    def keys(self, prefix: str) -> list[str]:
        try:
            rows = self._cache._sql(
                "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 ORDER BY key",
                (prefix, prefix_end(prefix)),
            ).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._read_error(error, f"listing the keys under {prefix!r}") from error
        return [k for (k,) in rows]

    def last(self, prefix: str) -> tuple[str, bytes] | None:
        try:
            row = self._cache._sql(
                "SELECT key, mode, filename, value FROM Cache WHERE key >= ? AND key < ? "
                "AND raw = 1 ORDER BY key DESC LIMIT 1",
                (prefix, prefix_end(prefix)),
            ).fetchone()
        except sqlite3.DatabaseError as error:
            raise self._read_error(error, f"reading the last key under {prefix!r}") from error
        if row is None:
            return None
        return row[0], _raw_value(self.location, row[1], row[2], row[3])

    def _read_error(self, error: sqlite3.DatabaseError, what: str) -> StoreError:
        if _is_damage(error, self.directory / _DB_NAME):
            return damaged_database(self.location, error)
        return StoreError(f"{self.location}: {what} failed: {error}")

    def write(
        self,
        puts: Mapping[str, bytes] = {},
        *,
        adds: Mapping[str, bytes] = {},
        deletes: Iterable[str] = (),
        sync: bool = False,
    ) -> None:
        for key, value in (*puts.items(), *adds.items()):
            check_item(key, value)
        self._refuse_write()
        deletes = list(deletes)
        quota = self._quota
        if quota is None or not (puts or adds):
            self._apply(puts, adds, deletes, sync)
            return
        # Held across the write, so two threads cannot both pass the check with the last
        # free bytes. swap() takes this lock before SQLite's, as here: no deadlock.
        with quota.lock:
            grown = self._admit(quota, puts, adds, deletes)
            self._apply(puts, adds, deletes, sync)
            if quota.size is not None:
                quota.size += grown

    def _apply(
        self, puts: Mapping[str, bytes], adds: Mapping[str, bytes], deletes: list[str], sync: bool
    ) -> None:
        # Plain statements on diskcache's table, in the layout its own set() writes (raw
        # key, raw value inside the row). The common case, a step and its blobs, is one
        # multi-row upsert: a single statement is atomic on its own, and each sqlite3 call
        # releases the GIL (a thread switch away when another thread is busy).
        now = time.time()
        rows: list[tuple[str, float, float, int | None, bytes]]
        rows = [(k, now, now, 1, v) for k, v in adds.items()]
        rows += [(k, now, now, None, v) for k, v in puts.items()]
        cache = self._cache
        try:
            if not deletes and not sync and 0 < len(rows) <= _MAX_ROWS:
                with prompt_handback():
                    cache._con.execute(_upsert(len(rows)), [x for row in rows for x in row])
                return
            with prompt_handback(), self._synchronous(sync), cache.transact(retry=True):
                con = cache._con
                if deletes:
                    con.executemany(_DELETE, [(key,) for key in deletes])
                for start in range(0, len(rows), _MAX_ROWS):
                    batch = rows[start : start + _MAX_ROWS]
                    con.execute(_upsert(len(batch)), [x for row in batch for x in row])
        except (sqlite3.DatabaseError, OSError) as error:
            full = out_of_space(self.directory, error, _DB_NAME)
            if full is not None:
                raise full from error
            if not isinstance(error, sqlite3.OperationalError):
                raise
            raise StoreError(
                f"{self.location}: the write failed and nothing of it was kept ({error}). "
                "Free disk space or fix the directory, then run again: recorded steps replay."
            ) from error

    # -- the quota -------------------------------------------------------------------

    def _admit(
        self,
        quota: Quota,
        puts: Mapping[str, bytes],
        adds: Mapping[str, bytes],
        deletes: list[str],
    ) -> int:
        """Refuse a write that would take the store past its limit; return how much to
        add to the count once it is written."""
        gross = 0
        for entries in (puts, adds):  # _entry_size inlined: this runs on every write
            for key, value in entries.items():
                gross += len(value) + (
                    len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass"))
                )
        if self._counted(quota) + gross <= quota.limit:
            return gross
        size = self._count(quota)
        growth = self._growth(puts, adds, deletes)
        if growth > 0 and size + growth > quota.limit:
            raise quota_error(self.location, quota.limit, size, growth)
        return growth

    def _counted(self, quota: Quota) -> int:
        """The count, redone first if it was never made or (at most ~1% of the time)
        if another connection has written since."""
        now = time.monotonic()
        if now >= quota.next_look:
            quota.next_look = now + VERSION_INTERVAL
            (version,) = self._cache._con.execute("PRAGMA data_version").fetchone()
            thread = threading.get_ident()
            if quota.seen.get(thread) != version:
                quota.seen[thread] = version
                quota.stale = True
        if quota.size is None or (quota.stale and now >= quota.next_count):
            return self._count(quota)
        return quota.size

    def _count(self, quota: Quota) -> int:
        started = time.monotonic()
        (size,) = self._cache._sql(_COUNT_SQL).fetchone()
        now = time.monotonic()
        quota.size, quota.stale = int(size), False
        quota.next_count = now + COUNT_SPACING * (now - started)
        return quota.size

    def _growth(
        self, puts: Mapping[str, bytes], adds: Mapping[str, bytes], deletes: list[str]
    ) -> int:
        """Exactly how many bytes the write would add (negative: free)."""
        keys = list({*puts, *adds, *deletes})
        old: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            old.update(
                self._cache._sql(
                    f"SELECT key, {_ENTRY_SQL} FROM Cache WHERE raw = 1 AND key IN ({marks})",
                    chunk,
                ).fetchall()
            )
        new = dict(old)
        for key in deletes:
            new.pop(key, None)
        for key, value in adds.items():
            new.setdefault(key, entry_size(key, value))
        for key, value in puts.items():
            new[key] = entry_size(key, value)
        return sum(new.values()) - sum(old.values())

    @contextlib.contextmanager
    def _synchronous(self, sync: bool) -> Iterator[None]:
        if not sync:
            yield
            return
        sql = self._cache._sql
        sql("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            sql("PRAGMA synchronous = NORMAL")

    def swap(self, key: str, expected: bytes | None, new: bytes | None) -> bool:
        self._refuse_write()
        quota = self._quota if new is not None else None
        cache = self._cache
        try:
            with quota.lock if quota else contextlib.nullcontext():
                with self._synchronous(True), cache.transact(retry=True):
                    if cache.get(key, default=None, retry=True) != expected:
                        return False
                    if new is None:
                        cache.delete(key, retry=True)
                        return True
                    growth = entry_size(key, new)
                    growth -= 0 if expected is None else entry_size(key, expected)
                    if quota is not None and growth > 0:
                        limit = quota.limit + SWAP_SLACK
                        if self._counted(quota) + growth > limit:
                            size = self._count(quota)
                            if size + growth > limit:
                                raise quota_error(self.location, quota.limit, size, growth)
                    cache.set(key, new, retry=True)
                if quota is not None and quota.size is not None:
                    quota.size += growth
                return True
        except (sqlite3.DatabaseError, OSError) as error:
            full = out_of_space(self.directory, error, _DB_NAME)
            if full is not None:
                raise full from error
            if not isinstance(error, sqlite3.OperationalError):
                raise
            raise StoreError(f"{self.location}: updating {key!r} failed ({error}).") from error

    def delete_prefix(self, prefix: str) -> int:
        self._refuse_write()
        try:
            with self._cache.transact(retry=True):
                cursor = self._cache._sql(
                    "DELETE FROM Cache WHERE key >= ? AND key < ?", (prefix, prefix_end(prefix))
                )
                return int(cursor.rowcount)
        except (sqlite3.DatabaseError, OSError) as error:
            full = out_of_space(self.directory, error, _DB_NAME)
            if full is not None:
                raise full from error
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE: SQLite's write lock from the first read to the COMMIT, so no
        # other connection commits in between; in WAL mode readers go on meanwhile. A
        # nested transact() (write, delete_prefix, swap inside the block) joins it.
        self._refuse_write()
        try:
            with self._cache.transact(retry=True):
                yield
        except (sqlite3.DatabaseError, OSError) as error:
            full = out_of_space(self.directory, error, _DB_NAME)
            if full is not None:
                raise full from error
            if not isinstance(error, sqlite3.OperationalError):
                raise
            raise StoreError(
                f"{self.location}: a transaction failed and nothing of it was kept ({error})."
            ) from error

    def change_token(self) -> object:
        # data_version changes when another connection commits; connections are per
        # thread, so the thread is part of the token.
        (version,) = self._cache._con.execute("PRAGMA data_version").fetchone()
        return (id(self), threading.get_ident(), version)

    def integrity_check(self) -> list[str]:
        try:
            rows = self._cache._sql("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as error:
            if not _is_damage(error, self.directory / _DB_NAME):
                raise self._read_error(error, "SQLite's integrity check") from error
            return [f"SQLite's integrity check could not run: {error} (the file is damaged)"]
        return [str(r[0]) for r in rows if r[0] != "ok"]

    def close(self) -> None:
        self._cache.close()


_SQLITE_HEADER = b"SQLite format 3\x00"


def _cannot_write(path: Path) -> bool:
    """Whether an existing store at ``path`` cannot be written by this process (its
    directory or database file is not writable, or the file system is read-only)."""
    db = path / _DB_NAME
    if not db.is_file():
        return False
    return not (os.access(path, os.W_OK) and os.access(db, os.W_OK))


def _is_damage(error: sqlite3.DatabaseError, db: Path) -> bool:
    """Whether ``error`` says that a SQLite database file is damaged (truncated,
    overwritten in part), as opposed to a file that was never a SQLite database."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    if name not in ("SQLITE_CORRUPT", "SQLITE_NOTADB") and not (
        "malformed" in text or "not a database" in text
    ):
        return False
    try:
        with db.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError:
        return False
    # A file cut inside its 16-byte header still starts like one.
    return bool(head) and _SQLITE_HEADER.startswith(head)


def damaged_database(location: str, error: BaseException) -> DamagedRecordError:
    """The error for a store whose database file SQLite finds damaged."""
    return DamagedRecordError(
        f"{location}: the database file {_DB_NAME} is damaged ({error}): it was truncated "
        "or overwritten in part (a copy cut short, a full disk, a failing disk), so its "
        "records cannot be trusted or read; nothing was run and nothing is written to it. "
        "To recover what is readable, copy the directory aside and rebuild the rows that "
        f"still read into a new store: `mkdir -m 700 NEW && sqlite3 {_DB_NAME} .recover | "
        f"sqlite3 NEW/{_DB_NAME}` (where .recover fails, use .dump and change its last "
        "line, `ROLLBACK; -- due to errors`, to `COMMIT;`); then `recorder ls --store NEW` "
        "and `recorder verify --store NEW` show what came back (a run that lost records is "
        "refused on entry; export it with `recorder export RUN -o FILE`)."
    )


class _ReadOnlyCache:
    """What :class:`DiskStore` uses of ``diskcache.Cache``, on a read-only database:
    one read-only SQLite connection per thread. A database whose ``-wal`` is absent is
    opened ``immutable`` (SQLite cannot make the ``-shm`` it needs otherwise); one with
    a ``-wal`` (transactions not yet checkpointed) is read through it."""

    def __init__(self, db: Path, timeout: float) -> None:
        self._db, self._timeout = db, timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._con  # noqa: B018 - open now: a failure belongs to opening the store

    @property
    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def _connect(self) -> sqlite3.Connection:
        db = self._db
        where = urllib.parse.quote(str(db))
        wal = db.with_name(db.name + "-wal")
        try:
            con = sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=self._timeout,
                                  isolation_level=None, check_same_thread=False)  # fmt: skip
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.DatabaseError as error:
            if _is_damage(error, db):
                raise damaged_database(str(db.parent), error) from error
            if wal.is_file() and wal.stat().st_size > 0:
                raise StoreError(
                    f"{db.parent} is read-only and its {wal.name} holds transactions not yet "
                    f"in {db.name} ({error}); SQLite cannot read them without writing its "
                    "-shm file. Copy the store to a writable place (`cp -a DIR COPY`) and "
                    "use the copy."
                ) from error
        con = sqlite3.connect(f"file:{where}?immutable=1", uri=True, timeout=self._timeout,
                              isolation_level=None, check_same_thread=False)  # fmt: skip
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            con.close()
            if _is_damage(error, db):
                raise damaged_database(str(db.parent), error) from error
            raise StoreFormatError(
                f"{db.parent} holds a file that is not a recorder store ({error})."
            ) from error
        return con

    def _sql(self, statement: str, *args: Any) -> sqlite3.Cursor:
        return self._con.execute(statement, *args)

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
