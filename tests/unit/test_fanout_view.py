"""The views of a fan-out: one tqdm line over the inputs on a terminal, a panel of HTML
in a notebook (counts by status, a bar over the inputs, throughput, elapsed and time
left, cost spent and saved, the slowest and the failed children, how to open one);
both tick while nothing ends; ``display=False`` shows nothing."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

import recorder
import recorder.fanview as fanview
from recorder.display import format_seconds, format_usd
from recorder.fanview import FanOutLine, FanOutPanel, snapshot_of


async def agent(run: recorder.Run, x: int) -> int:
    return int(await run.astep("double", lambda v: 2 * v, x))


async def test_the_line_counts_children_by_status(capsys: pytest.CaptureFixture[str]) -> None:
    store = recorder.MemoryStore()
    fan = recorder.fan_out(agent, range(5), name="view", key=int, store=store, display=True)
    await fan
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("recorder view: 100%") and "5/5" in last
    assert "5 completed" in last and "spent" in last and "saved" in last
    assert "child/s" in last or "s/child" in last  # throughput

    fan = recorder.fan_out(agent, range(6), name="view", key=int, store=store, display=True)
    await fan  # five come back replayed, one runs
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "6/6" in last and "1 completed, 5 replayed" in last


async def test_display_false_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    fan = recorder.fan_out(agent, range(3), name="quiet", key=int,
                           store=recorder.MemoryStore(), display=False)  # fmt: skip
    await fan
    assert capsys.readouterr().err == ""


def _row(key: str, status: str, **extra: Any) -> dict[str, Any]:
    row = {"key": key, "status": status, "started_at": None, "duration_s": float("nan"),
           "cost_usd": 0.0, "cost_saved_usd": 0.0, "error": None}  # fmt: skip
    row.update(extra)
    return row


def test_the_line_redraws_at_most_every_tenth_of_a_second() -> None:
    stream = io.StringIO()
    rows = [_row(str(i), "pending") for i in range(10_000)]
    asked: list[Any] = []

    def counted() -> list[dict[str, Any]]:
        asked.append(1)
        return rows

    line = FanOutLine("many", counted, stream=stream)
    for row in rows:
        row["status"] = "completed"
        line.advance()
    line.close()
    assert len(asked) < 50  # the rows are not summed up per child
    assert stream.getvalue().count("\r") < 100 and "10000/10000" in stream.getvalue()


def test_the_snapshot_counts_times_money_and_failures() -> None:
    rows = [
        _row("a", "completed", duration_s=3.0, cost_usd=0.002),
        _row("b", "replayed", cost_saved_usd=0.004),
        _row("c", "failed", duration_s=1.0, error="ValueError: no seat\n  details"),
        _row("d", "running", started_at=1000.0),
        _row("e", "pending"),
    ]
    snap = snapshot_of("trip", rows, elapsed_s=10.0, ended_here=2, now=1012.0)
    assert snap.counts == {"completed": 1, "replayed": 1, "failed": 1, "running": 1, "pending": 1}
    assert (snap.settled, snap.remaining, snap.rate) == (3, 2, 0.2)
    assert snap.eta_s == 10.0  # two left at 0.2 children/s
    assert snap.slowest == [("d", "running", 12.0), ("a", "completed", 3.0), ("c", "failed", 1.0)]
    assert snap.failed == [("c", "ValueError: no seat\n  details")]
    assert snap.cost_usd == 0.002 and snap.saved_usd == 0.004
    text = snap.summary()
    assert text.startswith("1 completed, 1 replayed, 1 failed, 1 running, 1 pending")
    assert "$0.002 spent, $0.004 saved" in text

    page = snap.html()
    for shown in ("fan-out trip", "3 of 5 settled", "elapsed 10 s", "12.0 children/min",
                  "about 10 s left", "spent $0.002", "saved $0.004", "recorder-bar",
                  "ValueError: no seat</summary>", "fan.show(&#x27;c&#x27;)"):  # fmt: skip
        assert shown in page, shown
    assert "<script" not in page


def test_the_panel_escapes_what_children_say() -> None:
    rows = [_row("<b>x</b>", "failed", error="<img src=x onerror=alert(1)>")]
    page = snapshot_of("f", rows, elapsed_s=1.0, ended_here=1).html()
    assert "<img" not in page and "&lt;img" in page and "<b>x</b>" not in page


def test_the_panel_links_the_engine_dashboard_when_there_is_one() -> None:
    rows = [_row("a", "running", started_at=1000.0)]
    plain = snapshot_of("f", rows, elapsed_s=1.0, ended_here=0)
    assert "recorder-dashboard" not in plain.html() and "dashboard" not in plain.line()
    link = "http://127.0.0.1:8787/status?a=1&b=<2>"
    snap = snapshot_of("f", rows, elapsed_s=1.0, ended_here=0, dashboard=link)
    page = snap.html()
    assert 'href="http://127.0.0.1:8787/status?a=1&amp;b=&lt;2&gt;"' in page
    assert "(the Dask dashboard)" in page and page.endswith("</div></div>")
    assert snap.line().endswith(f"dashboard {link}")


def test_numbers_are_for_people() -> None:
    assert [format_usd(v) for v in (0, 3.6000000000000003e-06, 0.0042, 0.123, 1234.5)] == [
        "$0", "<$0.0001", "$0.0042", "$0.12", "$1,234.50"]  # fmt: skip
    assert [format_seconds(v) for v in (0.04, 12.3, 245, 7380, float("nan"))] == [
        "0.0 s", "12 s", "4 min 05 s", "2 h 03 min", "-"]  # fmt: skip


async def test_the_panel_ticks_while_a_child_runs_and_keeps_its_final_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(fanview, "in_notebook", lambda: True)
    monkeypatch.setattr(fanview, "TICK_S", 0.05)
    monkeypatch.setattr(FanOutPanel, "interval", 0.04)
    import recorder.integrations.notebook as notebook

    monkeypatch.setattr(notebook, "publisher", lambda: lambda h, t: shown.append((h, t)))

    async def slow(run: recorder.Run, x: int) -> int:
        await asyncio.sleep(0.6 if x == 0 else 0.0)
        return x

    fan = recorder.fan_out(slow, range(3), name="ticks", key=int,
                           store=recorder.MemoryStore(), display=None)  # fmt: skip
    await fan
    # while child 0 slept and nothing ended, the panel was redrawn by the tick
    running = [t for h, t in shown if 'recorder-count-running">1</b>' in h]
    assert len(running) >= 5, running
    assert len({t.rsplit("elapsed ", 1)[1] for t in running}) >= 4  # the time moved on
    final, text = shown[-1]
    assert "finished" in final and "3 of 3 settled" in final and "3</b> completed" in final
    assert text.startswith("recorder fan-out ticks | 3/3 | 3 completed")


async def test_an_interrupted_fan_out_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def forever(run: recorder.Run, x: int) -> int:
        await asyncio.sleep(60)
        return x

    fan = recorder.fan_out(forever, range(4), name="stop", key=int, concurrency=2,
                           store=recorder.MemoryStore(), display=False)  # fmt: skip
    task = asyncio.ensure_future(_wait(fan))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    assert isinstance(caught.value, recorder.Cancelled)
    line = caught.value._render_traceback_()
    assert line == [
        "recorder: fan-out 'stop' interrupted: 0 of 4 children done, 4 interrupted or not "
        "started; run the same call again to resume the unfinished."
    ]
    assert capsys.readouterr().err.strip() == line[0]
    assert fan.counts == {"interrupted": 4}


async def _wait(fan: recorder.FanOut) -> Any:
    return await fan
