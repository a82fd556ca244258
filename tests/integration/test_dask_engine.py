"""recorder.fan_out on Dask: a real LocalCluster of worker processes, real litellm over
HTTP to the fixture LLM server, the fixture site, real Chromium, real SIGKILLs.

One 2-worker cluster serves the module (its scheduler runs in this process, with
``allowed-failures`` 1 so that a second death of a child's worker makes it
``crashed``); the tests that need their own cluster (``engine="dask"``, a scheduler in
another process) start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask_agents  # noqa: E402
from test_browser_surface import settle  # noqa: E402

import recorder  # noqa: E402
from fixtures.llm_server import LLMServer  # noqa: E402
from fixtures.site import CATALOGUE, FixtureSite  # noqa: E402
from recorder.engines.base import AgentRef  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A client of a 2-worker LocalCluster (4 threads each) shared by the module."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=4,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    client = distributed.Client(local)
    try:
        yield client
    finally:
        client.close()
        local.close()


def _workers_ready(client: Any, count: int = 2) -> None:
    client.wait_for_workers(count, timeout=120)


def _pid_running(client: Any, run_name: str, timeout: float = 30) -> int:
    """The pid of the worker whose task runs the child ``run_name``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(f"recorder-child-{run_name}-" in str(k) for k in keys):
                return int(client.run(os.getpid, workers=[address])[address])
        time.sleep(0.05)
    raise AssertionError(f"no worker runs {run_name}")


def _accounts(count: int, server: LLMServer, site: FixtureSite) -> list[dict[str, Any]]:
    return [{"id": f"acct-{i:02d}", "site": site.url, "llm": server.base_url}
            for i in range(count)]  # fmt: skip


def _same(row: dict[str, Any]) -> tuple[Any, ...]:
    done = row["status"] in ("completed", "replayed")
    return (row["key"], row["run"], done, row["result"], row["llm_calls"], row["error"])


def _rows(df: Any) -> list[tuple[Any, ...]]:
    return [_same(r) for r in df.to_dict("records")]


def _refunds(accounts: list[dict[str, Any]], store: Path, engine: Any) -> recorder.FanOut:
    return recorder.fan_out(dask_agents.refunds, accounts, name="refunds",
                            key=lambda a: a["id"], concurrency=4, store=store,
                            engine=engine, display=False)  # fmt: skip


class Gate:
    """An LLM-server policy that holds the first request whose text has ``needle``
    until released (then answers it as the mode would)."""

    def __init__(self) -> None:
        self.needle: str | None = None
        self.held = threading.Event()
        self.released = threading.Event()

    def __call__(self, body: dict[str, Any]) -> None:
        if self.needle is not None and self.needle in json.dumps(body) and not self.held.is_set():
            self.held.set()
            self.released.wait(60)


# -- a worker SIGKILLed mid-child ------------------------------------------------------------


async def test_a_worker_killed_mid_child_resumes_it_elsewhere(cluster: Any, tmp_path: Path) -> None:
    _workers_ready(cluster)
    gate = Gate()
    with LLMServer(mode="echo", policy=gate, delay_s=0.05) as server, FixtureSite() as site:
        accounts = _accounts(10, server, site)
        keys = [a["id"] for a in accounts]
        expected = await _refunds(accounts, tmp_path / "baseline", cluster)
        assert set(expected["status"]) == {"completed"} and server.requests == 20
        site.reset()
        server.reset()

        gate.needle = "decide a refund for acct-03"
        running = asyncio.ensure_future(_refunds(accounts, tmp_path / "store", cluster))
        assert await asyncio.to_thread(gate.held.wait, 60)
        pid = await asyncio.to_thread(_pid_running, cluster, "refunds:acct-03")
        os.kill(pid, signal.SIGKILL)
        gate.released.set()
        df = await running

        assert _rows(df) == _rows(expected)  # as if nothing happened
        # a child whose worker died after its last step replays them all: "replayed"
        assert set(df["status"]) <= {"completed", "replayed"}
        cut = df.set_index("key").loc["acct-03"]
        assert (cut["status"], cut["attempts"]) == ("completed", 2)  # resumed in attempt 2
        assert sorted(n["key"] for n in site.notifications) == keys  # each effect once
        asked = [str(b["messages"][-1]["content"]) for b in server.bodies]
        assert asked.count("summarize account acct-03") == 1  # replayed, not asked again
        assert asked.count("decide a refund for acct-03") == 2  # the call cut short, again
    await asyncio.to_thread(_workers_ready, cluster)


async def test_a_child_whose_worker_dies_too_often_is_crashed(
    cluster: Any, store_dir: Path
) -> None:
    _workers_ready(cluster)
    fan = recorder.fan_out(dask_agents.stuck, [7], name="stuck", key=int, store=store_dir,
                           engine=cluster, display=False)  # fmt: skip
    running = asyncio.ensure_future(fan)
    for _ in range(2):  # allowed-failures is 1: the second death is one too many
        pid = await asyncio.to_thread(_pid_running, cluster, "stuck:7", 120)
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, pid)
    df = await running
    assert list(df["status"]) == ["crashed"]
    assert "KilledWorker" in df.loc[0, "error"]
    await asyncio.to_thread(_workers_ready, cluster)


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


# -- limits, plain agents, agents from a notebook, agents the workers cannot import ------------


@pytest.mark.parametrize("agent", [dask_agents.two_calls, dask_agents.plain_llm])
async def test_limits_hold_across_workers(cluster: Any, store_dir: Path, agent: Any) -> None:
    _workers_ready(cluster)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(body: dict[str, Any]) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1

    with LLMServer(policy=slow, mode="echo") as server:
        items = [{"n": n, "llm": server.base_url} for n in range(8)]
        df = await recorder.fan_out(agent, items, name="capped", key=lambda i: i["n"],
                                    concurrency=8, limits={"llm": 2}, store=store_dir,
                                    engine=cluster, display=False)  # fmt: skip
        assert set(df["status"]) == {"completed"}, df["error"].tolist()
        assert server.requests == 16 and state["peak"] == 2
    if agent is dask_agents.two_calls:  # both workers sent requests, and never more than 2
        assert len({r["pid"] for r in df["result"]}) == 2


_NOTEBOOK_CELL = """
async def double(run, n):
    return await run.astep("double", lambda v: v * 2, n)
"""


async def test_an_agent_defined_in_a_notebook_travels_by_value(
    cluster: Any, store_dir: Path
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(_NOTEBOOK_CELL, "<notebook cell>", "exec"), namespace)
    double = namespace["double"]
    assert AgentRef.of(double).path is None  # not importable: cloudpickled
    df = await recorder.fan_out(double, [1, 2, 3], name="doubles", key=int, store=store_dir,
                                engine=cluster, display=False)  # fmt: skip
    assert list(df["result"]) == [2, 4, 6] and set(df["status"]) == {"completed"}


async def test_an_agent_the_workers_cannot_import_is_refused_before_any_child(
    cluster: Any, tmp_path: Path, store_dir: Path
) -> None:
    name = f"local_agents_{uuid.uuid4().hex[:8]}"
    marks = tmp_path / "called"
    (tmp_path / f"{name}.py").write_text(
        "import pathlib\n\n"
        "async def agent(run, n):\n"
        f"    pathlib.Path({str(marks)!r}).write_text('called')\n"
        "    return n\n"
    )
    sys.path.insert(0, str(tmp_path))  # importable here only: the workers started before
    try:
        module = __import__(name)
    finally:
        sys.path.remove(str(tmp_path))
    assert AgentRef.of(module.agent).path == f"{name}:agent"
    with pytest.raises(recorder.ConfigError) as refused:
        await recorder.fan_out(module.agent, range(3), name="local", key=int, store=store_dir,
                               engine=cluster, display=False)  # fmt: skip
    text = str(refused.value)
    assert f"cannot load the agent {name}:agent" in text and "No module named" in text
    assert "client.upload_file" in text and "cloudpickle" in text
    assert "No child was started" in text
    assert not marks.exists()
    assert list(recorder.runs(store=store_dir)["name"]) == ["local"]  # the parent only


# -- engine="dask": a cluster of its own, browsers, nothing left behind -------------------------


@pytest.mark.browser
async def test_engine_dask_runs_browser_children_and_leaves_no_chromium(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recorder.fanview as fanview
    import recorder.integrations.notebook as notebook

    panels: list[str] = []  # the notebook panel, as a kernel's display handle would get it
    monkeypatch.setattr(fanview, "in_notebook", lambda: True)
    monkeypatch.setattr(notebook, "publisher", lambda: lambda markup, text: panels.append(markup))
    marker = f"RECORDER_DASK_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    os.environ[key] = value  # the cluster's worker processes, and their Chromium, inherit it
    try:
        with FixtureSite() as site:
            items = [{"id": f.id, "site": site.url} for f in CATALOGUE[:8]]
            df = await recorder.fan_out(dask_agents.item_page, items, name="pages",
                                        key=lambda i: i["id"], concurrency=4, store=store_dir,
                                        engine="dask")  # fmt: skip
    finally:
        del os.environ[key]
    # the panel links the cluster's dashboard (bokeh is installed: the dask extra), on loopback
    assert 'class="recorder-dashboard"' in panels[-1] and "http://127.0.0.1:" in panels[-1]
    assert set(df["status"]) == {"completed"}, df["error"].tolist()
    first = df.loc[0, "result"]
    assert (first["title"], first["price"]) == (CATALOGUE[0].title, f"EUR {CATALOGUE[0].price}")
    pids = {r["pid"] for r in df["result"]}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # in the workers
    assert {r["launches"] for r in df["result"]} == {1}  # one Chromium per worker process
    assert await settle(marker, lambda n: n == 0, timeout=15) == 0  # closed with the cluster


# -- the scheduler SIGKILLed, then the same call on a new cluster --------------------------------


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


async def test_a_killed_scheduler_gives_the_rows_and_a_new_cluster_resumes(
    cluster: Any, tmp_path: Path
) -> None:
    _workers_ready(cluster)
    file = tmp_path / "scheduler.json"
    scheduler = _start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                        "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                        "--scheduler-file", str(file)], tmp_path / "scheduler.log")  # fmt: skip
    workers = _start([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                      str(file), "--nworkers", "2", "--nthreads", "2"],
                     tmp_path / "workers.log")  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        client = await asyncio.to_thread(distributed.Client, scheduler_file=str(file))
        await asyncio.to_thread(_workers_ready, client)
        with LLMServer(mode="echo", delay_s=0.2) as server, FixtureSite() as site:
            accounts = _accounts(12, server, site)
            keys = [a["id"] for a in accounts]
            expected = await _refunds(accounts, tmp_path / "baseline", cluster)
            site.reset()
            server.reset()

            store = tmp_path / "store"
            running = asyncio.ensure_future(_refunds(accounts, store, client))
            while sum("decide a refund" in json.dumps(b) for b in server.bodies) < 5:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            scheduler.send_signal(signal.SIGKILL)
            with pytest.raises(recorder.EngineLostError) as lost:
                await running
            partial = lost.value.df
            assert "scheduler" in str(lost.value) and len(partial) == 12
            assert "run the same call again" in str(lost.value)
            done = set(partial[partial["status"] == "completed"]["key"])
            assert 3 <= len(done) < 12
            _stop(workers)  # the old workers go too (they would hold their runs' locks)
            await asyncio.to_thread(client.close, 5)
            before = len(server.bodies)

            df = await _refunds(accounts, store, cluster)  # the same call, a new cluster
            asked = " ".join(json.dumps(b) for b in server.bodies[before:])
            for key in done:
                assert key not in asked  # 0 requests for a finished child
                assert df.set_index("key").loc[key, "status"] == "replayed"
            assert _rows(df) == _rows(expected)
            assert sorted(n["key"] for n in site.notifications) == keys  # effects once
    finally:
        _stop(scheduler)
        _stop(workers)
