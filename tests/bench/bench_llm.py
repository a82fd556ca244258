"""Benchmark: what a recorded ``litellm.completion`` costs, live and replayed.

Run it as a script (pytest does not collect it)::

    .venv/bin/python tests/bench/bench_llm.py [--json FILE] [--quick] [--only SCENARIO]

``--quick`` (about a minute) uses fewer repetitions and 2,000 calls as the top scale;
``--only lookups|live|scale|import`` (repeatable) runs only those scenarios.

Everything talks to the fixture LLM server (``fixtures/llm_server.py``) on loopback; each
scenario gets a fresh temporary store directory. Times come from ``time.perf_counter_ns``,
after a warm-up, and are reported in microseconds.

What is measured (the "per call" column is the MEDIAN over all timed calls unless the
row says otherwise):

- ``replay``: one replayed ``litellm.completion`` inside an open run (a run of 200
  distinct prompts recorded once, then replayed several times, each call timed alone).
  ``replay (whole pass)`` is the mean per call of a full replay pass, entering and leaving
  the run included (median over passes).
- ``floor``: the least a replay could cost: canonical JSON + sha256 of the request, one
  plain ``diskcache.Cache.get`` of the recorded response JSON, ``json.loads`` and
  ``litellm.ModelResponse(**...)``.
- ``litellm_cache_hit``: a hit in litellm's own disk cache (``caching=True``); the fixture
  server's request count is checked not to grow.
- These three run in interleaved rounds (a replay pass, a floor pass, a cache-hit pass,
  again), so a change in the machine's load affects their ratios as little as possible.
- ``live_plain`` / ``live_recorded``: a live call outside any run, and inside a fresh
  recording run (the run is entered and left outside the timed region). The two are
  interleaved in pairs; ``recording overhead`` is the difference of the medians, and
  ``recording overhead (paired)`` the median of the per-pair differences. The
  ``(main-thread CPU)`` rows time the same calls with ``time.thread_time_ns``: the CPU the
  calling thread spent, without the waits for the network or for the GIL (the fixture
  server and litellm's logging worker are threads of this process). ``leaving a
  recording run`` times the exit after each recorded call, where the response's prebuilt
  form is made and written (see ``docs/storage.md``), outside the call's latency.
- ``scale N``: a full replay pass (enter, N calls, exit) of a recorded run of N calls,
  divided by N (median over passes); the note gives the pass's time spent entering and
  leaving the run (loading the step records, writing the trace).
- ``scale 1000, fresh process``: the same pass, each in a new process (imports not
  timed): what re-running a cell costs after a kernel restart. ``floor, fresh process``
  is the floor for the same 1,000 calls, timed in each of those processes after its
  pass. The pass over that floor, times the issue's 70 us floor, is the pass at the
  issue's machine speed: a second row for the 0.25 s target that this machine's swings
  (the same pass measures 0.17 s and 0.38 s minutes apart) do not move.
- Warm and cold: every timed pass in this process follows a warm-up pass, so the
  responses it replays were already built once here, and a replay hands out a copy of
  the built object (``recorder.memo``; the same happens when a cell is re-run in the
  same kernel). The fresh-process row is the cost with nothing built: for every call,
  the read and hash check of the response's prebuilt form (written when the recording
  attempt ended), ``json.loads`` and making the ``ModelResponse`` from that form.
- ``import``: ``python -c "import recorder"`` in a fresh process, minus ``python -c pass``.

The second table lists the targets: each ratio or time, its limit and PASS/FAIL. The
script always exits 0 (unless it breaks); a FAIL is a finding, not a crash.

The fixture server answers every prompt with a deterministic ~1.5 KB text, so a recorded
response is ~2 KB of JSON, the size of a typical chat answer. The fixture's handler writes
the headers and the body of a response in two TCP segments; with Nagle's algorithm on,
every request then waits ~40 ms for the client's delayed ACK. The benchmark turns Nagle
off on the fixture's handler class (``TCP_NODELAY``) so live calls cost what litellm and
the recorder cost, not what the kernel's ACK timer costs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/gpt-4o-mini"
NS_PER_US = 1_000

# Targets.
REPLAY_OVER_FLOOR_MAX = 2.0
CACHE_HIT_OVER_REPLAY_MIN = 20.0
SCALE_RATIO_MAX = 1.5
RECORDING_OVERHEAD_MAX_US = 1_000.0
REPLAY_1000_MAX_S = 0.25
ISSUE_FLOOR_US = 70.0
"""The floor the issue measured on its machine (hash ~4 us + diskcache read ~14 us +
rebuild 50-70 us). A pass's ratio to the floor measured in the same process, times
this, is what the pass would take there: the 0.25 s target without this machine's
minute-to-minute swings of up to 2x."""
IMPORT_MAX_S = 0.3

_FILLER = (
    "The ticket describes a login failure after the password reset; the user retried "
    "three times, cleared the browser cache and still sees the same error page. "
)


@dataclass(frozen=True)
class Config:
    """How much work each scenario does."""

    replay_calls: int = 200
    replay_passes: int = 6
    cache_prompts: int = 100
    live_pairs: int = 400
    live_warmup_pairs: int = 10
    scale_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    scale_passes: dict[int, int] = field(default_factory=lambda: {10: 300, 1_000: 9, 10_000: 3})
    import_runs: int = 5
    fresh_processes: int = 5

    @classmethod
    def quick(cls) -> Config:
        return cls(
            replay_calls=100,
            replay_passes=3,
            cache_prompts=30,
            live_pairs=30,
            live_warmup_pairs=3,
            scale_sizes=(10, 1_000, 2_000),
            scale_passes={10: 100, 1_000: 3, 2_000: 2},
            import_runs=3,
            fresh_processes=3,
        )


@dataclass
class Row:
    """One line of the measurement table."""

    name: str
    median_us: float
    p90_us: float | None
    samples: int
    note: str = ""


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass
class Target:
    """One line of the target table: ``value <op> limit`` (both in ``unit``)."""

    name: str
    value: float
    op: str
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        return _COMPARE[self.op](self.value, self.limit)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.numbers[row.name] = row.median_us


# -- helpers -------------------------------------------------------------------------------


def median_us(samples_ns: list[int] | list[float]) -> float:
    return statistics.median(samples_ns) / NS_PER_US


def p90_us(samples_ns: list[int] | list[float]) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] / NS_PER_US


def row(name: str, samples_ns: list[int] | list[float], note: str = "") -> Row:
    return Row(name, median_us(samples_ns), p90_us(samples_ns), len(samples_ns), note)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def messages(tag: str, index: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{tag} #{index}: summarise ticket {index * 7919}."}]


def long_reply(body: dict[str, Any]) -> str:
    """The fixture's answer: deterministic per prompt, ~1.5 KB."""
    prompt = str(body.get("messages", [{}])[-1].get("content", ""))
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
    return f"[{digest}] {prompt} " + _FILLER * 10


@contextmanager
def temp_dir(tag: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{tag}-", ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


@contextmanager
def disk_store(tag: str) -> Iterator[Any]:
    """A fresh ``DiskStore`` in its own temporary directory, closed afterwards."""
    from recorder.store import DiskStore

    with temp_dir(tag) as tmp:
        store = DiskStore(tmp / "store")
        try:
            yield store
        finally:
            store.close()


class GCWatch:
    """The time the interpreter spends collecting garbage while this is entered."""

    def __init__(self) -> None:
        self.ns = 0
        self.full = 0
        self._start = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
            return
        self.ns += time.perf_counter_ns() - self._start
        self.full += info["generation"] == 2

    def __enter__(self) -> GCWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


@dataclass
class Bench:
    """The fixture server and the imported libraries every scenario uses."""

    server: Any
    litellm: Any  # the module; Any because its attributes (cache, ...) are set at run time
    recorder: ModuleType
    config: Config
    results: Results = field(default_factory=Results)

    def kwargs(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "api_base": self.server.base_url,
            "api_key": "sk-test",
            "num_retries": 0,
        }

    def completion(self, tag: str, index: int, **extra: Any) -> Any:
        return self.litellm.completion(messages=messages(tag, index), **self.kwargs(), **extra)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark invariant broken: {message}")


# -- scenarios -----------------------------------------------------------------------------


_CACHE_HIT_IMPORT = "litellm.llms.anthropic.pass_through.messages.response_cache"


def allow_litellm_cache_hits() -> str:
    """Make litellm's cache-hit path importable without ``fastapi``.

    On a cache hit litellm imports ``_CACHE_HIT_IMPORT`` only for an ``isinstance``
    check; that module imports litellm's proxy, which needs ``fastapi`` (litellm's
    ``proxy`` extra, not installed here). If the real import fails, a stand-in module
    with the one class the check needs is registered. Returns a note for the table."""
    try:
        importlib.import_module(_CACHE_HIT_IMPORT)
    except ModuleNotFoundError as error:
        stub = ModuleType(_CACHE_HIT_IMPORT)
        stub.CachedAnthropicMessagesStreamIterator = type(  # type: ignore[attr-defined]
            "CachedAnthropicMessagesStreamIterator", (), {}
        )
        sys.modules[_CACHE_HIT_IMPORT] = stub
        return f"stubbed {_CACHE_HIT_IMPORT.rsplit('.', 1)[1]} ({error.name} missing)"
    return ""


def settle() -> None:
    """Wait until litellm's logging worker has run what earlier calls queued for it.

    litellm hands success callbacks to a thread pool; while that thread works it takes
    the GIL whenever the timed thread releases it (sha256 of >= 2 KB, every SQLite
    call), which would charge a pass for the work of the pass before it."""
    try:
        from litellm.litellm_core_utils.thread_pool_executor import executor

        executor.submit(lambda: None).result(timeout=10)
    except Exception:  # a litellm without that executor: just wait a little longer
        time.sleep(0.4)
    time.sleep(0.1)


def replay_pass(bench: Bench, store: Any, prompts: list[Any]) -> tuple[list[int], int]:
    """One replay of the recorded run: each call's time, and the whole pass's."""
    litellm, n = bench.litellm, len(prompts)
    settle()
    kwargs = bench.kwargs()
    clock = time.perf_counter_ns
    samples: list[int] = []
    start = clock()
    with bench.recorder.run("bench-replay", inputs={"n": n}, store=store) as run:
        for m in prompts:
            t0 = clock()
            litellm.completion(messages=m, **kwargs)
            samples.append(clock() - t0)
    whole = clock() - start
    check(run.stats.replayed == n, f"a replay pass replayed {run.stats.replayed}/{n}")
    return samples, whole


def floor_pass(bench: Bench, cache: Any, requests: list[dict[str, Any]]) -> list[int]:
    """canonical JSON + sha256 + raw diskcache get + json.loads + ModelResponse."""
    from recorder.keys import canonical_json

    model_response = bench.litellm.ModelResponse
    sha256 = hashlib.sha256
    clock = time.perf_counter_ns
    samples: list[int] = []
    settle()
    for request in requests:
        t0 = clock()
        key = sha256(canonical_json(request).encode()).hexdigest()
        response = model_response(**json.loads(cache.get(key)))
        samples.append(clock() - t0)
    check(response.choices[0].message.content is not None, "floor lost a response")
    return samples


def cache_hit_pass(bench: Bench, cache: Any, n: int) -> list[int]:
    """One litellm disk-cache hit per prompt; none may reach the server."""
    litellm = bench.litellm
    clock = time.perf_counter_ns
    samples: list[int] = []
    served = bench.server.requests
    settle()
    litellm.cache = cache
    try:
        for i in range(n):
            t0 = clock()
            response = bench.completion("cache", i, caching=True)
            samples.append(clock() - t0)
            check(bool(response._hidden_params.get("cache_hit")), "litellm cache: not a hit")
    finally:
        litellm.cache = None
    check(bench.server.requests == served, "a litellm cache hit reached the server")
    return samples


def bench_lookups(bench: Bench) -> None:
    """``replay``, ``floor`` and ``litellm_cache_hit``, interleaved round by round so a
    change in the machine's load hits all three alike (their ratios are the targets)."""
    import diskcache

    from recorder.keys import canonical_json

    litellm, recorder = bench.litellm, bench.recorder
    n, rounds = bench.config.replay_calls, bench.config.replay_passes
    n_cache = bench.config.cache_prompts
    prompts = [messages("replay", i) for i in range(n)]
    kwargs = bench.kwargs()
    stub_note = allow_litellm_cache_hits()
    with disk_store("replay") as store, temp_dir("lookups") as tmp:
        # replay: record the run once.
        progress(f"replay: recording {n} calls")
        with recorder.run("bench-replay", inputs={"n": n}, store=store) as run:
            responses = [litellm.completion(messages=m, **kwargs) for m in prompts]
        check(run.stats.live == n, f"recording made {run.stats.live} live calls, not {n}")
        # floor: the same responses in a plain diskcache, under the request's hash.
        floor_cache = diskcache.Cache(str(tmp / "floor"))
        requests = [{"model": MODEL, "messages": m} for m in prompts]
        sizes: list[int] = []
        for request, response in zip(requests, responses, strict=True):
            value = json.dumps(response.model_dump()).encode()
            sizes.append(len(value))
            floor_cache.set(hashlib.sha256(canonical_json(request).encode()).hexdigest(), value)
        # litellm_cache_hit: one miss per prompt fills litellm's disk cache.
        litellm_cache = litellm.Cache(type="disk", disk_cache_dir=str(tmp / "litellm-cache"))
        before = bench.server.requests
        litellm.cache = litellm_cache
        try:
            for i in range(n_cache):
                bench.completion("cache", i, caching=True)
        finally:
            litellm.cache = None
        check(bench.server.requests == before + n_cache, "litellm cache misses did not go live")

        served = bench.server.requests
        replay: list[int] = []
        whole: list[float] = []
        floor: list[int] = []
        hits: list[int] = []
        progress(f"replay, floor, litellm_cache_hit: {rounds} interleaved rounds (+1 warm-up)")
        try:
            for number in range(rounds + 1):
                replay_samples, replay_whole = replay_pass(bench, store, prompts)
                floor_samples = floor_pass(bench, floor_cache, requests)
                hit_samples = cache_hit_pass(bench, litellm_cache, n_cache)
                if number:
                    replay.extend(replay_samples)
                    whole.append(replay_whole / n)
                    floor.extend(floor_samples)
                    hits.extend(hit_samples)
        finally:
            floor_cache.close()
        check(bench.server.requests == served, "a replay pass reached the server")
    results = bench.results
    results.add(row("replay", replay, f"{n} recorded calls x {rounds} rounds"))
    results.add(row("replay (whole pass)", whole, "mean per call, enter+exit included"))
    note = f"value {statistics.median(sizes) / 1024:.1f} KB of response JSON"
    results.add(row("floor", floor, note))
    note = f"{n_cache} prompts x {rounds} rounds" + (f"; {stub_note}" if stub_note else "")
    results.add(row("litellm_cache_hit", hits, note))


def bench_live(bench: Bench) -> None:
    """Live calls outside any run and inside a fresh recording run, interleaved."""
    recorder = bench.recorder
    pairs, warmup = bench.config.live_pairs, bench.config.live_warmup_pairs
    progress(f"live: {pairs} interleaved plain/recorded pairs (+{warmup} warm-up)")
    # wall[0]/cpu[0]: plain, wall[1]/cpu[1]: recorded; cpu is the main thread's CPU time.
    wall: tuple[list[int], list[int]] = ([], [])
    cpu: tuple[list[int], list[int]] = ([], [])
    wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    with disk_store("live") as store:

        def timed_plain(i: int) -> tuple[int, int]:
            check(recorder.current_run() is None, "a plain call inside a run")
            t0, c0 = wall_clock(), cpu_clock()
            bench.completion("live", i)
            return wall_clock() - t0, cpu_clock() - c0

        exits: list[int] = []

        def timed_recorded(i: int) -> tuple[int, int]:
            with recorder.run(f"bench-live-{i}", store=store) as run:
                t0, c0 = wall_clock(), cpu_clock()
                bench.completion("live", i)
                elapsed = wall_clock() - t0, cpu_clock() - c0
                leaving = wall_clock()
            exits.append(wall_clock() - leaving)
            check(run.stats.live == 1, "a recorded live call was not live")
            return elapsed

        for i in range(-warmup, pairs):
            # Alternate which goes first so neither always gets the warmer connection.
            if i % 2:
                recorded = timed_recorded(i)
                plain = timed_plain(i)
            else:
                plain = timed_plain(i)
                recorded = timed_recorded(i)
            if i >= 0:
                for index, (w, c) in enumerate((plain, recorded)):
                    wall[index].append(w)
                    cpu[index].append(c)
    results = bench.results
    results.add(row("live_plain", wall[0], f"{pairs} pairs"))
    results.add(row("live_recorded", wall[1], "inside a fresh run; enter/exit not timed"))
    note = "after one live call: attempt record, trace, the response's prebuilt form, unlock"
    results.add(row("leaving a recording run", exits[warmup:], note))
    overhead = median_us(wall[1]) - median_us(wall[0])
    results.rows.append(Row("recording overhead", overhead, None, pairs, "median - median"))
    results.numbers["recording overhead"] = overhead
    paired = [r - p for p, r in zip(*wall, strict=True)]
    results.add(row("recording overhead (paired)", paired, "median of per-pair differences"))
    results.add(row("live_plain (main-thread CPU)", cpu[0], "time.thread_time_ns"))
    results.add(row("live_recorded (main-thread CPU)", cpu[1], "time.thread_time_ns"))
    paired_cpu = [r - p for p, r in zip(*cpu, strict=True)]
    note = "paired; excludes waiting for the GIL or the network"
    results.add(row("recording overhead (main-thread CPU)", paired_cpu, note))


def bench_scale(bench: Bench) -> None:
    """Full replay passes of recorded runs of growing size."""
    litellm, recorder = bench.litellm, bench.recorder
    kwargs = bench.kwargs()
    clock = time.perf_counter_ns
    for n in bench.config.scale_sizes:
        passes = bench.config.scale_passes[n]
        prompts = [messages("s", i) for i in range(n)]
        with disk_store(f"scale-{n}") as store:
            progress(f"scale {n}: recording")
            start = clock()
            with recorder.run(f"bench-scale-{n}", store=store) as run:
                for m in prompts:
                    litellm.completion(messages=m, **kwargs)
            record_s = (clock() - start) / 1e9
            check(run.stats.live == n, f"scale {n}: recorded {run.stats.live} live calls")
            progress(f"scale {n}: recorded in {record_s:.1f} s; {passes} passes (+1 warm-up)")
            served = bench.server.requests
            totals: list[int] = []
            enters: list[int] = []
            exits: list[int] = []
            gc_ns: list[int] = []
            full_gcs = 0
            settle()  # replays queue no logging work: once is enough
            for number in range(passes + 1):
                gc.collect()
                with GCWatch() as watch:
                    start = clock()
                    with recorder.run(f"bench-scale-{n}", store=store) as run:
                        entered = clock()
                        for m in prompts:
                            litellm.completion(messages=m, **kwargs)
                        leaving = clock()
                    end = clock()
                check(run.stats.replayed == n, f"scale {n}: replayed {run.stats.replayed}")
                if number:
                    totals.append(end - start)
                    enters.append(entered - start)
                    exits.append(end - leaving)
                    gc_ns.append(watch.ns)
                    full_gcs += watch.full
            fresh = fresh_process_passes(bench, store, n) if n in FRESH_SIZES else []
            check(bench.server.requests == served, f"scale {n}: a replay reached the server")
        if fresh:
            note = (
                f"whole pass / N in a new process (a kernel restarted, then the cell "
                f"re-run): nothing built yet; median of {len(fresh)} processes, "
                f"GC {median_us([f['gc_ns'] for f in fresh]) / 1e3:.1f} ms"
            )
            passes_ns = [f["pass_ns"] for f in fresh]
            bench.results.add(row(f"scale {n}, fresh process", [t / n for t in passes_ns], note))
            bench.results.numbers[f"scale {n} fresh total_s"] = median_us(passes_ns) / 1e6
            note = "the floor for the same calls, in each of those processes after its pass"
            floors = [f["floor_ns"] / n for f in fresh]
            bench.results.add(row("floor, fresh process", floors, note))
            ratios = [f["pass_ns"] / f["floor_ns"] for f in fresh]
            bench.results.numbers[f"scale {n} fresh / floor"] = statistics.median(ratios)
        per_call = [t / n for t in totals]
        total_s = median_us(totals) / 1e6
        enter_ms, exit_ms = median_us(enters) / 1e3, median_us(exits) / 1e3
        gc_ms = median_us(gc_ns) / 1e3
        note = (
            f"whole pass / N; pass {total_s:.3f} s (enter {enter_ms:.1f} ms, exit "
            f"{exit_ms:.1f} ms, GC {gc_ms:.1f} ms; {full_gcs} full GCs in {passes} passes); "
            f"recorded in {record_s:.0f} s"
        )
        numbers = bench.results.numbers
        bench.results.add(row(f"scale {n}", per_call, note))
        numbers[f"scale {n} total_s"] = total_s
        numbers[f"scale {n} enter_ms"] = enter_ms
        numbers[f"scale {n} exit_ms"] = exit_ms
        numbers[f"scale {n} record_s"] = record_s
        numbers[f"scale {n} gc_ms"] = gc_ms


FRESH_SIZES = (1_000,)

_FRESH_PASS = """
import gc, json, sys, time
import litellm, recorder
from recorder.store import DiskStore
from tests.bench.bench_llm import messages
n, kwargs = int(sys.argv[1]), json.loads(sys.argv[3])
store = DiskStore(sys.argv[2])
prompts = [messages("s", i) for i in range(n)]
gc.collect()
gc_ns = [0, 0]
def watch(phase, info):
    if phase == "start":
        gc_ns[1] = time.perf_counter_ns()
    else:
        gc_ns[0] += time.perf_counter_ns() - gc_ns[1]
gc.callbacks.append(watch)
start = time.perf_counter_ns()
with recorder.run(f"bench-scale-{n}", store=store) as run:
    for m in prompts:
        litellm.completion(messages=m, **kwargs)
elapsed = time.perf_counter_ns() - start
gc.callbacks.remove(watch)
assert run.stats.replayed == n, run.stats
# The floor in this same process, right after: hash the request, read the response
# JSON with diskcache's get, json.loads, ModelResponse(**...), for every call.
import hashlib
from recorder.journal import Journal
from recorder.keys import canonical_json
(record,) = Journal(store).list_runs(f"bench-scale-{n}")
steps = sorted(Journal(store).steps(record.run_id), key=lambda s: s.seq)
floor_ns = 0
for m, step in zip(prompts, steps, strict=True):
    t0 = time.perf_counter_ns()
    hashlib.sha256(canonical_json({"model": kwargs["model"], "messages": m}).encode())
    doc = json.loads(store._cache.get("blob/" + step.result_ref))
    litellm.ModelResponse(**doc["response"])
    floor_ns += time.perf_counter_ns() - t0
print(json.dumps({"pass_ns": elapsed, "gc_ns": gc_ns[0], "floor_ns": floor_ns}))
"""


def fresh_process_passes(bench: Bench, store: Any, n: int) -> list[dict[str, int]]:
    """One replay pass of the recorded ``n``-call run in each of a few new processes:
    no response has been built in them yet (the cost after a kernel restart). The pass
    is timed inside the process, imports excluded."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    kwargs = json.dumps(bench.kwargs())
    found = []
    processes = bench.config.fresh_processes
    progress(f"scale {n}: {processes} replay passes, each in a new process")
    for _ in range(processes):
        out = subprocess.run(
            [sys.executable, "-c", _FRESH_PASS, str(n), str(store.directory), kwargs],
            cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        found.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return found


def bench_import(bench: Bench) -> None:
    """``import recorder`` in a fresh interpreter, minus an empty interpreter."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

    def run_ns(code: str) -> int:
        start = time.perf_counter_ns()
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True)
        return time.perf_counter_ns() - start

    runs = bench.config.import_runs
    progress(f"import: {runs} runs each (+1 warm-up)")
    run_ns("import recorder")
    run_ns("pass")
    with_import = [run_ns("import recorder") for _ in range(runs)]
    baseline = [run_ns("pass") for _ in range(runs)]
    net = median_us(with_import) - median_us(baseline)
    results = bench.results
    results.add(row("python -c 'import recorder'", with_import, "whole process"))
    results.add(row("python -c pass", baseline, "whole process"))
    results.rows.append(Row("import recorder (net)", net, None, runs, "median - median"))
    results.numbers["import recorder (net)"] = net


# -- targets and output --------------------------------------------------------------------


def evaluate(results: Results, config: Config) -> None:
    """Fill ``results.targets`` from the numbers the scenarios that ran produced."""
    num = results.numbers
    largest, smallest = max(config.scale_sizes), min(config.scale_sizes)

    def ratio(a: str, b: str) -> float | None:
        return num[a] / num[b] if a in num and b in num else None

    def scaled(name: str, factor: float) -> float | None:
        return num[name] * factor if name in num else None

    candidates = [
        ("replay / floor", ratio("replay", "floor"), "<=", REPLAY_OVER_FLOOR_MAX, "x"),
        (
            "litellm_cache_hit / replay",
            ratio("litellm_cache_hit", "replay"),
            ">=",
            CACHE_HIT_OVER_REPLAY_MIN,
            "x",
        ),
        (
            f"per-call replay, scale {largest} / scale {smallest}",
            ratio(f"scale {largest}", f"scale {smallest}"),
            "<=",
            SCALE_RATIO_MAX,
            "x",
        ),
        (
            "recording overhead (live_recorded - live_plain medians)",
            scaled("recording overhead", 1e-3),
            "<",
            RECORDING_OVERHEAD_MAX_US / 1e3,
            "ms",
        ),
        (
            "1,000 replayed calls, whole pass",
            num.get("scale 1000 total_s"),
            "<",
            REPLAY_1000_MAX_S,
            "s",
        ),
        (
            "1,000 replayed calls, whole pass in a new process",
            num.get("scale 1000 fresh total_s"),
            "<",
            REPLAY_1000_MAX_S,
            "s",
        ),
        (
            "the same, at the issue's machine speed (pass / floor x 1,000 x 70 us)",
            scaled("scale 1000 fresh / floor", 1000 * ISSUE_FLOOR_US / 1e6),
            "<",
            REPLAY_1000_MAX_S,
            "s",
        ),
        (
            "import recorder, net of interpreter start",
            scaled("import recorder (net)", 1e-6),
            "<",
            IMPORT_MAX_S,
            "s",
        ),
    ]
    for name, value, op, limit, unit in candidates:
        if value is not None:
            results.targets.append(Target(name, value, op, limit, unit))
    info = ratio(f"scale {largest}", "scale 1000")
    if info is not None and largest != 1000:
        num[f"scale {largest} / scale 1000"] = info


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) < 10_000 else f"{value:,.0f}"


def render(results: Results) -> str:
    lines = [
        "| measurement | median us/call | p90 us | samples | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results.rows:
        lines.append(
            f"| {r.name} | {fmt(r.median_us)} | {fmt(r.p90_us)} | {r.samples} | {r.note} |"
        )
    lines += ["", "| target | value | limit | result |", "|---|---:|---|---|"]
    for t in results.targets:
        verdict = "PASS" if t.passed else "**FAIL**"
        lines.append(
            f"| {t.name} | {t.value:,.3g} {t.unit} | {t.op} {t.limit:g} {t.unit} | {verdict} |"
        )
    failed = [t.name for t in results.targets if not t.passed]
    lines.append("")
    for name, value in results.numbers.items():
        if name.endswith("/ scale 1000"):
            lines.append(
                f"(info, no target) per-call replay, {name}: {value:.2f}x. The 10-call run's "
                "per-call cost is mostly entering and leaving the run, so this ratio shows "
                "growth with N better than the target's."
            )
    lines.append("All targets pass." if not failed else "FAILED targets: " + "; ".join(failed))
    return "\n".join(lines)


def environment(litellm: ModuleType) -> dict[str, str]:
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "litellm": version("litellm"),
        "diskcache": version("diskcache"),
        "litellm_module": getattr(litellm, "__file__", "?") or "?",
    }


# -- main ----------------------------------------------------------------------------------


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "lookups": bench_lookups,
    "live": bench_live,
    "scale": bench_scale,
    "import": bench_import,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the numbers here")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and a 2,000-call top scale"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable); targets needing others are skipped",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config.quick() if args.quick else Config()
    # Before litellm is imported: otherwise its import fetches the cost map online.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import litellm

    import fixtures.llm_server as llm_server
    import recorder

    litellm.suppress_debug_info = True
    warnings.simplefilter("error", recorder.DivergenceWarning)
    # The fixture writes headers and body in two segments: without TCP_NODELAY every
    # request waits for the client's delayed ACK (~40 ms). See the module docstring.
    llm_server._Handler.disable_nagle_algorithm = True

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    server = llm_server.LLMServer(long_reply).start()
    try:
        bench = Bench(server, litellm, recorder, config)
        progress("warm-up: 20 live calls")
        for i in range(20):
            bench.completion("warmup", i)
        for name, scenario in SCENARIOS.items():
            if not args.only or name in args.only:
                scenario(bench)
    finally:
        litellm.cache = None
        server.stop()
    results = bench.results
    evaluate(results, config)
    elapsed = time.perf_counter() - started
    print(render(results))
    load_after = os.getloadavg()[0]
    print(
        f"\n(benchmark took {elapsed:.0f} s; {'quick' if args.quick else 'full'} mode; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after, on "
        f"{os.cpu_count()} CPUs: other work on the machine inflates every number)"
    )
    if args.json is not None:
        payload = {
            "unit": "microseconds per call unless the name says otherwise",
            "config": {"quick": args.quick, "scale_sizes": list(config.scale_sizes)},
            "environment": environment(litellm),
            "measurements": {
                r.name: {
                    "median_us": r.median_us,
                    "p90_us": r.p90_us,
                    "samples": r.samples,
                    "note": r.note,
                }
                for r in results.rows
            },
            "numbers": results.numbers,
            "targets": [
                {
                    "name": t.name,
                    "value": t.value,
                    "limit": t.limit,
                    "unit": t.unit,
                    "passed": t.passed,
                }
                for t in results.targets
            ],
            "elapsed_s": elapsed,
            "load_average": {"before": load_before, "after": load_after},
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
