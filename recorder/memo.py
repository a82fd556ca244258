"""Replayed results already built in this process, by content hash.

A replayed LLM call returns a litellm ``ModelResponse`` rebuilt from its recorded JSON;
that rebuild (pydantic validation of every nested model) costs more than the rest of a
replay together. A large result is a content-addressed blob, so one hash always builds
the same object: a :class:`ResultCache` keeps, for each recent hash, either the object
built from it (and hands out copies) or the prebuilt form it was loaded from (and makes
each replay its object from that form, see :class:`recorder.call.Prebuilt`), so a step
replayed again in the same process (a cell re-run in the same kernel, a test replaying
a fixture run) skips the read and the decoding. Nothing here is ever written anywhere.

The cache is bounded by the recorded size of what it holds (least recently used first
out) and never changes what a replay returns: a copy of an object equal to the one the
slow path builds, owned by the caller. Nor does it hide damage: every cache is emptied
when a run is entered on a store that may have changed behind this process's back
(:func:`check_store`), so a blob overwritten or deleted by another connection or process
is read, and reported, again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    from .stores import Store

__all__ = ["DEFAULT_MAX_BYTES", "MEMO_BYTES_ENV", "ResultCache", "check_store",
           "default_max_bytes"]  # fmt: skip

T = TypeVar("T")

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
"""Recorded JSON bytes a cache holds by default (a built litellm response takes about
2.5 times its JSON in memory: ~80 MB). ``$RECORDER_MEMO_BYTES`` overrides it; 0 turns
the caches off."""
MEMO_BYTES_ENV = "RECORDER_MEMO_BYTES"


def default_max_bytes() -> int:
    """``$RECORDER_MEMO_BYTES`` if set, else :data:`DEFAULT_MAX_BYTES`."""
    text = os.environ.get(MEMO_BYTES_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_BYTES
    if not text.isdigit():
        raise ConfigError(
            f"{MEMO_BYTES_ENV}={text!r} is not a number of bytes: set it to an integer "
            "(0 turns off keeping replayed responses in memory) or unset it."
        )
    return int(text)


class ResultCache(Generic[T]):
    """Built results by the hash of their recorded blob, up to ``max_bytes`` of recorded
    size (default: :func:`default_max_bytes`). ``copy`` makes the caller's own copy of
    a cached object (it must share nothing mutable with it)."""

    def __init__(self, copy: Callable[[T], T], *, max_bytes: int | None = None) -> None:
        self._copy = copy
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self._entries: OrderedDict[str, tuple[Any, int, Callable[[Any], T]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        _caches.add(self)

    def get(self, ref: str) -> T | None:
        """A copy of the object built for ``ref``, or None."""
        with self._lock:
            entry = self._entries.get(ref)
            if entry is None:
                return None
            self._entries.move_to_end(ref)
            self.hits += 1
        source, _, make = entry
        return make(source)

    def put(self, ref: str, value: T, size: int) -> None:
        """Keep a private copy of ``value``, built from ``size`` recorded bytes."""
        if size <= self.max_bytes:
            self._keep(ref, self._copy(value), size, self._copy)

    def put_form(self, ref: str, form: Any, size: int, make: Callable[[Any], T]) -> None:
        """Keep ``form`` itself (``size`` recorded bytes; nobody else may hold it): a
        later :meth:`get` returns ``make(form)``, which must be a new object sharing
        nothing mutable with ``form`` (see :class:`recorder.call.Prebuilt`)."""
        if size <= self.max_bytes:
            self._keep(ref, form, size, make)

    def _keep(self, ref: str, source: Any, size: int, make: Callable[[Any], T]) -> None:
        with self._lock:
            old = self._entries.pop(ref, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[ref] = (source, size, make)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped, _) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


_caches: weakref.WeakSet[ResultCache[Any]] = weakref.WeakSet()
_tokens: weakref.WeakKeyDictionary[Store, object] = weakref.WeakKeyDictionary()
_tokens_lock = threading.Lock()


def check_store(store: Store) -> None:
    """Called as a run is entered: if ``store`` is new to this process or may have been
    changed by someone else since it was last entered, empty every cache."""
    token = store.change_token()
    with _tokens_lock:
        if _tokens.get(store) == token:
            return
        _tokens[store] = token
        caches = list(_caches)
    for cache in caches:
        cache.clear()
