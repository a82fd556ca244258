"""A store in Postgres, shared by many processes on many hosts (psycopg 3 and its pool).

``PostgresStore("postgresql://USER[:PASSWORD]@HOST:PORT/DB[?schema=NAME&...]")`` keeps
the store in the tables of one schema (``recorder`` unless ``?schema=`` says otherwise;
any other query parameter goes to libpq as it is). Keys are ``text COLLATE "C"`` (so
scans come back in code point order, as from the directory store) and values ``bytea``:
nothing is pickled, and the recorder's records and blobs are stored unchanged.

- Every write is one statement, so one transaction. As the directory store's writes
  (SQLite ``synchronous=NORMAL``), a plain write commits without waiting for its WAL
  flush (``synchronous_commit = off`` for that statement): once it returns it survives
  the death of this process, and of the server unless that comes within ~0.6 s. A write
  with ``sync=True`` (an effect's intent marker), every :meth:`PostgresStore.swap` (run
  locks, signals), :meth:`PostgresStore.delete_prefix` and every
  :meth:`PostgresStore.transaction` commit with ``synchronous_commit = on`` (set on each
  connection, whatever the server's default): flushed to stable storage first.
- :meth:`PostgresStore.transaction` locks the entries table ``IN EXCLUSIVE MODE``: readers
  go on, other writers wait until it commits (as SQLite's ``BEGIN IMMEDIATE``).
- A run's lock is a session-level advisory lock (:meth:`PostgresStore.hold_lock`) on a
  connection this process keeps for its locks: it dies with the process (its connection
  closes), on any host, so a killed holder's run is taken over at once.
- The schema is versioned: ``schema_version`` lists the migrations applied
  (:data:`MIGRATIONS`, in order, each applied once under an advisory lock by the first
  process that opens the store). A store migrated by a newer recorder is refused.

``docs/storage.md`` documents the schema and ``docs/scale.md`` how to set up a server.
The password of a URL never appears in a message or a ``repr`` (:attr:`location` omits
it). This module is imported only when a Postgres URL is opened.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from ..errors import ConfigError, StoreError, StoreFormatError
from .base import NO_HOLD, SWAP_SLACK, LockHold, Store, check_item, prefix_end
from .quota import COUNT_SPACING, check_limit, entry_size, quota_error, resolve_limit

__all__ = ["DEFAULT_SCHEMA", "MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "redact_url"]

DEFAULT_SCHEMA = "recorder"

MIGRATIONS: list[list[str]] = [
    # 1: the entries (str keys in code point order, raw bytes values) and a sequence that
    # every write advances (change_token tells another writer's writes from ours).
    [
        'CREATE TABLE {schema}.entries (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)',
        "CREATE SEQUENCE {schema}.writes",
    ],
]
"""The schema's migrations: migration ``n`` (1-based) is ``MIGRATIONS[n - 1]``, SQL run
in one transaction with ``{schema}`` standing for the quoted schema name. Append only:
an applied migration never changes."""
SCHEMA_VERSION = len(MIGRATIONS)

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_CHUNK = 1000
"""Keys per statement of a read by many keys."""
_RECOUNT = 1.0
"""Seconds after which the quota's count of the store is redone (other processes write)."""


def redact_url(url: str) -> str:
    """``url`` without its password (in the authority or a ``password=`` parameter)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username
    netloc = f"{urllib.parse.quote(user, safe='')}@{host}" if user else host
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "password"]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query), "")
    )


def _split_url(url: str) -> tuple[str, str, str | None]:
    """The libpq URL (``schema=`` taken out), the schema, and the password (to scrub)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"schema={schema!r} in {redact_url(url)} is not a plain Postgres identifier: use "
            "letters, digits and underscores (at most 63, not starting with a digit)."
        )
    rest = [(k, v) for k, v in query if k != "schema"]
    password = parts.password or next((v for k, v in rest if k == "password"), None)
    libpq = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(rest), "")
    )
    return libpq, schema, password


def _key64(text: str) -> int:
    """A signed 64-bit advisory lock key for ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


# -- run locks: session advisory locks on one connection per process and server --------


class _LockSession:
    """The connection on which this process holds its session locks on one server, and
    how many holds each key has (a key is locked once, however often it is held)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.conn: psycopg.Connection[Any] | None = None
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            # A new session holds nothing: locks of a lost one went with it.
            self.counts.clear()
            conn = self.conn = psycopg.connect(self.conninfo, autocommit=True)
        return conn

    def hold(self, key: int) -> bool:
        with self.lock:
            if self.counts.get(key, 0) > 0:
                self.counts[key] += 1
                return True
            row = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is None or not row[0]:
                return False
            self.counts[key] = 1
            return True

    def release(self, key: int) -> None:
        with self.lock:
            left = self.counts.get(key, 0) - 1
            if left > 0:
                self.counts[key] = left
                return
            self.counts.pop(key, None)
            conn = self.conn
            if left == 0 and conn is not None and not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


_sessions: dict[str, _LockSession] = {}
_sessions_lock = threading.Lock()
_inherited: list[object] = []
"""Lock sessions and pools a forked child inherited: kept referenced and never closed,
since closing them would end the parent's sessions on the same sockets."""


def _after_fork() -> None:
    _inherited.extend(_sessions.values())
    _sessions.clear()


def _close_sessions() -> None:
    """At exit: close this process's lock connections (their locks go as they would
    with the process)."""
    for session in list(_sessions.values()):
        conn = session.conn
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_close_sessions)


class _Hold(LockHold):
    def __init__(self, session: _LockSession, key: int) -> None:
        self._session: _LockSession | None = session
        self._key = key

    def release(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(psycopg.Error):  # a lost session holds nothing
                session.release(self._key)


# -- the store --------------------------------------------------------------------------


class _Count:
    """The quota's count of the bytes of keys and values, reserved before each write."""

    __slots__ = ("limit", "lock", "next_count", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size: int | None = None
        self.next_count = 0.0
        self.lock = threading.Lock()


class PostgresStore(Store):
    """The store in a Postgres schema (see the module's docstring).

    ``url``: ``postgresql://`` or ``postgres://``, with ``?schema=NAME`` to choose the
    schema. ``create=False`` refuses a schema that holds no store instead of making one.
    ``min_size`` / ``max_size``: the pool's connections (each borrowed for one statement,
    or for one :meth:`transaction`); a process also keeps one connection for its run
    locks. ``read_only`` defaults to whether the role may not write the entries (or the
    server is a read-only standby)."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        max_store_bytes: int | None = None,
        read_only: bool | None = None,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 30.0,
    ) -> None:
        limit = resolve_limit(max_store_bytes)
        libpq, schema, password = _split_url(url)
        self._secrets = [s for s in {password, urllib.parse.quote(password or "")} if s]
        self.location = redact_url(url)
        self.schema = schema
        self.pid = os.getpid()
        self.closed = False
        self._conninfo = libpq
        self._count: _Count | None = None
        self._own_writes = 0
        self._local = threading.local()
        names = {"schema": sql.Identifier(schema)}
        self._sql = {name: sql.SQL(text).format(**names) for name, text in _STATEMENTS.items()}
        try:
            with psycopg.connect(libpq, autocommit=True, connect_timeout=int(timeout)) as conn:
                self._migrate(conn, create)
                writable = self._writable(conn)
        except psycopg.Error as error:
            self._fail(error, "opening the store")
        self.read_only = (not writable) if read_only is None else read_only
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            libpq,
            min_size=min_size,
            max_size=max(min_size, max_size),
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=timeout,
            name=f"recorder {self.location}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except Exception as error:
            self._pool.close()
            self._fail(error, "opening its connection pool")
        self.max_store_bytes = limit

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    # -- opening ---------------------------------------------------------------------

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET synchronous_commit = on")

    def _migrate(self, conn: psycopg.Connection[Any], create: bool) -> None:
        version = self._version(conn)
        if version == SCHEMA_VERSION:
            return
        if version is None and not create:
            raise StoreFormatError(
                f"no recorder store in schema {self.schema!r} of {self.location}; point "
                "--store or $RECORDER_STORE at the database (and ?schema=) a run recorded into."
            )
        with conn.transaction():
            # One process migrates; the others wait here, then find the work done.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_key64("migrate " + self.schema),))
            version = self._version(conn)
            if version is None:
                self._claim_schema(conn)
                version = 0
            if version > SCHEMA_VERSION:
                raise StoreFormatError(
                    f"{self.location} (schema {self.schema!r}) has schema version {version}; "
                    f"this recorder knows versions up to {SCHEMA_VERSION}. Upgrade recorder "
                    "to use it."
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(sql.SQL(statement).format(schema=sql.Identifier(self.schema)))
                conn.execute(self._sql["migrated"], (number,))

    def _version(self, conn: psycopg.Connection[Any]) -> int | None:
        """The schema's version, ``None`` if it holds no store yet."""
        row = conn.execute(
            "SELECT to_regclass(format('%%I.schema_version', %s::text)) IS NOT NULL",
            (self.schema,),
        ).fetchone()
        if row is None or not row[0]:
            return None
        found = conn.execute(self._sql["version"]).fetchone()
        return int(found[0]) if found is not None and found[0] is not None else 0

    def _claim_schema(self, conn: psycopg.Connection[Any]) -> None:
        schema = sql.Identifier(self.schema)
        row = conn.execute(
            "SELECT count(c.oid) FROM pg_namespace n LEFT JOIN pg_class c "
            "ON c.relnamespace = n.oid WHERE n.nspname = %s GROUP BY n.oid",
            (self.schema,),
        ).fetchone()
        if row is not None and row[0] > 0:
            raise StoreFormatError(
                f"schema {self.schema!r} of {self.location} holds tables but no recorder "
                "schema_version, so it is not a recorder store; choose another schema with "
                "?schema=NAME in the URL."
            )
        if row is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.schema_version (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema)
        )

    def _writable(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT NOT pg_is_in_recovery() AND has_table_privilege("
            "format('%%I.entries', %s::text), 'INSERT, UPDATE, DELETE')",
            (self.schema,),
        ).fetchone()
        return bool(row and row[0])

    def _fail(self, error: BaseException, what: str) -> NoReturn:
        text = str(error).strip() or type(error).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        raise StoreError(
            f"{self.location}: {what} failed ({type(error).__name__}: {text}). Check that the "
            "server runs and the URL's host, port, database, user and password are right "
            "(see docs/scale.md)."
        ) from None

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """The connection of this thread's open transaction, else one from the pool for
        the block; a psycopg error becomes a StoreError naming ``what``."""
        joined: psycopg.Connection[Any] | None = getattr(self._local, "tx", None)
        try:
            if joined is not None:
                yield joined
                return
            if self.closed:
                raise StoreError(f"{self.location}: the store was closed; open it again.")
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as error:
            self._fail(error, what)

    def _refuse_write(self) -> None:
        if self.read_only:
            raise StoreError(
                f"{self.location} is opened read-only (the role may not write schema "
                f"{self.schema!r}, or the server is a read-only standby): it can be replayed, "
                "verified and exported, not written. Grant the role INSERT, UPDATE and DELETE "
                "on its tables, or use a primary server."
            )

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._connection(f"reading {key!r}") as conn:
            row = conn.execute(self._sql["get"], (key,), binary=True).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        if not keys:
            return found
        with self._connection(f"reading {len(keys)} keys") as conn:
            for start in range(0, len(keys), _CHUNK):
                batch = list(keys[start : start + _CHUNK])
                rows = conn.execute(self._sql["get_many"], (batch,), binary=True).fetchall()
                found.update((k, bytes(v)) for k, v in rows)
        return found

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        with self._connection(f"reading the keys under {prefix!r}") as conn:
            rows = conn.execute(
                self._sql["scan"], (prefix, prefix_end(prefix)), binary=True
            ).fetchall()
        return [(k, bytes(v)) for k, v in rows]

    def keys(self, prefix: str) -> list[str]:
        with self._connection(f"listing the keys under {prefix!r}") as conn:
            rows = conn.execute(self._sql["keys"], (prefix, prefix_end(prefix))).fetchall()
        return [k for (k,) in rows]

    def last(self, prefix: str) -> tuple[str, bytes] | None:
        with self._connection(f"reading the last key under {prefix!r}") as conn:
            row = conn.execute(
                self._sql["last"], (prefix, prefix_end(prefix)), binary=True
            ).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    # -- writes -------------------------------------------------------------------------

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
            _check_key(key)
        self._refuse_write()
        # Three disjoint sets, as MemoryStore applies them: deletes, then adds where the
        # key is absent (a key deleted here is absent), then puts. One statement must not
        # touch a row twice.
        gone = [k for k in dict.fromkeys(deletes) if k not in puts]
        dropped = set(gone)
        replace = {k: v for k, v in adds.items() if k in dropped and k not in puts}
        replace.update(puts)
        add = {k: v for k, v in adds.items() if k not in replace}
        gone = [k for k in gone if k not in replace]
        if not (gone or add or replace):
            return
        # Not synced: committed without waiting for the WAL flush, as the directory
        # store's SQLite commits with synchronous=NORMAL: the write survives this process
        # being killed at once, and a server crash unless it comes within ~0.6 s (three
        # wal_writer_delay). Synced, and inside a transaction: flushed before returning.
        durable = "on" if sync or getattr(self._local, "tx", None) is not None else "off"
        params = (durable, gone, list(add), list(add.values()), list(replace),
                  list(replace.values()))  # fmt: skip
        count = self._count
        reserved = 0
        if count is not None and (add or replace):
            reserved = self._admit(count, replace, add, gone)
        try:
            with self._connection("the write") as conn:
                self._own_writes += 1
                conn.execute(self._sql["write"], params)
        except BaseException:
            if count is not None and reserved:
                with count.lock:
                    if count.size is not None:
                        count.size -= reserved
            raise

    def _admit(
        self, count: _Count, puts: Mapping[str, bytes], adds: Mapping[str, bytes], gone: list[str]
    ) -> int:
        """Refuse a write that would take the store past its limit, or reserve its bytes
        in the count (returned, to give back if the write fails)."""
        gross = sum(entry_size(k, v) for entries in (puts, adds) for k, v in entries.items())
        with count.lock:
            size = self._counted(count)
            if size + gross <= count.limit:
                count.size = size + gross
                return gross
            size = self._recount(count)
            growth = self._growth(puts, adds, gone)
            if growth > 0 and size + growth > count.limit:
                raise quota_error(self.location, count.limit, size, growth)
            count.size = size + growth
            return growth

    def _counted(self, count: _Count) -> int:
        if count.size is None or time.monotonic() >= count.next_count:
            return self._recount(count)
        return count.size

    def _recount(self, count: _Count) -> int:
        started = time.monotonic()
        with self._connection("counting the store's bytes") as conn:
            row = conn.execute(self._sql["count"]).fetchone()
        now = time.monotonic()
        count.size = int(row[0]) if row is not None else 0
        count.next_count = now + max(_RECOUNT, COUNT_SPACING * (now - started))
        return count.size

    def _growth(
        self, puts: Mapping[str, bytes], adds: Mapping[str, bytes], gone: Iterable[str]
    ) -> int:
        """Exactly how many bytes the write would add (negative: free)."""
        keys = list({*puts, *adds, *gone})
        old: dict[str, int] = {}
        with self._connection("sizing the write") as conn:
            for start in range(0, len(keys), _CHUNK):
                rows = conn.execute(self._sql["sizes"], (keys[start : start + _CHUNK],))
                old.update((k, int(n)) for k, n in rows.fetchall())
        new = dict(old)
        for key in gone:
            new.pop(key, None)
        for key, value in adds.items():
            new.setdefault(key, entry_size(key, value))
        for key, value in puts.items():
            new[key] = entry_size(key, value)
        return sum(new.values()) - sum(old.values())

    def swap(self, key: str, expected: bytes | None, new: bytes | None) -> bool:
        if new is not None:
            check_item(key, new)
        _check_key(key)
        self._refuse_write()
        count = self._count
        growth = 0
        if count is not None and new is not None:
            growth = entry_size(key, new) - (0 if expected is None else entry_size(key, expected))
            if growth > 0:
                with count.lock:
                    size = self._counted(count)
                    if size + growth > count.limit + SWAP_SLACK:
                        size = self._recount(count)
                        if size + growth > count.limit + SWAP_SLACK:
                            raise quota_error(self.location, count.limit, size, growth)
        with self._connection(f"updating {key!r}") as conn:
            self._own_writes += 1
            if expected is None and new is None:
                conn.execute(self._sql["tick"])
                row = conn.execute(self._sql["get"], (key,)).fetchone()
                return row is None
            if expected is None:
                done = conn.execute(self._sql["swap_add"], (key, new)).rowcount
            else:
                cursor = (
                    conn.execute(self._sql["swap_delete"], (key, expected))
                    if new is None
                    else conn.execute(self._sql["swap_set"], (new, key, expected))
                )
                found = cursor.fetchone()
                done = int(found[0]) if found is not None else 0
        if done == 1 and count is not None and count.size is not None:
            with count.lock:
                if count.size is not None:
                    count.size += growth
        return done == 1

    def delete_prefix(self, prefix: str) -> int:
        self._refuse_write()
        with self._connection(f"deleting the keys under {prefix!r}") as conn:
            self._own_writes += 1
            row = conn.execute(self._sql["delete_prefix"], (prefix, prefix_end(prefix)))
            found = row.fetchone()
        return int(found[0]) if found is not None else 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # EXCLUSIVE mode conflicts with the ROW EXCLUSIVE lock every INSERT, UPDATE and
        # DELETE takes, not with reads: other writers wait for the COMMIT, readers go on.
        # A write, swap or delete_prefix of this thread inside the block joins it.
        self._refuse_write()
        if getattr(self._local, "tx", None) is not None:
            yield
            return
        if self.closed:
            raise StoreError(f"{self.location}: the store was closed; open it again.")
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(self._sql["lock_table"])
                self._own_writes += 1
                conn.execute(self._sql["tick"])
                self._local.tx = conn
                try:
                    yield
                finally:
                    self._local.tx = None
        except psycopg.Error as error:
            self._fail(error, "a transaction (nothing of it was kept)")

    # -- locks, tokens, checks -----------------------------------------------------------

    def _lock_key(self, name: str) -> int:
        return _key64(f"run lock {self.schema} {name}")

    def hold_lock(self, name: str) -> LockHold | None:
        if self.read_only:
            return NO_HOLD
        with _sessions_lock:
            session = _sessions.get(self._conninfo)
            if session is None:
                session = _sessions[self._conninfo] = _LockSession(self._conninfo)
        key = self._lock_key(name)
        try:
            held = session.hold(key)
        except psycopg.Error as error:
            self._fail(error, f"taking the lock of {name!r}")
        return _Hold(session, key) if held else None

    def lock_alive(self, name: str) -> bool | None:
        with self._connection(f"asking who holds {name!r}") as conn:
            row = conn.execute(self._sql["lock_alive"], {"k": self._lock_key(name)}).fetchone()
        return bool(row and row[0])

    def change_token(self) -> object:
        # Every write advances the `writes` sequence; this object counts its own, so the
        # difference changes only when someone else wrote (or a write of ours failed).
        with self._connection("reading the store's write count") as conn:
            row = conn.execute(self._sql["writes"]).fetchone()
        total = int(row[0]) if row is not None and row[1] else 0
        return (id(self), total - self._own_writes)

    def integrity_check(self) -> list[str]:
        with self._connection("checking the schema") as conn:
            version = self._version(conn)
        if version != SCHEMA_VERSION:
            return [f"schema {self.schema!r} has version {version}, expected {SCHEMA_VERSION}"]
        return []

    @property
    def max_store_bytes(self) -> int | None:
        count = self._count
        return None if count is None else count.limit

    @max_store_bytes.setter
    def max_store_bytes(self, limit: int | None) -> None:
        limit = check_limit(limit)
        self._count = None if limit is None else _Count(limit)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pid != os.getpid():
            _inherited.append(self._pool)  # the parent's connections: never closed here
            return
        self._pool.close()


def _check_key(key: str) -> None:
    if "\x00" in key:
        raise StoreError(
            f"store key {key!r} holds a NUL character, which Postgres text cannot hold; "
            "name runs without NUL characters."
        )


_STATEMENTS = {
    "version": "SELECT max(version) FROM {schema}.schema_version",
    "migrated": "INSERT INTO {schema}.schema_version (version) VALUES (%s)",
    "get": "SELECT value FROM {schema}.entries WHERE key = %s",
    "get_many": "SELECT key, value FROM {schema}.entries WHERE key = ANY(%s::text[])",
    "scan": "SELECT key, value FROM {schema}.entries WHERE key >= %s AND key < %s ORDER BY key",
    "keys": "SELECT key FROM {schema}.entries WHERE key >= %s AND key < %s ORDER BY key",
    "last": (
        "SELECT key, value FROM {schema}.entries WHERE key >= %s AND key < %s "
        "ORDER BY key DESC LIMIT 1"
    ),
    "write": (
        "WITH tick AS (SELECT nextval('{schema}.writes')), "
        "durable AS (SELECT set_config('synchronous_commit', %s, true)), "
        "gone AS (DELETE FROM {schema}.entries WHERE key = ANY(%s::text[])), "
        "added AS (INSERT INTO {schema}.entries (key, value) "
        "SELECT * FROM unnest(%s::text[], %s::bytea[]) ON CONFLICT (key) DO NOTHING), "
        "put AS (INSERT INTO {schema}.entries (key, value) "
        "SELECT * FROM unnest(%s::text[], %s::bytea[]) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value) "
        "SELECT (SELECT * FROM tick), (SELECT * FROM durable)"
    ),
    "tick": "SELECT nextval('{schema}.writes')",
    "swap_add": (
        "WITH tick AS (SELECT nextval('{schema}.writes')) INSERT INTO {schema}.entries "
        "(key, value) SELECT %s, %s FROM tick ON CONFLICT (key) DO NOTHING"
    ),
    "swap_delete": (
        "WITH tick AS (SELECT nextval('{schema}.writes')), done AS (DELETE FROM "
        "{schema}.entries WHERE key = %s AND value = %s RETURNING 1) "
        "SELECT (SELECT count(*) FROM done), (SELECT * FROM tick)"
    ),
    "swap_set": (
        "WITH tick AS (SELECT nextval('{schema}.writes')), done AS (UPDATE {schema}.entries "
        "SET value = %s WHERE key = %s AND value = %s RETURNING 1) "
        "SELECT (SELECT count(*) FROM done), (SELECT * FROM tick)"
    ),
    "delete_prefix": (
        "WITH tick AS (SELECT nextval('{schema}.writes')), gone AS (DELETE FROM "
        "{schema}.entries WHERE key >= %s AND key < %s RETURNING 1) "
        "SELECT (SELECT count(*) FROM gone), (SELECT * FROM tick)"
    ),
    "lock_table": "LOCK TABLE {schema}.entries IN EXCLUSIVE MODE",
    "lock_alive": (
        "SELECT CASE WHEN pg_try_advisory_lock(%(k)s) THEN NOT pg_advisory_unlock(%(k)s) "
        "ELSE true END"
    ),
    "writes": "SELECT last_value, is_called FROM {schema}.writes",
    "count": (
        "SELECT COALESCE(SUM(octet_length(key) + octet_length(value)), 0) FROM {schema}.entries"
    ),
    "sizes": (
        "SELECT key, octet_length(key) + octet_length(value) FROM {schema}.entries "
        "WHERE key = ANY(%s::text[])"
    ),
}
"""The store's SQL, ``{schema}`` standing for the quoted schema name."""
