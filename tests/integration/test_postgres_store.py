"""The Postgres store against a real server (the session's throwaway cluster): many
processes writing at once, run locks that die with their holder's connection on any
host, bundles between Postgres and a directory store, ``recorder verify`` and damage
reported by step, the schema's migrations."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.bundle import export_bundle, import_bundle
from recorder.errors import QuotaExceededError, RunLockedError, StoreFormatError
from recorder.journal import Journal
from recorder.stores import DiskStore, Store, open_store
from recorder.stores.postgres import SCHEMA_VERSION, PostgresStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
"""Subprocesses import this checkout's recorder (not another editable install's)."""


def _program_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "pg_bundle_program", ROOT / "fixtures" / "bundles" / "format-1" / "make_bundle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _program_module()


def record(store: Store | str | Path) -> tuple[str, dict[str, Any]]:
    with recorder.run("portable", inputs={"n": 1}, store=store, display=False) as run:
        result = MAKER.program(run)
    return run.run_id, result


def replay(store: Store | str | Path) -> tuple[dict[str, Any], list[str]]:
    with recorder.run("portable", inputs={"n": 1}, store=store, mode="replay",
                      display=False) as run:  # fmt: skip
        result = MAKER.program(run)
    frame = run.to_dataframe()
    last = frame[frame["attempt"] == frame["attempt"].max()]
    return result, list(last["status"])


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=ENV, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recorder", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if expected not in line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"expected {expected!r}, got {line!r}; stderr: {err}")
    return line


# -- many writers --------------------------------------------------------------------

WRITER = """
import sys, recorder
url, worker = sys.argv[1], int(sys.argv[2])
errors = 0
with recorder.run(f"writer-{worker}", store=url, display=False) as run:
    for i in range(60):
        try:
            # shared: the same content-addressed result blob in every process
            run.step("shared", lambda i: {"n": i, "pad": "x" * 400}, i)
            run.step("own", lambda i: {"worker": worker, "n": i}, i)
        except Exception as error:
            errors += 1
            print("error", repr(error), file=sys.stderr)
print("errors", errors, flush=True)
"""


def test_four_processes_write_at_once_with_no_error(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()  # the schema exists before they race
    procs = [python(WRITER, postgres_url, str(n)) for n in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "errors 0", err
    store = open_store(postgres_url)
    journal = Journal(store)
    assert sorted(r.name for r in journal.list_runs()) == [f"writer-{n}" for n in range(4)]
    for run in journal.list_runs():
        assert len(journal.steps(run.run_id)) == 120
    assert journal.verify() == []


def test_the_schema_is_versioned_and_a_newer_one_refused(
    postgres_url: str, postgres_cluster: Any
) -> None:
    store = PostgresStore(postgres_url)
    schema = store.schema
    store.close()
    rows = postgres_cluster.sql(f"SELECT version FROM {schema}.schema_version ORDER BY 1",
                                database="recorder")  # fmt: skip
    assert rows.split() == [str(n) for n in range(1, SCHEMA_VERSION + 1)]
    postgres_cluster.sql(
        f"INSERT INTO {schema}.schema_version (version) VALUES ({SCHEMA_VERSION + 1})",
        database="recorder",
    )
    with pytest.raises(StoreFormatError, match="Upgrade recorder"):
        PostgresStore(postgres_url)


def test_a_schema_holding_other_tables_is_not_taken_over(
    postgres_url: str, postgres_cluster: Any
) -> None:
    schema = postgres_url.rsplit("schema=", 1)[1]
    postgres_cluster.sql(f"CREATE SCHEMA {schema} AUTHORIZATION recorder",
                         f"CREATE TABLE {schema}.theirs (x int)", database="recorder")  # fmt: skip
    with pytest.raises(StoreFormatError, match="not a recorder store"):
        PostgresStore(postgres_url)
    with pytest.raises(StoreFormatError, match="no recorder store"):
        PostgresStore(postgres_url.replace(schema, schema + "_absent"), create=False)


def test_quota_refuses_before_writing_and_never_evicts(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, max_store_bytes=10_000)
    store.write({"a": b"x" * 6000})
    with pytest.raises(QuotaExceededError, match="max_store_bytes"):
        store.write({"b": b"y" * 6000})
    assert store.get("b") is None and store.get("a") == b"x" * 6000
    store.write({"a": b"x" * 100})  # a rewrite that shrinks passes
    store.write({"b": b"y" * 6000})
    other = PostgresStore(postgres_url)  # another writer: the count catches up within 1 s
    other.write({"c": b"z" * 3000})
    time.sleep(1.1)
    with pytest.raises(QuotaExceededError):
        store.write({"d": b"w" * 2000})
    store.write(deletes=["b"])
    store.write({"d": b"w" * 2000})


def test_change_token_moves_only_for_other_writers(postgres_url: str) -> None:
    mine, other = PostgresStore(postgres_url), PostgresStore(postgres_url)
    token = mine.change_token()
    mine.write({"k": b"1"})
    mine.swap("lock", None, b"me")
    assert mine.change_token() == token
    other.write({"k": b"2"})
    assert mine.change_token() != token


# -- locks across processes and hosts ------------------------------------------------

HOLDER = """
import os, sys, time, recorder, recorder.locks, recorder.attempts
url, host = sys.argv[1], sys.argv[2]
if host:
    recorder.locks.HOST = recorder.attempts.HOST = host
with recorder.run("held", store=url, display=False) as run:
    run.step("one", lambda: 1)
    print("entered", os.getpid(), flush=True)
    time.sleep(60)
"""


def test_a_sigkilled_holders_run_is_taken_over_at_once(postgres_url: str) -> None:
    holder = python(HOLDER, postgres_url, "")
    wait_for_line(holder, "entered")
    with pytest.raises(RunLockedError, match=f"process {holder.pid} on"):
        recorder.run("held", store=postgres_url, display=False).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    started = time.monotonic()
    with recorder.run("held", store=postgres_url, display=False) as run:
        assert run.step("one", lambda: 2) == 1  # replayed from the killed attempt
    assert time.monotonic() - started < 5
    attempts = Journal(open_store(postgres_url)).attempts(run.run_id)
    assert [a.outcome.value for a in attempts] == ["crashed", "completed"]


def test_a_live_holder_on_another_host_is_refused_with_its_host_and_pid(
    postgres_url: str,
) -> None:
    holder = python(HOLDER, postgres_url, "far-away-host")
    try:
        wait_for_line(holder, "entered")
        with pytest.raises(RunLockedError) as caught:
            recorder.run("held", store=postgres_url, display=False).__enter__()
        assert f"process {holder.pid} on far-away-host" in str(caught.value)
        # `recorder rm` and the fan-out's status read the same truth
        done = cli("--store", postgres_url, "rm", "held")
        assert done.returncode == 1 and "far-away-host" in done.stderr
        from recorder.locks import holder_alive

        store = open_store(postgres_url)
        run_id = Journal(store).list_runs()[0].run_id
        held = Journal(store).get_lock(run_id)
        assert held is not None and holder_alive(json.loads(held), store, run_id)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert not holder_alive(json.loads(held), store, run_id)  # its session went with it
    with recorder.run("held", store=postgres_url, display=False) as run:
        assert run.step("one", lambda: 2) == 1


def test_one_process_reenters_its_own_run_as_on_a_directory_store(postgres_url: str) -> None:
    with recorder.run("mine", store=postgres_url, display=False) as run:
        run.step("a", lambda: 1)
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            recorder.run("mine", store=postgres_url, display=False).__enter__()
    with recorder.run("mine", store=postgres_url, display=False) as run:
        assert run.step("a", lambda: 2) == 1


# -- bundles, verify, damage ---------------------------------------------------------


def test_bundles_from_postgres_to_a_directory_and_back_replay_the_same(
    postgres_url: str, tmp_path: Path
) -> None:
    run_id, recorded = record(postgres_url)
    first = tmp_path / "from-postgres.bundle"
    done = cli("--store", postgres_url, "export", "portable", "--bundle", str(first))
    assert done.returncode == 0, done.stderr
    directory = tmp_path / "dir"
    done = cli("--store", str(directory), "import", str(first))
    assert done.returncode == 0, done.stderr
    assert replay(DiskStore(directory)) == (recorded, ["replayed"] * 6)

    back = tmp_path / "from-directory.bundle"
    export_bundle(run_id, back, store=DiskStore(directory))
    other = postgres_url + "_back"
    assert import_bundle(back, store=other) == run_id
    assert replay(other) == (recorded, ["replayed"] * 6)
    assert replay(postgres_url) == (recorded, ["replayed"] * 6)
    done = cli("--store", other, "verify")
    assert done.returncode == 0, done.stderr + done.stdout


def test_verify_reports_a_damaged_blob_by_step(postgres_url: str, postgres_cluster: Any) -> None:
    run_id, _ = record(postgres_url)
    done = cli("--store", postgres_url, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    journal = Journal(open_store(postgres_url))
    big = next(s for s in journal.steps(run_id) if s.name == "big")
    assert big.result_ref is not None
    schema = postgres_url.rsplit("schema=", 1)[1]
    postgres_cluster.sql(
        f"UPDATE {schema}.entries SET value = 'tampered'::bytea "
        f"WHERE key = 'blob/{big.result_ref}'",
        database="recorder",
    )
    done = cli("--store", postgres_url, "verify")
    assert done.returncode != 0
    report = done.stdout + done.stderr
    assert f"step #{big.seq} (step 'big'" in report and big.result_ref in report
    assert "hunter" not in report and postgres_url.split("@")[0] not in report
