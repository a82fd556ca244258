"""A real process, killed with SIGKILL mid-run, resumes from its record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recorder
from fixtures.llm_server import LLMServer
from recorder import Outcome
from recorder.integrations.modelstate import state_form
from recorder.journal import Journal
from recorder.records import StepRecord
from recorder.store import DiskStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

AGENT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm, recorder
    base, store, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    litellm.suppress_debug_info = True
    answers = []
    with recorder.run("crashy", inputs={"steps": steps}, store=store) as run:
        for i in range(steps):
            r = litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="sk-x",
                num_retries=0, messages=[{"role": "user", "content": f"step {i}"}])
            answers.append(run.step("shout", str.upper, r.choices[0].message.content))
            print("done", i, flush=True)
    print("RESULT", json.dumps(answers), flush=True)
    """
)


def _agent(tmp_path: Path, server: LLMServer, store: Path, steps: int) -> list[str]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    return [sys.executable, str(script), server.base_url, str(store), str(steps)]


def _result(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return list(json.loads(line[len("RESULT ") :]))


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    steps, kill_after = 8, 3
    with LLMServer(mode="echo") as server:
        reference = subprocess.run(
            _agent(tmp_path, server, tmp_path / "reference", steps),
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        expected = _result(reference.stdout)
        server.reset()

        store = tmp_path / "store"
        child = subprocess.Popen(
            _agent(tmp_path, server, store, steps), stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == f"done {kill_after - 1}":
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait()
        assert child.returncode == -signal.SIGKILL
        live_before = server.requests
        assert kill_after <= live_before <= kill_after + 1
        # Prebuilt responses are written when an attempt ends: the killed one left none.
        recorded = _llm_records(store)
        assert len(recorded) >= kill_after and all(r.prebuilt is None for r in recorded)

        resumed = subprocess.run(
            _agent(tmp_path, server, store, steps),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        assert _result(resumed.stdout) == expected
        assert server.requests == live_before + steps - kill_after  # finished steps replayed
        # The resumed attempt rebuilt the killed one's responses and left forms for all.
        recorded = _llm_records(store)
        assert len(recorded) == steps
        assert {(r.prebuilt or {}).get("tag") for r in recorded} == {state_form()}

        again = subprocess.run(
            _agent(tmp_path, server, store, steps),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        assert _result(again.stdout) == expected
        assert server.requests == live_before + steps - kill_after  # a pure replay

    history = recorder.load("crashy", store=store)
    assert [a.outcome for a in history.attempts] == [
        Outcome.CRASHED, Outcome.COMPLETED, Outcome.COMPLETED
    ]  # fmt: skip
    rows = history.rows()
    second = [r["status"] for r in rows if r["attempt"] == 2]
    assert second == ["replayed"] * (2 * kill_after) + ["live"] * (2 * (steps - kill_after))
    assert {r["status"] for r in rows if r["attempt"] == 3} == {"replayed"}
    assert recorder.store.DiskStore(store).integrity_check() == []
    disk = DiskStore(store)
    try:
        assert Journal(disk).verify() == []  # the forms are blobs the records name
    finally:
        disk.close()


def _llm_records(store: Path) -> list[StepRecord]:
    disk = DiskStore(store)
    try:
        journal = Journal(disk)
        (run,) = journal.list_runs("crashy")
        return [s for s in journal.steps(run.run_id) if s.kind == "llm"]
    finally:
        disk.close()
