"""The processes of ``test_cleanup.py``: writers recording runs while another process
deletes and replaces other runs of the same store.

``python tests/integration/cleanup_agent.py write STORE PREFIX DEADLINE`` records runs
``PREFIX-0``, ``PREFIX-1``... (inputs ``{"i": i}``) until the epoch time DEADLINE, each
with :data:`STEPS` steps (see :func:`program`), and prints ``ACK <json>`` after every step
call returned (so after its record was written): the run's name, inputs, the step's
index and the hash of its result.

``python tests/integration/cleanup_agent.py remove STORE DEADLINE BUNDLE_A BUNDLE_B``
loops until DEADLINE: record a run ``victim`` (the same program, so it shares blobs
with the writers' runs), delete it with ``recorder rm``, then import one of the two
bundles (the same run id, recorded differently) with ``recorder import --replace``;
each deletes records and collects blobs while the writers write. It prints ``RM`` and
``IMPORT`` once each command succeeded, and exits 1 at the first one that fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import recorder
from recorder.cli import main as cli

STEPS = 8


def shared(k: int) -> str:
    """The same for every run (over 512 bytes: a blob that many runs' steps share)."""
    return "\n".join(f"shared line {k}.{n}: " + "x" * 40 for n in range(20))


def own(tag: str, k: int) -> str:
    """Different for every run and on every live call (a blob of this step only)."""
    return "\n".join(f"{tag} {k}.{n}: {os.urandom(16).hex()}" for n in range(20))


def program(run: Any, tag: str, ack: Callable[[int, str], None] = lambda k, sha: None) -> None:
    """:data:`STEPS` steps, alternately shared and own; ``ack(k, sha)`` is called with
    the hash of each step's result once the step returned."""
    for k in range(STEPS):
        result = run.step("shared", shared, k) if k % 2 == 0 else run.step("own", own, tag, k)
        ack(k, digest(result))


def digest(result: str) -> str:
    return hashlib.sha256(result.encode()).hexdigest()


def write(store: str, prefix: str, deadline: float) -> None:
    i = 0
    while time.time() < deadline:
        name, inputs = f"{prefix}-{i}", {"i": i}

        def ack(k: int, sha: str) -> None:
            line = {"name": name, "inputs": inputs, "k": k, "sha": sha}  # noqa: B023
            print("ACK " + json.dumps(line), flush=True)

        with recorder.run(name, inputs=inputs, store=store, display=False) as run:
            program(run, name, ack)
        i += 1


def remove(store: str, deadline: float, bundles: list[str]) -> int:
    j = 0
    while time.time() < deadline:
        with recorder.run("victim", inputs={"j": j}, store=store, display=False) as run:
            program(run, f"victim-{j}")
        if cli(["--store", store, "rm", run.run_id]) != 0:
            return 1
        print("RM", flush=True)
        if cli(["--store", store, "import", bundles[j % 2], "--replace"]) != 0:
            return 1
        print("IMPORT", flush=True)
        j += 1
    return 0


if __name__ == "__main__":
    command, store, *rest = sys.argv[1:]
    if command == "write":
        write(store, rest[0], float(rest[1]))
    else:
        sys.exit(remove(store, float(rest[0]), rest[1:]))
