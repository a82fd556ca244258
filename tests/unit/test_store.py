"""Both stores keep the Store contract; the disk store refuses unsafe rows and dirs."""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from recorder.errors import DamagedRecordError, StoreFormatError, UnsafeStoreError
from recorder.journal import Journal
from recorder.keys import hash_bytes
from recorder.store import DiskStore, MemoryStore, Store, open_store

BACKENDS = ["memory", "disk", pytest.param("postgres", marks=pytest.mark.integration)]
"""Every backend keeps the contract; Postgres needs the session's cluster (conftest)."""


def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "disk":
        return DiskStore(tmp_path / "s")
    from recorder.stores.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = make_store(request, tmp_path)
    yield made
    made.close()


def test_write_get_scan_in_key_order(store: Store) -> None:
    store.write({"a/2": b"2", "a/1": b"1", "b/1": b"x", "a0": b"no"})
    assert store.get("a/1") == b"1"
    assert store.get("missing") is None
    assert store.scan("a/") == [("a/1", b"1"), ("a/2", b"2")]
    assert store.keys("b/") == ["b/1"]


def test_adds_never_overwrite_and_deletes_apply(store: Store) -> None:
    store.write({"k": b"first"})
    store.write(adds={"k": b"second", "n": b"new"}, deletes=["gone"])
    assert store.get("k") == b"first"
    assert store.get("n") == b"new"
    store.write(deletes=["k"])
    assert store.get("k") is None


def test_get_many_reads_what_exists_in_any_number(store: Store) -> None:
    values = {f"blob/{i:04d}": f"value {i}".encode() for i in range(600)}
    store.write(values)
    asked = [*reversed(values), "blob/missing", "blob/0003"]  # 2.4 statements' worth
    assert store.get_many(asked) == values
    assert store.get_many([]) == {} and store.get_many(["nope"]) == {}


def test_swap_is_compare_and_set(store: Store) -> None:
    assert store.swap("lock", None, b"me")
    assert not store.swap("lock", None, b"you")
    assert not store.swap("lock", b"you", None)
    assert store.swap("lock", b"me", None)
    assert store.get("lock") is None


def test_delete_prefix(store: Store) -> None:
    store.write({"x/1": b"1", "x/2": b"2", "y/1": b"3"})
    assert store.delete_prefix("x/") == 2
    assert store.keys("") == sorted(store.keys(""))
    assert store.get("y/1") == b"3"


def test_only_str_keys_and_bytes_values(store: Store) -> None:
    with pytest.raises(TypeError):
        store.write({"k": "text"})  # type: ignore[dict-item]


def test_disk_store_survives_reopen(tmp_path: Path) -> None:
    first = DiskStore(tmp_path / "s")
    first.write({"k": b"v"})
    first.close()
    assert DiskStore(tmp_path / "s").get("k") == b"v"


def test_disk_store_directory_0700_and_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = DiskStore(tmp_path / "deep" / "s")
        store.write({"k": b"v"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "deep" / "s").stat().st_mode) == 0o700
    store.close()
    DiskStore(tmp_path / "deep" / "s").close()
    for entry in (tmp_path / "deep" / "s").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry


def test_group_or_world_writable_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "open"
    target.mkdir()
    target.chmod(0o777)
    with pytest.raises(UnsafeStoreError, match="chmod 700"):
        DiskStore(target)


class Payload:
    """Unpickling this creates the file ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickled_rows_are_refused_never_loaded(tmp_path: Path) -> None:
    path, marker = tmp_path / "s", tmp_path / "pwned"
    DiskStore(path).close()
    planted = diskcache.Cache(str(path))  # diskcache's own Disk pickles objects
    planted.set("step/x", Payload(marker))
    planted.set("blob/y", Payload(marker))
    planted.close()
    assert pickle.loads(pickle.dumps(Payload(tmp_path / "probe"))) and (tmp_path / "probe").exists()
    store = DiskStore(path)
    with pytest.raises(UnsafeStoreError, match="never unpickles"):
        store.get("step/x")
    with pytest.raises(UnsafeStoreError):
        store.scan("step/")
    with pytest.raises(UnsafeStoreError):
        store.get_many(["blob/y"])
    with pytest.raises(UnsafeStoreError):
        Journal(store).verify()
    assert not marker.exists()


def test_a_plain_diskcache_directory_is_not_taken_over(tmp_path: Path) -> None:
    cache = diskcache.Cache(str(tmp_path / "c"))
    cache.set("someone", b"else")
    cache.close()
    (tmp_path / "c").chmod(0o700)
    with pytest.raises(StoreFormatError, match="not a recorder store"):
        DiskStore(tmp_path / "c")


def test_a_newer_store_format_is_refused(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "s")
    store.write({"recorder/store-format": b"99"})
    store.close()
    with pytest.raises(StoreFormatError, match="Upgrade recorder"):
        DiskStore(tmp_path / "s")


def test_open_store_shares_one_disk_store_per_directory(tmp_path: Path) -> None:
    assert open_store(tmp_path / "a") is open_store(str(tmp_path / "a"))
    memory = MemoryStore()
    assert open_store(memory) is memory


def test_open_store_defaults_to_recorder_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECORDER_DIR", str(tmp_path / "env"))
    store = open_store(None)
    assert store.location == str((tmp_path / "env").resolve())


def test_blobs_are_verified_on_read(store: Store) -> None:
    journal = Journal(store)
    data = b"payload"
    ref = hash_bytes(data)
    store.write({"blob/" + ref: data})
    assert journal.blob(ref) == data
    store.write({"blob/" + ref: b"payloa"})
    with pytest.raises(DamagedRecordError, match="no longer matches"):
        journal.blob(ref, step="step #3")
    store.write(deletes=["blob/" + ref])
    with pytest.raises(DamagedRecordError, match=r"step #3.*missing"):
        journal.blob(ref, step="step #3")
