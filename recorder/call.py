"""One step call inside an attempt: replayed from its record, or live and committed.

:meth:`recorder.Run.begin` makes a :class:`Call`; integrations execute the real work
and report back through it. A live result is written through (one atomic store write)
before :meth:`Call.commit` returns.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import faults, values
from .errors import RecordedStepError, RecorderError
from .journal import Journal, step_label
from .keys import canonical, dumps, hash_bytes
from .memo import ResultCache
from .records import AttemptRecord, ErrorInfo, Outcome, StepRecord, TraceEvent
from .redaction import redact_text, secret_forms

if TYPE_CHECKING:
    from .display import View
    from .locks import RunLock
    from .runtime import Run

__all__ = ["READ_AHEAD", "UNBUILT_MAX_BYTES", "Attempt", "Call", "Prebuilt", "RunStats",
           "describe_error", "in_live_step", "rebuild_exception", "write_prebuilt"]  # fmt: skip

_in_step: ContextVar[bool] = ContextVar("recorder_in_step", default=False)


def in_live_step() -> bool:
    """True inside the body of a live step: what it calls is part of that step's one
    recorded result, so nested steps and LLM calls run unrecorded."""
    return _in_step.get()


READ_AHEAD = 32
"""Recorded steps whose prebuilt forms one read fetches for the replays to come."""
UNBUILT_MAX_BYTES = 64 * 1024 * 1024
"""Result JSON an attempt keeps in memory for the prebuilt forms it writes at its end;
steps past it get their form the next time they are replayed."""
_INLINE_LIMIT = 512
"""Encoded results up to this many bytes live inside the step record, larger ones in a
content-addressed blob (so identical responses are stored once)."""


@dataclass(frozen=True, slots=True)
class Prebuilt:
    """A faster way from a record to the object a replay builds than decoding the
    result and calling ``build`` on it (:meth:`Call.replay`).

    A result committed live with a ``Prebuilt``, or replayed through ``build`` because
    its record has no form of this tag, gets one when the attempt ends: ``dump`` is given
    the result exactly as a replay decodes it and returns a JSON form of the object
    ``build`` makes from it; the form is kept in a blob of its own, tagged ``tag``, and
    the step record is rewritten to name it. (At the end, not at once: the work, about
    0.1 ms for an LLM response, stays out of the live call's latency. An attempt killed
    before its end leaves no forms, and its steps replay through ``build`` once.) A
    replay given a ``Prebuilt`` of the record's tag makes the object with ``load(form)``.

    ``tag`` names the form and whatever decides what ``build`` makes (library
    versions): a record of another tag replays through ``build``. ``load`` must return
    a new object each time, sharing nothing mutable with the form. ``dump`` and
    ``load`` raise ``ValueError`` for a result or form they cannot handle: the record
    then has no form, or the replay goes through ``build``."""

    tag: str
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


@dataclass
class RunStats:
    """Counts for the current (or last) attempt."""

    replayed: int = 0
    live: int = 0
    failed: int = 0
    saved_s: float = 0.0
    saved_cost_usd: float = 0.0
    llm_calls_saved: int = 0


@dataclass
class Attempt:
    """The in-memory state of an open attempt."""

    record: AttemptRecord
    recorded: dict[tuple[str, int], StepRecord]
    run_lock: RunLock
    used: set[tuple[str, int]] = field(default_factory=set)
    occurrences: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    events: list[TraceEvent] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    divergence_reported: bool = False
    closers: list[Callable[[], Any]] = field(default_factory=list)
    """Called when the attempt ends (interrupted or not): close browser contexts..."""
    entered_async: bool = False
    pages: int = 0
    secret_sources: list[Callable[[], Iterable[str]]] = field(default_factory=list)
    """Each gives values a call was given that must never be written; they are read
    only when an error is recorded (redaction is off the replay path)."""

    def secrets(self) -> set[str]:
        """Every secret value of this attempt's calls (at least 6 characters: shorter
        ones would erase common words, not secrets), in every form a server may echo
        it: raw, URL-encoded, base64 (:func:`recorder.redaction.secret_forms`)."""
        found: set[str] = set()
        for source in self.secret_sources:
            for secret in source():
                if isinstance(secret, str) and len(secret) >= 6:
                    found.update(secret_forms(secret))
        return found

    intents: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    """Intent markers of effects that started and have no record (ambiguous ones)."""
    compensations: list[Any] = field(default_factory=list)
    """Undo callables of the effects done in this attempt (for ``saga=True``)."""
    raised: list[tuple[BaseException, StepRecord]] = field(default_factory=list)
    """Recorded errors raised to the program in this attempt (live or replayed): if one
    of them ends the attempt, its record is retracted so the next attempt retries it."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    view: View | None = None
    """The live view (notebook widget, terminal line) of this attempt, if any."""
    ahead: dict[str, bytes] = field(default_factory=dict)
    """Prebuilt forms read ahead of the replays that need them (see :meth:`read_ahead`),
    by blob hash, not yet checked against it."""
    by_seq: list[StepRecord] | None = None
    seq_index: dict[tuple[str, int], int] = field(default_factory=dict)
    next_n: int = 0
    """The number the next step record of the generation gets (:mod:`recorder.sequence`)."""
    dropped: list[int] = field(default_factory=list)
    """Numbers given and deleted on purpose, or never written: kept in the attempt record."""
    read_only: bool = False
    """The store is read-only: the attempt is kept in memory only and never goes live."""
    previous: Outcome | None = None
    """How the attempt before this one ended (``crashed`` if this one found it running
    with its process gone); None for a first attempt."""
    current: Call | None = None
    """The step begun last (in flight, or the last one finished)."""

    def read_ahead(self, journal: Journal, record: StepRecord, tag: str) -> bytes | None:
        """The prebuilt form of ``record`` (of ``tag``), read with those of the next
        :data:`READ_AHEAD` recorded steps in recorded order: a replay goes through the
        record in that order, so one read serves the next steps (unchecked: the caller
        checks each against its hash). None if the form is not in the store."""
        with self.lock:
            if self.by_seq is None:
                self.by_seq = sorted(self.recorded.values(), key=lambda r: (r.seq, r.attempt))
                self.seq_index = {r.ident: i for i, r in enumerate(self.by_seq)}
            start = self.seq_index.get(record.ident, -1)
            following = self.by_seq[start : start + READ_AHEAD] if start >= 0 else [record]
            if len(self.ahead) > 4 * READ_AHEAD:  # read and never used: a diverged run
                self.ahead.clear()
        refs = [f["ref"] for r in following if (f := r.prebuilt) and f.get("tag") == tag]
        found = journal.read_blobs([ref for ref in refs if isinstance(ref, str)])
        with self.lock:
            self.ahead.update(found)
            return self.ahead.pop((record.prebuilt or {}).get("ref", ""), None)

    def take_ahead(self, ref: str) -> bytes | None:
        """A blob :meth:`read_ahead` read, taken out (None if it was not)."""
        with self.lock:
            return self.ahead.pop(ref, None)

    unbuilt: list[Unbuilt] = field(default_factory=list)
    """Steps whose prebuilt form is written when the attempt ends: each record, its
    result's JSON and how to build the form (see :class:`Prebuilt`)."""
    unbuilt_bytes: int = 0

    def add_unbuilt(self, record: StepRecord, text: bytes, prebuilt: Prebuilt) -> None:
        """Give ``record`` a prebuilt form when the attempt ends (unless the attempt
        already holds :data:`UNBUILT_MAX_BYTES` of results waiting for one)."""
        with self.lock:
            if self.unbuilt_bytes + len(text) <= UNBUILT_MAX_BYTES:
                self.unbuilt.append((record, text, prebuilt))
                self.unbuilt_bytes += len(text)

    context_token: Token[Run | None] | None = None


_NOT_LOADED: Any = object()


def describe_error(exc: BaseException, secrets: Iterable[str]) -> ErrorInfo:
    """``exc`` as recorded: every form of every one of ``secrets`` and every secret
    URL parameter or URL password in its text (:mod:`recorder.redaction`) replaced by
    ``[redacted]`` in its message, arguments, traceback and attributes."""
    info = ErrorInfo.from_exception(exc, redact=secrets)

    def scrub(value: Any) -> Any:
        return redact_text(value) if isinstance(value, str) else value

    return dataclasses.replace(
        info,
        message=redact_text(info.message),
        traceback=redact_text(info.traceback),
        args=None if info.args is None else [scrub(a) for a in info.args],
        attrs={k: scrub(v) for k, v in info.attrs.items()},
    )


Unbuilt = tuple[StepRecord, bytes, "Prebuilt"]
"""A step waiting for its prebuilt form: its record, its result's JSON, the form's maker."""


def write_prebuilt(journal: Journal, run_id: str, unbuilt: list[Unbuilt]) -> int:
    """Give each step its prebuilt form (replacing a form of another tag) in one write;
    return how many got one. A result ``dump`` refuses keeps no form."""
    steps: list[StepRecord] = []
    blobs: dict[str, bytes] = {}
    for record, text, prebuilt in unbuilt:
        data = _form_of(journal, record, text, prebuilt)
        if data is None:
            continue
        ref = hash_bytes(data)
        blobs[ref] = data
        old = (record.prebuilt or {}).get("ref")
        kept = tuple(b for b in record.blobs if b != old and b != ref)
        entry = {"tag": prebuilt.tag, "ref": ref}
        steps.append(dataclasses.replace(record, prebuilt=entry, blobs=(*kept, ref)))
    journal.put_steps(run_id, steps, blobs)
    return len(steps)


def _form_of(journal: Journal, record: StepRecord, text: bytes, prebuilt: Prebuilt) -> bytes | None:
    """The JSON of the form of ``record``'s result, made from the result decoded from
    its recorded ``text`` as a replay decodes it (the same key order, the same numbers);
    None if there is none."""
    label = step_label(record)
    try:
        decoded = json.loads(text)
        if not record.plain:
            decoded = values.decode(decoded, lambda ref: journal.blob(ref, step=label))
        form = prebuilt.dump(decoded)
        return json.dumps(form, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, RecorderError):  # no form, or a blob gone since: replays build it
        return None


def form_checker(
    journal: Journal, prebuilts: Iterable[Prebuilt]
) -> Callable[[StepRecord], str | None]:
    """For :meth:`Journal.verify`: a check that a step's prebuilt form is the one its
    recorded JSON gives (the JSON is the truth; a form is derived from it and never
    trusted alone). Forms of a tag none of ``prebuilts`` has are not checked: a replay
    ignores them and builds from the JSON."""
    by_tag = {p.tag: p for p in prebuilts}

    def check(step: StepRecord) -> str | None:
        form = step.prebuilt or {}
        prebuilt = by_tag.get(str(form.get("tag")))
        if prebuilt is None or not isinstance(form.get("ref"), str):
            return None
        label = step_label(step)
        try:
            text = (
                journal.blob(step.result_ref, step=label)
                if step.result_ref is not None
                else dumps(step.result).encode()
            )
            stored = journal.blob(form["ref"], step=label)
        except RecorderError as error:
            return f"its prebuilt form cannot be checked: {error}"
        if _form_of(journal, step, text, prebuilt) != stored:
            return (
                "its prebuilt form (what a fast replay loads) differs from what its recorded "
                "result gives: a replay would return other data than show and export display"
            )
        return None

    return check


class Call:
    """One step call inside an attempt, returned by :meth:`Run.begin`.

    If :attr:`replayed`, call :meth:`replay` for the recorded result (or the recorded
    error, raised). Otherwise execute the step and call exactly one of :meth:`commit`
    (it finished), :meth:`fail` (it raised) or :meth:`abandon` (interrupted).
    """

    __slots__ = (
        "_attempt",
        "_run",
        "_t0",
        "clears",
        "key",
        "kind",
        "meta",
        "name",
        "occurrence",
        "record",
        "request",
        "seq",
        "started_at",
        "written",
    )  # fmt: skip

    def __init__(
        self,
        run: Run,
        attempt: Attempt,
        seq: int,
        key: str,
        occurrence: int,
        kind: str,
        name: str,
        request: Any,
        meta: dict[str, Any],
        record: StepRecord | None,
    ) -> None:
        self._run, self._attempt = run, attempt
        self.seq, self.key, self.occurrence = seq, key, occurrence
        self.kind, self.name, self.request, self.meta = kind, name, request, meta
        self.record = record
        self.clears: tuple[str, ...] = ()
        """Store keys removed by the same write as this call's record (an intent)."""
        self.written: Any = None
        """The request as it may be written, when an integration hid secrets in it
        (``None``: the request itself). The key stays that of the real request."""
        self.started_at = run._clock()
        self._t0 = time.perf_counter()

    @property
    def replayed(self) -> bool:
        return self.record is not None

    @property
    def label(self) -> str:
        return f"step #{self.seq} ({self.kind} {self.name!r})"

    def replay(
        self,
        build: Callable[[Any], Any] | None = None,
        cache: ResultCache[Any] | None = None,
        prebuilt: Prebuilt | None = None,
    ) -> Any:
        """The recorded result, decoded (and passed through ``build``); a recorded error
        is raised again. A damaged record raises DamagedRecordError and shows as a
        failed call in the trace.

        With ``cache``, a result recorded as a blob is built once per process: later
        replays of the same blob get ``cache``'s copy of the built object, with no
        read and no decoding (see :mod:`recorder.memo`). With ``prebuilt``, a record
        that carries that form of its built result is loaded from it, without
        ``build``."""
        record = self.record
        if record is None:
            raise RecorderError(f"{self.label} is live, not replayed; this is a recorder bug.")
        if record.error is not None:
            rebuilt = rebuild_exception(record.error, step=step_label(record))
            self._attempt.raised.append((rebuilt, record))
            self._count_replay(record)
            raise rebuilt
        ref = record.result_ref
        if cache is not None and ref is not None:
            cached = cache.get(ref)
            if cached is not None:
                self._count_replay(record)
                return cached
        if prebuilt is not None and record.prebuilt is not None:
            found = self._load_prebuilt(record, prebuilt, cache)
            if found is not _NOT_LOADED:
                self._count_replay(record)
                return found
        journal = self._run.journal
        label = step_label(record)
        size, data = 0, b""
        try:
            if ref is not None:
                data = journal.blob(ref, step=label)
                size = len(data)
                encoded = json.loads(data)
            else:
                encoded = record.result
            if not record.plain:
                encoded = values.decode(encoded, lambda ref: journal.blob(ref, step=label))
        except RecorderError as error:
            self._attempt.stats.failed += 1
            self._event("failed", describe_error(error, self._attempt.secrets()))
            raise
        if build is not None:
            if prebuilt is not None:
                text = data if ref is not None else dumps(record.result).encode()
                self._attempt.add_unbuilt(record, text, prebuilt)
            encoded = build(encoded)
            if cache is not None and ref is not None:
                cache.put(ref, encoded, size)
        self._count_replay(record)
        return encoded

    def _load_prebuilt(
        self, record: StepRecord, prebuilt: Prebuilt, cache: ResultCache[Any] | None
    ) -> Any:
        """The result loaded from the record's prebuilt form, or ``_NOT_LOADED`` when
        the form is of another tag or does not load (the caller then builds it)."""
        form = record.prebuilt or {}
        ref = form.get("ref")
        if form.get("tag") != prebuilt.tag or not isinstance(ref, str):
            return _NOT_LOADED
        att = self._attempt
        read = att.take_ahead(ref)
        if read is None:
            read = att.read_ahead(self._run.journal, record, prebuilt.tag)
        try:
            data = self._run.journal.blob(ref, step=step_label(record), read=read)
            tree = json.loads(data)
        except RecorderError as error:
            self._attempt.stats.failed += 1
            self._event("failed", describe_error(error, self._attempt.secrets()))
            raise
        except ValueError:  # hash-checked, so written that way: build from the result
            return _NOT_LOADED
        try:
            built = prebuilt.load(tree)
        except ValueError:
            return _NOT_LOADED
        if cache is not None and record.result_ref is not None:
            cache.put_form(record.result_ref, tree, len(data), prebuilt.load)
        return built

    def _count_replay(self, record: StepRecord) -> None:
        stats = self._attempt.stats
        stats.replayed += 1
        stats.saved_s += record.duration_s
        if record.kind == "llm":
            stats.llm_calls_saved += 1
            cost = record.meta.get("cost_usd")
            if isinstance(cost, int | float):
                stats.saved_cost_usd += cost
        self._event("replayed", record.error)

    def commit(
        self,
        result: Any,
        *,
        meta: dict[str, Any] | None = None,
        blobs: dict[str, bytes] | None = None,
        prebuilt: Prebuilt | None = None,
    ) -> None:
        """Record the live result (written through before this returns). ``meta`` adds
        trace fields; ``blobs`` (hash -> bytes) are stored with the step, atomically.
        With ``prebuilt``, the form of the object a replay builds is recorded too, when
        the attempt ends (see :class:`Prebuilt`).

        Raises NotSerializableError, writing nothing, if the result has no JSON form.
        """
        blobs = dict(blobs or {})
        try:
            encoded = values.encode(result, blobs, where=f"the result of {self.label}")
        except RecorderError as error:
            self._attempt.stats.failed += 1
            self._event("failed", describe_error(error, self._attempt.secrets()))
            raise
        self._write(encoded, blobs, None, meta, prebuilt)

    def fail(
        self,
        exc: BaseException,
        *,
        record: bool,
        meta: dict[str, Any] | None = None,
        blobs: dict[str, bytes] | None = None,
    ) -> None:
        """The live step raised ``exc``. With ``record`` the error is its recorded
        result (a replay raises it again, unless the error ended the attempt); otherwise
        only the trace shows it. ``meta`` and ``blobs`` as for :meth:`commit`."""
        info = describe_error(exc, self._attempt.secrets())
        if record:
            written = self._write(None, dict(blobs or {}), info, meta)
            self._attempt.raised.append((exc, written))
            return
        if meta:
            self.meta = {**self.meta, **meta}
        self._attempt.stats.failed += 1
        event = self._event("failed", info)
        self._run.journal.put_event(self._run.run_id, self._attempt.record.number, event)

    def add_secrets(self, values: Iterable[str]) -> None:
        """Values this call was given or met that must never be written (a typed
        password, a token in a URL): hidden, in every form, from the errors this
        attempt records from now on."""
        found = [v for v in values if isinstance(v, str)]
        if found:
            self._attempt.secret_sources.append(lambda: found)

    def abandon(self) -> None:
        """The live step was interrupted; nothing is recorded and it will run again."""

    def failed_try(self, exc: BaseException, number: int) -> None:
        """Try ``number`` of a retried live call raised ``exc`` and another try follows:
        a trace row (written through at once), no record."""
        info = describe_error(exc, self._attempt.secrets())
        saved = self.meta
        self.meta = {**saved, "try": number}
        try:
            event = self._event("failed", info)
        finally:
            self.meta = saved
        self._attempt.stats.failed += 1
        self._run.journal.put_event(self._run.run_id, self._attempt.record.number, event)

    @contextlib.contextmanager
    def live(self, *, record_errors: bool) -> Iterator[None]:
        """Around the real work of a live step: nested calls inside are not recorded; an
        Exception is reported with :meth:`fail` (recorded as the result when
        ``record_errors``), anything else (KeyboardInterrupt, cancellation) abandons the
        call. The exception always propagates."""
        token = _in_step.set(True)
        try:
            yield
        except Exception as exc:
            self.fail(exc, record=record_errors)
            raise
        except BaseException:
            self.abandon()
            raise
        finally:
            _in_step.reset(token)

    def _write(
        self,
        encoded: Any,
        blobs: dict[str, bytes],
        error: ErrorInfo | None,
        meta: dict[str, Any] | None,
        prebuilt: Prebuilt | None = None,
    ) -> StepRecord:
        run, att = self._run, self._attempt
        duration = time.perf_counter() - self._t0
        if meta:
            self.meta = {**self.meta, **meta}
        result, result_ref, plain, text = encoded, None, False, b""
        if error is None:
            text = dumps(encoded).encode()
            # A tag is a key starting with "$"; its absence means decoding is a no-op.
            plain = b'"$' not in text
            if len(text) > _INLINE_LIMIT:
                result, result_ref = None, hash_bytes(text)
                blobs[result_ref] = text
        request = self.request if self.written is None else self.written
        if run.redact is not None:  # the key stays that of the real request
            request = canonical(
                run.redact(self.kind, copy.deepcopy(request)),
                where=f"what redact= returned for {self.label}",
            )
        request_ref = run.journal.split_request(request, blobs)
        ident = (self.key, self.occurrence)
        with att.lock:
            number = att.next_n
            att.next_n = number + 1
            old = att.recorded.get(ident)
        replaces = () if old is None else old.replaces + (() if old.n is None else (old.n,))
        record = StepRecord(
            key=self.key,
            occurrence=self.occurrence,
            kind=self.kind,
            name=self.name,
            generation=att.record.generation,
            attempt=att.record.number,
            seq=self.seq,
            started_at=self.started_at,
            duration_s=duration,
            result=result,
            result_ref=result_ref,
            request_ref=request_ref,
            error=error,
            meta=self.meta,
            blobs=tuple(blobs),
            plain=plain,
            n=number,
            replaces=replaces,
        )
        faults.reach("before_write")
        try:
            run.journal.put_step(run.run_id, record, blobs, deletes=self.clears)
        except BaseException:  # not written (or unknown: a gap the next start settles)
            with att.lock:
                att.dropped.append(number)
            raise
        faults.reach("after_write")
        if prebuilt is not None and error is None:
            att.add_unbuilt(record, text, prebuilt)
        if error is None:
            att.stats.live += 1
        else:
            att.stats.failed += 1
        self._event("live" if error is None else "failed", error, duration)
        return record

    def _event(
        self, status: str, error: ErrorInfo | None, duration: float | None = None
    ) -> TraceEvent:
        att = self._attempt
        event = TraceEvent(
            seq=self.seq,
            key=self.key,
            occurrence=self.occurrence,
            kind=self.kind,
            name=self.name,
            status=status,
            started_at=self.started_at,
            duration_s=time.perf_counter() - self._t0 if duration is None else duration,
            generation=att.record.generation,
            error=error,
            meta=self.meta if self.record is None else {},
        )
        att.events.append(event)
        view = att.view
        if view is not None:
            view.ended(event, att.stats)
        return event


def _construct(kind: type[Exception], info: ErrorInfo) -> Exception | None:
    """``kind(*args)``, else ``kind(message)``, else an instance made without calling
    ``__init__`` and given the recorded args and attributes: the first whose ``str()``
    is the recorded message."""
    args = list(info.args) if info.args is not None else [info.message]
    for attempt in (args, [info.message]):
        try:
            candidate = kind(*attempt)
        except Exception:
            continue
        if str(candidate) == info.message:
            return candidate
    try:
        bare = kind.__new__(kind, *args)
        bare.args = tuple(args)
        bare.__dict__.update(info.attrs)
        if str(bare) == info.message:
            return bare
    except Exception:
        return None
    return None


def rebuild_exception(info: ErrorInfo, *, step: str) -> BaseException:
    """The recorded exception, as its own type when that type is importable here.

    Only modules already imported are looked in: a store must never make the recorder
    import code. Falls back to :class:`RecordedStepError` with the type and message.
    """
    module = sys.modules.get(info.module)
    kind: Any = module
    for part in info.type.split("."):
        kind = getattr(kind, part, None)
    exc: BaseException | None = None
    if isinstance(kind, type) and issubclass(kind, Exception):
        exc = _construct(kind, info)
    if exc is None:
        exc = RecordedStepError(f"{info.module}.{info.type}", info.message)
    exc.add_note(f"(replayed: {step} raised this when it ran live; see the trace for where)")
    return exc
