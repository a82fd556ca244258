"""The default engine: children in the caller's process.

An async agent's children are asyncio tasks in the caller's event loop (a notebook
kernel's, or the one ``FanOut.wait`` starts); they share the process's one Chromium,
each with its own browser contexts, closed when its attempt ends. A plain (sync)
agent's children run in a pool of threads, one per slot.

Cancelling a task child cancels its task: its attempt ends as interrupted wherever it
was. A thread cannot be cancelled from outside, so a thread child is sent a
KeyboardInterrupt (``PyThreadState_SetAsyncExc``) while it is inside its run, which
ends its attempt as interrupted the way Ctrl-C ends a plain cell's; it is raised at the
thread's next Python instruction (a blocking call returns first).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import ChildOutcome, ChildSpec, Engine
from .child import arun_child, run_child

__all__ = ["LocalEngine"]


def _raise_in(thread_id: int, kind: type[BaseException] | None) -> None:
    target = ctypes.py_object(kind) if kind is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


class _Guard:
    """When a thread child may be interrupted, and the interruption of one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._inside = False
        self.cancelled = False

    def __call__(self, inside: bool) -> None:
        with self._lock:
            if inside:
                self._thread, self._inside = threading.get_ident(), True
                if self.cancelled:
                    raise KeyboardInterrupt("the fan-out was interrupted")
                return
            self._inside = False
            if self.cancelled and self._thread is not None:
                _raise_in(self._thread, None)  # one sent but not yet raised: dropped

    def interrupt(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._inside and self._thread is not None:
                _raise_in(self._thread, KeyboardInterrupt)


class LocalEngine(Engine):
    """Children as asyncio tasks (async agents) or threads (sync agents) of this
    process. ``threads`` sizes the pool of a sync agent (the fan-out's concurrency)."""

    def __init__(self, *, threads: int = 8) -> None:
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._done: asyncio.Queue[ChildOutcome] | None = None
        self._flight: dict[asyncio.Future[ChildOutcome], tuple[ChildSpec, _Guard | None]] = {}
        self._count = 0

    @property
    def in_flight(self) -> int:
        return self._count

    def submit(self, spec: ChildSpec) -> None:
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = asyncio.Queue()
        agent = spec.agent.resolve()
        guard: _Guard | None = None
        future: asyncio.Future[ChildOutcome]
        if spec.agent.is_async:
            future = loop.create_task(arun_child(spec, agent), name=f"recorder child {spec.key}")
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, "recorder-child")
            guard = _Guard()
            context = contextvars.copy_context()
            future = loop.run_in_executor(self._pool, context.run, run_child, spec, agent, guard)
        self._flight[future] = (spec, guard)
        self._count += 1
        future.add_done_callback(self._finished)

    def _finished(self, future: asyncio.Future[ChildOutcome]) -> None:
        spec, _ = self._flight.pop(future)
        if future.cancelled():  # cancelled before it began: no attempt was made
            outcome = ChildOutcome(spec.key, "", "interrupted")
        elif (error := future.exception()) is not None:
            text = f"{type(error).__name__}: {error}"
            outcome = ChildOutcome(spec.key, "", "crashed", error=text, retryable=False)
            outcome.stopped = isinstance(error, KeyboardInterrupt)
        else:
            outcome = future.result()
        assert self._done is not None
        self._done.put_nowait(outcome)

    async def as_completed(self) -> AsyncIterator[ChildOutcome]:
        while self._count:
            assert self._done is not None
            outcome = await self._done.get()
            self._count -= 1
            yield outcome

    async def cancel(self) -> list[ChildOutcome]:
        for future, (_, guard) in list(self._flight.items()):
            if guard is not None:
                guard.interrupt()
            else:
                future.cancel()
        pending: set[Any] = set(self._flight)
        while pending:
            try:  # a second interrupt does not leave children running
                _, pending = await asyncio.wait(pending)
            except asyncio.CancelledError:
                pending = {f for f in pending if not f.done()}
        await asyncio.sleep(0)  # the done callbacks run
        drained: list[ChildOutcome] = []
        while self._done is not None and not self._done.empty():
            drained.append(self._done.get_nowait())
        self._count = 0
        return drained

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
