"""A stateful property test: the recorder on disk against a model of what it promises.

A hypothesis ``RuleBasedStateMachine`` keeps a small program (generic steps, side effects
through ``run.once``, recorded random values) and a DiskStore directory, and drives them
with random sequences of rules: add an operation anywhere in the program; re-run it
(``auto``); replay it (``mode="replay"``); re-record it (``mode="record"``); interrupt it
(KeyboardInterrupt, the CancelledError of a top-level-await cell, or an error the program
does not handle) at a step boundary or inside a step's function; crash it (a forked child
process SIGKILLs itself at such a point, and the parent opens a new store on the same
directory); resolve ambiguous effects (``on_ambiguous="retry"`` or ``"assume_done"``, per
run or per call, or ``check=``); and reopen the store (closing the old handle or leaking
it). Each attempt uses the plain or the async API, and our store object or its path.

The model predicts each attempt exactly: its results, which functions run live and in
which order (the functions append to a ledger file, which survives SIGKILL), the
idempotency key each effect gets, its counts, warnings, outcome and trace. After every
rule the store must hold exactly the model's step records, intent markers, attempts and
lock, pass SQLite's integrity check and ``Journal.verify()``, and no effect may have fired
twice within a generation unless the model retried one whose side effect had happened.

The same machine runs on a Postgres store (:class:`PostgresMachine`, a schema per
example in the session's throwaway cluster): both backends must agree with the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import recorder
from recorder import AmbiguousEffectError, DivergenceWarning, ReplayMissError, values
from recorder.effects import idempotency_key
from recorder.journal import Journal
from recorder.keys import content_key
from recorder.records import StepRecord
from recorder.store import DiskStore, Store

NAME = "machine"
RUN_ID = recorder.Run(NAME).run_id
MAX_OPS = 7
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
"""Stores live in memory when the system has a tmpfs: the crashes here kill processes,
which loses nothing a write() handed to the kernel, so fsync only costs time."""

# -- the program ----------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation of the program: ``run.step``, ``run.once`` or ``run.random()``."""

    kind: str  # "step", "effect" or "random"
    name: str
    arg: int | None
    fails: bool = False  # its function raises ValueError, which the program handles

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.kind, self.name, self.arg)


Ident = tuple[str, str, int | None, int]
"""(kind, name, arg, occurrence): what the recorder identifies a step call by."""


def content_key_of(ident: Ident) -> str:
    kind, name, arg, _ = ident
    request = None if kind == "random" else {"args": [arg], "kwargs": {}}
    return content_key(kind, name, request)


def idempotency_key_of(ident: Ident) -> str:
    return idempotency_key(RUN_ID, content_key_of(ident), ident[3])


def step_result(name: str, x: int) -> dict[str, Any]:
    return {"step": name, "x": x}


def effect_result(name: str, x: int) -> dict[str, Any]:
    return {"effect": name, "x": x}


def failure(name: str, x: int) -> str:
    return f"{name} fails on {x}"


@dataclass(frozen=True)
class Stop:
    """Where and how an attempt is stopped.

    ``where``: ``before`` op ``index`` (``index == len(program)``: after the last op,
    before the run exits), ``inside`` the op's function (before an effect's side effect)
    or ``after_fire`` (inside an effect's function, after its side effect). ``how``:
    ``interrupt`` (KeyboardInterrupt; CancelledError with the async API), ``error`` (an
    exception the program does not handle) or ``crash`` (SIGKILL).
    """

    where: str
    index: int
    how: str


@dataclass(frozen=True)
class Options:
    mode: str = "auto"
    policy: str | None = None  # on_ambiguous
    per_call: bool = False  # give on_ambiguous to run.once rather than recorder.run
    check: str | None = None  # check=: "bool" answers True/False, "value" a result/None
    stop: Stop | None = None
    asynchronous: bool = False  # async with, run.astep, run.aonce
    by_path: bool = False  # store= the directory (recorder's shared handle), not our object


@dataclass(frozen=True)
class Api:
    """How the program talks to the recorder."""

    asynchronous: bool
    by_path: bool

    def apply(self, options: Options) -> Options:
        return replace(options, asynchronous=self.asynchronous, by_path=self.by_path)


# -- the real thing ---------------------------------------------------------------------


class Ledger:
    """The outside world: what the step functions did, one JSON line per event, appended
    with single ``write`` calls (a SIGKILLed process loses none it made)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self, entry: dict[str, Any]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines()]

    def fired(self, key: str) -> bool:
        return any(entry.get("fire") == key for entry in self.entries())


class Halt(RuntimeError):
    """An error the program does not handle: the attempt fails."""


def halt(how: str, asynchronous: bool) -> None:
    if how == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(99)  # not reached: SIGKILL cannot be caught
    if how == "interrupt":
        # what an interrupted notebook cell raises: a plain cell gets KeyboardInterrupt,
        # a top-level-await cell has its task cancelled
        raise asyncio.CancelledError if asynchronous else KeyboardInterrupt
    raise Halt("stopped by the state machine")


def interruption(asynchronous: bool) -> str:
    """What leaves the ``with``: the recorder's one-line form of the interrupt, of the
    same kind (recorder.Cancelled is a CancelledError, recorder.Interrupted a
    KeyboardInterrupt)."""
    return "Cancelled" if asynchronous else "Interrupted"


@dataclass
class Report:
    """What one real attempt gave."""

    results: list[Any]
    error: str | None
    outcome: str
    replayed: int
    live: int
    failed: int
    divergence_warnings: int
    other_warnings: list[str]


def execute(
    store: Store | Path | str, program: list[Op], options: Options, ledger: Ledger
) -> Report:
    """Run the program once in ``store`` (one attempt), stopping as ``options`` says:
    with ``with run:`` and ``run.step``/``run.once``, or (``options.asynchronous``) in
    ``asyncio.run`` with ``async with run:`` and ``run.astep``/``run.aonce`` over
    coroutine functions."""
    stop = options.stop
    policy = options.policy if not options.per_call else None
    rng = random.Random()
    run = recorder.run(NAME, store=store, mode=options.mode, on_ambiguous=policy or "raise",
                       rng=rng)  # fmt: skip
    results: list[Any] = []
    error = None

    def stops(where: str, index: int) -> None:
        if stop is not None and stop.where == where and stop.index == index:
            halt(stop.how, options.asynchronous)

    def check(key: str) -> Any:
        ledger.log({"check": key})
        happened = ledger.fired(key)
        if options.check == "bool":
            return happened
        return {"confirmed": key} if happened else None

    async def acheck(key: str) -> Any:
        return check(key)

    def effect_options() -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if options.per_call and options.policy:
            extra["on_ambiguous"] = options.policy
        if options.check:
            extra["check"] = acheck if options.asynchronous else check
        return extra

    def functions(index: int, op: Op, generation: int) -> tuple[Any, Any]:
        def step_fn(x: int) -> dict[str, Any]:
            ledger.log({"call": ["step", op.name, x]})
            stops("inside", index)
            if op.fails:
                raise ValueError(failure(op.name, x))
            return step_result(op.name, x)

        def effect_fn(x: int, *, idempotency_key: str) -> dict[str, Any]:
            ledger.log({"call": ["effect", op.name, x], "key": idempotency_key})
            stops("inside", index)
            if op.fails:
                raise ValueError(failure(op.name, x))
            ledger.log({"fire": idempotency_key, "gen": generation})
            stops("after_fire", index)
            return effect_result(op.name, x)

        return step_fn, effect_fn

    def perform(index: int, op: Op, generation: int) -> Any:
        if op.kind == "random":
            return run.random()
        step_fn, effect_fn = functions(index, op, generation)
        try:
            if op.kind == "step":
                return run.step(op.name, step_fn, op.arg)
            return run.once(op.name, effect_fn, op.arg, **effect_options())
        except ValueError as raised:
            return f"raised {raised}"

    async def aperform(index: int, op: Op, generation: int) -> Any:
        if op.kind == "random":
            return run.random()
        step_fn, effect_fn = functions(index, op, generation)

        async def astep_fn(x: int) -> dict[str, Any]:
            return step_fn(x)  # type: ignore[no-any-return]

        async def aeffect_fn(x: int, *, idempotency_key: str) -> dict[str, Any]:
            return effect_fn(x, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

        try:
            if op.kind == "step":
                return await run.astep(op.name, astep_fn, op.arg)
            return await run.aonce(op.name, aeffect_fn, op.arg, **effect_options())
        except ValueError as raised:
            return f"raised {raised}"

    def generation() -> int:
        rng.seed(run.attempt)
        record = run.journal.get_run(RUN_ID)
        assert record is not None
        return record.generation

    def body() -> None:
        with run:
            gen = generation()
            for index, op in enumerate(program):
                stops("before", index)
                results.append(perform(index, op, gen))
            stops("before", len(program))

    async def abody() -> None:
        async with run:
            gen = generation()
            for index, op in enumerate(program):
                stops("before", index)
                results.append(await aperform(index, op, gen))
            stops("before", len(program))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if options.asynchronous:
                asyncio.run(abody())
            else:
                body()
        except (KeyboardInterrupt, asyncio.CancelledError, Halt, AmbiguousEffectError,
                ReplayMissError) as raised:  # fmt: skip
            error = type(raised).__name__
    stats = run.stats
    assert run.outcome is not None
    return Report(
        results=results,
        error=error,
        outcome=run.outcome.value,
        replayed=stats.replayed,
        live=stats.live,
        failed=stats.failed,
        divergence_warnings=sum(issubclass(w.category, DivergenceWarning) for w in caught),
        # the recorder's own warnings name the run; anything else is not ours to judge
        other_warnings=[
            str(w.message)
            for w in caught
            if not issubclass(w.category, DivergenceWarning) and RUN_ID in str(w.message)
        ],
    )


def wait_for(pid: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child attempt (pid {pid}) hung for {timeout} s")
        time.sleep(0.002)


# -- the model --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """A step record as the model knows it."""

    attempt: int
    error: str | None  # the recorded ValueError's message
    value: Any = None
    resolved: str | None = None  # how an ambiguous effect was settled without running


@dataclass
class AttemptModel:
    mode: str
    generation: int
    outcome: str = "running"
    trace: list[tuple[str, str, str]] | None = None


@dataclass
class Expected:
    """What the model says one attempt does."""

    results: list[Any] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    replayed: int = 0
    live: int = 0
    failed: int = 0
    warned: bool = False
    error: str | None = None
    outcome: str = "completed"


class Model:
    """The recorder's promises, in memory: records by (generation, ident), intent
    markers, attempts, and the outside world's side effects."""

    def __init__(self) -> None:
        self.generation = 0
        self.run_exists = False
        self.records: dict[tuple[int, Ident], Rec] = {}
        self.intents: set[tuple[int, Ident]] = set()
        self.attempts: list[AttemptModel] = []
        self.lock_stale = False
        self.fired: Counter[str] = Counter()  # side effects by idempotency key (the world)
        self.fires: Counter[tuple[int, str]] = Counter()  # by (generation, key)
        self.allowed: Counter[tuple[int, str]] = Counter()  # permitted repeats

    def recorded(self) -> dict[Ident, Rec]:
        return {i: r for (g, i), r in self.records.items() if g == self.generation}

    def ambiguous(self) -> list[Ident]:
        return [i for g, i in self.intents if g == self.generation]

    def simulate(self, program: list[Op], options: Options) -> Expected:
        """Predict one attempt and apply it to the model."""
        if self.attempts and self.attempts[-1].outcome == "running":
            self.attempts[-1].outcome = "crashed"
        self.run_exists = True
        self.lock_stale = False
        number = len(self.attempts) + 1
        if options.mode == "record":
            self.generation += 1
        gen = self.generation
        attempt = AttemptModel(options.mode, gen)
        self.attempts.append(attempt)
        recorded = {} if options.mode == "record" else self.recorded()
        policy = options.policy or "raise"
        stop = options.stop
        rng = random.Random(number)
        exp = Expected()
        used: set[Ident] = set()
        occurrences: Counter[tuple[str, str, int | None]] = Counter()

        def stops(where: str, index: int) -> bool:
            return stop is not None and stop.where == where and stop.index == index

        def finish(outcome: str, error: str | None = None) -> Expected:
            exp.outcome, exp.error = outcome, error
            attempt.outcome = outcome
            attempt.trace = None if outcome == "running" else list(exp.events)
            self.lock_stale = outcome == "running"
            return exp

        def halted(how: str) -> Expected:
            outcome = {"interrupt": "interrupted", "error": "failed", "crash": "running"}[how]
            error = {"interrupt": interruption(options.asynchronous), "error": "Halt"}.get(how)
            return finish(outcome, error)

        def commit(op: Op, ident: Ident, rec: Rec) -> None:
            self.records[gen, ident] = rec
            self.intents.discard((gen, ident))
            if rec.error is None:
                exp.live += 1
                exp.events.append(("live", op.kind, op.name))
                exp.results.append(rec.value)
            else:
                exp.failed += 1
                exp.events.append(("failed", op.kind, op.name))
                exp.results.append(f"raised {rec.error}")

        for index, op in enumerate(program):
            if stops("before", index):
                return halted(stop.how)  # type: ignore[union-attr]
            occurrence = occurrences[op.key]
            occurrences[op.key] += 1
            ident: Ident = (*op.key, occurrence)
            found = recorded.get(ident)
            if found is not None:
                used.add(ident)
                exp.replayed += 1
                exp.events.append(("replayed", op.kind, op.name))
                exp.results.append(found.value if found.error is None else f"raised {found.error}")
                continue
            if options.mode == "replay":
                return finish("failed", "ReplayMissError")
            if options.mode == "auto" and len(used) < len(recorded):
                exp.warned = True
            if op.kind == "random":
                commit(op, ident, Rec(number, None, rng.random()))
                continue
            assert op.arg is not None
            key = idempotency_key_of(ident)
            if op.kind == "effect" and (gen, ident) in self.intents:
                if options.check is not None:
                    exp.ledger.append({"check": key})
                    if self.fired[key]:
                        value = True if options.check == "bool" else {"confirmed": key}
                        settled = None if value is True else value
                        commit(op, ident, Rec(number, None, settled, "check"))
                        continue
                elif policy == "raise":
                    exp.failed += 1
                    exp.events.append(("failed", op.kind, op.name))
                    return finish("failed", "AmbiguousEffectError")
                elif policy == "assume_done":
                    commit(op, ident, Rec(number, None, None, "assume_done"))
                    continue
                elif self.fires[gen, key]:  # a retry of one that happened: it fires again
                    self.allowed[gen, key] += 1
            if op.kind == "effect":
                self.intents.add((gen, ident))  # the marker is written before the call
                exp.ledger.append({"call": ["effect", op.name, op.arg], "key": key})
            else:
                exp.ledger.append({"call": ["step", op.name, op.arg]})
            if stops("inside", index):
                if stop.how == "error":  # type: ignore[union-attr]
                    # recorded as the step's error, then retracted: the attempt ended on it
                    self.intents.discard((gen, ident))
                    exp.failed += 1
                    exp.events.append(("failed", op.kind, op.name))
                return halted(stop.how)  # type: ignore[union-attr]
            if op.fails:
                commit(op, ident, Rec(number, failure(op.name, op.arg)))
                continue
            if op.kind == "effect":
                exp.ledger.append({"fire": key, "gen": gen})
                self.fired[key] += 1
                self.fires[gen, key] += 1
                if stops("after_fire", index):
                    return halted(stop.how)  # type: ignore[union-attr]
                commit(op, ident, Rec(number, None, effect_result(op.name, op.arg)))
            else:
                commit(op, ident, Rec(number, None, step_result(op.name, op.arg)))
        if stops("before", len(program)):
            return halted(stop.how)  # type: ignore[union-attr]
        return finish("completed")


# -- strategies -------------------------------------------------------------------------

fails = st.sampled_from([False, False, False, True])
operations = st.one_of(
    st.builds(Op, st.just("step"), st.sampled_from("ab"), st.integers(0, 1), fails),
    st.builds(Op, st.just("effect"), st.sampled_from(["pay", "mail"]), st.integers(0, 1), fails),
    st.builds(Op, st.just("effect"), st.just("pay"), st.just(0)),  # a repeated effect
    st.just(Op("random", "random", None)),
)

resolutions = st.builds(
    Options,
    policy=st.sampled_from(["retry", "assume_done"]),
    per_call=st.booleans(),
    check=st.sampled_from([None, None, "bool", "value"]),
)
"""Ways to settle ambiguous effects (a ``check`` overrides the policy)."""
any_resolution = st.one_of(st.just(Options()), resolutions, resolutions)
apis = st.builds(Api, st.booleans(), st.booleans())


def stops(program: list[Op], hows: list[str], live: set[int]) -> st.SearchStrategy[Stop]:
    """A place to stop an attempt of ``program`` at: a step boundary, inside a function,
    or inside an effect after its side effect (each kind as likely as the others). Stops
    inside functions are drawn among the ops in ``live`` (those that will run, not
    replay) when there are any, so that most of them are reached."""
    boundaries = [Stop("before", i, how) for i in range(len(program) + 1) for how in hows]
    inside = [i for i, op in enumerate(program) if op.kind != "random"]
    inside = [i for i in inside if i in live] or inside
    insides = [Stop("inside", i, how) for i in inside for how in hows]
    after_fire = [
        Stop("after_fire", i, how) for i in inside
        if program[i].kind == "effect" and not program[i].fails for how in hows if how != "error"
    ]  # fmt: skip
    return st.one_of(*(st.sampled_from(g) for g in (boundaries, insides, after_fire) if g))


# -- the machine ------------------------------------------------------------------------


class RecorderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="recorder-machine-", dir=SCRATCH))
        self.store_dir = self.directory / "store"
        self.target = self.make_target()
        self.store = self.open()
        self.leaked: list[Store] = []
        self.ledger = Ledger(self.directory / "ledger.jsonl")
        self.seen = 0  # ledger entries already compared
        self.before = 0  # ledger entries before the last attempt
        self.program: list[Op] = []
        self.model = Model()

    # -- the backend (a directory here; Postgres in PostgresMachine) --------------------

    def make_target(self) -> Path | str:
        """What ``store=`` names when an attempt passes the store by path."""
        return self.store_dir

    def open(self) -> Store:
        """A new store object on the machine's store."""
        return DiskStore(self.store_dir)

    def shared_key(self) -> str:
        return str(self.store_dir.resolve())

    def may_fork(self) -> bool:
        return threading.active_count() == 1

    def teardown(self) -> None:
        shared = recorder.store._open_stores.pop(self.shared_key(), None)
        for store in (self.store, *self.leaked, *([shared] if shared else [])):
            store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- one attempt --------------------------------------------------------------------

    def attempt(self, options: Options, *, in_child: bool = False) -> Expected:
        """Predict an attempt, run it for real, and compare."""
        self.before = self.seen
        expected = self.model.simulate(self.program, options)
        if in_child:
            report = self.in_child(options)
        else:
            target = self.target if options.by_path else self.store
            report = execute(target, self.program, options, self.ledger)
        history = recorder.load(NAME, store=self.store)  # the public view agrees too
        assert len(history.attempts) == len(self.model.attempts)
        current = {step.ident for step in history.current_steps()}
        assert current == {(content_key_of(i), i[3]) for i in self.model.recorded()}
        new = self.ledger.entries()[self.seen :]
        self.seen += len(new)
        assert new == expected.ledger, "the functions that ran live are not the model's"
        if report is None:
            assert expected.outcome == "running", "the child was killed, the model says not"
            return expected
        assert (report.outcome, report.error) == (expected.outcome, expected.error)
        assert report.results == expected.results
        counts = (report.replayed, report.live, report.failed)
        assert counts == (expected.replayed, expected.live, expected.failed)
        assert report.divergence_warnings == int(expected.warned)
        assert report.other_warnings == []
        return expected

    def in_child(self, options: Options) -> Report | None:
        """Run the attempt in a forked child; ``None`` if it SIGKILLed itself. The
        parent's store handle is closed first and a new one opened afterwards; the child
        opens its own (never one of the parent's SQLite connections)."""
        self.store.close()
        self.before_fork()
        out = self.directory / "report.json"
        out.unlink(missing_ok=True)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the test runner
            code = 70
            try:
                report = execute(self.open(), self.program, options, self.ledger)
                out.write_text(json.dumps(asdict(report)))
                code = 0
            except BaseException:
                out.write_text(json.dumps({"child_error": traceback.format_exc()}))
            finally:
                os._exit(code)
        status = wait_for(pid)
        self.store = self.open()
        if os.WIFSIGNALED(status):
            assert os.WTERMSIG(status) == signal.SIGKILL
            return None
        doc = json.loads(out.read_text())
        assert os.WEXITSTATUS(status) == 0, doc.get("child_error")
        return Report(**doc)

    def before_fork(self) -> None:
        """Make this process single-threaded for the fork (the directory store has no
        threads)."""

    # -- rules --------------------------------------------------------------------------

    @initialize(program=st.lists(operations, min_size=1, max_size=4))
    def write_program(self, program: list[Op]) -> None:
        self.program = list(program)

    def idents(self) -> list[Ident]:
        """The program's step identities, in order (occurrences counted per key)."""
        occurrences: Counter[tuple[str, str, int | None]] = Counter()
        found: list[Ident] = []
        for op in self.program:
            found.append((*op.key, occurrences[op.key]))
            occurrences[op.key] += 1
        return found

    def ledger_of(self, ident: Ident) -> list[dict[str, Any]]:
        """What the world saw of one effect (before the attempt being compared)."""
        key = idempotency_key_of(ident)
        return [e for e in self.ledger.entries()[: self.before] if key in e.values()]

    def pending(self) -> set[int]:
        """Indices of the ops a re-run would not replay."""
        recorded = self.model.recorded()
        return {i for i, ident in enumerate(self.idents()) if ident not in recorded}

    @precondition(lambda self: len(self.program) < MAX_OPS)
    @rule(op=operations, data=st.data())
    def add_operation(self, op: Op, data: st.DataObject) -> None:
        end = len(self.program)
        position = data.draw(st.one_of(st.just(end), st.integers(0, end)), label="position")
        self.program.insert(position, op)

    @rule(api=apis, resolution=any_resolution)
    def record_and_replay(self, api: Api, resolution: Options) -> None:
        """Re-run the whole program. ``resolution`` matters only for ambiguous effects."""
        recorded = self.model.recorded()
        missing = [ident for ident in self.idents() if ident not in recorded]
        ambiguous = set(self.model.ambiguous())
        expected = self.attempt(api.apply(resolution))
        if expected.outcome == "completed":
            # the headline property, stated directly: exactly the missing steps went live,
            # and the functions of all of them ran but those of ambiguous effects that
            # were settled without running (assume_done, or a check that saw them happen)
            assert expected.live + expected.failed == len(missing)

            def settled(ident: Ident) -> bool:
                if ident not in ambiguous:
                    return False
                if resolution.check is not None:
                    return any("fire" in e for e in self.ledger_of(ident))
                return resolution.policy == "assume_done"

            calls = [e["call"] for e in expected.ledger if "call" in e]
            assert calls == [
                [k, n, a] for k, n, a, o in missing if k != "random" and not settled((k, n, a, o))
            ]

    @rule(api=apis)
    def replay_only(self, api: Api) -> None:
        expected = self.attempt(api.apply(Options(mode="replay")))
        assert expected.live == 0 and expected.ledger == []

    @rule(data=st.data(), interrupted=st.booleans(), api=apis)
    def rerecord(self, data: st.DataObject, interrupted: bool, api: Api) -> None:
        everything = set(range(len(self.program)))
        stop = data.draw(stops(self.program, ["interrupt"], everything)) if interrupted else None
        self.attempt(api.apply(Options(mode="record", stop=stop)))

    @rule(data=st.data(), how=st.sampled_from(["interrupt", "error"]), base=any_resolution,
          api=apis)  # fmt: skip
    def interrupt(self, data: st.DataObject, how: str, base: Options, api: Api) -> None:
        stop = data.draw(stops(self.program, [how], self.pending()), label="stop")
        self.attempt(api.apply(replace(base, stop=stop)))

    # A forked child gets only the forking thread: a lock another thread held (one left by
    # an earlier test in the session) would stay held there, so fork only when alone.
    @precondition(lambda self: hasattr(os, "fork") and self.may_fork())
    @rule(data=st.data(), base=any_resolution, asynchronous=st.booleans())
    def crash_and_reopen(self, data: st.DataObject, base: Options, asynchronous: bool) -> None:
        stop = data.draw(stops(self.program, ["crash"], self.pending()), label="stop")
        self.attempt(replace(base, stop=stop, asynchronous=asynchronous), in_child=True)

    @precondition(lambda self: bool(self.model.ambiguous()))
    @rule(resolution=resolutions, api=apis)
    def resolve_ambiguous(self, resolution: Options, api: Api) -> None:
        expected = self.attempt(api.apply(resolution))
        if expected.outcome == "completed":
            assert self.model.ambiguous() == []

    @rule(close_old=st.booleans())
    def reopen(self, close_old: bool) -> None:
        """Drop the store handle and open a new one on the same directory (the old one
        closed, or left open as a leaked handle of a forgotten notebook variable)."""
        if close_old:
            self.store.close()
        else:
            self.leaked.append(self.store)
        self.store = self.open()

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def store_is_sound(self) -> None:
        assert self.store.integrity_check() == []
        assert Journal(self.store).verify() == []

    @invariant()
    def store_holds_the_model(self) -> None:
        journal = Journal(self.store)
        model = self.model
        run = journal.get_run(RUN_ID)
        if not model.run_exists:
            assert run is None
            return
        assert run is not None and run.generation == model.generation
        records = {}
        for step in journal.steps(RUN_ID):
            ident = self.ident_of(journal, step)
            assert step.key == content_key_of(ident)
            records[step.generation, ident] = Rec(
                step.attempt,
                step.error.message if step.error is not None else None,
                self.value_of(journal, step),
                step.meta.get("resolved"),
            )
        assert records == model.records
        intents = {
            (int(gen), key, int(occurrence))
            for gen, key, occurrence in (
                k.split("/")[2:] for k in self.store.keys(f"intent/{RUN_ID}/")
            )
        }
        assert intents == {(g, content_key_of(i), i[3]) for g, i in model.intents}
        attempts = journal.attempts(RUN_ID)
        assert [(a.number, a.mode, a.generation, a.outcome.value) for a in attempts] == [
            (n, a.mode, a.generation, a.outcome) for n, a in enumerate(model.attempts, 1)
        ]
        # traces never change once written: the last attempt's is new, the one before
        # may just have been found crashed (older ones were compared when they were new)
        for number in range(max(1, len(model.attempts) - 1), len(model.attempts) + 1):
            trace = journal.trace(RUN_ID, number)
            found = None if trace is None else [(e.status, e.kind, e.name) for e in trace]
            assert found == model.attempts[number - 1].trace, f"the trace of attempt {number}"
        assert (journal.get_lock(RUN_ID) is not None) == model.lock_stale

    @invariant()
    def no_effect_fired_twice(self) -> None:
        fires = Counter((e["gen"], e["fire"]) for e in self.ledger.entries() if "fire" in e)
        assert fires == self.model.fires
        for where, count in fires.items():
            assert count <= 1 + self.model.allowed[where], f"effect {where} fired {count} times"

    @staticmethod
    def ident_of(journal: Journal, step: StepRecord) -> Ident:
        arg = None
        if step.kind != "random":
            request = journal.request(step)
            assert request["kwargs"] == {} and len(request["args"]) == 1
            arg = request["args"][0]
        return (step.kind, step.name, arg, step.occurrence)

    @staticmethod
    def value_of(journal: Journal, step: StepRecord) -> Any:
        if step.error is not None:
            return None
        encoded = step.result
        if step.result_ref is not None:
            encoded = json.loads(journal.blob(step.result_ref))
        return encoded if step.plain else values.decode(encoded, journal.blob)


RecorderMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRecorderMachine = RecorderMachine.TestCase


class PostgresMachine(RecorderMachine):
    """The machine on a Postgres store: a schema of its own per example, in the session's
    throwaway cluster; crashes are SIGKILLs of forked children, whose run locks go with
    their connections."""

    base_url: ClassVar[str] = ""
    made: ClassVar[int] = 0

    def make_target(self) -> Path | str:
        PostgresMachine.made += 1
        return f"{self.base_url}?schema=machine_{os.getpid()}_{self.made}"

    def open(self) -> Store:
        from recorder.stores.postgres import PostgresStore

        return PostgresStore(str(self.target), min_size=1, max_size=2)

    def shared_key(self) -> str:
        return str(self.target)

    def may_fork(self) -> bool:
        # Pool threads only: before_fork closes every pool, and so stops them.
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        return all(t.name.startswith("recorder postgres") for t in others)

    def before_fork(self) -> None:
        shared = recorder.store._open_stores.pop(self.shared_key(), None)
        for store in (*self.leaked, *([shared] if shared else [])):
            store.close()
        self.leaked.clear()

    def teardown(self) -> None:
        import psycopg

        super().teardown()
        schema = str(self.target).rsplit("schema=", 1)[1]
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.integration
@pytest.mark.slow
def test_the_machine_agrees_with_the_model_on_postgres(postgres_cluster: Any) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    PostgresMachine.base_url = postgres_cluster.url
    run_state_machine_as_test(PostgresMachine, settings=RecorderMachine.TestCase.settings)
