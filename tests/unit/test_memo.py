"""The in-process cache of built replay results."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from recorder.errors import ConfigError
from recorder.memo import DEFAULT_MAX_BYTES, MEMO_BYTES_ENV, ResultCache, check_store
from recorder.store import DiskStore, MemoryStore


def test_hands_out_copies_and_keeps_its_own() -> None:
    cache: ResultCache[list[int]] = ResultCache(list)
    built = [1, 2]
    cache.put("sha256:a", built, size=10)
    built.append(3)  # the builder's object is the caller's: the cache kept a copy
    first = cache.get("sha256:a")
    assert first == [1, 2]
    assert first is not None
    first.append(4)
    assert cache.get("sha256:a") == [1, 2]
    assert cache.get("sha256:b") is None
    assert cache.hits == 2


def test_a_kept_form_is_made_anew_by_its_own_maker_for_each_get() -> None:
    cache: ResultCache[list[int]] = ResultCache(list, max_bytes=100)
    form = (1, 2)  # what a prebuilt blob decodes to; the cache keeps this very object
    cache.put_form("sha256:f", form, size=60, make=lambda f: [*f, 0])
    first, second = cache.get("sha256:f"), cache.get("sha256:f")
    assert first == second == [1, 2, 0] and first is not second
    cache.put("sha256:o", [7], size=50)  # forms and built objects share one bound
    assert cache.get("sha256:f") is None and cache.get("sha256:o") == [7]
    cache.put_form("sha256:big", form, size=101, make=list)
    assert cache.get("sha256:big") is None


def test_bounded_by_recorded_size_least_recently_used_first() -> None:
    cache: ResultCache[dict[str, int]] = ResultCache(copy.deepcopy, max_bytes=100)
    for name in "abc":
        cache.put(name, {name: 1}, size=40)
    assert len(cache) == 2 and cache.get("a") is None  # 120 > 100: "a" went first
    assert cache.get("b") == {"b": 1}  # now "c" is the least recently used
    cache.put("d", {"d": 1}, size=40)
    assert cache.get("c") is None and cache.get("b") is not None
    cache.put("huge", {"x": 1}, size=101)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("b", {"b": 2}, size=40)  # a replaced entry is counted once
    assert len(cache) == 2 and cache.get("b") == {"b": 2}
    cache.clear()
    assert len(cache) == 0


def test_emptied_when_a_store_is_new_or_changed_by_another_connection(tmp_path: Path) -> None:
    cache: ResultCache[list[int]] = ResultCache(list)
    store = DiskStore(tmp_path / "s")
    other = DiskStore(tmp_path / "s")  # another connection, as another process has
    try:
        cache.put("sha256:a", [1], size=1)
        check_store(store)  # first sight of this store: what was built may not be its
        assert len(cache) == 0
        cache.put("sha256:a", [1], size=1)
        store.write({"k": b"mine"})  # this connection's own writes change nothing
        check_store(store)
        assert cache.get("sha256:a") == [1]
        other.write({"k": b"theirs"})
        check_store(store)
        assert cache.get("sha256:a") is None
    finally:
        store.close()
        other.close()
    memory = MemoryStore()
    cache.put("sha256:b", [2], size=1)
    check_store(memory)
    check_store(memory)
    assert len(cache) == 0
    cache.put("sha256:b", [2], size=1)
    check_store(memory)
    assert cache.get("sha256:b") == [2]


def test_the_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ResultCache(list).max_bytes == DEFAULT_MAX_BYTES
    monkeypatch.setenv(MEMO_BYTES_ENV, "1_000")
    assert ResultCache(list).max_bytes == 1000
    monkeypatch.setenv(MEMO_BYTES_ENV, "0")
    off: ResultCache[list[int]] = ResultCache(list)
    off.put("sha256:a", [1], size=1)
    assert off.get("sha256:a") is None
    monkeypatch.setenv(MEMO_BYTES_ENV, "lots")
    with pytest.raises(ConfigError, match="RECORDER_MEMO_BYTES='lots' is not a number"):
        ResultCache(list)
