"""The store in a dict: for tests and throwaway runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping

from .base import SWAP_SLACK, Store, check_item
from .quota import check_limit, entry_size, quota_error

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """A :class:`Store` in a dict. Shares nothing between instances. With
    ``max_store_bytes`` it counts its keys' UTF-8 bytes and its values' bytes exactly."""

    def __init__(self, *, max_store_bytes: int | None = None) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._size = 0
        self._limit = check_limit(max_store_bytes)
        self.location = f"<memory {id(self):#x}>"

    @property
    def max_store_bytes(self) -> int | None:
        return self._limit

    @max_store_bytes.setter
    def max_store_bytes(self, limit: int | None) -> None:
        self._limit = check_limit(limit)

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))

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
        with self._lock:
            data = self._data
            changes: dict[str, bytes | None] = dict.fromkeys(deletes)
            for key, value in adds.items():
                if changes.get(key, data.get(key)) is None:
                    changes[key] = value
            changes.update(puts)
            self._apply(changes)

    def _apply(self, changes: Mapping[str, bytes | None], *, slack: int = 0) -> None:
        data, limit = self._data, self._limit
        growth = 0
        for key, value in changes.items():
            old = data.get(key)
            growth += (0 if value is None else entry_size(key, value)) - (
                0 if old is None else entry_size(key, old)
            )
        if limit is not None and growth > 0 and self._size + growth > limit + slack:
            raise quota_error(self.location, limit, self._size, growth)
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._size += growth

    def swap(self, key: str, expected: bytes | None, new: bytes | None) -> bool:
        if new is not None:
            check_item(key, new)
        with self._lock:
            if self._data.get(key) != expected:
                return False
            self._apply({key: new}, slack=SWAP_SLACK)
            return True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # Other threads' writes wait on the lock; a failed block is undone from a copy.
        with self._lock:
            data, size = dict(self._data), self._size
            try:
                yield
            except BaseException:
                self._data.clear()
                self._data.update(data)
                self._size = size
                raise

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            self._apply(dict.fromkeys(doomed))
            return len(doomed)
