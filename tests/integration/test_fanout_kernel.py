"""A fan-out cell interrupted in a real Jupyter kernel (nbclient) with the stop button's
signal, then run again (issue 13, points 7 and 14): the cell ends with one line, not a
traceback per child; every child's attempt ended (interrupted or completed) with no
lock left; no Chromium is left; the same cell resumes only the unfinished children, and
the finished ones come back replayed with no LLM call.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_notebook_interrupts import (
    SETUP,
    Kernel,
    errors,
    in_own_thread,
    line,
    recorded_llm_steps,
    settle_processes,
    step_records,
)

import recorder
from fixtures.llm_server import LLMServer
from fixtures.site import FixtureSite
from recorder.journal import Journal

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

FAN_CELL = """\
async def visit(run, n):
    page = await run.new_page()
    await page.goto(SITE + "/")
    for i in range(4):
        reply = await litellm.acompletion(
            messages=[{"role": "user", "content": f"child {n} step {i}"}], **LLM)
        await page.evaluate("t => { document.title = t }", reply.choices[0].message.content)
    return {"n": n, "title": await page.title()}

fan = recorder.fan_out(visit, range(6), name="fan-cell", key=int, concurrency=3,
                       store=os.environ["STORE"])
df = await fan
print("ROWS " + json.dumps(df[["key", "status", "live_llm_calls"]].to_dict("records")))"""

CHILDREN = [f"fan-cell:{n}" for n in range(6)]


def panel(cell: Any) -> str:
    """The fan-out panel's last state in the cell (display updates applied)."""
    shown = [o["data"]["text/html"] for o in cell.outputs
             if "recorder-fanout" in str(o.get("data", {}).get("text/html", ""))]  # fmt: skip
    assert len(shown) == 1, cell.outputs
    return str(shown[0])


def parent_steps(store: Path) -> int:
    """The fan-out's own step records so far (its inputs, then a step per child that
    ended); 0 while the kernel has not made the store yet."""
    try:
        return step_records(store, "fan-cell")
    except recorder.StoreError:
        return 0


def test_an_interrupted_fan_out_cell_is_clean_and_resumes(tmp_path: Path) -> None:
    marker = f"recorder-fan-{uuid.uuid4().hex}"
    store = tmp_path / "store"

    async def story() -> None:
        with FixtureSite() as site, LLMServer(mode="echo", delay_s=0.3) as llm:
            kernel = Kernel(site, llm, store, marker)
            async with kernel.session():
                await kernel.run(SETUP)
                cut = await kernel.run_until(
                    FAN_CELL, lambda: parent_steps(store) >= 2,
                    kernel.client.km.interrupt_kernel,
                )  # fmt: skip
                assert errors(cut) == ["Cancelled"], cut.outputs
                error = next(o for o in cut.outputs if o["output_type"] == "error")
                assert len(error["traceback"]) == 1, error["traceback"]
                assert error["traceback"][0].startswith("recorder: fan-out 'fan-cell' interrupted")
                streams = "".join(o.get("text", "") for o in cut.outputs)
                assert "Traceback" not in streams and "CancelledError" not in streams, streams
                assert "interrupted" in panel(cut)

                journal = Journal(recorder.open_store(store))
                statuses = {}
                for name in CHILDREN:
                    try:
                        history = recorder.load(name, store=store)
                    except recorder.RunNotFoundError:
                        statuses[name] = "not started"
                        continue
                    statuses[name] = history.status
                    assert journal.get_lock(history.run_id) is None, name
                done = [n for n, s in statuses.items() if s == "completed"]
                assert done and set(statuses.values()) <= {"completed", "interrupted",
                                                          "not started"}, statuses  # fmt: skip
                assert "interrupted" in statuses.values(), statuses
                assert await settle_processes(marker, lambda n: n == 0) == 0
                recorded = {n: recorded_llm_steps(store, n) for n, s in statuses.items()
                            if s == "interrupted"}  # fmt: skip

                before = llm.requests
                again = await kernel.run(FAN_CELL)
                assert errors(again) == [], again.outputs
                rows = {f"fan-cell:{r['key']}": r for r in line(again, "ROWS")}
                assert {n for n, r in rows.items() if r["status"] == "replayed"} == set(done)
                assert all(r["status"] == "completed" for n, r in rows.items() if n not in done)
                assert all(rows[n]["live_llm_calls"] == 0 for n in done)
                assert llm.requests - before == sum(r["live_llm_calls"] for r in rows.values())
                for name, calls in recorded.items():  # each resumed where its record ended
                    assert rows[name]["live_llm_calls"] == 4 - calls, (name, calls, rows[name])
                final = panel(again)
                assert "finished" in final and "6 of 6 settled" in final
            assert await settle_processes(marker, lambda n: n == 0) == 0, "orphaned Chromium"
        json.dumps(rows)

    in_own_thread(story)
