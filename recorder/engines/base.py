"""The engine interface and the data that describes a child of a fan-out.

An engine runs children and reports how each ended. It knows nothing of inputs,
keys, budgets or the parent run: the fan-out (:mod:`recorder.fanout`) decides what to
submit and when (it never has more than ``concurrency`` children submitted), and
writes what comes back. Four calls, after an optional start::

    await engine.start(spec)             # get ready (workers, checks); only if a child runs
    engine.submit(spec)                  # start one child (returns at once)
    async for outcome in engine.as_completed():   # outcomes as children end, until
        ...                              #   none is in flight (submit more meanwhile)
    await engine.cancel()                # interrupt every child; wait until each ended
    await engine.close()                 # release threads, workers, connections

A child is plain data (:class:`ChildSpec`) so that an engine can send it to another
process: the agent by import path (or cloudpickled, for a function defined in a
notebook), its input, its run name, its store by location, its retry count and limits.
What comes back (:class:`ChildOutcome`) is plain data too.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..store import Store, open_store

__all__ = ["AgentRef", "ChildOutcome", "ChildSpec", "Engine", "StoreRef"]


@dataclass(frozen=True)
class AgentRef:
    """The agent function of a fan-out: ``path`` (``"module:qualname"``) when it can be
    imported, else ``pickled`` (cloudpickle) once it must travel. ``fn`` is the function
    itself in the process that made the reference; it never travels."""

    path: str | None
    is_async: bool
    pickled: bytes | None = None
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> AgentRef:
        if not callable(fn):
            raise ConfigError(f"fan_out() takes an agent function, not {fn!r}.")
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an async callable object
        )
        return cls(path=_import_path(fn), is_async=is_async, fn=fn)

    def resolve(self) -> Callable[..., Any]:
        """The function, here: the one given, else imported or unpickled."""
        if self.fn is not None:
            return self.fn
        if self.path is not None:
            module, _, qualname = self.path.partition(":")
            found: Any = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            return found  # type: ignore[no-any-return]
        if self.pickled is not None:
            import pickle

            return pickle.loads(self.pickled)  # type: ignore[no-any-return]
        raise ConfigError("this agent reference names no function.")

    def portable(self) -> AgentRef:
        """This reference as it can be sent to another process."""
        if self.path is not None or self.pickled is not None:
            return AgentRef(self.path, self.is_async, self.pickled)
        try:
            import cloudpickle  # type: ignore[import-not-found, unused-ignore]
        except ImportError as error:
            raise ConfigError(
                f"the agent {self.fn!r} cannot be imported by name (it was defined in a "
                "notebook or inside a function), and sending it to another process needs "
                "cloudpickle: `pip install cloudpickle`, or move it into a module."
            ) from error
        return AgentRef(None, self.is_async, cloudpickle.dumps(self.fn))


def _import_path(fn: Callable[..., Any]) -> str | None:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is fn else None


@dataclass(frozen=True)
class StoreRef:
    """Where the children's runs are recorded: ``location`` (a directory) travels,
    ``store`` (the open store of this process) does not."""

    location: str | None
    store: Store | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, store: Store) -> StoreRef:
        location = getattr(store, "location", None)
        directory = str(location) if location and not str(location).startswith("<") else None
        return cls(directory, store)

    def resolve(self) -> Store:
        if self.store is not None:
            return self.store
        if self.location is None:
            raise ConfigError(
                "a fan-out over an in-memory store cannot send children to another process: "
                "give store= a directory."
            )
        return open_store(self.location)


@dataclass(frozen=True)
class ChildSpec:
    """One child of a fan-out, as an engine receives it."""

    key: str
    run_name: str
    inputs: Any
    agent: AgentRef
    store: StoreRef
    retries: int = 0
    limits: Mapping[str, int] = field(default_factory=dict)
    scope: str = ""
    """The fan-out's run id: children of one fan-out in one process share its limits."""


@dataclass
class ChildOutcome:
    """How a child ended in this call of the fan-out, as plain data.

    ``status`` is ``completed``, ``replayed`` (a run recorded before this call that
    completed with no live step), ``failed``, ``interrupted``,
    ``suspended``, ``crashed`` (its worker died) or ``running elsewhere`` (its lock is
    held by a live process: not started). ``attempt`` is the number of the child run's
    last attempt, ``attempts`` how many this call made. ``stopped`` is set when the
    interruption came from outside the engine (Ctrl-C seen inside a child): the whole
    fan-out must stop."""

    key: str
    run: str
    status: str
    attempt: int | None = None
    attempts: int = 0
    result: Any = None
    error: str | None = None
    retryable: bool = True
    started_at: float | None = None
    duration_s: float = 0.0
    llm_calls: int = 0
    live_llm_calls: int = 0
    live_steps: int = 0
    cost_usd: float = 0.0
    cost_saved_usd: float = 0.0
    suspension: dict[str, Any] | None = None
    stopped: bool = False


class Engine(ABC):
    """Runs children; see the module docstring for the protocol."""

    async def start(self, first: ChildSpec) -> None:  # noqa: B027 - optional, no-op here
        """Get ready to run children like ``first`` (every child of a call has its agent,
        store and limits): start workers, check that they can load the agent. Called
        once, before the first :meth:`submit`, and only when some child is to run; an
        error raised here means no child started."""

    @property
    def dashboard(self) -> str | None:
        """Where the engine's own view of its work is (a URL), once started, if any."""
        return None

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Children submitted whose outcome has not been yielded yet."""

    @abstractmethod
    def submit(self, spec: ChildSpec) -> None:
        """Start ``spec`` (returns at once)."""

    @abstractmethod
    def as_completed(self) -> AsyncIterator[ChildOutcome]:
        """Outcomes in the order children end, until none is in flight."""

    @abstractmethod
    async def cancel(self) -> list[ChildOutcome]:
        """Interrupt every child in flight and wait until each has ended (its attempt
        recorded as interrupted, its resources closed, its lock released); return
        their outcomes (not yielded by :meth:`as_completed`)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the engine holds. Called once, after the last outcome."""
