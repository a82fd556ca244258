"""The ``recorder`` command, run as real subprocesses (console script and ``python -m``).

Each test records a small store in-process (LLM calls go to the fixture server through
the ``llm`` fixture), then drives the installed command against it and checks exit
codes, stdout/stderr and files. Every command's output is also checked for the api_key.
"""

from __future__ import annotations

import os

# Before the litellm import (conftest does it too): no cost-map fetch over the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import json
import shlex
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litellm
import pandas as pd
import pytest

import recorder
from fixtures.llm_server import LLMServer
from recorder.history import TRACE_COLUMNS
from recorder.integrations import litellm as adapter
from recorder.journal import Journal
from recorder.records import StepRecord
from recorder.store import DiskStore

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).with_name("recorder")
SECRET = "sk-test"  # the api_key of the ``llm`` fixture
MODEL = "openai/gpt-4o-mini"
LS_COLUMNS = ["run", "name", "inputs", "attempts", "steps", "status", "created_at", "last_activity"]

Done = subprocess.CompletedProcess[str]


def classify(text: str) -> dict[str, Any]:
    return {"label": "hardware" if "printer" in text else "other", "text": text}


def ask(llm: dict[str, Any], content: str) -> str:
    """One chat completion through litellm (recorded when inside a run)."""
    response = litellm.completion(**llm, messages=[{"role": "user", "content": content}])
    return str(response.choices[0].message.content)


@dataclass
class Recorded:
    """A store on disk and what was recorded in it."""

    directory: Path
    triage: str
    other: str
    flaky: str
    denied: str
    other_result: Any
    triage_rows: int = 8


def start(
    args: list[Any],
    *,
    store: Path | None = None,
    module: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``recorder [--store DIR] ARGS`` (or ``python -m recorder ...``)."""
    base = [sys.executable, "-m", "recorder"] if module else [str(SCRIPT)]
    store_args = ["--store", str(store)] if store is not None else []
    argv = [*base, *store_args, *(str(a) for a in args)]
    environ = {k: v for k, v in os.environ.items() if k != "RECORDER_DIR"}
    environ.update(env or {})
    if cwd is None:
        cwd = store.parent if store is not None else Path.cwd()
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=cwd
    )


def finish(*procs: subprocess.Popen[str]) -> list[Done]:
    """Wait for each process; no output of any command may contain the api_key."""
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert SECRET not in out + err, proc.args
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def cli(*args: Any, store: Path | None = None, cwd: Path | None = None) -> Done:
    """Run one command to completion."""
    return finish(start(list(args), store=store, cwd=cwd))[0]


def cli_all(*commands: list[Any], store: Path) -> list[Done]:
    """Run independent read-only commands against one store at the same time."""
    return finish(*(start(c, store=store) for c in commands))


def record_store(directory: Path, llm: dict[str, Any], server: LLMServer) -> Recorded:
    """Record four runs: ``triage`` (attempt 1 live, attempt 2 replayed: a step, two
    LLM calls and a recorded time), ``other`` (the same step request as triage, so they
    share its blob), ``flaky`` (an LLM call the server refused, recorded as an error the
    program handled) and ``denied`` (the same refusal, ending the attempt: failed)."""
    store = str(directory)
    triage = recorder.run("triage", inputs={"ticket": 1}, store=store)
    results = []
    for _ in range(2):
        with triage:
            label = triage.step("classify", classify, "printer on fire")
            results.append([label, ask(llm, "Sum up"), ask(llm, "Reply"), triage.now()])
    assert results[0] == results[1]
    assert triage.stats.replayed == 4
    other = recorder.run("other", inputs={"ticket": 2}, store=store)
    with other:
        other_result = other.step("classify", classify, "printer on fire")
    # The server's 401 quotes the key, as OpenAI's does: only redaction keeps it out.
    refusal = f"Incorrect API key provided: {llm['api_key']}. You can find your API key..."
    flaky = recorder.run("flaky", store=store, record_llm_errors=True)
    with flaky, pytest.raises(litellm.AuthenticationError):
        server.fail_next(1, status=401, message=refusal)
        ask(llm, "Who am I?")
    denied = recorder.run("denied", store=store)
    with pytest.raises(litellm.AuthenticationError), denied:
        server.fail_next(1, status=401, message=refusal)
        ask(llm, "Who am I?")
    return Recorded(
        directory, triage.run_id, other.run_id, flaky.run_id, denied.run_id, other_result
    )


@pytest.fixture
def recorded(tmp_path: Path, llm: dict[str, Any], llm_server: LLMServer) -> Recorded:
    return record_store(tmp_path / "store", llm, llm_server)


def step_records(directory: Path, run_id: str) -> list[StepRecord]:
    """A run's step records in run order, read through a store instance of their own."""
    store = DiskStore(directory)
    try:
        return sorted(Journal(store).steps(run_id), key=lambda s: (s.attempt, s.seq))
    finally:
        store.close()


def blob_exists(directory: Path, ref: str) -> bool:
    store = DiskStore(directory)
    try:
        return store.get("blob/" + ref) is not None
    finally:
        store.close()


def first_llm_step(directory: Path, run_id: str) -> StepRecord:
    """The first LLM step record of a run, ``step #1``; its result is a blob."""
    step = next(s for s in step_records(directory, run_id) if s.kind == "llm")
    assert step.seq == 1
    assert step.result_ref is not None
    return step


# -- ls ------------------------------------------------------------------------------------


def test_ls_lists_the_runs_through_store_and_env(recorded: Recorded) -> None:
    """``recorder --store DIR ls`` and ``RECORDER_DIR=DIR recorder ls`` exit 0 and list
    every run with its attempts, step records and last outcome."""
    directory = recorded.directory
    procs = finish(
        start(["ls"], store=directory),
        start(["ls"], env={"RECORDER_DIR": str(directory)}, cwd=directory.parent),
    )
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        lines = proc.stdout.splitlines()
        assert lines[0].split() == LS_COLUMNS
        by_run = {line.split()[0]: line.split()[1:6] for line in lines[1:]}
        assert by_run == {
            recorded.triage: ["triage", '{"ticket":1}', "2", "4", "completed"],
            recorded.other: ["other", '{"ticket":2}', "1", "1", "completed"],
            recorded.flaky: ["flaky", "null", "1", "1", "completed"],
            recorded.denied: ["denied", "null", "1", "0", "failed"],
        }
    assert procs[0].stdout == procs[1].stdout


@pytest.mark.parametrize("where", ["named", "default"])
def test_ls_without_a_store_exits_1_and_creates_nothing(tmp_path: Path, where: str) -> None:
    """``ls`` where no store exists (``--store`` naming a missing directory, or the
    default ./.recorder) exits 1 with a message on stderr and creates no directory."""
    if where == "named":
        target = tmp_path / "nothing" / "here"
        proc = cli("ls", store=target, cwd=tmp_path)
    else:
        target = tmp_path / ".recorder"
        proc = cli("ls", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("recorder: error: no store at ")
    assert "RECORDER_DIR" in proc.stderr
    assert sorted(tmp_path.iterdir()) == []


# -- show ----------------------------------------------------------------------------------


def test_show_prints_the_step_table_by_name_and_by_run_id(recorded: Recorded) -> None:
    """``show NAME`` and ``show NAME@HASH`` print the same thing: a header line, then one
    table row per step call with its status, the LLM model on LLM rows."""
    by_name, by_id = cli_all(
        ["show", "triage"], ["show", recorded.triage], store=recorded.directory
    )
    for proc in (by_name, by_id):
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
    assert by_name.stdout == by_id.stdout
    lines = by_name.stdout.splitlines()
    assert lines[0].startswith(
        f"run {recorded.triage}  status completed  attempts 2  recorded steps 4  calls shown 8"
    )
    header = lines[1].split()
    assert header[:5] == ["attempt", "seq", "kind", "name", "status"]
    assert {"model", "prompt_tokens", "cost_usd", "error"} <= set(header)
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == recorded.triage_rows
    assert [r[0] for r in rows] == ["1"] * 4 + ["2"] * 4
    assert [r[2] for r in rows] == ["step", "llm", "llm", "now"] * 2
    assert [r[4] for r in rows] == ["live"] * 4 + ["replayed"] * 4
    assert [r[3] for r in rows if r[2] == "llm"] == [MODEL] * 4


def test_show_a_missing_run_exits_1_and_suggests_ls(recorded: Recorded) -> None:
    """``show missing`` exits 1, prints nothing on stdout, and its one-line stderr
    message names the run and points at ``recorder ls``."""
    proc = cli("show", "missing", store=recorded.directory)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("recorder: error: no run named 'missing'")
    assert "`recorder ls`" in proc.stderr
    assert proc.stderr.count("\n") == 1


def shell_pipe(command: str, *, store: Path) -> Done:
    """Run ``set -o pipefail; recorder --store DIR COMMAND`` in bash, with stdout
    buffered as in a user's shell (the test environment may set PYTHONUNBUFFERED)."""
    recorder_cmd = f"{shlex.quote(str(SCRIPT))} --store {shlex.quote(str(store))}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "RECORDER_DIR")}
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {recorder_cmd} {command}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert SECRET not in done.stdout + done.stderr
    return done


def test_show_into_a_pipe_closed_early_does_not_crash(tmp_path: Path) -> None:
    """``recorder show RUN | head -1`` with output far larger than a pipe buffer exits 0
    (under pipefail) and prints no BrokenPipeError."""
    directory = tmp_path / "store"
    big = recorder.run("big", store=str(directory))
    for _ in range(2):
        with big:
            for i in range(400):
                big.step("count", lambda i: i, i)
    proc = shell_pipe("show big | head -1", store=directory)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    header = (
        f"run {big.run_id}  status completed  attempts 2  recorded steps 400  calls shown 800  "
        "inputs null\n"
    )
    assert proc.stdout == header


def test_small_output_into_a_closed_pipe_does_not_crash(recorded: Recorded) -> None:
    """A command whose output is small, piped into a reader that exits without reading,
    exits 0 with nothing on stderr (with buffered stdout the write used to happen at
    interpreter exit, outside the handler: "Exception ignored ... BrokenPipeError" and
    exit status 120)."""
    proc = shell_pipe("verify | true", store=recorded.directory)
    assert proc.stderr == ""
    assert proc.returncode == 0


# -- export --------------------------------------------------------------------------------


def test_export_writes_csv_parquet_and_jsonl(recorded: Recorded, tmp_path: Path) -> None:
    """``export RUN -o FILE`` (console script, and ``python -m recorder`` for parquet)
    writes every trace row in the format the extension names, with model, token and cost
    columns filled on the LLM rows only."""
    targets = [tmp_path / f"trace.{suffix}" for suffix in ("csv", "parquet", "jsonl")]
    procs = finish(
        *(
            start(["export", "triage", "-o", t], store=recorded.directory, module=i == 1)
            for i, t in enumerate(targets)
        )
    )
    readers = {
        ".csv": pd.read_csv,
        ".parquet": pd.read_parquet,
        ".jsonl": lambda path: pd.read_json(path, lines=True),
    }
    for target, proc in zip(targets, procs, strict=True):
        assert proc.returncode == 0, proc.stderr
        kind = target.suffix[1:]
        rows = recorded.triage_rows
        assert proc.stdout == f"wrote {rows} rows of run {recorded.triage} to {target} ({kind})\n"
        frame = readers[target.suffix](target)
        assert len(frame) == rows
        assert tuple(frame.columns[: len(TRACE_COLUMNS)]) == TRACE_COLUMNS
        assert set(frame["run"]) == {recorded.triage}
        assert frame["status"].tolist() == ["live"] * 4 + ["replayed"] * 4
        llm = frame[frame["kind"] == "llm"]
        assert len(llm) == 4
        assert (llm["model"] == MODEL).all()
        assert (llm["prompt_tokens"] > 0).all()
        assert (llm["completion_tokens"] > 0).all()
        assert (llm["cost_usd"] > 0).all()
        assert frame.loc[frame["kind"] != "llm", "cost_usd"].isna().all()
        assert SECRET.encode() not in target.read_bytes()


def test_export_refuses_xlsx(recorded: Recorded, tmp_path: Path) -> None:
    """``export RUN -o f.xlsx`` exits 1 with a message naming the valid extensions, and
    writes nothing."""
    target = tmp_path / "f.xlsx"
    proc = cli("export", "triage", "-o", target, store=recorded.directory)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "recorder: error: cannot export to 'f.xlsx': use one of .csv, .parquet, .jsonl.\n"
    )
    assert not target.exists()


# -- verify and damage ---------------------------------------------------------------------


def test_verify_a_good_store(recorded: Recorded) -> None:
    """``verify`` exits 0 on an intact store and says ok, with what it checked."""
    proc = cli("verify", store=recorded.directory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: ")
    assert "6 step records verified" in proc.stdout  # 4 + 1 + 1 + 0
    assert proc.stderr == ""


@pytest.mark.parametrize("damage", ["overwrite", "delete"])
@pytest.mark.parametrize("blob", ["prebuilt", "result"])
def test_a_damaged_blob_is_reported_and_never_replayed_live(
    recorded: Recorded,
    llm: dict[str, Any],
    llm_server: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    blob: str,
) -> None:
    """After one blob is overwritten or deleted, ``verify`` exits 1 naming the run, the
    step and the blob; a replay raises DamagedRecordError naming the step and sends no
    request to the model. (A replay reads an LLM call's prebuilt response, not the
    recorded JSON it was built from: with ``blob="result"``, the JSON is made unusable
    for this process by giving the prebuilt form another library version's tag.)"""
    step = first_llm_step(recorded.directory, recorded.triage)
    assert step.result_ref is not None and step.prebuilt is not None
    ref = step.prebuilt["ref"] if blob == "prebuilt" else step.result_ref
    if blob == "result":
        monkeypatch.setattr(adapter, "state_form", lambda: "another litellm")
    key = "blob/" + ref
    store = DiskStore(recorded.directory)
    try:
        if damage == "overwrite":
            store.write({key: b"garbage"})
        else:
            store.write(deletes=[key])
    finally:
        store.close()

    proc = cli("verify", store=recorded.directory)
    assert proc.returncode == 1
    label = f"{recorded.triage} step #1 (llm '{MODEL}', attempt 1)"
    assert f"DAMAGED {label}: a blob it needs is missing or damaged ({ref})" in (
        proc.stdout.splitlines()
    )
    *damaged, summary = proc.stdout.splitlines()
    assert all(line.startswith("DAMAGED ") for line in damaged)
    assert summary.startswith(f"{len(damaged)} problem(s) in ")

    requests = llm_server.requests
    run = recorder.run("triage", inputs={"ticket": 1}, store=str(recorded.directory))
    expected = rf"step #1 \(llm '{MODEL}', attempt 1\)"
    with pytest.raises(recorder.DamagedRecordError, match=expected), run:
        run.step("classify", classify, "printer on fire")
        ask(llm, "Sum up")
    assert llm_server.requests == requests
    assert run.stats.live == 0


# -- rm ------------------------------------------------------------------------------------


def test_rm_removes_a_run_and_keeps_the_others_replayable(recorded: Recorded) -> None:
    """``rm RUN`` exits 0 and the run leaves ``ls``; the run that shared a step (and its
    blob) with it still verifies and replays in mode="replay" with the same result."""
    blobs = {
        run: {b for s in step_records(recorded.directory, run) for b in s.blobs}
        for run in (recorded.triage, recorded.other)
    }
    shared = blobs[recorded.triage] & blobs[recorded.other]
    assert shared  # the classify request
    proc = cli("rm", "triage", store=recorded.directory)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"removed run {recorded.triage} (4 step records)\n"
    listing, verify, show = cli_all(
        ["ls"], ["verify"], ["show", "triage"], store=recorded.directory
    )
    assert listing.returncode == 0
    assert recorded.triage not in listing.stdout
    assert recorded.other in listing.stdout
    assert verify.returncode == 0, verify.stdout
    assert all(blob_exists(recorded.directory, ref) for ref in shared)
    assert not any(blob_exists(recorded.directory, ref) for ref in blobs[recorded.triage] - shared)
    assert show.returncode == 1
    assert "'triage'" in show.stderr
    other = recorder.run(
        "other", inputs={"ticket": 2}, store=str(recorded.directory), mode="replay"
    )
    with other:
        assert other.step("classify", classify, "printer on fire") == recorded.other_result
    assert other.stats.replayed == 1


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["show"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    """No command, an unknown command or a missing argument is a usage error: exit 2,
    usage on stderr, nothing on stdout, no store created."""
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: recorder")
    assert sorted(tmp_path.iterdir()) == []


# -- secrets -------------------------------------------------------------------------------


def test_api_key_appears_in_no_store_file(recorded: Recorded, tmp_path: Path) -> None:
    """The api_key passed to litellm, which the server's 401 quotes back, is in no byte
    of any file under the store directory nor in an export or the trace of the refused
    calls: their recorded errors say ``[redacted]`` instead."""
    target = tmp_path / "denied.jsonl"
    proc = cli("export", "denied", "-o", target, store=recorded.directory)
    assert proc.returncode == 0, proc.stderr
    (exported,) = [json.loads(line) for line in target.read_text().splitlines()]
    flaky = recorder.load("flaky", store=str(recorded.directory)).to_dataframe()
    for row in (exported, flaky.iloc[0].to_dict()):
        assert (row["status"], row["kind"]) == ("failed", "llm")
        assert row["error"].startswith("AuthenticationError")
        assert "Incorrect API key provided: [redacted]" in row["error"]
    files = [path for path in recorded.directory.rglob("*") if path.is_file()]
    assert any(path.name == "cache.db" for path in files)
    for path in [*files, target]:
        assert SECRET.encode() not in path.read_bytes(), path


# -- regressions (bugs found while writing these tests) ----------------------------------


def test_ls_on_an_existing_non_store_directory_leaves_it_alone(tmp_path: Path) -> None:
    """A command pointed at an existing directory that holds no store (a typo, a project
    directory) exits 1 naming it, creates no database there and changes no file's
    permissions (it used to chmod every file there to 0600)."""
    project = tmp_path / "project"
    project.mkdir(mode=0o755)
    script = project / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    proc = cli("ls", store=project)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("recorder: error: ")
    assert str(project) in proc.stderr
    assert [p.name for p in project.iterdir()] == ["run.sh"]
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_rerunning_the_same_run_object_after_rm_writes_complete_records(tmp_path: Path) -> None:
    """``rm`` a run from the shell, then re-enter the Run object a notebook still holds:
    the new live steps are recorded with every blob they need (a per-Run cache of blobs
    already written used to skip them, leaving damage for ``verify``)."""
    directory = tmp_path / "store"
    run = recorder.run("notebook", store=str(directory))
    with run:
        run.step("classify", classify, "printer on fire")
    assert cli("rm", "notebook", store=directory).returncode == 0
    with run:
        run.step("classify", classify, "printer on fire")
    assert run.stats.live == 1
    proc = cli("verify", store=directory)
    assert proc.returncode == 0, proc.stdout


def test_rm_refuses_a_run_that_a_live_process_has_open(tmp_path: Path) -> None:
    """``rm`` of a run another live process has open exits 1 naming the run, and the run
    stays recorded; the open attempt ends without its lock having been taken (``rm``
    used to delete it, leaving records that no command lists or removes)."""
    directory = tmp_path / "store"
    run = recorder.run("busy", store=str(directory))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with run:
            run.step("one", lambda: 1)
            proc = cli("rm", "busy", store=directory)
            run.step("two", lambda: 2)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert run.run_id in proc.stderr
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    history = recorder.load("busy", store=str(directory))
    assert history.run_id == run.run_id
    assert [s.name for s in history.current_steps()] == ["one", "two"]
    after = cli("rm", "busy", store=directory)
    assert after.returncode == 0, after.stderr


def test_store_option_after_the_command_and_unknown_attempt(recorded: Recorded) -> None:
    """``recorder ls --store DIR`` works like ``recorder --store DIR ls``; ``show
    --attempt 99`` names the attempts that exist and exits 1."""
    after = cli("ls", "--store", recorded.directory)
    assert after.returncode == 0, after.stderr
    assert recorded.triage in after.stdout
    missing = cli("show", "triage", "--attempt", "99", store=recorded.directory)
    assert missing.returncode == 1
    assert "has no attempt 99; its attempts are 1, 2" in missing.stderr


def test_signal_resumes_a_suspended_run(tmp_path: Path) -> None:
    """`recorder signal RUN NAME VALUE` delivers what `wait_for` is waiting for; VALUE
    is JSON when it parses, text otherwise; a wrong run or name is a clean error."""
    store = tmp_path / "store"
    with recorder.run("approve", store=store) as run:
        run.wait_for_sync("approval")
        run.wait_for_sync("approval")
    assert run.outcome == "suspended"
    first = cli("signal", "approve", "approval", '{"ok": true}', store=store)
    second = cli("signal", "approve", "approval", "looks good", store=store)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "sent signal 'approval' #0" in first.stdout and "#1" in second.stdout
    with recorder.run("approve", store=store) as run:
        got = [run.wait_for_sync("approval"), run.wait_for_sync("approval")]
    assert got == [{"ok": True}, "looks good"] and run.outcome == "completed"
    missing = cli("signal", "nobody", "approval", "1", store=store)
    assert missing.returncode == 1 and "recorder ls" in missing.stderr
    bad = cli("signal", "approve", "../x", "1", store=store)
    assert bad.returncode == 1 and "error" in bad.stderr
    usage = cli("signal", "approve", store=store)
    assert usage.returncode == 2


def test_fork_from_the_shell(tmp_path: Path) -> None:
    """`recorder fork RUN STEP NAME` makes NAME replay RUN's first STEP steps."""
    store = tmp_path / "store"
    with recorder.run("source", store=store) as run:
        first = [run.step("s", str.upper, x) for x in "abc"]
    done = cli("fork", "source", "2", "branch", "--inputs", '{"v": 1}', store=store)
    assert done.returncode == 0, done.stderr
    assert "forked run branch@" in done.stdout
    calls: list[str] = []

    def upper(x: str) -> str:
        calls.append(x)
        return x.upper()

    with recorder.run("branch", inputs={"v": 1}, store=store) as run:
        assert [run.step("s", upper, x) for x in "abz"] == [*first[:2], "Z"]
    assert calls == ["z"]
    again = cli("fork", "source", "2", "branch", "--inputs", '{"v": 1}', store=store)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli("fork", "source", "x", "b2", store=store).returncode == 2
    assert cli("fork", "nobody", "1", "b3", store=store).returncode == 1
