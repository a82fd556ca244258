"""Store limits for real: a size quota that refuses writes and never evicts, and a full
disk (a file size limit in a child process) that fails cleanly and loses nothing.

Everything runs on real SQLite stores; the other writers are real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import ConfigError, QuotaExceededError, ReplayMissError
from recorder.journal import Journal
from recorder.store import DiskStore, MemoryStore, Store, open_store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ENV = "RECORDER_MAX_STORE_BYTES"
FORMAT_ENTRY = len("recorder/store-format") + 1  # the one entry a new store holds


def size(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value)


def contents(store: Store) -> dict[str, bytes]:
    return dict(store.scan(""))


def payload(i: int) -> dict[str, Any]:
    """A step result of ~2 KB: stored as a blob of its own."""
    return {"i": i, "text": f"{i:05d} " * 400}


def not_again(i: int) -> dict[str, Any]:
    raise AssertionError(f"step {i} ran again instead of replaying")


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = str(REPO)
    return env


def run_child(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True, text=True, check=True, cwd=REPO, env=child_env(), timeout=60,
    )  # fmt: skip


# -- the quota ---------------------------------------------------------------------------


def test_quota_refuses_the_write_that_does_not_fit_and_evicts_nothing(tmp_path: Path) -> None:
    limit = 10_000
    store = DiskStore(tmp_path / "s", max_store_bytes=limit)
    used, i = FORMAT_ENTRY, 0
    while True:
        key, value = f"k/{i:04d}", bytes([i]) * 600 + os.urandom(400)
        if used + size(key, value) > limit:
            break
        store.write({key: value})
        used, i = used + size(key, value), i + 1
    assert i == 9
    before = contents(store)

    with pytest.raises(QuotaExceededError) as refused:
        store.write({key: value}, adds={"blob/x": b"x" * 10})
    message = str(refused.value)
    for part in (store.location, f"{limit:,} bytes", f"{used:,} bytes",
                 f"{size(key, value) + size('blob/x', b'x' * 10):,} bytes", "recorder rm",
                 "max_store_bytes", ENV, "nothing is evicted"):  # fmt: skip
        assert part in message, part
    assert store.get(key) is None and store.get("blob/x") is None
    assert contents(store) == before  # nothing evicted, every byte as it was
    assert contents(DiskStore(tmp_path / "s")) == before  # and so it is on disk

    # What does not grow the store passes at the limit: an add whose key is present, an
    # overwrite of the same size, deletes.
    store.write(adds={"k/0000": b"other"})
    assert store.get("k/0000") == before["k/0000"]
    store.write({"k/0001": before["k/0001"][::-1]})
    store.write(deletes=["k/0001", "k/0002"])
    # The count is an upper bound (the deletes did not lower it): the store counts again
    # before refusing, so the room they made is used at once.
    store.write({key: value})
    store.write({"k/0001": before["k/0001"]})
    with pytest.raises(QuotaExceededError):
        store.write({"k/0002": before["k/0002"]})
    expected = {k: v for k, v in before.items() if k != "k/0002"} | {key: value}
    assert contents(store) == expected


def test_quota_through_a_run_then_replay_and_rm(tmp_path: Path) -> None:
    directory, limit = tmp_path / "store", 40_000
    limited = open_store(directory, max_store_bytes=limit)
    assert limited.max_store_bytes == limit
    assert open_store(directory) is limited and limited.max_store_bytes == limit
    assert open_store(directory, max_store_bytes=limit + 1).max_store_bytes == limit + 1
    limited.max_store_bytes = limit

    recorded: list[dict[str, Any]] = []
    refused: QuotaExceededError | None = None
    try:
        with recorder.run("fill", inputs={"n": 1}, store=directory) as run:
            for i in range(1_000):
                try:
                    recorded.append(run.step("payload", payload, i))
                except QuotaExceededError as error:
                    refused = error
                    break
    except QuotaExceededError:
        pass  # ending the attempt writes its trace, which needs room too
    assert refused is not None and 5 <= len(recorded) < 20
    assert f"{limit:,} bytes" in str(refused)

    # Reopened without a limit: every recorded step replays, the refused one is absent.
    fresh = DiskStore(directory)
    assert fresh.max_store_bytes is None
    with recorder.run("fill", inputs={"n": 1}, store=fresh, mode="replay") as run:
        assert [run.step("payload", not_again, i) for i in range(len(recorded))] == recorded
        with pytest.raises(ReplayMissError):
            run.step("payload", not_again, len(recorded))
    history = recorder.load("fill", store=fresh)
    assert len(history.current_steps()) == len(recorded)
    assert Journal(fresh).verify() == []

    # `recorder rm` works at the limit (its lock fits in the allowance for locks) and
    # makes room: the blobs only that run used go too.
    env = child_env() | {ENV: str(limit)}
    done = subprocess.run(
        [sys.executable, "-m", "recorder", "--store", str(directory), "rm", "fill"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert fresh.keys("blob/") == [] and fresh.keys("step/") == []
    limited.write({"after": b"x" * 20_000})


def test_quota_sees_what_another_process_wrote_and_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = DiskStore(directory, max_store_bytes=20_000)
    for i in range(10):
        store.write({f"a/{i:02d}": b"a" * 1_000})
    other = """
        import sys
        from recorder.store import DiskStore
        store = DiskStore(sys.argv[1])
        if sys.argv[2] == "put":
            store.write({"b/big": b"b" * 9_000})
        else:
            store.write(deletes=["b/big", "a/00", "a/01"])
    """
    run_child(other, directory, "put")
    # This process wrote ~10 KB: by its own count 1 KB more fits. The other one wrote
    # 9 KB: the store notices (SQLite's data_version moved) and counts again.
    with pytest.raises(QuotaExceededError):
        store.write({"a/10": b"a" * 1_000})
    assert store.get("a/10") is None and store.get("b/big") == b"b" * 9_000
    run_child(other, directory, "delete")
    store.write({"a/10": b"a" * 1_000, "a/11": b"a" * 1_000})
    assert store.keys("a/") == [f"a/{i:02d}" for i in range(2, 12)]


def test_the_count_is_utf8_bytes_of_keys_plus_values(tmp_path: Path) -> None:
    entries = {"run/résumé@1": b"r" * 100, "step/日本語/1": b"s" * 50, "blob/x": b"b" * 7}
    DiskStore(tmp_path / "s").write(entries)
    total = FORMAT_ENTRY + sum(size(k, v) for k, v in entries.items())
    # Reopened with room for one more byte: the first write counts the table in SQL.
    store = DiskStore(tmp_path / "s", max_store_bytes=total + 1)
    store.write({"a": b""})
    with pytest.raises(QuotaExceededError, match=f"holds {total + 1:,} bytes"):
        store.write({"b": b""})
    store.write(deletes=["run/résumé@1"])
    store.write({"ü": b"u" * 112})  # 2 + 112 bytes: exactly the room the delete made
    with pytest.raises(QuotaExceededError):
        store.write({"c": b""})


def test_memory_store_quota_counts_keys_and_values() -> None:
    store = MemoryStore(max_store_bytes=3_000)
    store.write({"k1": b"x" * 1_000, "k2": b"x" * 998})  # 2,002 bytes
    store.write(adds={"k1": b"y" * 5_000})  # present: costs nothing
    with pytest.raises(QuotaExceededError, match="1,002 bytes more"):
        store.write({"k3": b"x" * 1_000})
    assert contents(store) == {"k1": b"x" * 1_000, "k2": b"x" * 998}
    store.write({"k3": b"x" * 996})  # exactly at the limit
    store.write({"k3": b"z" * 996}, deletes=["k2"])
    assert store.delete_prefix("k") == 2
    store.write({"k4": b"x" * 2_998})
    assert store.swap("lock/r", None, b"l" * 100)  # a lock still fits (small allowance)
    with pytest.raises(QuotaExceededError):
        store.swap("lock/s", None, b"l" * 10_000)


def test_limit_from_the_environment_and_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "2KiB")
    store = DiskStore(tmp_path / "a")
    assert store.max_store_bytes == 2_048
    with pytest.raises(QuotaExceededError):
        store.write({"k": b"x" * 3_000})
    assert DiskStore(tmp_path / "b", max_store_bytes=5_000).max_store_bytes == 5_000
    monkeypatch.setenv(ENV, "1_500")
    assert open_store(tmp_path / "c").max_store_bytes == 1_500
    for bad in ("lots", "-5", "0", "12 parsecs"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ConfigError, match=ENV):
            DiskStore(tmp_path / "d")
    assert not (tmp_path / "d").exists()  # refused before creating anything
    monkeypatch.delenv(ENV)
    assert DiskStore(tmp_path / "d").max_store_bytes is None
    for bad_arg in (0, -1, 1.5, True, "1000"):
        with pytest.raises(ConfigError, match="max_store_bytes"):
            DiskStore(tmp_path / "d", max_store_bytes=bad_arg)  # type: ignore[arg-type]


# -- a full disk ---------------------------------------------------------------------------

FILL = """
    import json, os, resource, signal, sys
    import recorder
    from recorder.store import DiskStore

    def payload(i):
        return {"i": i, "text": f"{i:05d} " * 400}

    directory, headroom = sys.argv[1], int(sys.argv[2])
    store = DiskStore(directory)
    recorded, failures = [], []
    try:
        with recorder.run("fill", inputs={"n": 2}, store=store) as run:
            run.step("payload", payload, -1)  # the database, its WAL and -shm now exist
            if headroom:  # else the file system is small
                largest = max(os.path.getsize(f.path) for f in os.scandir(directory))
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
                limit = largest + headroom
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            for i in range(10_000):
                try:
                    run.step("payload", payload, i)
                except Exception as error:
                    failures.append(error)
                    break
                recorded.append(i)
    except Exception as error:  # ending the attempt needs room too
        failures.append(error)
    print(json.dumps({
        "recorded": recorded,
        "failures": [[type(e).__module__, type(e).__name__, str(e)] for e in failures],
    }))
"""


def check_fill(
    directory: Path, report: dict[str, Any], cause: str, detail: str, *, wrote_in: Path
) -> None:
    """The child's first failure is a clean StoreError naming the store it wrote in, and
    the store it left behind (at ``directory``) replays every step it reported recorded."""
    recorded: list[int] = report["recorded"]
    assert len(recorded) >= 3 and recorded == list(range(len(recorded)))
    (module, name, message), *rest = report["failures"]
    assert (module, name) == ("recorder.errors", "StoreError")
    for part in (str(wrote_in), cause, detail, "the write was refused",
                 "Nothing of this write was recorded",
                 "everything recorded before it is intact", "run again"):  # fmt: skip
        assert part in message, (part, message)
    assert all(n == "StoreError" for _, n, _ in rest), rest

    store = DiskStore(directory)
    assert store.integrity_check() == []
    assert Journal(store).verify() == []
    with recorder.run("fill", inputs={"n": 2}, store=store, mode="replay") as run:
        assert run.step("payload", not_again, -1) == payload(-1)
        for i in recorded:
            assert run.step("payload", not_again, i) == payload(i)
        with pytest.raises(ReplayMissError):  # the refused step left nothing behind
            run.step("payload", not_again, len(recorded))
    history = recorder.load("fill", store=store)
    assert len(history.current_steps()) == len(recorded) + 1
    assert history.attempts[-1].outcome.value == "completed"


def test_file_size_limit_fails_cleanly_and_keeps_everything_before(tmp_path: Path) -> None:
    """RLIMIT_FSIZE with SIGXFSZ ignored: growing a file past it fails with EFBIG."""
    directory = tmp_path / "store"
    done = run_child(FILL, directory, 300_000)
    assert "Traceback" not in done.stderr, done.stderr
    check_fill(
        directory,
        json.loads(done.stdout),
        "reached this process's file size limit (`ulimit -f`)",
        "disk I/O error",
        wrote_in=directory,
    )


def test_full_disk_fails_cleanly_and_keeps_everything_before(tmp_path: Path) -> None:
    """A real ENOSPC: the store on a 384 KiB tmpfs mounted in a user namespace."""
    unshare = shutil.which("unshare")
    probe = [unshare or "unshare", "-rm", "true"]
    if unshare is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rm` (user and mount namespaces) to mount a small tmpfs")
    small, copy = tmp_path / "small", tmp_path / "store"
    small.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(textwrap.dedent(FILL))
    # The tmpfs exists only inside the namespace: copy the store out once the child is done.
    shell = 'mount -t tmpfs -o size=384k tmpfs "$1" && "$2" "$3" "$1/s" 0 && cp -a "$1/s" "$4"'
    done = subprocess.run(
        [unshare, "-rm", "sh", "-c", shell, "sh", small, sys.executable, script, copy],
        capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    check_fill(copy, report, "the disk is full", "database or disk is full", wrote_in=small / "s")
