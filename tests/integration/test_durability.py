"""Durability under real processes: random SIGKILLs, locks, concurrent runs in one store.

The agent is ``durability_agent.py`` beside this file: a scripted run of LLM calls
(real litellm over HTTP to the fixture server), work steps and effects (``run.once``
appending one line per call to a file, so the test counts how often each effect really
happened). Its processes are forked by a fork server (see that module) so that ~250
processes cost ~250 forks, not ~250 litellm imports; each is a separate process with
its own SQLite connections, and a SIGKILL goes to exactly that process.

``test_crash.py`` already checks one SIGKILL at a chosen step, replayed exactly; this
file checks many kills at random times, effects, and several processes at once,
including two races these checks found in the recorder (several processes creating one
new store; a killed holder not yet reaped by its parent).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import recorder
from fixtures.llm_server import LLMServer
from recorder.journal import Journal

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("durability_agent.py")
AMBIGUOUS_EXIT, LOCKED_EXIT = 3, 4
KILLED = -signal.SIGKILL

STEPS = 40  # per run: 10 LLM calls, 5 effects, 25 work steps
KILLS = 200
POOL = 10  # runs being killed in turn; a run that completes is replaced by a new one
PACE = 0.08  # seconds per work step, twice that per effect: a kill lands mid-run
LLM_DELAY = 0.05  # seconds the fixture server takes per answer


def kinds(steps: int) -> list[str]:
    """The kind of each step of the scripted run (mirrors ``durability_agent.kind_of``)."""
    return ["llm" if i % 4 == 0 else "effect" if i % 7 == 3 else "work" for i in range(steps)]


def effect_names(steps: int) -> list[str]:
    return [f"notify-{i}" for i, kind in enumerate(kinds(steps)) if kind == "effect"]


class ForkServer:
    """The agent's fork server (``durability_agent.py serve``) and its children."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(AGENT), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
        )
        ready = self._read()
        assert "ready" in ready, ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            raise AssertionError(f"the fork server ended: {self.log.read_text()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, job: dict[str, Any], out: Path) -> int:
        return int(self._ask({"op": "start", "job": job, "out": str(out)})["pid"])

    def wait(self, pid: int) -> int:
        """Reap child ``pid``: its exit code, or minus the signal that ended it."""
        return int(self._ask({"op": "wait", "pid": pid})["status"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="module")
def forks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path_factory.mktemp("forks") / "fork-server.log")
    try:
        yield server
    finally:
        server.close()


def finished(pid: int) -> bool:
    """Whether an unreaped child has exited (it is a zombie until the server reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def wait_for_line(out: Path, prefix: str, pid: int, timeout: float = 120) -> str:
    """The first line of a running child's output that starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text() if out.exists() else ""  # the child creates it
        for line in text.splitlines():
            if line.startswith(prefix):
                return line
        assert not finished(pid), f"the child ended without {prefix!r}:\n{text}"
        time.sleep(0.01)
    raise AssertionError(f"no {prefix!r} within {timeout} s:\n{out.read_text()}")


@dataclass
class Launch:
    """What one child process did."""

    status: int
    output: str

    def lines(self, prefix: str) -> list[str]:
        return [line[len(prefix) :] for line in self.output.splitlines() if line.startswith(prefix)]

    def begun(self) -> list[int]:
        return [int(i) for i in self.lines("B ")]

    def steps(self) -> list[tuple[int, str, str]]:
        """``(index, kind, live|replayed)`` of every step that returned."""
        found = []
        for line in self.lines("S "):
            index, kind, status = line.split()
            found.append((int(index), kind, status))
        return found

    @property
    def result(self) -> dict[str, Any]:
        (line,) = self.lines("RESULT ")
        found: dict[str, Any] = json.loads(line)
        return found

    @property
    def stats(self) -> dict[str, Any]:
        (line,) = self.lines("STATS ")
        found: dict[str, Any] = json.loads(line)
        return found

    def ambiguous(self) -> tuple[str, str]:
        (line,) = self.lines("AMBIGUOUS ")
        effect, key = line.split()
        return effect, key


def run_all(forks: ForkServer, jobs: list[tuple[dict[str, Any], Path]]) -> list[Launch]:
    """Start every job at once, then wait for all of them (no kill)."""
    pids = [forks.start(job, out) for job, out in jobs]
    statuses = [forks.wait(pid) for pid in pids]
    return [Launch(s, out.read_text()) for s, (_, out) in zip(statuses, jobs, strict=True)]


def effect_lines(path: Path) -> collections.Counter[tuple[str, str]]:
    """How many times each (run, effect) really happened."""
    if not path.exists():
        return collections.Counter()
    counted: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in path.read_text().splitlines():
        run, effect, _key = line.split()
        counted[run, effect] += 1
    return counted


def effect_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.split()[2] for line in path.read_text().splitlines()}


def check_store(directory: Path) -> recorder.DiskStore:
    """The store opens, SQLite finds it sound, and every record and blob verifies
    (what ``recorder verify`` checks)."""
    store = recorder.DiskStore(directory, create=False)
    assert store.integrity_check() == []
    damage = Journal(store).verify()
    assert damage == [], [str(d) for d in damage]
    return store


def step_docs(store: recorder.DiskStore, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """``(run name, step record)`` of every recorded step of ``kind``."""
    found = []
    for key, raw in store.scan("step/"):
        doc = json.loads(raw)
        if doc["kind"] == kind:
            found.append((key.split("/")[1].split("@")[0], doc))
    return found


# -- 7. random kills ------------------------------------------------------------------------


BEFORE_FIRST = "before the first step (process start, run entry, lock)"
AFTER_LAST = "after the last step (run exit)"


def where_killed(state: RunState, done: Launch) -> str:
    """Where in the run a kill landed (before the launch's steps are accounted)."""
    begun, returned = done.begun(), {index for index, *_ in done.steps()}
    if not begun:
        return BEFORE_FIRST
    last = begun[-1]
    if last in returned:
        return AFTER_LAST if last == STEPS - 1 else "between two steps"
    kind = kinds(STEPS)[last]
    return f"inside a {'replayed' if last in state.committed else 'live'} {kind} step"


@dataclass
class RunState:
    """The test's view of one run of the random-kill test."""

    name: str
    inputs: dict[str, str]
    committed: set[int] = field(default_factory=set)
    """Steps a child reported as returned (so recorded): none may run live again."""
    policies: dict[str, str] = field(default_factory=dict)
    """on_ambiguous for the next launch only: the user's decision after checking."""
    launches: int = 0
    kills: int = 0
    ambiguous: int = 0
    landed: collections.Counter[str] = field(default_factory=collections.Counter)
    completed: bool = False


@pytest.mark.slow
def test_two_hundred_random_sigkills_lose_nothing_and_repeat_no_effect(
    tmp_path: Path, forks: ForkServer
) -> None:
    """Runs in one store are SIGKILLed 200 times at random moments (seeded), each kill
    followed by a resume; an effect the kill left ambiguous is settled the way a user
    would (its line is there: ``assume_done``, else ``retry``). Then: the store is
    sound, no step reported done ever ran live again, every run completes and replays
    with no live call, results equal an unkilled reference, and every effect happened
    exactly once."""
    began = time.monotonic()
    rng = random.Random(1234)
    store, effects, logs = tmp_path / "store", tmp_path / "effects.txt", tmp_path / "logs"
    logs.mkdir()
    states: dict[str, RunState] = {}
    active: collections.deque[str] = collections.deque()
    counts = collections.Counter[str]()
    landed = collections.Counter[str]()  # where the kills landed
    lost: list[str] = []

    def new_run() -> None:
        name = f"r{len(states)}"
        states[name] = RunState(name, {"topic": f"topic {len(states)} {rng.randrange(10**6)}"})
        active.append(name)

    def job(state: RunState, base: str) -> dict[str, Any]:
        spec = {"store": str(store), "run": state.name, "inputs": state.inputs, "base": base,
                "effects": str(effects), "steps": STEPS, "pace": PACE,
                "policies": state.policies}  # fmt: skip
        state.policies = {}
        return spec

    def launch(state: RunState, base: str, kill_after: float | None) -> Launch:
        out = logs / f"{sum(s.launches for s in states.values()):04d}-{state.name}.out"
        state.launches += 1
        pid = forks.start(job(state, base), out)
        if kill_after is not None:
            deadline = time.monotonic() + kill_after
            while time.monotonic() < deadline and not finished(pid):
                time.sleep(0.005)
            if not finished(pid):
                os.kill(pid, signal.SIGKILL)  # unreaped, so it is still our child's pid
        status = forks.wait(pid)
        # the child opens its log itself, right after the fork: a kill that lands before
        # (a busy machine can take longer than the shortest kill_after to schedule it)
        # leaves no log, which is a kill before the first step
        done = Launch(status, out.read_text() if out.exists() else "")
        if done.status == KILLED:
            where = where_killed(state, done)
            landed[where] += 1
            state.landed[where] += 1
        account(state, done)
        return done

    def account(state: RunState, done: Launch) -> None:
        for index, kind, status in done.steps():
            if status == "live" and index in state.committed:
                lost.append(f"{state.name} step {index} ({kind}) ran live again")
            state.committed.add(index)

    def settle(state: RunState, done: Launch) -> None:
        """What the child's exit means; an ambiguous effect is checked like a user would."""
        if done.status == KILLED:
            state.kills += 1
            counts["kills"] += 1
        elif done.status == 0:
            state.completed = True
            counts["completed"] += 1
        elif done.status == AMBIGUOUS_EXIT:
            state.ambiguous += 1
            effect, key = done.ambiguous()
            happened = key in effect_keys(effects)
            state.policies = {effect: "assume_done" if happened else "retry"}
            counts["ambiguous: line found, assume_done" if happened else "ambiguous: retry"] += 1
        else:
            raise AssertionError(f"{state.name} exited {done.status}:\n{done.output}")

    with LLMServer(mode="echo", delay_s=LLM_DELAY) as server:
        for _ in range(POOL):
            new_run()
        while counts["kills"] < KILLS:
            name = active.popleft()
            state = states[name]
            settle(state, launch(state, server.base_url, rng.uniform(0.05, 0.6)))
            if state.completed:
                new_run()
            else:
                active.append(name)
        kill_phase_s = time.monotonic() - began
        completed_under_fire = counts["completed"]

        # Finish every run, without kills, all at once (as many processes on one store).
        while active:
            batch = [states[name] for name in active]
            active.clear()
            for state in batch:
                state.launches += 1
            jobs = [(job(s, server.base_url), logs / f"finish-{s.launches}-{s.name}.out")
                    for s in batch]  # fmt: skip
            for state, done in zip(batch, run_all(forks, jobs), strict=True):
                account(state, done)
                settle(state, done)
                if not state.completed:
                    active.append(state.name)
        live_llm_calls = server.requests

        db = check_store(store)
        assert db.keys("intent/") == []  # every ambiguous effect was settled
        assert db.keys("lock/") == []  # every lock was released or taken over and released

        # Every run replays fully: no LLM request, no live step, nothing run again.
        jobs = [(job(s, server.base_url), logs / f"replay-{s.name}.out") for s in states.values()]
        replays = run_all(forks, jobs)
        assert server.requests == live_llm_calls
        for done in replays:
            assert done.status == 0, done.output
            assert done.stats["live"] == 0, done.output
            assert done.stats["replayed"] == STEPS
            assert {status for *_, status in done.steps()} == {"replayed"}

        # The reference: the same runs in another store, never killed, no pacing.
        reference_dir, reference_effects = tmp_path / "reference", tmp_path / "reference.txt"
        recorder.DiskStore(reference_dir).close()  # see ..._creating_one_new_store_at_once
        before = server.requests
        jobs = [({"store": str(reference_dir), "run": s.name, "inputs": s.inputs,
                  "base": server.base_url, "effects": str(reference_effects), "steps": STEPS,
                  "pace": 0.0}, logs / f"reference-{s.name}.out")
                for s in states.values()]  # fmt: skip
        references = run_all(forks, jobs)
        assert server.requests - before == len(states) * kinds(STEPS).count("llm")

    assumed = {(run, doc["name"]) for run, doc in step_docs(db, "effect")
               if doc["meta"].get("resolved") == "assume_done"}  # fmt: skip
    llm_steps = len(states) * kinds(STEPS).count("llm")
    summary = {
        "kills": counts["kills"],
        "kills landed": dict(landed.most_common()),
        "runs": len(states),
        "launches": sum(s.launches for s in states.values()),
        "runs completed while killing": completed_under_fire,
        "runs completed": counts["completed"],
        "ambiguous, line found (assume_done)": counts["ambiguous: line found, assume_done"],
        "ambiguous, no line (retry)": counts["ambiguous: retry"],
        "assumed-done effects recorded": len(assumed),
        "effects duplicated": sum(n - 1 for n in effect_lines(effects).values() if n > 1),
        "records lost": len(lost),
        "live LLM calls": live_llm_calls,
        "LLM steps": llm_steps,
        "kill phase s": round(kill_phase_s, 1),
        "total s": round(time.monotonic() - began, 1),
    }
    print("durability summary:", json.dumps(summary))  # shown with -s, or on failure

    for state, done, reference in zip(states.values(), replays, references, strict=True):
        assert reference.status == 0, reference.output
        assert done.result["texts"] == reference.result["texts"], state.name
        for effect, receipt in reference.result["effects"].items():
            got = done.result["effects"][effect]
            assert got == (None if (state.name, effect) in assumed else receipt), (state, effect)

    # Every attempt is accounted for: one crashed attempt per kill (a kill before the
    # attempt was written, or after it was closed, leaves none), one failed attempt per
    # ambiguous effect, and the run's last two attempts (finish or earlier, replay)
    # completed; nothing is left "running". A kill that lands after an ambiguous
    # effect's attempt was closed as failed but before the process printed its
    # AMBIGUOUS line leaves a failed attempt the test saw as a kill (the next launch
    # meets the same effect and reports it): such kills are the failed attempts past
    # the reported ones, and leave no crashed attempt.
    for state in states.values():
        outcomes = collections.Counter(
            a.outcome for a in recorder.load(state.name, inputs=state.inputs, store=db).attempts
        )
        unreported = outcomes[recorder.Outcome.FAILED] - state.ambiguous
        assert 0 <= unreported <= state.kills, (state, outcomes)
        unwritten = state.landed[BEFORE_FIRST] + state.landed[AFTER_LAST] + unreported
        assert state.kills - unwritten <= outcomes[recorder.Outcome.CRASHED] <= state.kills
        assert outcomes[recorder.Outcome.COMPLETED] >= 2
        assert set(outcomes) <= {recorder.Outcome.CRASHED, recorder.Outcome.FAILED,
                                 recorder.Outcome.COMPLETED}, outcomes  # fmt: skip
    db.close()

    # Each effect happened exactly once: none lost, none repeated (assumed-done ones
    # were assumed only because their line was there).
    expected = {(name, e): 1 for name in states for e in effect_names(STEPS)}
    assert dict(effect_lines(effects)) == expected
    assert dict(effect_lines(reference_effects)) == expected
    assert lost == []

    # At most the one LLM call in flight is lost per kill; each LLM step is asked once
    # more only when a kill landed during it.
    assert llm_steps <= live_llm_calls <= llm_steps + counts["kills"]

    # Most kills hit the run mid-way, inside a live step (the rest: at process start or
    # run entry, between steps, in the run's exit). A loose bound: not a timing check,
    # a check that the test tests what it says.
    inside = sum(n for where, n in landed.items() if where.startswith("inside a live"))
    assert inside >= KILLS // 4, landed


# -- 10. concurrency ------------------------------------------------------------------------


def test_a_second_process_is_refused_then_a_killed_holder_is_taken_over(
    tmp_path: Path, forks: ForkServer
) -> None:
    """(a) While one process has a run open, a second process (a fresh interpreter) gets
    RunLockedError naming the holder's pid and host. (b) Once the holder is SIGKILLed,
    its lock is stale: the next process takes the run over and completes it."""
    store, holding, hold = tmp_path / "store", tmp_path / "holder.out", tmp_path / "release"
    run_id = recorder.run("shared", inputs={"topic": "locks"}).run_id
    with LLMServer(mode="echo") as server:
        job = {"store": str(store), "run": "shared", "inputs": {"topic": "locks"},
               "base": server.base_url, "effects": str(tmp_path / "effects.txt"),
               "steps": 12, "pace": 0.0}  # fmt: skip
        holder = forks.start({**job, "hold": str(hold)}, holding)
        try:
            wait_for_line(holding, "HOLDING", holder)
            contender = subprocess.run(
                [sys.executable, str(AGENT), "run", json.dumps(job)],
                capture_output=True, text=True, cwd=REPO, timeout=300,
            )  # fmt: skip
            with recorder.DiskStore(store, create=False) as db:
                lock = db.get("lock/" + run_id)
        finally:
            os.kill(holder, signal.SIGKILL)  # not reaped yet: still our child's pid
            status = forks.wait(holder)
        assert status == KILLED, holding.read_text()
        assert contender.returncode == LOCKED_EXIT, contender.stdout + contender.stderr
        (line,) = [x for x in contender.stdout.splitlines() if x.startswith("LOCKED ")]
        message = json.loads(line[len("LOCKED ") :])
        assert run_id in message
        assert f"process {holder} on {socket.gethostname()}" in message
        assert lock is not None and json.loads(lock)["pid"] == holder

        # (b) the holder is dead (SIGKILLed and reaped): its lock is stale.
        out = tmp_path / "next.out"
        taker = Launch(forks.wait(forks.start(job, out)), out.read_text())
    assert taker.status == 0, taker.output
    assert taker.steps()[0] == (0, "llm", "replayed")  # recorded by the killed holder
    assert taker.stats["live"] == 11
    history = recorder.load("shared", store=str(store))
    assert [a.outcome for a in history.attempts] == [recorder.Outcome.CRASHED,
                                                     recorder.Outcome.COMPLETED]  # fmt: skip
    with recorder.DiskStore(store, create=False) as db:
        assert db.get("lock/" + run_id) is None


def test_eight_processes_on_eight_runs_in_one_store(tmp_path: Path, forks: ForkServer) -> None:
    """(c) Eight processes start together on one store, each on its own run, and keep
    all eight runs open at once while each does 50 steps (13 LLM calls, 6 effects): all
    exit 0, none saw "database is locked", and then all eight replay fully."""
    store, effects, barrier = tmp_path / "store", tmp_path / "effects.txt", tmp_path / "go"
    names = [f"worker-{i}" for i in range(8)]

    def jobs(base: str, phase: str) -> list[tuple[dict[str, Any], Path]]:
        gather = tmp_path / f"entered-{phase}"
        gather.mkdir()
        return [({"store": str(store), "run": name, "inputs": {"topic": f"{name} task"},
                  "base": base, "effects": str(effects), "steps": 50, "pace": 0.0,
                  "barrier": str(barrier), "gather": {"dir": str(gather), "count": 8}},
                 tmp_path / f"{phase}-{name}.out") for name in names]  # fmt: skip

    # A store created by eight processes at once is test_..._creating_one_new_store_...
    recorder.DiskStore(store).close()
    with LLMServer(mode="echo") as server:
        first = jobs(server.base_url, "record")
        pids = [forks.start(job, out) for job, out in first]
        barrier.touch()  # all eight forked and waiting: go
        recorded = [Launch(forks.wait(pid), out.read_text()) for pid, (_, out) in
                    zip(pids, first, strict=True)]  # fmt: skip
        for done in recorded:
            assert "database is locked" not in done.output
            assert done.status == 0, done.output
            assert "Traceback" not in done.output, done.output
            assert done.stats["live"] == 50
        llm_calls = server.requests
        assert llm_calls == 8 * kinds(50).count("llm")

        check_store(store).close()
        barrier.unlink()
        again = jobs(server.base_url, "replay")
        pids = [forks.start(job, out) for job, out in again]
        barrier.touch()
        replayed = [Launch(forks.wait(pid), out.read_text()) for pid, (_, out) in
                    zip(pids, again, strict=True)]  # fmt: skip
        assert server.requests == llm_calls
    for before, done in zip(recorded, replayed, strict=True):
        assert done.status == 0, done.output
        assert "database is locked" not in done.output
        assert done.stats["live"] == 0 and done.stats["replayed"] == 50
        assert done.result == before.result
    expected = {(name, e): 1 for name in names for e in effect_names(50)}
    assert dict(effect_lines(effects)) == expected


def test_eight_processes_creating_one_new_store_at_once(tmp_path: Path, forks: ForkServer) -> None:
    """Eight processes that open runs at once in a store directory that does not exist
    yet all succeed (a notebook fleet started on a fresh ``RECORDER_DIR``)."""
    failures = []
    for trial in range(25):
        store, barrier = tmp_path / f"store-{trial}", tmp_path / f"go-{trial}"
        jobs = [({"store": str(store), "run": f"w{i}", "inputs": {"topic": "new store"},
                  "base": "http://127.0.0.1:9/v1", "effects": str(tmp_path / "effects.txt"),
                  "steps": 0, "barrier": str(barrier)}, tmp_path / f"{trial}-{i}.out")
                for i in range(8)]  # fmt: skip
        pids = [forks.start(job, out) for job, out in jobs]
        barrier.touch()
        for pid, (_, out) in zip(pids, jobs, strict=True):
            if forks.wait(pid) != 0:
                failures.append(out.read_text().strip().splitlines()[-1])
    assert failures == [], f"{len(failures)} of {25 * 8} processes failed: {failures[:5]}"


def test_a_killed_but_unreaped_holder_does_not_block_the_run(
    tmp_path: Path, forks: ForkServer
) -> None:
    """A SIGKILLed holder whose parent has not reaped it yet (a zombie: it runs no
    code and will never release anything) leaves a stale lock too."""
    store, holding, hold = tmp_path / "store", tmp_path / "holder.out", tmp_path / "release"
    with LLMServer(mode="echo") as server:
        job = {"store": str(store), "run": "zombie", "inputs": {"topic": "z"},
               "base": server.base_url, "effects": str(tmp_path / "effects.txt"),
               "steps": 4, "pace": 0.0}  # fmt: skip
        holder = forks.start({**job, "hold": str(hold)}, holding)
        try:
            wait_for_line(holding, "HOLDING", holder)
            os.kill(holder, signal.SIGKILL)
            while not finished(holder):  # dead, and not reaped yet
                time.sleep(0.01)
            out = tmp_path / "next.out"
            taker = Launch(forks.wait(forks.start(job, out)), out.read_text())
        finally:
            os.kill(holder, signal.SIGKILL)  # a zombie (or a holder a failure left): no-op
            forks.wait(holder)
    assert taker.status == 0, taker.output
