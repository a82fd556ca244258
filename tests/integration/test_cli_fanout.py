"""The command line on a fan-out: ``recorder ls`` counts each fan-out's children by
status, ``recorder show FAN_OUT`` lists its children by status, and ``recorder signal``
reaches a child waiting in ``run.wait_for``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.cli import main
from recorder.fanout import FanOutWarning

pytestmark = pytest.mark.integration


async def agent(run: recorder.Run, x: int) -> dict[str, Any]:
    await run.astep("prepare", lambda v: v * 10, x)
    if x == 1:
        raise ValueError(f"bad input {x}")
    approval = await run.wait_for("approval") if x == 2 else None
    return {"x": x, "approval": approval}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_ls_show_and_signal_on_a_fan_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    fan = recorder.fan_out(agent, range(4), name="approve", key=int, concurrency=2,
                           store=store, display=False)  # fmt: skip
    with pytest.warns(FanOutWarning):
        df = fan.wait()
    assert dict(zip(df["key"], df["status"], strict=True)) == {
        "0": "completed", "1": "failed", "2": "suspended", "3": "completed"}  # fmt: skip

    listed = _cli(capsys, "--store", store, "ls").partition("fan-outs")[2]
    line = next(x for x in listed.splitlines() if x.lstrip().startswith(fan.run_id))
    assert line.split()[1] == "4" and "2 completed, 1 failed, 1 suspended" in line

    shown = _cli(capsys, "--store", store, "show", "approve").splitlines()
    assert shown[0].startswith(f"fan-out {fan.run_id}") and "children 4" in shown[0]
    rows = [x.split()[:2] for x in shown[2:]]  # status, key; failed first, done last
    assert rows == [["failed", "1"], ["suspended", "2"], ["completed", "0"], ["completed", "3"]]
    assert "ValueError: bad input 1" in shown[2]
    # a child is a run like any other: show opens it
    child = _cli(capsys, "--store", store, "show", "approve:2")
    assert "status suspended" in child and "prepare" in child

    sent = subprocess.run(
        [sys.executable, "-m", "recorder", "--store", store, "signal", "approve:2",
         "approval", '{"ok": true}'],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "approve:2" in sent.stdout

    with pytest.warns(FanOutWarning):  # the failed child stays failed
        df = fan.wait()
    assert df.loc[df["key"] == "2", "result"].item() == {"x": 2, "approval": {"ok": True}}
    listed = _cli(capsys, "--store", store, "ls").partition("fan-outs")[2]
    line = next(x for x in listed.splitlines() if x.lstrip().startswith(fan.run_id))
    assert "3 completed, 1 failed" in line


_HOLD = """\
import os, sys, time
import recorder
with recorder.run(sys.argv[2], inputs=int(sys.argv[3]), store=sys.argv[1], display=False):
    print("in", flush=True)
    time.sleep(120)
"""


def test_show_reads_each_child_s_own_records_running_crashed_not_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The parent's record is the last word only until a child's own records are newer:
    a child whose lock a live process holds is ``running``, one left running by a
    SIGKILLed process is ``crashed``, one the fan-out never started is ``not started``."""
    import os
    import signal

    from recorder.fanout import children_of
    from recorder.journal import Journal

    store = str(tmp_path / "store")

    async def first_fails(run: recorder.Run, x: int) -> int:
        if x == 0:
            raise ValueError("no")
        return x

    fan = recorder.fan_out(first_fails, range(4), name="cs", key=int, concurrency=1,
                           max_failures=0, store=store, display=False)  # fmt: skip
    with pytest.warns(FanOutWarning):
        fan.wait()
    assert fan.counts == {"failed": 1, "skipped": 3}
    script = tmp_path / "hold.py"
    script.write_text(_HOLD)
    holders = []
    for key in (1, 2):
        holder = subprocess.Popen(
            [sys.executable, str(script), store, f"cs:{key}", str(key)],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline() == "in\n"
        holders.append(holder)
    try:
        holders[1].send_signal(signal.SIGKILL)
        holders[1].wait(timeout=30)
        rows = children_of(Journal(recorder.open_store(store)), fan.run_id)
        assert [(r["key"], r["status"], r["attempts"]) for r in rows] == [
            ("0", "failed", 1), ("1", "running", 1), ("2", "crashed", 1),
            ("3", "not started", 0)]  # fmt: skip
        shown = _cli(capsys, "--store", store, "show", "cs").splitlines()
        assert shown[0].endswith("1 crashed, 1 failed, 1 not started, 1 running"), shown
        keyed = [x.strip().replace("not started", "not-started").split()[:2] for x in shown[2:]]
        assert keyed == [["failed", "0"], ["crashed", "2"], ["running", "1"],
                         ["not-started", "3"]], shown  # fmt: skip
    finally:
        holders[0].kill()
        holders[0].wait(timeout=30)
