"""Caps on live work shared by many runs: ``recorder.fan_out(..., limits={"llm": 16})``.

A limit is anything with the :class:`Gate` methods. :class:`Limit`, the one of this
process, is a counting semaphore usable from threads and from any event loop at once
(the children of a fan-out are asyncio tasks, or threads for a plain function); an
engine whose children run in several processes gives them a gate those processes share
instead (the Dask engine: a ``distributed.Semaphore``, see
:mod:`recorder.engines.dask`). The limits of the current run live in a ContextVar, set
by whoever runs the run (a fan-out's engine); an integration asks :func:`limited` /
:func:`alimited` around the real work of a *live* call only, so a replayed call never
takes a slot. Outside a fan-out no limit is set and these cost one ContextVar read.

Names in use: ``"llm"`` (each live LLM request through litellm; a stream holds its slot
while the request starts, not while it is read).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from typing import Protocol, TypeVar

from .errors import ConfigError

__all__ = [
    "KNOWN",
    "Gate",
    "Limit",
    "alimited",
    "check",
    "current",
    "forget",
    "limited",
    "reset",
    "shared",
    "use",
]

T = TypeVar("T")

KNOWN = frozenset({"llm"})
"""The limit names an integration asks for."""

_current: ContextVar[Mapping[str, Gate] | None] = ContextVar("recorder_limits", default=None)
_registry: dict[tuple[str, str], Limit] = {}
_registry_lock = threading.Lock()


class Gate(Protocol):
    """The slots of one limit, as an integration holds them: ``acquire``/``release`` from
    a thread, ``aacquire``/``arelease`` from an event loop."""

    name: str
    capacity: int

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    async def aacquire(self) -> None: ...

    async def arelease(self) -> None: ...


class Limit:
    """At most ``capacity`` holders at a time, from threads and event loops alike.
    ``peak`` is the most holders seen at once (tests and views read it)."""

    def __init__(self, name: str, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"limits={{{name!r}: ...}} takes an int >= 1, not {capacity!r}.")
        self.name = name
        self.capacity = capacity
        self.peak = 0
        self._used = 0
        self._cond = threading.Condition()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def in_use(self) -> int:
        return self._used

    def _take(self) -> None:
        self._used += 1
        self.peak = max(self.peak, self._used)

    def acquire(self) -> None:
        """Wait (blocking this thread) for a slot."""
        with self._cond:
            while self._used >= self.capacity or self._waiters:
                self._cond.wait()
            self._take()

    async def aacquire(self) -> None:
        """Wait (without blocking the loop) for a slot."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._used < self.capacity and not self._waiters:
                self._take()
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except BaseException:
            with self._cond:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
                    return_slot = False
                else:  # the slot was handed over as the wait was cancelled
                    return_slot = not future.cancelled()
            if return_slot:
                self.release()
            raise

    def release(self) -> None:
        with self._cond:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if loop.is_closed():
                    continue
                # The slot passes to the waiter as is (``_used`` unchanged).
                loop.call_soon_threadsafe(self._hand_over, future)
                return
            self._used -= 1
            self._cond.notify()

    async def arelease(self) -> None:
        self.release()

    def _hand_over(self, future: asyncio.Future[None]) -> None:
        if future.done():  # cancelled meanwhile: pass the slot on
            self.release()
        else:
            future.set_result(None)


def check(caps: Mapping[str, int]) -> dict[str, int]:
    """``caps`` (a ``limits=`` argument) if every name is known and every cap an int >= 1."""
    unknown = set(caps) - KNOWN
    if unknown:
        raise ConfigError(f"limits= names {sorted(unknown)}; the limits known are {sorted(KNOWN)}.")
    for name, capacity in caps.items():
        Limit(name, capacity)
    return dict(caps)


def shared(scope: str, caps: Mapping[str, int]) -> dict[str, Limit]:
    """The process's limits of ``scope`` (a fan-out), made at the first ask: every run of
    the scope in this process shares them."""
    check(caps)
    found: dict[str, Limit] = {}
    with _registry_lock:
        for name, capacity in caps.items():
            limit = _registry.get((scope, name))
            if limit is None or limit.capacity != capacity:
                limit = _registry[scope, name] = Limit(name, capacity)
            found[name] = limit
    return found


def forget(scope: str) -> None:
    """Drop the limits of ``scope`` (its fan-out ended)."""
    with _registry_lock:
        for held in [k for k in _registry if k[0] == scope]:
            del _registry[held]


def use(limits: Mapping[str, Gate] | None) -> Token[Mapping[str, Gate] | None]:
    """Make ``limits`` those of the current context (reset with the token returned)."""
    return _current.set(limits)


def reset(token: Token[Mapping[str, Gate] | None]) -> None:
    _current.reset(token)


def current(name: str) -> Gate | None:
    found = _current.get()
    return None if found is None else found.get(name)


def limited(name: str, fn: Callable[[], T]) -> T:
    """``fn()`` holding a slot of the current limit ``name``, if one is set."""
    limit = current(name)
    if limit is None:
        return fn()
    limit.acquire()
    try:
        return fn()
    finally:
        limit.release()


async def alimited(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """``await fn()`` holding a slot of the current limit ``name``, if one is set."""
    limit = current(name)
    if limit is None:
        return await fn()
    await limit.aacquire()
    try:
        return await fn()
    finally:
        await limit.arelease()
