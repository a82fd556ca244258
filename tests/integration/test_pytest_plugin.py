"""The pytest plugin: ``recorder_run`` replays a test's agent from recordings kept with
the project, ``--recorder-mode`` refreshes them (inner pytest sessions, pytester)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

AGENT_TEST = """
import pathlib
import pytest

CALLS = pathlib.Path(__file__).with_name("calls.txt")

def work(x):
    with CALLS.open("a") as handle:
        handle.write(f"{x}\\n")
    return {"x": x, "double": 2 * x}

def test_agent(recorder_run):
    with recorder_run(inputs={"topic": "t"}) as run:
        results = [run.step("work", work, x) for x in ARGUMENTS]
    assert [r["double"] for r in results] == [2 * x for x in ARGUMENTS]

@pytest.mark.recorder(name="shared", store="other-recordings")
def test_marked(recorder_run):
    with recorder_run() as run:
        assert run.name == "shared"
        run.step("work", work, 100)
"""


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    """The inner sessions' ini (pytest-asyncio asks for a loop scope)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def write_test(pytester: pytest.Pytester, arguments: list[int]) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST.replace("ARGUMENTS", repr(arguments)))


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_replay_by_default_and_record_modes(pytester: pytest.Pytester) -> None:
    write_test(pytester, [1, 2])
    missing = pytester.runpytest("-p", "no:randomly", "-q")
    missing.assert_outcomes(errors=2)
    assert "record them first with --recorder-mode=auto" in missing.stdout.str()

    pytester.runpytest("-q", "--recorder-mode=record").assert_outcomes(passed=2)
    assert calls(pytester) == ["1", "2", "100"]
    assert (pytester.path / "fixtures" / "recordings").is_dir()
    assert (pytester.path / "other-recordings").is_dir()

    pytester.runpytest("-q").assert_outcomes(passed=2)
    assert calls(pytester) == ["1", "2", "100"], "a replay runs nothing"

    write_test(pytester, [1, 3])  # the agent changed: the replay says where and why
    changed = pytester.runpytest("-q")
    changed.assert_outcomes(passed=1, failed=1)
    out = changed.stdout.str()
    assert "ReplayMissError" in out and "Nearest recorded" in out and "args" in out
    assert calls(pytester) == ["1", "2", "100"]

    pytester.runpytest("-q", "--recorder-mode=auto").assert_outcomes(passed=2)
    assert calls(pytester) == ["1", "2", "100", "3"], "auto records only what is missing"


def test_a_bundle_is_replay_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bundle="""
import pytest

@pytest.mark.recorder(store="run.bundle")
def test_from_bundle(recorder_run):
    recorder_run()
"""
    )
    (pytester.path / "run.bundle").write_bytes(b"not really a bundle")
    result = pytester.runpytest("-q", "--recorder-mode=record")
    result.assert_outcomes(errors=1)
    assert "can only be replayed" in result.stdout.str()


def test_the_plugin_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert "--recorder-mode" in result.stdout.str()
    assert Path(__file__).exists()


RECORDINGS = Path(__file__).resolve().parents[2] / "fixtures" / "recordings"


@pytest.mark.browser
@pytest.mark.recorder(name="book-flight", store="fixtures/recordings/book-flight.zip")
async def test_the_demo_agent_replays_from_its_bundle(recorder_run: Any) -> None:
    """The demo agent, replayed from the bundle kept in fixtures/recordings: no site (the
    URL it was recorded with is given but nothing listens there), no LLM server (the
    endpoint is a closed port), no browser launched."""
    from fixtures.agent import book_flight
    from recorder.integrations.browser import launch

    meta = json.loads((RECORDINGS / "book-flight.json").read_text())
    nowhere = {"model": meta["model"], "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-x",
               "num_retries": 0}  # fmt: skip
    launches = launch.launches
    async with recorder_run(inputs={"task": meta["task"]}) as run:
        result = await book_flight(run, meta["site"], nowhere)
    assert result == meta["result"]
    assert run.stats.live == 0 and run.stats.replayed == 52
    assert launch.launches == launches, "the replay launched Chromium"
