"""The Dask engine: the children of a fan-out as tasks of a Dask cluster.

``fan_out(..., engine="dask")`` starts a ``distributed.LocalCluster`` of worker
processes (two by default, each with enough threads that together they hold the
fan-out's ``concurrency``) and closes it at the end; ``engine=client`` (a
``distributed.Client``) runs the children on that client's cluster and leaves it
running. Only this module imports Dask, and only when the engine is used.

How a child runs on a worker: the :class:`~recorder.engines.base.ChildSpec` travels as
data (the agent by import path, or cloudpickled when it was defined in a notebook or
``__main__``; the store by location, opened once per worker process). An async agent
is an ``async def`` task, which Dask runs on the worker's event loop, so the children
of one worker share its loop and its one Chromium (launched by the first child that
opens a page, as in any process, and closed when the worker closes, by
:class:`BrowserPlugin`), each with its own browser contexts. A plain agent runs in one
of the worker's threads.

Before any child is submitted, every worker is asked to load the agent and open the
store (:func:`_probe`), so an agent whose module the workers cannot import fails at
once with what to do, not once per child.

``limits=`` hold across workers: each worker gives its children a
:class:`SemaphoreGate` over a ``distributed.Semaphore`` named after the fan-out (its
leases live on the scheduler and expire when a dead worker stops refreshing them).

Faults are Dask's: a worker that dies mid-child has its task run again elsewhere (up to
``distributed.scheduler.allowed-failures`` times), where the child's next attempt takes
over the dead process's lock, replays the steps it finished and goes on; past that the
child's row is ``crashed`` (``KilledWorker``). A scheduler that goes away ends the call
with :class:`~recorder.errors.EngineLostError` (carrying the rows); the same call
against a new cluster resumes the unfinished children.

Cancelling (Ctrl-C, the notebook's stop button) reaches the workers too: each cancels
the task of every child of this engine it runs (a thread child is sent a
KeyboardInterrupt), so each attempt ends as interrupted, its contexts closed and its
lock released, and its outcome comes back as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import distributed
from distributed import WorkerPlugin

from ..errors import ConfigError, EngineLostError
from .base import AgentRef, ChildOutcome, ChildSpec, Engine, StoreRef
from .child import arun_child, run_child
from .local import _Guard

__all__ = ["BrowserPlugin", "DaskEngine", "SemaphoreGate"]

CANCEL_WAIT_S = 30.0
"""How long :meth:`DaskEngine.cancel` waits for the children to report back."""

# -- on a worker ----------------------------------------------------------------------

_lock = threading.Lock()
_cancelled: set[str] = set()
"""Engines (by token) whose children must not start here any more."""
_running: dict[str, dict[str, asyncio.Task[ChildOutcome] | _Guard]] = {}
"""The children running in this worker process, by engine token and key."""
_gates: dict[tuple[str, str], SemaphoreGate] = {}


class SemaphoreGate:
    """A limit shared by every worker of a cluster: a ``distributed.Semaphore`` of
    ``capacity`` leases, held around each live call (see :mod:`recorder.limits`)."""

    def __init__(self, name: str, capacity: int, semaphore: str) -> None:
        self.name = name
        self.capacity = capacity
        self.semaphore = distributed.Semaphore(max_leases=capacity, name=semaphore)

    def acquire(self) -> None:
        self.semaphore.acquire()  # from a worker thread: blocks until a lease is had

    def release(self) -> None:
        self.semaphore.release()

    async def aacquire(self) -> None:
        await self.semaphore.acquire()

    async def arelease(self) -> None:
        # Shielded: a release cut short would leave the lease held until it times out.
        await asyncio.shield(self.semaphore.release())

    def close(self) -> None:
        refresh = getattr(self.semaphore, "refresh_callback", None)
        if refresh is not None:
            refresh.stop()


def _limits_for(spec: ChildSpec, token: str) -> dict[str, SemaphoreGate] | None:
    if not spec.limits:
        return None
    found: dict[str, SemaphoreGate] = {}
    with _lock:
        for name, capacity in spec.limits.items():
            gate = _gates.get((token, name))
            if gate is None:
                gate = _gates[token, name] = SemaphoreGate(
                    name, capacity, semaphore_name(spec.scope, name, token)
                )
            found[name] = gate
    return found


def semaphore_name(scope: str, limit: str, token: str) -> str:
    """The scheduler's name for the limit ``limit`` of the fan-out ``scope`` in the
    call of engine ``token``."""
    return f"recorder-limit:{scope}:{limit}:{token}"


def _not_started(spec: ChildSpec) -> ChildOutcome:
    return ChildOutcome(spec.key, "", "interrupted")


async def run_async_child(spec: ChildSpec, token: str) -> ChildOutcome:
    """The task of an async agent's child, on a worker's event loop."""
    with _lock:
        if token in _cancelled:
            return _not_started(spec)
    child = asyncio.ensure_future(arun_child(spec, limits=_limits_for(spec, token)))
    with _lock:
        _running.setdefault(token, {})[spec.key] = child
    try:
        return await child
    finally:
        with _lock:
            _running.get(token, {}).pop(spec.key, None)


def run_sync_child(spec: ChildSpec, token: str) -> ChildOutcome:
    """The task of a plain agent's child, in a worker's thread."""
    guard = _Guard()
    with _lock:
        if token in _cancelled:
            return _not_started(spec)
        _running.setdefault(token, {})[spec.key] = guard
    try:
        return run_child(spec, guard=guard, limits=_limits_for(spec, token))
    finally:
        with _lock:
            _running.get(token, {}).pop(spec.key, None)


async def _cancel_here(token: str) -> int:
    """Interrupt the children of engine ``token`` in this worker; how many ran."""
    with _lock:
        _cancelled.add(token)
        handles = list(_running.get(token, {}).values())
    for handle in handles:
        if isinstance(handle, _Guard):
            handle.interrupt()
        else:
            handle.cancel()
    return len(handles)


def _forget_here(token: str) -> None:
    """Drop what this worker keeps for engine ``token`` (its call ended)."""
    with _lock:
        _cancelled.discard(token)
        _running.pop(token, None)
        gates = [k for k in _gates if k[0] == token]
        for held in gates:
            _gates.pop(held).close()


def _probe(agent: AgentRef, store: StoreRef) -> str | None:
    """Load the agent and open the store here; what failed, if anything."""
    try:
        agent.resolve()
    except Exception as error:
        return f"agent: {type(error).__name__}: {error}"
    try:
        store.resolve()
    except Exception as error:
        return f"store: {type(error).__name__}: {error}"
    return None


class BrowserPlugin(WorkerPlugin):
    """One Chromium per worker process. The first child that opens a page launches it
    (the process's shared browser, as anywhere); this closes it when the worker closes,
    on the worker's event loop, with what the worker keeps for fan-outs."""

    name = "recorder-browser"

    async def teardown(self, worker: distributed.Worker) -> None:
        from ..integrations.browser import aclose_browser

        with _lock:
            tokens = {k[0] for k in _gates} | set(_running) | set(_cancelled)
        for token in tokens:
            _forget_here(token)
        with contextlib.suppress(Exception):
            await aclose_browser()


# -- in the fan-out's process -------------------------------------------------------------


class DaskEngine(Engine):
    """Children as tasks of a Dask cluster: ``client``'s (left running), else a
    ``LocalCluster`` of ``n_workers`` worker processes started by :meth:`start` and
    closed by :meth:`close`, each with ``threads_per_worker`` threads (default: enough
    for ``concurrency`` children across the workers). ``cluster_options`` go to
    ``LocalCluster`` as they are (``dashboard_address``, ``memory_limit``...)."""

    def __init__(
        self,
        client: distributed.Client | None = None,
        *,
        concurrency: int = 8,
        n_workers: int = 2,
        threads_per_worker: int | None = None,
        **cluster_options: Any,
    ) -> None:
        self._given = client
        self._n_workers = max(1, n_workers)
        self._threads = threads_per_worker or max(1, math.ceil(concurrency / self._n_workers))
        self._options = cluster_options
        self._cluster: distributed.LocalCluster | None = None
        self._client: distributed.Client | None = None
        self._own_client = False
        self._token = uuid.uuid4().hex[:12]
        self._agent: AgentRef | None = None
        self._limits: dict[str, str] = {}
        self._flight: dict[asyncio.Task[None], ChildSpec] = {}
        self._done: asyncio.Queue[ChildOutcome] | None = None
        self._count = 0
        self._lost: EngineLostError | None = None
        self._dashboard: str | None = None
        self.address: str | None = None
        """The scheduler's address, once started."""

    @property
    def in_flight(self) -> int:
        return self._count

    @property
    def dashboard(self) -> str | None:
        return self._dashboard

    @property
    def client(self) -> distributed.Client:
        """The asynchronous client this engine talks through, once started."""
        if self._client is None:
            raise RuntimeError("the Dask engine has not started")
        return self._client

    async def start(self, first: ChildSpec) -> None:
        if first.store.location is None:
            raise ConfigError(
                "a fan-out on Dask records its children from worker processes, which "
                "cannot reach an in-memory store: give store= a directory every worker "
                "can open (or a database URL). Nothing ran."
            )
        self._agent = first.agent.portable()
        if self._given is None:
            # On loopback, a free port for the dashboard (two clusters never collide on
            # :8787, and nothing listens beyond this machine); the caller's options win.
            options = {"silence_logs": 30, "host": "127.0.0.1",  # logging.WARNING
                       "dashboard_address": "127.0.0.1:0", **self._options}  # fmt: skip
            self._cluster = await distributed.LocalCluster(
                n_workers=self._n_workers,
                threads_per_worker=self._threads,
                processes=True,
                asynchronous=True,
                **options,
            )
            self._client = await distributed.Client(
                self._cluster, asynchronous=True, set_as_default=False
            )
            self._own_client = True
        else:
            self._client = await self._connect(self._given)
        self.address = _address(self._client)
        self._dashboard = _dashboard_of(self._client)
        await self._client.register_plugin(BrowserPlugin(), name=BrowserPlugin.name)
        await self._check(self._agent, StoreRef(first.store.location))
        self._limits = {
            name: semaphore_name(first.scope, name, self._token) for name in first.limits
        }

    async def _connect(self, given: distributed.Client) -> distributed.Client:
        """An asynchronous client on this event loop, to ``given``'s scheduler."""
        loop = asyncio.get_running_loop()
        if given.asynchronous and getattr(given.loop, "asyncio_loop", None) is loop:
            return given
        address = _address(given)
        if given.status not in ("running", "connecting") or address is None:
            raise ConfigError(
                f"fan_out(engine=) was given the Dask client {given!r}, which is "
                f"{given.status}; give a connected distributed.Client."
            )
        try:
            client = await distributed.Client(
                address, asynchronous=True, set_as_default=False, security=given.security
            )
        except OSError as error:
            raise EngineLostError(
                f"the Dask scheduler at {address} could not be reached ({error})."
            ) from error
        self._own_client = True
        return client  # type: ignore[no-any-return]

    async def _check(self, agent: AgentRef, store: StoreRef) -> None:
        """Ask every worker (or, with none yet, one task) to load the agent and open the
        store; refuse the fan-out before any child starts if one cannot."""
        client = self.client
        identity = await _scheduler(client).identity(n_workers=-1)
        workers = identity.get("workers", {})
        answers: dict[str, Any]
        if workers:
            answers = await client.run(_probe, agent, store, on_error="return")
        else:
            answers = {"a worker": await client.submit(_probe, agent, store, pure=False)}
        for worker, answer in sorted(answers.items()):
            if answer is None:
                continue
            if isinstance(answer, BaseException):
                answer = f"recorder: {type(answer).__name__}: {answer}"
            raise ConfigError(_refusal(agent, worker, str(answer)))

    def submit(self, spec: ChildSpec) -> None:
        client = self.client
        if self._done is None:
            self._done = asyncio.Queue()
        portable = dataclasses.replace(
            spec,
            agent=self._agent or spec.agent.portable(),
            store=StoreRef(spec.store.location),
        )
        task_fn: Callable[..., Any] = run_async_child if spec.agent.is_async else run_sync_child
        future: distributed.Future[ChildOutcome] = client.submit(
            task_fn,
            portable,
            self._token,
            key=f"recorder-child-{spec.run_name}-{uuid.uuid4().hex[:8]}",
            pure=False,
        )
        waiter = asyncio.get_running_loop().create_task(
            self._wait(spec, future), name=f"recorder dask child {spec.key}"
        )
        self._flight[waiter] = spec
        self._count += 1

    async def _wait(self, spec: ChildSpec, future: distributed.Future[ChildOutcome]) -> None:
        try:
            outcome: ChildOutcome = await future
        except distributed.client.FutureCancelledError as cancelled:
            if cancelled.reason == "scheduler-connection-lost" and self._lost is None:
                self._lost = EngineLostError(
                    f"the Dask scheduler at {self.address} was lost while children ran."
                )
            if self._lost is not None:
                outcome = _crashed(spec, str(self._lost))
            else:
                outcome = _not_started(spec)
        except asyncio.CancelledError:
            outcome = _not_started(spec)
        except Exception as error:  # KilledWorker past allowed-failures, or a bad result
            outcome = _crashed(spec, f"{type(error).__name__}: {error}")
        finally:
            self._flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        assert self._done is not None
        self._done.put_nowait(outcome)

    async def as_completed(self) -> AsyncIterator[ChildOutcome]:
        while self._count:
            assert self._done is not None
            outcome = await self._done.get()
            if self._lost is not None:
                self._done.put_nowait(outcome)  # cancel() hands it back
                raise self._lost
            self._count -= 1
            yield outcome

    async def cancel(self) -> list[ChildOutcome]:
        pending: set[asyncio.Task[None]] = set(self._flight)
        if pending and self._lost is None and self._client is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._client.run(_cancel_here, self._token), 10)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while pending and (left := deadline - time.monotonic()) > 0:
            try:  # a second interrupt does not leave children unaccounted for
                _, pending = await asyncio.wait(pending, timeout=left)
            except asyncio.CancelledError:
                pending = {t for t in pending if not t.done()}
        for waiter in pending:  # still out after the wait: given up on
            waiter.cancel()
        if pending:
            await asyncio.wait(pending)
        drained: list[ChildOutcome] = []
        while self._done is not None and not self._done.empty():
            drained.append(self._done.get_nowait())
        self._count = 0
        return drained

    async def close(self) -> None:
        for waiter in list(self._flight):
            waiter.cancel()
        client = self._client
        if client is not None and self._lost is None and client.status == "running":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.run(_forget_here, self._token), 10)
            for name in self._limits.values():
                with contextlib.suppress(Exception):
                    await _scheduler(client).semaphore_close(name=name)
        if client is not None and self._own_client:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_closing(client), 30)
        self._client = None
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await _closing(cluster)


def _scheduler(client: distributed.Client) -> Any:
    """The client's connection to its scheduler (its remote calls are awaited)."""
    if client.scheduler is None:
        raise EngineLostError("the Dask client is not connected to a scheduler.")
    return client.scheduler


def _address(client: distributed.Client) -> str | None:
    found = getattr(client.scheduler, "address", None)
    return None if found is None else str(found)


def _crashed(spec: ChildSpec, error: str) -> ChildOutcome:
    return ChildOutcome(spec.key, "", "crashed", error=error, retryable=False)


async def _closing(thing: distributed.Client | distributed.LocalCluster) -> None:
    closed = thing.close()
    if closed is not None:
        await closed


def _dashboard_of(client: distributed.Client) -> str | None:
    try:
        info = client.scheduler_info(n_workers=0)
        if "dashboard" not in info.get("services", {}):
            return None  # no dashboard (bokeh is not installed where the scheduler runs)
        return str(client.dashboard_link)
    except Exception:
        return None


def _refusal(agent: AgentRef, worker: str, problem: str) -> str:
    what = agent.path or "the agent (sent by value, cloudpickled)"
    if problem.startswith("store: "):
        return (
            f"the Dask worker {worker} cannot open the fan-out's store ({problem[7:]}). "
            "Every worker records its children in the same store: give store= a location "
            "every worker can reach (a directory on this host for a LocalCluster; a "
            "database URL for workers on other hosts). No child was started."
        )
    if problem.startswith("recorder: "):
        return (
            f"the Dask worker {worker} cannot run the recorder ({problem[10:]}). Install "
            "it where the workers run: `pip install 'recorder[dask]'` in their "
            "environment. No child was started."
        )
    module = (agent.path or "").partition(":")[0]
    ship = (
        f"client.upload_file('{module.replace('.', '/')}.py') sends a one-file module to "
        "every worker; install a package on the workers (pip install it in their "
        "environment); or define the agent in the notebook (or the __main__ script), "
        "where it is sent by value with cloudpickle"
    )
    return (
        f"the Dask worker {worker} cannot load the agent {what} ({problem[7:]}). A worker "
        f"imports an agent by its module, so the module must be importable there: {ship}. "
        "No child was started."
    )
