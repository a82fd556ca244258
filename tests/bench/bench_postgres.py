"""Benchmark: the Postgres store against the directory store, ratios in one run.

Run it as a script (pytest does not collect it)::

    .venv/bin/python tests/bench/bench_postgres.py [--calls N] [--passes N] [--fresh N]

It starts a throwaway Postgres cluster (``fixtures/postgres.py``: Debian's server
binaries, 127.0.0.1, normal durability settings: fsync and ``synchronous_commit`` on)
and the fixture LLM server, records the same run of N ``litellm.completion`` calls (1,000
by default) into a directory store and into a Postgres store, then measures:

- ``replay, warm``: a whole replay pass (enter the run, N calls, leave) in this process,
  after a warm-up pass; the two stores' passes alternate, so load swings hit both alike.
- ``replay, fresh process``: the same pass, each in a new process (imports not timed):
  nothing built yet, every response read from the store (in batches: the read-ahead of
  ``recorder.call`` asks ``Store.get_many`` for the blobs of the steps ahead).
- ``live step write``: each ``Store.write`` a live recording makes for a step (the step
  record and its new blobs, one atomic write), timed alone during a recording of N
  ``run.step`` calls with ~2 KB LLM-like results.

Targets (issue 15): Postgres replay within 2x of the directory store's (both rows), and
a live step's write to Postgres under 1 ms at the median. The script exits 0 unless it
breaks; a FAIL is a finding.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

MODEL = "openai/gpt-4o-mini"

_FRESH_PASS = """
import json, sys, time
import litellm, recorder
n, where, kwargs = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
store = recorder.open_store(where)
prompts = [[{"role": "user", "content": f"ticket {i}: summarise it."}] for i in range(n)]
start = time.perf_counter_ns()
with recorder.run("bench-pg", store=store, display=False) as run:
    for m in prompts:
        litellm.completion(messages=m, **kwargs)
elapsed = time.perf_counter_ns() - start
assert run.stats.replayed == n, run.stats
print(json.dumps({"pass_ns": elapsed}))
"""


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"ticket {i}: summarise it."}] for i in range(n)]


def replay_pass(recorder: Any, litellm: Any, store: Any, n: int, kwargs: dict[str, Any]) -> int:
    start = time.perf_counter_ns()
    with recorder.run("bench-pg", store=store, display=False) as run:
        for m in prompts(n):
            litellm.completion(messages=m, **kwargs)
    elapsed = time.perf_counter_ns() - start
    assert run.stats.replayed == n, run.stats
    return elapsed


def fresh_pass(where: str, n: int, kwargs: dict[str, Any]) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PASS, str(n), where, json.dumps(kwargs)],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(json.loads(out.stdout.strip().splitlines()[-1])["pass_ns"])


def step_writes(recorder: Any, store: Any, n: int) -> list[int]:
    """The time of every ``Store.write`` a live recording of ``n`` steps makes."""
    timed: list[int] = []
    write = store.write

    def timed_write(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter_ns()
        write(*args, **kwargs)
        timed.append(time.perf_counter_ns() - start)

    def answer(i: int) -> dict[str, Any]:
        text = f"answer {i}: " + "the ticket is about a refund for order 7, " * 40
        return {"id": f"chatcmpl-{i}", "model": "gpt-4o-mini", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}}]}  # fmt: skip

    store.write = timed_write
    try:
        with recorder.run("bench-pg-writes", store=store, display=False) as run:
            for i in range(n):
                run.step("llm-like", answer, i)
    finally:
        del store.write
    return timed[2:-2]  # the run record and attempt at either end are not step writes


def ms(ns: float) -> float:
    return ns / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.calls

    import litellm

    import recorder
    from fixtures.llm_server import LLMServer
    from fixtures.postgres import PostgresCluster
    from recorder.stores import DiskStore
    from recorder.stores.postgres import PostgresStore

    litellm.suppress_debug_info = True
    rows: list[tuple[str, float, float, str]] = []
    with (
        PostgresCluster() as cluster,
        LLMServer(mode="echo") as server,
        tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp,
    ):
        kwargs = {"model": MODEL, "api_base": server.base_url, "api_key": "sk-test",
                  "num_retries": 0}  # fmt: skip
        places = {"directory": str(Path(tmp) / "store"), "postgres": cluster.url}
        stores = {
            "directory": DiskStore(places["directory"]),
            "postgres": PostgresStore(cluster.url),
        }
        for name, store in stores.items():
            progress(f"recording {n} LLM calls into the {name} store")
            with recorder.run("bench-pg", store=store, display=False) as run:
                for m in prompts(n):
                    litellm.completion(messages=m, **kwargs)
            assert run.stats.live == n
        warm: dict[str, list[int]] = {name: [] for name in stores}
        progress(f"{args.passes} warm replay passes each (+1 warm-up), alternating")
        for number in range(args.passes + 1):
            for name, store in stores.items():
                took = replay_pass(recorder, litellm, store, n, kwargs)
                if number:
                    warm[name].append(took)
        fresh: dict[str, list[int]] = {name: [] for name in stores}
        progress(f"{args.fresh} replay passes each in a new process, alternating")
        for _ in range(args.fresh):
            for name in stores:
                fresh[name].append(fresh_pass(places[name], n, kwargs))
        progress(f"timing the writes of {n} live steps")
        writes = {name: step_writes(recorder, store, n) for name, store in stores.items()}
        for store in stores.values():
            store.close()

    for label, found in (("replay, warm", warm), ("replay, fresh process", fresh)):
        d, p = statistics.median(found["directory"]), statistics.median(found["postgres"])
        rows.append((f"{label} ({n} calls, whole pass)", ms(d), ms(p), f"{p / d:.2f}x"))
    d, p = statistics.median(writes["directory"]), statistics.median(writes["postgres"])
    p90 = statistics.quantiles(writes["postgres"], n=10)[-1]
    rows.append(("live step write (median)", ms(d), ms(p), f"Postgres p90 {ms(p90):.2f} ms"))

    print(f"\n{'':44} {'directory':>12} {'postgres':>12}")
    for label, dv, pv, note in rows:
        print(f"{label:44} {dv:9.3f} ms {pv:9.3f} ms   {note}")
    targets = [
        ("Postgres warm replay / directory <= 2x", rows[0][2] / rows[0][1], 2.0),
        ("Postgres fresh-process replay / directory <= 2x", rows[1][2] / rows[1][1], 2.0),
        ("Postgres live step write, median <= 1 ms", rows[2][2], 1.0),
    ]
    print()
    for label, value, limit in targets:
        print(f"{label:52} {value:7.3f}  {'PASS' if value <= limit else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
