"""recorder.fan_out with real litellm over HTTP, real Chromium, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
import pytest_asyncio

import recorder
import recorder.journal
from fixtures.llm_server import LLMServer
from fixtures.site import CATALOGUE, FixtureSite
from recorder.integrations.browser import aclose_browser, launch

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as running:
        yield running


# -- LLM children ------------------------------------------------------------------------


async def test_llm_children_record_then_replay_with_no_request(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    async def agent(run: recorder.Run, topic: str) -> dict[str, str]:
        ask = [{"role": "user", "content": f"a line about {topic}"}]
        first = await litellm.acompletion(messages=ask, **llm)
        ask += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "shorter"}]  # fmt: skip
        second = await litellm.acompletion(messages=ask, **llm)
        return {"first": first.choices[0].message.content,
                "second": second.choices[0].message.content}  # fmt: skip

    topics = ["sea", "sky", "rain", "snow", "wind", "sun"]
    df = await recorder.fan_out(agent, topics, name="lines", key=str, concurrency=3,
                                store=store_dir)  # fmt: skip
    assert llm_server.requests == 12
    assert set(df["status"]) == {"completed"}
    assert list(df["llm_calls"]) == [2] * 6 and list(df["live_llm_calls"]) == [2] * 6
    assert (df["cost_usd"] > 0).all() and (df["cost_saved_usd"] == 0).all()

    again = await recorder.fan_out(agent, topics, name="lines", key=str, store=store_dir)
    assert llm_server.requests == 12  # no request: read from the record
    assert set(again["status"]) == {"replayed"}
    assert list(again["result"]) == list(df["result"])  # random mode: same text = recorded
    assert list(again["live_llm_calls"]) == [0] * 6
    assert list(again["cost_saved_usd"]) == pytest.approx(list(df["cost_usd"]))
    trace = recorder.load("lines:rain", store=store_dir).to_dataframe()
    assert list(trace["kind"]) == ["llm", "llm"]


async def test_a_limit_caps_live_llm_calls_across_children(store_dir: Path) -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(body: dict[str, Any]) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return None  # the mode answers

    with LLMServer(policy=slow, mode="echo") as server:
        llm = {"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "sk-test",
               "num_retries": 0}  # fmt: skip

        async def agent(run: recorder.Run, n: int) -> str:
            for turn in range(2):
                ask = [{"role": "user", "content": f"{n} turn {turn}"}]
                reply = await litellm.acompletion(messages=ask, **llm)
            return str(reply.choices[0].message.content)

        df = await recorder.fan_out(agent, range(8), name="capped", key=int, concurrency=8,
                                    limits={"llm": 2}, store=store_dir)  # fmt: skip
        assert server.requests == 16 and state["peak"] == 2
        assert set(df["status"]) == {"completed"}


def test_sync_llm_children_in_threads_share_the_limit(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    from recorder import limits

    peaks: list[int] = []
    real = limits.limited

    def spy(name: str, fn: Any) -> Any:
        found = limits.current(name)
        if found is not None:
            peaks.append(found.in_use)
        return real(name, fn)

    def agent(run: recorder.Run, n: int) -> str:
        reply = litellm.completion(messages=[{"role": "user", "content": f"n={n}"}], **llm)
        return str(reply.choices[0].message.content)

    import recorder.integrations.litellm as adapter

    adapter.limited = spy  # type: ignore[assignment]
    try:
        df = recorder.fan_out(agent, range(6), name="sync-llm", key=int, concurrency=6,
                              limits={"llm": 1}, store=store_dir).wait()  # fmt: skip
    finally:
        adapter.limited = real  # type: ignore[assignment]
    assert set(df["status"]) == {"completed"} and llm_server.requests == 6
    assert len(peaks) == 6 and max(peaks) <= 1


# -- browser children ----------------------------------------------------------------------


@pytest_asyncio.fixture
async def close_browser() -> AsyncIterator[None]:
    yield
    await aclose_browser()


def _chromium_children() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        parent = int(fields[1].split()[1])
        state = fields[1].split()[0]
        mine = parent == os.getpid() or _descends(parent)
        if mine and state != b"Z" and (b"chrom" in command or b"playwright" in command):
            found.append(int(entry))
    return found


def _fds(store: Path) -> set[str]:
    """What this process's file descriptors point at, the store's files left out."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not target.startswith(str(store)):
            found.add(f"{fd}:{target}")
    return found


def _descends(pid: int, depth: int = 4) -> bool:
    for _ in range(depth):
        if pid == os.getpid():
            return True
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
        if pid <= 1:
            return False
    return False


@pytest.mark.browser
@pytest.mark.slow
async def test_concurrent_browser_children_share_one_chromium_and_leak_nothing(
    store_dir: Path, site: FixtureSite, close_browser: None
) -> None:
    async def agent(run: recorder.Run, flight: dict[str, int]) -> dict[str, str]:
        page = await run.new_page()
        await page.goto(f"{site.url}/item/{flight['id']}")
        title = await page.locator("#title").inner_text()
        price = await page.locator("#price").inner_text()
        return {"title": title, "price": price}

    await aclose_browser()
    fds = _fds(store_dir)
    threads = threading.active_count()
    launches = launch.launches
    flights = [{"id": f.id, "copy": 0} for f in CATALOGUE]
    flights += [{"id": f.id, "copy": 1} for f in CATALOGUE[:7]]  # 30 children

    def key(flight: dict[str, int]) -> str:
        return f"{flight['id']}-{flight['copy']}"

    df = await recorder.fan_out(agent, flights, name="flights", key=key, concurrency=30,
                                store=store_dir)  # fmt: skip
    assert launch.launches == launches + 1  # one Chromium for all 30 children
    assert list(df["status"]) == ["completed"] * 30
    assert df.loc[0, "result"] == {"title": CATALOGUE[0].title,
                                   "price": f"EUR {CATALOGUE[0].price}"}  # fmt: skip
    assert df.loc[29, "result"] == df.loc[6, "result"]
    shared = launch._shared.get("async")
    assert shared is not None and shared.browser.contexts == []  # every context closed

    await aclose_browser()
    await asyncio.sleep(0.2)
    assert _chromium_children() == []
    assert _fds(store_dir) <= fds  # the store's own files stay open; nothing else
    assert threading.active_count() <= threads + 1

    requests = site.requests
    again = await recorder.fan_out(agent, flights, name="flights", key=key, concurrency=30,
                                   store=store_dir)  # fmt: skip
    assert set(again["status"]) == {"replayed"}
    assert site.requests == requests and launch.launches == launches + 1
    assert list(again["result"]) == list(df["result"])


# -- a whole fan-out process killed part-way ---------------------------------------------------


def _command(store: Path, server: LLMServer, site: FixtureSite, count: int) -> list[str]:
    return [sys.executable, str(HERE / "fanout_agent.py"), str(store), server.base_url,
            site.url, str(count)]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _rows(out: str) -> list[dict[str, Any]]:
    line = next(x for x in out.splitlines() if x.startswith("ROWS "))
    return list(json.loads(line[5:]))


def _finished(store: Path, keys: list[str]) -> set[str]:
    done = set()
    for key in keys:
        try:
            history = recorder.load(f"refunds:{key}", store=store)
        except recorder.RunNotFoundError:
            continue
        if history.status == "completed":
            done.add(key)
    return done


@pytest.mark.slow
def test_a_killed_fan_out_resumes_only_the_unfinished(tmp_path: Path) -> None:
    count = 12
    keys = [f"acct-{i:02d}" for i in range(count)]
    with LLMServer(mode="echo", delay_s=0.15) as server, FixtureSite() as site:
        baseline = subprocess.run(
            _command(tmp_path / "baseline", server, site, count),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert baseline.returncode == 0, baseline.stderr
        expected = _rows(baseline.stdout)
        assert [r["status"] for r in expected] == ["completed"] * count
        assert server.requests == 2 * count
        site.reset()
        server.reset()

        store = tmp_path / "store"
        process = subprocess.Popen(
            _command(store, server, site, count),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        done = 0
        for line in process.stdout:
            done += line.startswith("done ")
            if done >= 4:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        finished = _finished(store, keys)
        assert 3 <= len(finished) < count
        before = len(server.bodies)

        again = subprocess.run(
            _command(store, server, site, count),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        rows = _rows(again.stdout)
        asked = " ".join(json.dumps(b) for b in server.bodies[before:])
        for key in finished:  # 0 requests for a finished child
            assert key not in asked
            assert next(r for r in rows if r["key"] == key)["status"] == "replayed"
        notified = [n["key"] for n in site.notifications]
        assert sorted(notified) == keys  # each effect exactly once, kill or not

        def same(row: dict[str, Any]) -> tuple[Any, ...]:
            done = row["status"] in ("completed", "replayed")
            return (row["key"], row["run"], done, row["result"], row["llm_calls"], row["error"])

        assert [same(r) for r in rows] == [same(r) for r in expected]


# -- Ctrl-C in a plain script ------------------------------------------------------------------

_CTRL_C_SCRIPT = """
import asyncio, sys, time
import recorder

def say(n):  # one write: print() writes the line and its end apart, and threads interleave
    sys.stdout.write(f"started {n}\\n")
    sys.stdout.flush()

async def slow(run, n):
    await run.astep("start", lambda v: v, n)
    say(n)
    await asyncio.sleep(60 if n >= 2 else 0)
    return n

def plain(run, n):
    run.step("start", lambda v: v, n)
    say(n)
    deadline = time.monotonic() + (60 if n >= 2 else 0)
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return n

agent = slow if sys.argv[2] == "async" else plain
fan = recorder.fan_out(agent, range(6), name="ctrl-c", key=int, concurrency=4, store=sys.argv[1])
try:
    fan.wait()
except KeyboardInterrupt:
    print("STATUSES", ",".join(fan.df["status"]), flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_ctrl_c_interrupts_every_child_with_one_line(tmp_path: Path, kind: str) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT)
    store = tmp_path / "store"
    process = subprocess.Popen(
        [sys.executable, str(script), str(store), kind],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    started = set()
    for line in process.stdout:
        if line.startswith("started"):
            started.add(int(line.split()[1]))
        if {2, 3, 4, 5} <= started:
            break
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out = process.stdout.read()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 3, err
    assert "Traceback" not in err
    assert err.count("recorder: fan-out 'ctrl-c' interrupted") == 1
    statuses = next(x for x in out.splitlines() if x.startswith("STATUSES")).split()[1]
    assert statuses.split(",") == ["completed"] * 2 + ["interrupted"] * 4
    journal = recorder.journal.Journal(recorder.open_store(store))
    for n in range(2, 6):
        history = recorder.load(f"ctrl-c:{n}", store=store)
        assert history.status == "interrupted"
        assert journal.get_lock(history.run_id) is None
    assert recorder.load("ctrl-c", store=store).status == "interrupted"
