"""``Store.transaction``: what clean-up (``recorder rm``, blob collection) relies on. Its
writes apply together or not at all, and no other writer commits between its reads and
its writes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.journal import Journal
from recorder.keys import hash_bytes
from recorder.store import DiskStore, MemoryStore, Store

BACKENDS = ["memory", "disk", pytest.param("postgres", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        from recorder.stores.postgres import PostgresStore

        made: Store = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        made = MemoryStore() if request.param == "memory" else DiskStore(tmp_path / "s")
    yield made
    made.close()


def test_a_failed_transaction_leaves_nothing_of_it(store: Store) -> None:
    store.write({"a": b"1", "p/1": b"x"})
    with pytest.raises(RuntimeError), store.transaction():
        store.write({"b": b"2"}, deletes=["a"])
        store.delete_prefix("p/")
        assert store.get("b") == b"2" and store.get("a") is None
        raise RuntimeError("killed here")
    assert (store.get("a"), store.get("p/1"), store.get("b")) == (b"1", b"x", None)


@pytest.mark.parametrize(
    "backend", ["disk", pytest.param("postgres", marks=pytest.mark.integration)]
)
def test_no_other_writer_commits_inside_a_transaction(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Another connection's write waits for the transaction: what the transaction read
    stays true until it commits (the sweep's step list is still the step list when it
    deletes blobs)."""
    mine: Store
    other: Store
    if backend == "postgres":
        from recorder.stores.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        mine, other = PostgresStore(url), PostgresStore(url)
    else:
        mine, other = DiskStore(tmp_path / "s"), DiskStore(tmp_path / "s")
    written = threading.Event()

    def write() -> None:
        other.write({"step/x": b"new"}, adds={"blob/y": b"y"})
        written.set()

    with mine.transaction():
        assert mine.keys("step/") == []
        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(0.3)
        assert not written.is_set()
        assert mine.keys("step/") == []
    thread.join(10)
    assert written.is_set() and mine.get("step/x") == b"new"


def test_collect_garbage_keeps_what_any_step_needs(store: Store) -> None:
    journal = Journal(store)
    a, b, c, d = (hash_bytes(x) for x in (b"a", b"b", b"c", b"d"))
    step = {"blobs": [a], "result_ref": b, "meta": {"checkpoint": c, "url": "x"}}
    store.write(
        {"step/r@000000000000/0000/k/000000": json.dumps(step).encode()},
        adds={"blob/" + h: x for h, x in zip((a, b, c, d), (b"a", b"b", b"c", b"d"), strict=True)},
    )
    assert journal.collect_garbage() == 1
    assert store.keys("blob/") == sorted("blob/" + h for h in (a, b, c))
