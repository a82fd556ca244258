"""The run context and the one policy that decides, for every step, replay or live.

``recorder.run(name, inputs=...)`` returns a :class:`Run`; each entry into it (``with``
or ``async with``) is an *attempt*. At entry the run takes its lock, marks attempts
left open by dead processes as crashed, and loads the step records of its current
generation. Every step then goes through :meth:`Run.begin`, which computes the step's
content key and occurrence and returns a :class:`Call`: replayed from the record, or
live, to be committed (written through at once) when it finishes.

Integrations (litellm, Playwright) only describe a call and execute it; they never
decide whether to replay and never touch the store.
"""

from __future__ import annotations

import html
import inspect
import random as _random
import threading
import time
import uuid as _uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import effects, faults, waits
from .attempts import (
    call_closers,
    cleanup_failed,
    end_attempt,
    finish_later,
    interrupted,
    is_interrupt,
    start_attempt,
)
from .autoinstall import install_integrations
from .call import Attempt, Call, RunStats, in_live_step
from .callsite import warn_at_caller
from .differences import mismatch
from .display import in_notebook, make_view
from .effects import OnAmbiguous
from .errors import (
    Cancelled,
    ConfigError,
    DivergenceError,
    DivergenceWarning,
    Interrupted,
    RecorderError,
    ReplayMissError,
    RunLockedError,
    Suspended,
)
from .forking import fork_spec
from .journal import Journal
from .keys import canonical, content_key, dumps, hash_bytes
from .options import Mode, OnDivergence, validate_name
from .records import Outcome, TraceEvent
from .retry import Retry, acall_with_retry, as_retry, call_with_retry
from .stores import Store, open_store

if TYPE_CHECKING:
    import os as _os

    import pandas

    from .history import RunHistory

__all__ = ["Call", "Mode", "OnDivergence", "Run", "current_run", "run"]

T = TypeVar("T")

_current: ContextVar[Run | None] = ContextVar("recorder_run", default=None)
_active: dict[int, Run] = {}
_active_lock = threading.Lock()


def current_run() -> Run | None:
    """The run whose context the caller is in, or ``None``.

    The run lives in a ContextVar, so asyncio tasks and executor threads started inside
    it see it. A plain ``threading.Thread`` does not copy context; there, if exactly one
    run is open in the process, that run is returned. Inside the body of a live step,
    this is ``None``: what a step does inside is part of its one recorded result.
    """
    if in_live_step():
        return None
    found = _current.get()
    if found is not None:
        return found
    if threading.current_thread() is not threading.main_thread():
        with _active_lock:
            if len(_active) == 1:
                return next(iter(_active.values()))
    return None


class Run:
    """A named, recorded run of agent code. Use :func:`run` to make one.

    Enter it with ``with`` or ``async with``; each entry is an attempt. The same object
    can be entered again after it exits; re-running a cell makes a new object for the
    same run, which works the same.
    """

    def __init__(
        self,
        name: str,
        *,
        inputs: Any = None,
        store: Store | str | _os.PathLike[str] | None = None,
        mode: Mode | str = Mode.AUTO,
        on_divergence: OnDivergence | str = OnDivergence.WARN,
        record_llm_errors: bool = False,
        clock: Callable[[], float] | None = None,
        rng: _random.Random | None = None,
        browser: Any = None,
        on_ambiguous: OnAmbiguous | str = OnAmbiguous.RAISE,
        saga: bool = False,
        redact: Callable[[str, Any], Any] | None = None,
        display: bool | None = None,
        fork_from: tuple[Run | str, int] | None = None,
        **moved: Any,
    ) -> None:
        _refuse_moved(moved)
        self.name = validate_name(name)
        self.display = display
        self.fork_from = fork_spec(fork_from)
        self.on_ambiguous = OnAmbiguous(on_ambiguous)
        self.saga = bool(saga)
        if redact is not None and not callable(redact):
            raise ConfigError(
                f"redact= takes a callable (kind, request) -> request, not {redact!r}."
            )
        self.redact = redact
        self.suspension: Suspended | None = None
        """Why the last attempt suspended (``None`` unless it did)."""
        self.mode = Mode(mode)
        self.on_divergence = OnDivergence(on_divergence)
        self.record_llm_errors = bool(record_llm_errors)
        if browser is not None:  # checked now, read only by the browser integration
            from .integrations.browser.options import browser_options

            browser = browser_options(browser)
        self.browser = browser
        self.inputs = inputs
        self._inputs_canonical = canonical(inputs, where="inputs")
        self.inputs_hash = hash_bytes(dumps(self._inputs_canonical).encode())
        self.run_id = f"{self.name}@{self.inputs_hash[7:19]}"
        self._store_arg = store
        self._clock = clock or time.time
        self._rng = rng or _random.SystemRandom()
        self._journal: Journal | None = None
        self._attempt: Attempt | None = None
        self._last: Attempt | None = None
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        att = self._attempt or self._last
        where = f" attempt {att.record.number} {att.record.outcome.value}" if att else ""
        return f"<recorder.Run {self.run_id!r} mode={self.mode.value}{where}>"

    # -- public state ------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(open_store(self._store_arg))
        return self._journal

    @property
    def store(self) -> Store:
        return self.journal.store

    @property
    def attempt(self) -> int | None:
        """The number of the current (or last) attempt, from 1."""
        att = self._attempt or self._last
        return att.record.number if att else None

    @property
    def outcome(self) -> Outcome | None:
        att = self._attempt or self._last
        return att.record.outcome if att else None

    @property
    def stats(self) -> RunStats:
        att = self._attempt or self._last
        return att.stats if att else RunStats()

    @property
    def events(self) -> list[TraceEvent]:
        """The trace of the current (or last) attempt in this process, in order: one
        event per step begun (replayed, live or failed). Empty before the first attempt."""
        att = self._attempt or self._last
        if att is None:
            return []
        with att.lock:
            return sorted(att.events, key=lambda e: e.seq)

    @property
    def is_open(self) -> bool:
        return self._attempt is not None

    # -- entering and leaving ----------------------------------------------------------

    def __enter__(self) -> Run:
        with self._open_lock:
            if self._attempt is not None:
                raise RunLockedError(
                    f"run {self.run_id!r} is already open (attempt {self._attempt.record.number});"
                    " a run cannot be entered inside itself."
                )
            self._attempt = start_attempt(self)
            try:
                att = self._attempt
                att.view = make_view(self.display, self.name, att.record.number, att.stats,
                                     _follows(att))  # fmt: skip
            except Exception as error:  # showing progress never stops a run
                warnings.warn(f"recorder: no live view ({error!r})", stacklevel=2)
        install_integrations()
        self._attempt.context_token = _current.set(self)
        with _active_lock:
            _active[id(self)] = self
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        att = self._attempt
        stopped: BaseException | None = None
        try:
            if att is not None:
                att.run_lock.ending = True
                if self.saga and isinstance(exc, Exception) and att.compensations:
                    effects.compensate(self, att)
            for pending in self._call_closers(exc):
                finish_later(pending)
        except BaseException as stop:  # Ctrl-C while ending: the attempt still ends
            stopped = stop
            for rest in self._call_closers():
                finish_later(rest)
        finally:
            self._close(exc)
        if stopped is not None:
            raise stopped
        self._say_interrupted(att, exc)
        return isinstance(exc, Suspended)

    async def __aenter__(self) -> Run:
        entered = self.__enter__()
        if self._attempt is not None:
            self._attempt.entered_async = True
        return entered

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        """Close the attempt's resources, then end it. Whatever cancels or interrupts
        this (a notebook's stop button while a browser context closes), the attempt
        still ends: its outcome is written (that of the body), the closers not yet
        awaited finish on the event loop, the lock is released; then the
        interruption goes on."""
        att = self._attempt
        stopped: BaseException | None = None
        pending: list[Any] = []
        try:
            if att is not None:
                att.run_lock.ending = True
                if self.saga and isinstance(exc, Exception) and att.compensations:
                    await effects.acompensate(self, att)
            pending = self._call_closers(exc)
            while pending:
                try:
                    await pending.pop(0)
                except Exception as error:  # never mask the body's own exception
                    if att is not None:
                        cleanup_failed(att, error, quiet=exc is not None and is_interrupt(exc))
        except BaseException as stop:
            stopped = stop
            for rest in pending + self._call_closers(exc):
                finish_later(rest)
        finally:
            self._close(exc)
        if stopped is not None:
            raise stopped
        self._say_interrupted(att, exc)
        return isinstance(exc, Suspended)

    def _call_closers(self, exc: BaseException | None = None) -> list[Any]:
        if self._attempt is None:
            return []
        return call_closers(self._attempt, quiet=exc is not None and is_interrupt(exc))

    def _say_interrupted(self, att: Attempt | None, exc: BaseException | None) -> None:
        """Replace an interrupt that ended the attempt by the one-line
        :class:`~recorder.Interrupted` (or :class:`~recorder.Cancelled`) that says where
        it stopped and what a re-run replays; IPython shows it as that line alone."""
        if att is None or exc is None or isinstance(exc, Interrupted | Cancelled):
            return
        if is_interrupt(exc) and not isinstance(exc, GeneratorExit):
            where = "the cell" if in_notebook() else "it"
            raise interrupted(self, att, exc, where) from None

    def _close(self, exc: BaseException | None) -> None:
        att = self._attempt
        if att is None:
            return
        self.suspension = exc if isinstance(exc, Suspended) else None
        try:
            end_attempt(self, att, exc)
        finally:
            att.run_lock.release()
            with _active_lock:
                _active.pop(id(self), None)
            if att.context_token is not None:
                try:
                    _current.reset(att.context_token)
                except ValueError:  # exited in another context than entered
                    _current.set(None)
            self._last, self._attempt = att, None

    def add_closer(self, closer: Callable[[], Any]) -> None:
        """Call ``closer`` when the current attempt ends, however it ends (in reverse
        order of registration; an awaitable it returns is awaited by ``async with``)."""
        self._require_open().closers.append(closer)

    # -- the step policy ---------------------------------------------------------------

    def _require_open(self) -> Attempt:
        att = self._attempt
        if att is None:
            raise RecorderError(
                f"run {self.run_id!r} is not open: call steps inside `with run:` or "
                "`async with run:`."
            )
        return att

    def begin(
        self,
        kind: str,
        name: str,
        request: Any,
        meta: dict[str, Any] | None = None,
        *,
        secrets: Callable[[], Iterable[str]] | None = None,
        live: bool = False,
    ) -> Call:
        """Start a step call: replayed if recorded (and the mode allows), else live.

        ``request`` is everything that determines the result; it is canonicalized and
        hashed into the content key. ``secrets`` returns values the call is given but
        that must never be written: they are redacted from any error recorded in this
        attempt (it is called only then). Raises ReplayMissError (mode ``replay``) or
        DivergenceError (``on_divergence="raise"``) instead of going live.

        With ``live`` the step runs live even if it is recorded (the caller's state can
        no longer be replayed, such as a browser page handed to the program): its
        record, if any, counts as used, so no divergence is reported, and the new
        result replaces it. ``mode="replay"`` still refuses to go live.
        """
        att = self._require_open()
        if secrets is not None:
            att.secret_sources.append(secrets)
        forced = False
        canon = canonical(request, where=f"the request of {kind} {name!r}")
        key = content_key(kind, name, canon)
        with att.lock:
            occurrence = att.occurrences.get(key, 0)
            att.occurrences[key] = occurrence + 1
            seq = att.seq
            att.seq = seq + 1
            record = None if self.mode is Mode.RECORD else att.recorded.get((key, occurrence))
            if record is not None:
                att.used.add((key, occurrence))
                if live:
                    record = None
                    forced = True
        if record is None:
            if live and (self.mode is Mode.REPLAY or att.read_only):
                never = "a read-only store" if att.read_only else "mode='replay'"
                raise ConfigError(
                    f"{kind} {name!r} must run live (its browser page went live) and "
                    f"{never} never goes live; use mode='auto' on a writable store."
                )
            if not (live and forced):
                self._on_miss(att, kind, name, seq, canon)
            faults.reach("before_live")
        call = Call(self, att, seq, key, occurrence, kind, name, canon, meta or {}, record)
        att.current = call
        if att.view is not None:
            att.view.started(call)
        return call

    def _on_miss(self, att: Attempt, kind: str, name: str, seq: int, request: Any) -> None:
        if self.mode is Mode.REPLAY or att.read_only:
            pool = list(att.recorded.values())
            then = "mode='replay' never goes live: re-run with mode='auto' to record it."
            if att.read_only:
                then = (
                    f"The store {self.store.location} is read-only, so this step cannot "
                    "be recorded and does not run: make the store writable (`chmod -R u+w "
                    "DIR`) or copy it to a writable place (`cp -a DIR COPY`), then re-run."
                )
            raise mismatch(ReplayMissError, self.run_id, then, pool, kind, name, seq, request,
                           self.journal.request)  # fmt: skip
        if self.mode is not Mode.AUTO or len(att.used) >= len(att.recorded):
            return
        if self.on_divergence is OnDivergence.WARN and att.divergence_reported:
            return
        with att.lock:
            unused = [r for ident, r in att.recorded.items() if ident not in att.used]
        if self.on_divergence is OnDivergence.RAISE:
            then = (
                f"on_divergence='raise' stops here ({len(unused)} recorded step(s) are "
                "unused so far); with 'warn' this step and what follows it would go live."
            )
        else:
            then = (
                f"This step goes live, and so does the rest of the run wherever it asks "
                f"for what the record lacks ({len(unused)} recorded step(s) are unused so "
                "far; warned once per attempt)."
            )
        error = mismatch(DivergenceError, self.run_id, then, unused, kind, name, seq, request,
                         self.journal.request)  # fmt: skip
        if self.on_divergence is OnDivergence.RAISE:
            raise error
        att.divergence_reported = True
        warn_at_caller(str(error), DivergenceWarning)

    # -- generic steps -----------------------------------------------------------------

    def step(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        retry: Retry | int | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` as a recorded step named ``name``.

        The key covers the name and the arguments (which must have a JSON form); the
        result must be JSON-representable (bytes allowed). A step that raised replays by
        raising the same error type and message. Inside a live step, nested steps and
        LLM calls are not recorded separately: the step's result is the record.
        ``retry`` (a :class:`~recorder.retry.Retry` or a number of tries) tries a
        raising ``fn`` again; each failed try is a trace row. (``retry`` is therefore
        not passed on to ``fn``.)
        """
        spec = as_retry(retry)
        if in_live_step():
            return fn(*args, **kwargs)
        call = self.begin("step", name, {"args": args, "kwargs": kwargs})
        if call.replayed:
            return call.replay()  # type: ignore[no-any-return]
        with call.live(record_errors=True):
            result = call_with_retry(spec, call, lambda: fn(*args, **kwargs))
        call.commit(result)
        return result

    async def astep(
        self,
        name: str,
        fn: Callable[..., Awaitable[T] | T],
        /,
        *args: Any,
        retry: Retry | int | None = None,
        **kwargs: Any,
    ) -> T:
        """:meth:`step` for a coroutine function (a plain function works too)."""
        spec = as_retry(retry)
        if in_live_step():
            return await _maybe_await(fn(*args, **kwargs))
        call = self.begin("step", name, {"args": args, "kwargs": kwargs})
        if call.replayed:
            return call.replay()  # type: ignore[no-any-return]
        with call.live(record_errors=True):
            result = await acall_with_retry(spec, call, lambda: _maybe_await(fn(*args, **kwargs)))
        call.commit(result)
        return result

    # -- side effects ------------------------------------------------------------------

    def once(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        on_ambiguous: OnAmbiguous | str | None = None,
        check: Callable[[str], Any] | None = None,
        compensate: Callable[..., Any] | None = None,
        retry: Retry | int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the side effect ``fn(*args, **kwargs)`` at most once across re-runs.

        Before ``fn`` runs, an intent marker is written durably; its result and the
        "done" record are written together after it returns. A re-run returns the
        recorded result without calling ``fn``. An effect that started and never
        finished (the process died inside it) is ambiguous: ``on_ambiguous`` (default:
        the run's, ``"raise"``) says whether to raise AmbiguousEffectError, ``"retry"``
        or ``"assume_done"``; ``check(idempotency_key)`` asks your own check instead.
        ``fn`` gets ``idempotency_key=`` (the same on every re-run) when it has that
        parameter. ``compensate(result)`` undoes it when a ``saga=True`` run fails.
        For a coroutine function this returns an awaitable: ``await run.once(...)``.
        """
        options: dict[str, Any] = {"on_ambiguous": on_ambiguous, "check": check,
                                   "compensate": compensate, "retry": retry}  # fmt: skip
        if effects.is_async(fn):
            return effects.aonce(self, name, fn, args, kwargs, **options)
        return effects.once(self, name, fn, args, kwargs, **options)

    async def aonce(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        on_ambiguous: OnAmbiguous | str | None = None,
        check: Callable[[str], Any] | None = None,
        compensate: Callable[..., Any] | None = None,
        retry: Retry | int | None = None,
        **kwargs: Any,
    ) -> Any:
        """:meth:`once`, always awaitable (``fn`` and ``check`` may be plain or async)."""
        return await effects.aonce(self, name, fn, args, kwargs, on_ambiguous=on_ambiguous,
                                   check=check, compensate=compensate, retry=retry)  # fmt: skip

    # -- durable waits -----------------------------------------------------------------

    def wait_for_sync(self, name: str) -> Any:
        """:meth:`wait_for` for plain (``with``) code."""
        return waits.wait_for(self, name)

    async def wait_for(self, name: str) -> Any:
        """The value sent to this run as signal ``name``; if none has arrived, the
        attempt ends cleanly as *suspended* (``with run:`` swallows the
        :class:`~recorder.errors.Suspended` it raises). Send one with
        :func:`recorder.signal` or ``recorder signal RUN NAME VALUE``, then re-run: the
        run goes on with the value. The n-th wait for a name gets the n-th signal."""
        return waits.wait_for(self, name)

    def sleep_until_sync(self, when: datetime | float) -> None:
        """:meth:`sleep_until` for plain (``with``) code."""
        waits.sleep_until(self, when)

    async def sleep_until(self, when: datetime | float) -> None:
        """Durable sleep to ``when`` (an aware datetime or epoch seconds): before that
        time the attempt ends as *suspended*; a re-run after it goes on."""
        waits.sleep_until(self, when)

    def sleep_sync(self, seconds: float) -> None:
        """:meth:`sleep` for plain (``with``) code."""
        waits.sleep(self, seconds)

    async def sleep(self, seconds: float) -> None:
        """Durable sleep: the wake time (now + ``seconds``) is recorded the first time;
        until then every re-run suspends again, after it the run goes on."""
        waits.sleep(self, seconds)

    def _value(self, kind: str, make: Callable[[], Any]) -> Any:
        if in_live_step():
            return make()
        call = self.begin(kind, kind, None)
        if call.replayed:
            return call.replay()
        value = make()
        call.commit(value)
        return value

    def now(self) -> datetime:
        """The current UTC time, recorded: a replay returns the recorded instant."""
        text = self._value("now", lambda: datetime.fromtimestamp(self._clock(), UTC).isoformat())
        return datetime.fromisoformat(text)

    def random(self) -> float:
        """A random float in [0, 1), recorded."""
        return float(self._value("random", self._rng.random))

    def uuid(self) -> _uuid.UUID:
        """A random UUID4, recorded."""
        text = self._value(
            "uuid", lambda: str(_uuid.UUID(int=self._rng.getrandbits(128), version=4))
        )
        return _uuid.UUID(text)

    # -- LLM calls ---------------------------------------------------------------------

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.completion`` recorded in this run (same arguments)."""
        from .integrations import litellm as adapter

        return adapter.recorded_completion(self, args, kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.acompletion`` recorded in this run (same arguments)."""
        from .integrations import litellm as adapter

        return await adapter.recorded_acompletion(self, args, kwargs)

    # -- browser pages -----------------------------------------------------------------

    def new_page(self, **context_options: Any) -> Any:
        """A recorded Playwright page. Chromium starts only at the first step that must
        run live. Inside ``async with`` this returns an awaitable (``await
        run.new_page()``) of a page with Playwright's async API; inside ``with``, a page
        with the sync API. ``context_options`` go to ``browser.new_context``."""
        from .integrations.browser import new_page

        return new_page(self, context_options)

    def wrap(self, page: Any) -> Any:
        """Record the steps taken on a Playwright page you created yourself (sync or
        async API)."""
        from .integrations.browser import wrap

        return wrap(self, page)

    # -- looking back ------------------------------------------------------------------

    def history(self) -> RunHistory:
        """Everything recorded for this run, including the attempt in progress."""
        from .history import RunHistory

        att = self._attempt
        live = None
        if att is not None:
            with att.lock:
                live = (att.record, list(att.events))
        return RunHistory.load(self.journal, self.run_id, open_attempt=live)

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per step call of every attempt (see :mod:`recorder.export`)."""
        return self.history().to_dataframe()

    def _repr_html_(self) -> str:
        """A notebook shows a run as its summary and its step calls (no widgets)."""
        if self._journal is None and self._last is None and self._attempt is None:
            return f"<code>{html.escape(repr(self))}</code> (not entered yet)"
        return self.history()._repr_html_()


_MOVED = frozenset({"browser_resume", "screenshots", "chromium", "headless", "indexed_db"})


def _follows(att: Attempt) -> str:
    """What a new attempt follows, for its view: an attempt that did not complete."""
    whys = {Outcome.CRASHED: "crashed (its process died)", Outcome.INTERRUPTED: "was interrupted",
            Outcome.FAILED: "failed"}  # fmt: skip
    why = whys.get(att.previous) if att.previous is not None else None
    if why is None:
        return ""
    count = len(att.recorded)
    steps = "step" if count == 1 else "steps"
    return f"attempt {att.record.number - 1} {why}; {count} recorded {steps} replay"


def _refuse_moved(moved: dict[str, Any]) -> None:
    """Browser options given the old way, or an argument ``run`` does not take."""
    for name in moved:
        if name in _MOVED:
            new = "resume" if name == "browser_resume" else name
            raise ConfigError(
                f"recorder.run({name}=...) moved into the browser options: use "
                f"recorder.run(..., browser=recorder.Browser({new}=...))."
            )
        raise TypeError(f"recorder.run() got an unexpected keyword argument {name!r}")


async def _maybe_await(value: Awaitable[T] | T) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


def run(
    name: str,
    *,
    inputs: Any = None,
    store: Store | str | _os.PathLike[str] | None = None,
    mode: Mode | str = Mode.AUTO,
    on_divergence: OnDivergence | str = OnDivergence.WARN,
    record_llm_errors: bool = False,
    clock: Callable[[], float] | None = None,
    rng: _random.Random | None = None,
    browser: Any = None,
    on_ambiguous: OnAmbiguous | str = OnAmbiguous.RAISE,
    saga: bool = False,
    redact: Callable[[str, Any], Any] | None = None,
    display: bool | None = None,
    fork_from: tuple[Run | str, int] | None = None,
    **moved: Any,
) -> Run:
    """A recorded run named ``name`` over ``inputs``; enter it with ``with`` or
    ``async with``.

    The run's identity is its name plus the hash of its inputs (recorded too).
    ``store`` is a :class:`~recorder.stores.Store`, a directory, a ``postgresql://``
    URL, or ``None`` for ``$RECORDER_STORE``, ``$RECORDER_DIR`` or ``./.recorder``.
    ``mode`` is ``"auto"``, ``"replay"`` or ``"record"`` (see :class:`Mode`);
    ``on_divergence`` is ``"warn"`` or ``"raise"``.
    ``record_llm_errors`` records failed LLM calls as results (replayed by raising).
    ``clock`` (epoch seconds) and ``rng`` make live values reproducible in tests.

    ``browser`` is a :class:`recorder.Browser` with the options of the run's pages
    (``run.new_page()``): the executable, headless, how a resumed page is brought to
    its recorded state, screenshots, IndexedDB in checkpoints.

    Effects (``run.once``): ``on_ambiguous`` is the default for effects that started
    and never finished (``"raise"``, ``"retry"`` or ``"assume_done"``); with ``saga``
    a failing attempt runs the compensations of its done effects, newest first.
    ``redact(kind, request)`` returns the request as it may be written (scrub prompt
    text); the key is still computed on the real request, so replay keeps working.

    ``display``: ``None`` shows a live view in a notebook (a widget) and a progress line
    on a terminal's stderr; ``True`` always shows one; ``False`` nothing.

    ``fork_from=(other, step)`` starts this (new) run as a copy of the first ``step``
    steps of run ``other`` (a Run, name or id, in the same store): they replay, and the
    run goes live from there (time travel). The trace's ``forked_from`` column keeps the
    lineage.
    """
    return Run(
        name,
        inputs=inputs,
        store=store,
        mode=mode,
        on_divergence=on_divergence,
        record_llm_errors=record_llm_errors,
        clock=clock,
        rng=rng,
        browser=browser,
        on_ambiguous=on_ambiguous,
        saga=saga,
        redact=redact,
        display=display,
        fork_from=fork_from,
        **moved,
    )
