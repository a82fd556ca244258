"""The scripted agent of ``test_durability.py`` and the fork server that starts it.

Importing litellm takes 3-6 s of CPU on the 2-core test machines, and the random-kill
test starts some 250 processes, so they are not started as fresh interpreters: the
test starts this file once as ``python tests/integration/durability_agent.py serve``
(a *fork server*). It imports litellm and recorder, warms up the modules litellm only
imports at its first call, opens no store and starts no thread, then forks one child
process per job. A child is a separate process with its own SQLite connections; the
test SIGKILLs it by pid. The fork server reaps a child only when told to, so the pid
the test kills is never reused by another process (a finished child stays a zombie,
on which a SIGKILL does nothing).

Protocol: one JSON object per line on stdin, one answer per line on stdout.

- ``{"op": "start", "job": JOB, "out": PATH}``: fork a child running JOB with its
  stdout and stderr in PATH; answers ``{"pid": N}``.
- ``{"op": "wait", "pid": N}``: reap that child; answers ``{"status": S}``: its exit
  code, or minus the signal that killed it.
- end of input: every child not reaped yet is killed and reaped, then the server exits.

``python tests/integration/durability_agent.py run JOB_JSON`` runs one job in a fresh
interpreter, for a check of the fork server's children against the real thing.

A job (a dict) says: ``store``, ``run`` (its name), ``inputs`` (``{"topic": str}``),
``base`` (the LLM server), ``effects`` (the file each effect appends a line to),
``steps``, ``pace`` (seconds a ``work`` step sleeps; an effect sleeps that long before
and again after writing its line), ``policies`` (effect name -> ``on_ambiguous``; the
others keep the run's default, ``"raise"``), and optionally ``barrier`` (wait for that
file before entering the run), ``gather`` (``{"dir": D, "count": N}``: after entering,
create ``D/<run>`` and wait until D holds N files), ``hold`` (after the first step,
wait for that file) and ``timeout`` (seconds before SIGALRM ends the child).

The child writes ``B <i>`` before step ``i`` begins and ``S <i> <kind> live|replayed``
after it returns (so after its record was written), then ``RESULT {...}`` and
``STATS {...}`` and exits 0. An ambiguous effect prints ``AMBIGUOUS <effect> <key>``
and exits 3; a run another process holds prints ``LOCKED <message as JSON>`` and
exits 4.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import recorder

MODEL = "openai/gpt-4o-mini"
AMBIGUOUS_EXIT = 3
LOCKED_EXIT = 4

# Imported by litellm's first completion call (0.6 s); imported by the fork server so
# that each child does not pay for them. Missing ones (another litellm) are skipped.
_WARM = ("openai", "openai.resources", "httpcore", "h11", "h2.connection", "jiter",
         "litellm._service_logger", "litellm.llms.openai.openai", "litellm.main",
         "litellm.proxy._types", "litellm.proxy.openai_files_endpoints.common_utils",
         "recorder.integrations.litellm")  # fmt: skip

_pace = 0.0


def kind_of(i: int) -> str:
    """What step ``i`` of the scripted run is: an LLM call, an effect or a work step."""
    if i % 4 == 0:
        return "llm"
    if i % 7 == 3:
        return "effect"
    return "work"


def work(text: str, i: int) -> str:
    """A generic step: slow like a tool call, deterministic like a hash."""
    if _pace:
        time.sleep(_pace)
    return hashlib.sha256(f"{i}:{text}".encode()).hexdigest()[:16]


def append_line(path: str, run: str, name: str, idempotency_key: str) -> str:
    """The side effect: one line appended (a single write(2) call, so a SIGKILL leaves
    the whole line or nothing) to a file the test counts, between two pauses."""
    if _pace:
        time.sleep(_pace)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{run} {name} {idempotency_key}\n".encode())
    finally:
        os.close(fd)
    if _pace:
        time.sleep(_pace)
    return f"receipt:{run}:{name}"


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.001)


def scripted_run(job: dict[str, Any]) -> dict[str, Any]:
    """The run: every fourth step an LLM call, every seventh from 3 (if not an LLM call)
    an effect, the rest work steps; each step's input is the previous step's output."""
    global _pace
    _pace = float(job.get("pace", 0.0))
    if job.get("barrier"):
        _wait_for(Path(job["barrier"]), 120)
    texts: list[str] = []
    effects: dict[str, Any] = {}
    name = job["run"]
    with recorder.run(name, inputs=job["inputs"], store=job["store"]) as run:
        gather = job.get("gather")
        if gather:
            Path(gather["dir"], name).touch()
            deadline = time.monotonic() + 120
            while len(os.listdir(gather["dir"])) < gather["count"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("the other processes did not enter their runs")
                time.sleep(0.005)
        text = job["inputs"]["topic"]
        for i in range(job["steps"]):
            before = run.stats.live
            kind = kind_of(i)
            _say(f"B {i}")
            if kind == "llm":
                response = litellm.completion(
                    model=MODEL,
                    api_base=job["base"],
                    api_key="sk-x",
                    num_retries=0,
                    messages=[{"role": "user", "content": f"{name} step {i}: {text[-24:]}"}],
                )
                text = response.choices[0].message.content
                texts.append(text)
            elif kind == "effect":
                effect = f"notify-{i}"
                effects[effect] = run.once(
                    effect,
                    append_line,
                    job["effects"],
                    name,
                    effect,
                    on_ambiguous=job.get("policies", {}).get(effect),
                )
            else:
                text = run.step("work", work, text, i)
                texts.append(text)
            _say(f"S {i} {kind} {'live' if run.stats.live > before else 'replayed'}")
            if i == 0 and job.get("hold"):
                _say("HOLDING")
                _wait_for(Path(job["hold"]), 120)
    return {
        "result": {"texts": texts, "effects": effects},
        "stats": dataclasses.asdict(run.stats),
        "attempt": run.attempt,
    }


def run_job(job: dict[str, Any]) -> int:
    """Run one job in this process; return the exit code (see the module docs)."""
    signal.alarm(int(job.get("timeout", 180)))  # a stuck child ends itself
    litellm.suppress_debug_info = True
    try:
        done = scripted_run(job)
    except recorder.AmbiguousEffectError as error:
        _say(f"AMBIGUOUS {error.effect} {error.idempotency_key}")
        return AMBIGUOUS_EXIT
    except recorder.RunLockedError as error:
        _say(f"LOCKED {json.dumps(str(error))}")
        return LOCKED_EXIT
    except BaseException:
        traceback.print_exc()
        return 1
    _say("RESULT " + json.dumps(done["result"], sort_keys=True))
    _say("STATS " + json.dumps({**done["stats"], "attempt": done["attempt"]}))
    return 0


def _child(job: dict[str, Any], out: str) -> None:
    """In a freshly forked child: never returns."""
    code = 1
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdin.close()
        code = run_job(job)
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve() -> int:
    for module in _WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if threading.active_count() != 1:
        # Forking a process that has other threads can copy a lock some thread holds.
        print(f"fork server has {threading.enumerate()}; refusing to fork", file=sys.stderr)
        return 1
    children: set[int] = set()
    reply = sys.stdout
    reply.write(json.dumps({"ready": os.getpid()}) + "\n")
    reply.flush()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "start":
                pid = os.fork()
                if pid == 0:
                    _child(request["job"], request["out"])
                children.add(pid)
                answer: dict[str, Any] = {"pid": pid}
            elif request["op"] == "wait":
                pid = int(request["pid"])
                _, status = os.waitpid(pid, 0)
                children.discard(pid)
                answer = {"status": os.waitstatus_to_exitcode(status)}
            else:
                answer = {"error": f"unknown op {request['op']!r}"}
            reply.write(json.dumps(answer) + "\n")
            reply.flush()
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve()
    if argv[:1] == ["run"] and len(argv) == 2:
        return run_job(json.loads(argv[1]))
    print("usage: durability_agent.py serve | run JOB_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
