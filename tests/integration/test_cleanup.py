"""Deleting runs while other processes record: ``recorder rm`` and ``recorder import
--replace`` collect blobs in one store transaction, so they never take a blob a step
written by another process needs (blobs are content-addressed and shared between
runs), and a ``recorder rm`` killed part-way leaves the run whole, never half deleted.

Everything runs as real processes on one store directory (``cleanup_agent.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.bundle import export_bundle
from recorder.errors import DamagedRecordError, ReplayMissError
from recorder.history import run_rows
from recorder.journal import Journal
from recorder.store import DiskStore

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
AGENT = HERE / "cleanup_agent.py"
SCRIPT = Path(sys.executable).with_name("recorder")


def _agent() -> Any:
    spec = importlib.util.spec_from_file_location("cleanup_agent", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def spawn(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def two_bundles(agent: Any, directory: Path) -> list[Path]:
    """Two bundles of one run (the same id), recorded twice (the second time in a new
    generation, with other results): importing one over the other replaces records and
    leaves blobs to collect."""
    store = DiskStore(directory / "source")
    with recorder.run("imported", inputs={}, store=store, display=False) as run:
        agent.program(run, "imported")
    first = export_bundle(run.run_id, directory / "a.bundle", store=store)
    with recorder.run("imported", inputs={}, store=store, mode="record", display=False) as run:
        agent.program(run, "imported")
    second = export_bundle(run.run_id, directory / "b.bundle", store=store)
    store.close()
    return [first, second]


@pytest.mark.slow
def test_rm_and_import_replace_never_take_blobs_of_steps_other_processes_write(
    tmp_path: Path,
) -> None:
    agent = _agent()
    store = tmp_path / "store"
    bundles = two_bundles(agent, tmp_path)
    assert cli("--store", store, "import", bundles[0]).returncode == 0
    deadline = time.time() + 20
    writers = [spawn(sys.executable, AGENT, "write", store, f"w{n}", deadline) for n in (0, 1)]
    remover = spawn(sys.executable, AGENT, "remove", store, deadline, *bundles)
    outputs = [p.communicate(timeout=120) for p in (*writers, remover)]
    for process, (_, err) in zip((*writers, remover), outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    removed = outputs[-1][0].split()
    assert removed.count("RM") >= 3 and removed.count("IMPORT") >= 3, outputs[-1]

    acked: dict[str, list[dict[str, Any]]] = {}
    for out, _ in outputs[:-1]:
        for line in out.splitlines():
            doc = json.loads(line.removeprefix("ACK "))
            acked.setdefault(doc["name"], []).append(doc)
    assert sum(map(len, acked.values())) >= 200

    problems: list[str] = []
    for name, steps in acked.items():
        got: list[str] = []
        try:
            with recorder.run(name, inputs=steps[0]["inputs"], store=store, mode="replay",
                              display=False) as run:  # fmt: skip
                agent.program(run, name, lambda k, sha: got.append(sha))  # noqa: B023
        except (DamagedRecordError, ReplayMissError) as error:
            problems.append(f"{name}: {type(error).__name__}: {str(error)[:160]}")
        lost = len(steps) - sum(a == s["sha"] for a, s in zip(got, steps, strict=False))
        if lost:
            problems.append(f"{name}: {lost} of {len(steps)} acknowledged steps do not replay")
    assert not problems, f"{len(problems)} problems, e.g. {problems[:5]}"

    done = cli("--store", store, "verify")
    assert done.returncode == 0, done.stdout[-3000:]
    with recorder.run("imported", inputs={}, store=store, mode="replay", display=False) as run:
        agent.program(run, "imported")


def _write_locked(database: Path) -> bool:
    """Whether some connection holds the store's write lock right now."""
    con = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


def _keys_of(directory: Path, run_id: str) -> list[str]:
    con = sqlite3.connect(directory / "cache.db")
    try:
        return [k for (k,) in con.execute("SELECT key FROM Cache") if f"/{run_id}" in k]
    finally:
        con.close()


@pytest.mark.slow
def test_a_killed_rm_leaves_the_run_whole_and_the_next_rm_finishes_it(tmp_path: Path) -> None:
    """``recorder rm`` of a run of 3,000 steps is SIGKILLed at several moments while it
    deletes: each time the run is either whole (``ls`` shows it completed with all its
    steps, and it replays) or gone, never half deleted; the next ``rm`` removes it."""
    agent = _agent()
    source = tmp_path / "source"
    steps = 3000
    with recorder.run("big", inputs={}, store=source, display=False) as run:
        for k in range(steps):
            run.step("own", agent.own, "big", k)
    with recorder.run("keep", inputs={}, store=source, display=False) as keep:
        agent.program(keep, "keep")
    big = run.run_id
    recorder.store.open_store(source).close()

    outcomes = []
    for trial, delay in enumerate((0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3)):
        directory = tmp_path / f"trial{trial}"
        shutil.copytree(source, directory)
        database = directory / "cache.db"
        rm = spawn(SCRIPT, "--store", directory, "rm", big)
        while rm.poll() is None and not _write_locked(database):
            time.sleep(0.001)
        time.sleep(delay)
        os.kill(rm.pid, signal.SIGKILL)
        rm.communicate()

        left = _keys_of(directory, big)
        journal = Journal(DiskStore(directory))
        rows = {r["run"]: r for r in run_rows(journal)}
        if big in rows:
            outcomes.append("whole")
            assert (rows[big]["status"], rows[big]["steps"]) == ("completed", steps), (
                delay,
                left[:5],
            )
            assert len(journal.steps(big)) == steps
        else:
            outcomes.append("gone")
            assert left == [], (delay, left[:5])
        assert journal.verify() == [], delay
        done = cli("--store", directory, "rm", big)
        assert done.returncode == (0 if big in rows else 1), done.stderr
        assert _keys_of(directory, big) == []
        assert journal.verify() == []
        with recorder.run("keep", inputs={}, store=directory, mode="replay", display=False) as r:
            agent.program(r, "keep")
        journal.store.close()
    assert "whole" in outcomes, outcomes  # some kill landed before the delete committed


def test_a_run_half_deleted_by_an_older_release_is_listed_as_damaged(tmp_path: Path) -> None:
    """An older ``recorder rm`` deleted a run's step records first and its run record
    last: killed in between, it left a run that ``ls`` showed as completed with no
    steps. It is listed as damaged, and ``rm`` deletes the rest."""
    agent = _agent()
    store = tmp_path / "store"
    with recorder.run("half", inputs={}, store=store, display=False) as run:
        agent.program(run, "half")
    with recorder.run("keep", inputs={}, store=store, display=False) as keep:
        agent.program(keep, "keep")
    DiskStore(store).delete_prefix(f"step/{run.run_id}/")

    done = cli("--store", store, "ls")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
    assert "damaged" in rows[run.run_id] and "completed" in rows[keep.run_id], done.stdout
    done = cli("--store", store, "rm", "half")
    assert done.returncode == 0, done.stderr
    assert _keys_of(store, run.run_id) == []
    assert cli("--store", store, "verify").returncode == 0
    with recorder.run("keep", inputs={}, store=store, mode="replay", display=False) as keep:
        agent.program(keep, "keep")
