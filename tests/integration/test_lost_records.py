"""Stores that lost writes or cannot be written: a lost ``-wal``, a read-only store, a
truncated database file (docs/storage.md, "Lost writes, read-only and damaged stores")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recorder
from recorder.errors import DamagedRecordError
from recorder.journal import Journal
from recorder.store import open_store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO)}
STEPS = 16  # an effect after every odd step: 8 effects

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import recorder
    from recorder.store import open_store
    store_dir, effects = sys.argv[1], sys.argv[2]
    store = open_store(store_dir)
    con = store._cache._con  # the only connection: every write of this process
    con.execute("PRAGMA wal_autocheckpoint=0")  # nothing reaches cache.db unless asked

    def effect(i):
        with open(effects, "a") as out:
            out.write(f"{i}\\n")
        return i

    with recorder.run("lossy", inputs={"n": 1}, store=store, display=False) as run:
        for i in range(int(sys.argv[3])):
            run.step("work", str.upper, f"step {i} " + "x" * 300)
            if i % 2:
                run.once(f"notify-{i}", effect, i)
            if i == 7:  # a checkpoint part-way: the first half is in cache.db
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print("DONE", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint at exit: the rest stays in -wal
    """
)


def _agent(run: recorder.Run, work: object, effect: object) -> None:
    for i in range(STEPS):
        run.step("work", work, f"step {i} " + "x" * 300)  # type: ignore[arg-type]
        if i % 2:
            run.once(f"notify-{i}", effect, i)  # type: ignore[arg-type]


def _rows(db: Path, prefix: str) -> dict[str, bytes]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT key, value FROM Cache WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")
        ).fetchall()
    finally:
        con.close()
    return {str(k): bytes(v) for k, v in rows}


def test_a_lost_wal_is_damage_not_a_rerun(tmp_path: Path) -> None:
    """Acknowledged steps and effects lost with the ``-wal`` file: the next entry raises
    DamagedRecordError naming the run, the attempt and the count, and runs nothing."""
    store, effects = tmp_path / "store", tmp_path / "effects.txt"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.run(
        [sys.executable, str(script), str(store), str(effects), str(STEPS)],
        capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "DONE" in child.stdout
    assert effects.read_text().split() == [str(i) for i in range(1, STEPS, 2)]
    db, wal = store / "cache.db", store / "cache.db-wal"
    assert wal.stat().st_size > 0

    # What the writer acknowledged: the store read through its -wal.
    full = tmp_path / "full"
    shutil.copytree(store, full)
    written = _rows(full / "cache.db", "step/")
    run_id = next(iter(_rows(full / "cache.db", "run/")))[4:]
    attempt_key = f"attempt/{run_id}/000001"
    ended = _rows(full / "cache.db", attempt_key)[attempt_key]
    assert json.loads(ended)["outcome"] == "completed"
    assert len(written) == STEPS + STEPS // 2

    # The -wal is lost. A checkpoint cut short had already copied the page holding the
    # attempt's outcome (it copies pages in page order, and that row was written at the
    # attempt's start, before the steps that followed): the outcome survives, later steps
    # do not. (The row is put back through SQLite, so the file stays a sound database.)
    wal.unlink()
    (store / "cache.db-shm").unlink(missing_ok=True)
    con = sqlite3.connect(db)
    con.execute("UPDATE Cache SET value = ? WHERE key = ? AND raw = 1", (ended, attempt_key))
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    left = _rows(db, "step/")
    lost = len(written) - len(left)
    assert 0 < lost < len(written), "the loss must be real and partial"

    work_calls: list[str] = []

    def work(text: str) -> str:
        work_calls.append(text)
        return text.upper()

    def effect(i: int) -> int:
        raise AssertionError(f"effect {i} ran again")

    with (
        pytest.raises(DamagedRecordError) as caught,
        recorder.run("lossy", inputs={"n": 1}, store=store, display=False) as run,
    ):
        _agent(run, work, effect)
    message = str(caught.value)
    assert run_id in message and "attempt 1" in message
    assert f"{lost} acknowledged step record(s)" in message
    assert "recorder rm" in message and "-wal" in message
    assert work_calls == []
    assert effects.read_text().split() == [str(i) for i in range(1, STEPS, 2)]
    # Nothing was written either: the store is as the loss left it.
    assert _rows(db, "step/") == left
    assert list(_rows(db, f"attempt/{run_id}/")) == [attempt_key]
    # recorder verify reports the loss too
    found = [str(d) for d in Journal(open_store(store)).verify()]
    assert any(run_id in d and f"{lost} step record(s) written and since lost" in d for d in found)


# -- read-only stores ---------------------------------------------------------------------

READER = textwrap.dedent(
    """
    import json, sys
    import recorder
    from recorder.errors import ReplayMissError, StoreError
    store = sys.argv[1]

    def body(run, extra=False):
        out = [run.step("work", str.upper, f"s{i}") for i in range(5)]
        out.append(run.once("notify", len, "abc"))
        if extra:
            run.step("work", str.upper, "new")
        return out

    found = {}
    for mode in ("replay", "auto"):
        with recorder.run("ro", store=store, mode=mode, display=False) as run:
            found[mode] = [body(run), run.stats.live, run.stats.replayed]
    try:
        with recorder.run("ro", store=store, display=False) as run:
            body(run, extra=True)
    except ReplayMissError as error:
        found["miss"] = str(error)
    try:
        with recorder.run("ro", store=store, mode="record", display=False) as run:
            body(run)
    except StoreError as error:
        found["record"] = str(error)
    print("FOUND " + json.dumps(found), flush=True)
    """
)


def _record_small(store: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, recorder
        with recorder.run("ro", store=sys.argv[1], display=False) as run:
            [run.step("work", str.upper, f"s{i}") for i in range(5)]
            run.once("notify", len, "abc")
        """
    )
    subprocess.run([sys.executable, "-c", script, str(store)], check=True, cwd=REPO, env=ENV)


def _fingerprint(store: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(store.iterdir())}


def _read_only_prefix(how: str, store: Path) -> list[str]:
    """The command prefix that runs a command on ``store`` made read-only by ``how``."""
    unshare = shutil.which("unshare")
    if how == "chmod":
        subprocess.run(["chmod", "-R", "a-w", str(store)], check=True)
        if os.geteuid() != 0:
            return []
        # root writes whatever the mode says: be an ordinary user (the store's owner,
        # seen from a user namespace) for whom a-w means read-only.
        prefix = [unshare or "unshare", "-U", "--map-user=1000", "--map-group=1000"]
    else:
        shell = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        prefix = [unshare or "unshare", "-rm", "sh", "-c", shell, "sh", str(store)]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"needs `unshare` (user and mount namespaces) for a {how} read-only store")
    return prefix


@pytest.mark.parametrize("how", ["chmod", "mount"])
def test_a_read_only_store_replays_and_verifies(tmp_path: Path, how: str) -> None:
    """``chmod -R a-w`` or a read-only mount: replay (and auto, which only replays there)
    works with the attempt kept in memory, ``recorder verify`` works, nothing is written;
    a step that would go live and mode='record' are refused with what to do."""
    store = tmp_path / "store"
    _record_small(store)
    before = _fingerprint(store)
    script = tmp_path / "reader.py"
    script.write_text(READER)
    try:
        prefix = _read_only_prefix(how, store)
        probe = subprocess.run([*prefix, "sh", "-c", f"touch {store}/x"], capture_output=True)
        assert probe.returncode != 0, "the store must really be read-only"
        reader = subprocess.run([*prefix, sys.executable, str(script), str(store)],
                                capture_output=True, text=True, cwd=REPO, env=ENV)  # fmt: skip
        verify = subprocess.run(
            [*prefix, sys.executable, "-m", "recorder", "verify", "--store", str(store)],
            capture_output=True, text=True, cwd=REPO, env=ENV,
        )  # fmt: skip
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(store)], check=True)
    assert reader.returncode == 0, reader.stderr
    found = json.loads(reader.stdout.split("FOUND ", 1)[1])
    expected = [f"S{i}" for i in range(5)] + [3]
    assert found["replay"] == [expected, 0, 6]
    assert found["auto"] == [expected, 0, 6]
    assert "read-only" in found["miss"] and "cannot be recorded" in found["miss"]
    assert "read-only" in found["record"] and "mode='replay'" in found["record"]
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("ok: ")
    assert _fingerprint(store) == before


# -- a truncated database ------------------------------------------------------------------


def test_a_truncated_database_is_damage_with_a_way_to_recover(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = textwrap.dedent(
        """
        import sys, recorder
        with recorder.run("long", store=sys.argv[1], display=False) as run:
            for i in range(40):
                run.step("work", str.upper, f"step {i} " + "y" * 600)
        """
    )
    subprocess.run([sys.executable, "-c", script, str(store)], check=True, cwd=REPO, env=ENV)
    db = store / "cache.db"
    assert not (store / "cache.db-wal").exists()
    os.truncate(db, db.stat().st_size // 2)

    with (
        pytest.raises(DamagedRecordError) as caught,
        recorder.run("long", store=store, display=False) as run,
    ):
        run.step("work", str.upper, "step 0 " + "y" * 600)
    message = str(caught.value)
    assert "is damaged" in message and "truncated" in message
    assert ".recover" in message and "not a recorder store" not in message
    verify = subprocess.run([sys.executable, "-m", "recorder", "verify", "--store", str(store)],
                            capture_output=True, text=True, cwd=REPO, env=ENV)  # fmt: skip
    assert verify.returncode == 1
    assert "is damaged" in verify.stderr + verify.stdout
    assert "not a recorder store" not in verify.stderr + verify.stdout

    # The way out the message gives: rebuild what still reads into a new store.
    sqlite = shutil.which("sqlite3")
    if sqlite is None:
        return
    new = tmp_path / "new"
    new.mkdir(mode=0o700)
    dump = subprocess.run([sqlite, str(db), ".dump"], capture_output=True, text=True).stdout
    dump = dump.replace("ROLLBACK; -- due to errors", "COMMIT;")
    subprocess.run([sqlite, str(new / "cache.db")], input=dump, text=True, check=True)
    listed = subprocess.run([sys.executable, "-m", "recorder", "ls", "--store", str(new)],
                            capture_output=True, text=True, cwd=REPO, env=ENV)  # fmt: skip
    assert listed.returncode == 0 and "long@" in listed.stdout, listed.stderr
    # What came back lost records: entering the run says so instead of re-running them.
    with (
        pytest.raises(DamagedRecordError, match="acknowledged step record"),
        recorder.run("long", store=new, display=False) as run,
    ):
        run.step("work", str.upper, "step 0 " + "y" * 600)
