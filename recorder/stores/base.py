"""The store contract: a small, durable ``str -> bytes`` map, and what its backends share.

A :class:`Store` maps ``str`` keys to ``bytes`` values and knows nothing of runs or
steps (that is :mod:`recorder.journal`'s job). It promises three things:

- every :meth:`Store.write` is atomic and durable once it returns (a killed process
  loses at most the write in flight);
- :meth:`Store.scan` returns the entries under a prefix in key order (code point order,
  which is the byte order of the keys' UTF-8);
- nothing is ever evicted, and nothing is ever unpickled.

Backends: :class:`~recorder.stores.memory.MemoryStore` (a dict),
:class:`~recorder.stores.disk.DiskStore` (one SQLite database through diskcache, the
default) and :class:`~recorder.stores.postgres.PostgresStore` (a Postgres schema, for
many processes on many hosts). :func:`recorder.stores.open_store` turns a path or URL
into one of them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError, DamagedRecordError

__all__ = ["NO_HOLD", "SWAP_SLACK", "LockHold", "Store", "check_item", "prefix_end"]


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    if not prefix:
        return "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


SWAP_SLACK = 4096
"""A swap (the run lock) may pass the size limit by this much: taking a lock must still
work at the limit, or `recorder rm` could not make room. A lock row goes when released."""


def check_item(key: object, value: object) -> None:
    """Refuse a key that is not ``str`` or a value that is not ``bytes`` (TypeError)."""
    if type(key) is not str:
        raise TypeError(f"store keys are str, got {type(key).__name__}")
    if type(value) is not bytes:
        raise TypeError(f"store values are bytes, got {type(value).__name__} for {key!r}")


class LockHold:
    """A session lock held by this process (see :meth:`Store.hold_lock`)."""

    def release(self) -> None:
        """Give the lock up (once; a second call does nothing)."""


NO_HOLD = LockHold()
"""The hold of a store without session locks: it holds nothing."""


class Store(ABC):
    """A durable, atomic ``str -> bytes`` map with ordered prefix scans."""

    location: str = "<store>"
    read_only: bool = False
    """Opened read-only (the files or the file system cannot be written): reads work,
    every write raises StoreError, and a run entered on it replays without writing."""
    damaged: DamagedRecordError | None = None
    """Set when the database file is damaged (truncated...): the store is opened
    read-only so that what still reads can be listed, verified and exported; entering
    a run raises this error."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``."""

    @abstractmethod
    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def write(
        self,
        puts: Mapping[str, bytes] = {},
        *,
        adds: Mapping[str, bytes] = {},
        deletes: Iterable[str] = (),
        sync: bool = False,
    ) -> None:
        """Apply all changes at once or none: ``puts`` overwrite, ``adds`` are written
        only where the key is absent (content-addressed data), ``deletes`` go. With
        ``sync`` the change is flushed to stable storage before returning."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many went."""

    @abstractmethod
    def swap(self, key: str, expected: bytes | None, new: bytes | None) -> bool:
        """Atomically set ``key`` to ``new`` (``None`` deletes it) if its value is
        ``expected`` (``None``: absent); return whether it did. Writes are synced."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A block whose reads and writes, made by this thread, are one transaction that
        no other writer (thread or process) interleaves with: its reads see one state
        that no other write changes until the block ends, and its writes apply together,
        or not at all if the block raises or the process dies in it. Other writers wait
        for it; keep it short. Maintenance that must decide on what it reads (delete a
        run, collect the blobs no step needs) runs in one."""

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The values under ``keys`` that exist, by key (one read where the store can:
        a replay reads the blobs of the steps ahead together)."""
        found = {}
        for key in keys:
            value = self.get(key)
            if value is not None:
                found[key] = value
        return found

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, in order."""
        return [k for k, _ in self.scan(prefix)]

    def last(self, prefix: str) -> tuple[str, bytes] | None:
        """The entry with the greatest key starting with ``prefix``, if any."""
        found = self.scan(prefix)
        return found[-1] if found else None

    def close(self) -> None:  # noqa: B027 - optional for implementations
        """Release resources; the store may be opened again."""

    def integrity_check(self) -> list[str]:
        """Problems the storage engine itself finds (empty when none)."""
        return []

    def change_token(self) -> object:
        """A value that differs once something other than this object may have changed
        the store (another connection, another process). Results built from the store's
        blobs are kept in memory (:mod:`recorder.memo`) only while it stays the same."""
        return id(self)

    @property
    def max_store_bytes(self) -> int | None:
        """The most bytes of keys and values the store may hold (``None``: no limit). A
        write that would pass it raises QuotaExceededError; nothing is evicted."""
        return None

    @max_store_bytes.setter
    def max_store_bytes(self, limit: int | None) -> None:
        if limit is not None:
            raise ConfigError(f"{type(self).__name__} does not support max_store_bytes.")

    def hold_lock(self, name: str) -> LockHold | None:
        """Take the session lock ``name`` for this process, or return ``None`` if another
        live process (on any host) holds it. A session lock dies with its holder: when
        the process is killed, the lock goes with its connection, so it never needs a
        stale-lock check. Taken again by the same process it is counted, and held until
        each :meth:`LockHold.release`.

        A store without session locks (this default: the directory and memory stores)
        returns a hold that does nothing; the lock row and the holder's pid then decide
        (:mod:`recorder.locks`)."""
        return NO_HOLD

    def lock_alive(self, name: str) -> bool | None:
        """Whether some process holds the session lock ``name`` now (``None``: this store
        has no session locks, so only the lock row's pid can tell)."""
        return None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
