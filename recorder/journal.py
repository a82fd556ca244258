"""Runs, attempts, steps and blobs on top of a :class:`~recorder.stores.Store`.

Key layout (``docs/storage.md`` is the contract)::

    run/<run_id>                                  RunRecord
    lock/<run_id>                                 who holds the run now
    attempt/<run_id>/<attempt:06d>                AttemptRecord
    step/<run_id>/<generation:04d>/<key>/<occ:06d> StepRecord
    event/<run_id>/<attempt:06d>/<seq:08d>        TraceEvent of a failed call, written at once
    intent/<run_id>/<generation:04d>/<key>/<occ:06d>  an effect that started and has no record yet
    signal/<run_id>/<name>/<n:06d>                the n-th value sent to a run's wait_for(name)
    withheld/<run_id>/<ref>                       a blob a bundle import left out on purpose
    trace/<run_id>/<attempt:06d>                  every TraceEvent of an ended attempt
    blob/<sha256:...>                             content-addressed bytes

A blob is re-hashed on every read: a missing or altered blob raises
:class:`~recorder.errors.DamagedRecordError` naming the step, never a miss.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import records
from .errors import DamagedRecordError, StoreError
from .keys import dumps, hash_bytes, is_tagged_hash
from .records import AttemptRecord, RunRecord, StepRecord, TraceEvent
from .stores import Store

__all__ = ["Damage", "Journal", "intent_key"]

_RUN_PREFIXES = ("step", "attempt", "event", "trace", "lock", "intent", "signal", "withheld")
"""The key prefixes under which a run's records live (``<prefix>/<run_id>/...``), besides
``run/<run_id>`` and ``lock/<run_id>``."""

_PART_MIN = 256
"""List items of a request whose JSON is longer than this are stored as their own
blobs, so a growing conversation stores each message once, not once per call."""


@dataclass(frozen=True, slots=True)
class Damage:
    """One problem :meth:`Journal.verify` found."""

    run_id: str | None
    step: str | None
    ref: str | None
    problem: str

    def __str__(self) -> str:
        where = " ".join(p for p in (self.run_id, self.step) if p) or "store"
        return f"{where}: {self.problem}" + (f" ({self.ref})" if self.ref else "")


def step_label(record: StepRecord) -> str:
    """How messages name a step: ``step #3 (llm 'gpt-4o-mini', attempt 1)``."""
    return f"step #{record.seq} ({record.kind} {record.name!r}, attempt {record.attempt})"


class Journal:
    """Reads and writes the records of every run in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known_blobs: set[str] = set()
        self._lock = threading.Lock()

    # -- blobs -------------------------------------------------------------------------

    def forget_known_blobs(self) -> None:
        """Forget which blobs this journal wrote: another process may have deleted some
        (``recorder rm``) since. Called at every attempt start."""
        with self._lock:
            self._known_blobs.clear()

    def blob(self, ref: str, *, step: str = "a step", read: bytes | None = None) -> bytes:
        """The bytes of blob ``ref``, checked against the hash; damage raises. ``read``
        is the blob's content if it was already read (:meth:`read_blobs`)."""
        data = self.store.get("blob/" + ref) if read is None else read
        if data is None:
            self._refuse_withheld(ref, step)
            raise DamagedRecordError(
                f"the record of {step} needs blob {ref}, which is missing from "
                f"{self.store.location}. The step is not re-run silently: run `recorder "
                "verify` to see all damage, then delete the run (`recorder rm`) to record it anew."
            )
        if hash_bytes(data) != ref:
            raise DamagedRecordError(
                f"the record of {step} needs blob {ref}, whose content no longer matches its "
                f"hash in {self.store.location} (truncated or altered). Run `recorder verify`, "
                "then delete the run (`recorder rm`) to record it anew."
            )
        return data

    def read_blobs(self, refs: list[str]) -> dict[str, bytes]:
        """The blobs among ``refs`` that exist, read together and not yet checked: pass
        each to :meth:`blob` as ``read`` when it is used."""
        found = self.store.get_many(["blob/" + ref for ref in refs])
        return {key[5:]: data for key, data in found.items()}

    def _refuse_withheld(self, ref: str, step: str) -> None:
        """A blob a bundle import left out on purpose (a browser checkpoint exported
        without secrets): say so, rather than call it damage."""
        for key, raw in self.store.scan("withheld/"):
            if key.endswith("/" + ref):
                doc = json.loads(raw)
                raise DamagedRecordError(
                    f"the record of {step} needs blob {ref}, which run {doc.get('run_id')} "
                    f"was imported without: its bundle was exported without secrets (browser "
                    "checkpoints hold cookies and storage). It is not restored from a blank "
                    "browser: export the run again with `recorder export RUN --bundle FILE "
                    "--include-secrets`, then `recorder import FILE --replace`."
                )

    def split_request(self, request: Any, blobs: dict[str, bytes]) -> str:
        """Store a canonical request as a blob, its large list items as blobs of their
        own; return the request blob's hash. ``blobs`` receives every new blob."""
        doc = request
        if type(request) is dict:
            doc = {}
            for field, value in request.items():
                if type(value) is list:
                    parts = []
                    for item in value:
                        text = dumps(item)
                        if len(text) > _PART_MIN or _is_part(item):
                            data = text.encode()
                            ref = hash_bytes(data)
                            blobs[ref] = data
                            parts.append({"$part": ref})
                        else:
                            parts.append(item)
                    value = parts
                doc[field] = value
        data = dumps(doc).encode()
        ref = hash_bytes(data)
        blobs[ref] = data
        return ref

    def request(self, record: StepRecord) -> Any:
        """The canonical request a step record was made from (``None`` if not kept)."""
        if record.request_ref is None:
            return None
        label = step_label(record)
        doc = json.loads(self.blob(record.request_ref, step=label))
        if type(doc) is dict:
            for field, value in doc.items():
                if type(value) is list:
                    doc[field] = [
                        json.loads(self.blob(v["$part"], step=label)) if _is_part(v) else v
                        for v in value
                    ]
        return doc

    # -- runs --------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        raw = self.store.get("run/" + run_id)
        return None if raw is None else records.load(RunRecord, raw, where=f"run {run_id}")

    def put_run(self, run: RunRecord) -> None:
        self.store.write({"run/" + run.run_id: records.dump(run)})

    def list_runs(self, name: str | None = None) -> list[RunRecord]:
        prefix = "run/" if name is None else f"run/{name}@"
        return [records.load(RunRecord, raw, where=key) for key, raw in self.store.scan(prefix)]

    def swap_lock(self, run_id: str, expected: bytes | None, new: bytes | None) -> bool:
        """Atomically replace the run's lock value if it is ``expected``."""
        return self.store.swap("lock/" + run_id, expected, new)

    def get_lock(self, run_id: str) -> bytes | None:
        return self.store.get("lock/" + run_id)

    # -- attempts and traces -----------------------------------------------------------

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        return [
            records.load(AttemptRecord, raw, where=key)
            for key, raw in self.store.scan(f"attempt/{run_id}/")
        ]

    def last_attempt(self, run_id: str) -> AttemptRecord | None:
        """The newest attempt (the only one that can still say ``running``: each
        attempt marks its predecessor crashed if it was left open)."""
        found = self.store.last(f"attempt/{run_id}/")
        return None if found is None else records.load(AttemptRecord, found[1], where=found[0])

    def put_attempt(
        self, run_id: str, attempt: AttemptRecord, trace: list[TraceEvent] | None = None
    ) -> None:
        puts = {f"attempt/{run_id}/{attempt.number:06d}": records.dump(attempt)}
        if trace is not None:
            puts[f"trace/{run_id}/{attempt.number:06d}"] = records.dump_trace(trace)
        self.store.write(puts)

    def put_event(self, run_id: str, attempt: int, event: TraceEvent) -> None:
        try_number = event.meta.get("try")
        suffix = f".{try_number:04d}" if isinstance(try_number, int) else ""
        key = f"event/{run_id}/{attempt:06d}/{event.seq:08d}{suffix}"
        self.store.write({key: records.dump(event)})

    def trace(self, run_id: str, attempt: int) -> list[TraceEvent] | None:
        """The full trace of an ended attempt, or ``None`` if it never ended cleanly."""
        raw = self.store.get(f"trace/{run_id}/{attempt:06d}")
        if raw is None:
            return None
        return [records.load(TraceEvent, e, where="trace") for e in json.loads(raw)]

    def events(self, run_id: str, attempt: int) -> list[TraceEvent]:
        """The failed-call events written through during an attempt."""
        return [
            records.load(TraceEvent, raw, where=key)
            for key, raw in self.store.scan(f"event/{run_id}/{attempt:06d}/")
        ]

    # -- steps -------------------------------------------------------------------------

    def steps(self, run_id: str, generation: int | None = None) -> list[StepRecord]:
        prefix = f"step/{run_id}/" if generation is None else f"step/{run_id}/{generation:04d}/"
        return records.load_many(StepRecord, self.store.scan(prefix))

    def put_step(
        self,
        run_id: str,
        step: StepRecord,
        blobs: Mapping[str, bytes],
        *,
        deletes: tuple[str, ...] = (),
        sync: bool = False,
    ) -> None:
        """Write a finished step and every blob it needs in one atomic write (which also
        removes ``deletes``: an effect's intent marker goes with its record's arrival)."""
        self.put_steps(run_id, [step], blobs, deletes=deletes, sync=sync)

    def put_steps(
        self,
        run_id: str,
        steps: list[StepRecord],
        blobs: Mapping[str, bytes],
        *,
        deletes: tuple[str, ...] = (),
        sync: bool = False,
    ) -> None:
        """Write (or rewrite) ``steps`` of ``run_id`` and the new ``blobs`` in one
        atomic write, removing ``deletes``."""
        if not steps:
            return
        puts = {_step_key(run_id, step): records.dump(step) for step in steps}
        with self._lock:
            new = {"blob/" + r: d for r, d in blobs.items() if r not in self._known_blobs}
        self.store.write(puts, adds=new, deletes=deletes, sync=sync)
        with self._lock:
            self._known_blobs.update(blobs)

    def copy_steps(self, run_id: str, steps: list[StepRecord]) -> None:
        """Write ``steps`` (another run's records, whose blobs are in this store) as
        generation 0 of ``run_id``, in one write that adds their blobs where absent: the
        other run may be deleted meanwhile, and its blobs collected with it."""
        puts = {}
        refs: dict[str, None] = {}
        for step in steps:
            copied = dataclasses.replace(step, generation=0)
            raw = puts[_step_key(run_id, copied)] = records.dump(copied)
            refs.update(dict.fromkeys(sorted(_needed(json.loads(raw)))))
        if puts:
            found = self.store.get_many(["blob/" + ref for ref in refs])
            self.store.write(puts, adds=found)

    def delete_step(self, run_id: str, step: StepRecord) -> None:
        """Retract one step record (its blobs stay until garbage collection) and any
        intent marker of the same step."""
        intent = intent_key(run_id, step.generation, step.key, step.occurrence)
        self.store.write(deletes=[_step_key(run_id, step), intent])
        with self._lock:  # its blobs may be collected now: a later step sends them again
            self._known_blobs.difference_update(step.blobs)

    # -- effects and signals -----------------------------------------------------------

    def intents(self, run_id: str, generation: int) -> dict[tuple[str, int], dict[str, Any]]:
        """The intent markers of a generation: effects that started and have no record."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for key, raw in self.store.scan(f"intent/{run_id}/{generation:04d}/"):
            *_, step_key, occurrence = key.split("/")
            found[step_key, int(occurrence)] = _unseal(raw, f"intent marker {key}")
        return found

    def put_intent(self, key: str, marker: Mapping[str, Any]) -> None:
        """Write an effect's intent marker durably (flushed to disk) before it runs."""
        self.store.write({key: _seal(marker)}, sync=True)

    def signals(self, run_id: str, name: str) -> list[dict[str, Any]]:
        """Every value sent to ``wait_for(name)`` of a run, oldest first."""
        return [_unseal(raw, key) for key, raw in self.store.scan(f"signal/{run_id}/{name}/")]

    def put_signal(self, run_id: str, name: str, doc: Mapping[str, Any]) -> int:
        """Append a signal (atomic against concurrent senders); return its number."""
        data = _seal(doc)
        number = len(self.store.keys(f"signal/{run_id}/{name}/"))
        while not self.store.swap(f"signal/{run_id}/{name}/{number:06d}", None, data):
            number += 1
        return number

    # -- maintenance -------------------------------------------------------------------

    def delete_run(self, run_id: str) -> int:
        """Delete a run's records and every blob no remaining step needs, in one store
        transaction; return the number of step records deleted.

        Other processes may be recording other runs meanwhile: they wait for the
        transaction, and the blobs it keeps are exactly those some step record needs
        when it commits. A writer adds a step and its new blobs in one write (a blob
        already there is kept, one that went is added again), so a step written before
        the transaction keeps its blobs and one written after it brings back any that
        went. A process killed inside it leaves the run whole: nothing is half deleted."""
        store = self.store
        with store.transaction():
            deleted = len(store.keys(f"step/{run_id}/"))
            for prefix in _RUN_PREFIXES:
                store.delete_prefix(f"{prefix}/{run_id}/")
            store.write(deletes=["run/" + run_id, "lock/" + run_id])
            doomed = self._sweep()
        self._forget(doomed)
        return deleted

    def collect_garbage(self) -> int:
        """Delete the blobs no step record needs, in one store transaction (see
        :meth:`delete_run`); return how many went."""
        with self.store.transaction():
            doomed = self._sweep()
        self._forget(doomed)
        return len(doomed)

    def _sweep(self) -> list[str]:
        """Inside a transaction: delete every blob no step record needs; return their
        keys. A step record that does not parse could need any blob: then none goes."""
        store = self.store
        needed: set[str] = set()
        keys = store.keys("step/")
        for start in range(0, len(keys), 250):
            for key, raw in store.get_many(keys[start : start + 250]).items():
                try:
                    needed.update(_needed(json.loads(raw)))
                except (ValueError, TypeError, AttributeError) as error:
                    warnings.warn(
                        f"{store.location}: step record {key} is unreadable ({error}); no "
                        "blob was collected. Run `recorder verify`, then `recorder rm` its run.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    return []
        doomed = [k for k in store.keys("blob/") if k[5:] not in needed]
        for start in range(0, len(doomed), 500):
            store.write(deletes=doomed[start : start + 500])
        return doomed

    def _forget(self, doomed: list[str]) -> None:
        if doomed:
            with self._lock:
                self._known_blobs.difference_update(k[5:] for k in doomed)

    def verify(self, check_form: Callable[[StepRecord], str | None] | None = None) -> list[Damage]:
        """Re-hash every blob, check every record's seal (runs, attempts, events, steps)
        and that every step's blobs are present. ``check_form(step)`` says what is wrong
        with a step's prebuilt form against its recorded JSON, if anything (the
        integrations that make forms know how; see ``recorder.call.form_checker``)."""
        damage = [Damage(None, None, None, p) for p in self.store.integrity_check()]
        for prefix in ("intent/", "signal/"):
            for key, raw in self.store.scan(prefix):
                try:
                    _unseal(raw, key)
                except DamagedRecordError as error:
                    damage.append(Damage(key.split("/", 2)[1], key, None, str(error)))
        for prefix, cls in (("run/", RunRecord), ("attempt/", AttemptRecord),
                            ("event/", TraceEvent)):  # fmt: skip
            for key, raw in self.store.scan(prefix):
                try:
                    records.load(cls, raw, where=key)
                except (StoreError, ValueError) as error:
                    run_id = key.split("/", 2)[1]
                    damage.append(Damage(run_id, key, None, f"unreadable record: {error}"))
        good: set[str] = set()
        for key, data in self.store.scan("blob/"):
            ref = key[5:]
            if not is_tagged_hash(ref):
                damage.append(Damage(None, None, ref, "a blob key that is not a sha256 hash"))
            elif hash_bytes(data) != ref:
                damage.append(Damage(None, None, ref, "blob content does not match its hash"))
            else:
                good.add(ref)
        withheld = {key.rsplit("/", 1)[1] for key in self.store.keys("withheld/")}
        for key, raw in self.store.scan("step/"):
            run_id = key.split("/", 2)[1]
            try:
                step = records.load(StepRecord, raw, where=key)
            except (StoreError, ValueError) as error:
                damage.append(Damage(run_id, key, None, f"unreadable step record: {error}"))
                continue
            missing = False
            for ref in step.blobs:
                if ref not in good and ref not in withheld:
                    missing = True
                    damage.append(
                        Damage(
                            run_id, step_label(step), ref, "a blob it needs is missing or damaged"
                        )
                    )
            problem = None if missing or check_form is None else check_form(step)
            if problem is not None:
                form = (step.prebuilt or {}).get("ref")
                damage.append(Damage(run_id, step_label(step), form, problem))
        damage.extend(self._lost_records())
        return damage

    def _lost_records(self) -> list[Damage]:
        """Step records of a run's current generation that its numbering says were
        written and are gone (see :mod:`recorder.sequence`)."""
        from .sequence import numbering

        found = []
        for run in self.list_runs():
            try:
                state = numbering(
                    self.steps(run.run_id, run.generation),
                    self.attempts(run.run_id),
                    run.generation,
                )
            except (StoreError, ValueError):  # unreadable records are reported above
                continue
            if state.missing:
                shown = ", ".join(str(n) for n in state.missing[:10])
                found.append(
                    Damage(run.run_id, None, None,
                           f"{len(state.missing)} step record(s) written and since lost "
                           f"(numbers {shown}{'...' if len(state.missing) > 10 else ''})")
                )  # fmt: skip
        return found


def _seal(doc: Mapping[str, Any]) -> bytes:
    """An intent marker or a signal as sealed JSON, like every record (see
    :mod:`recorder.records`)."""
    return records.seal(dumps({**doc, "format": records.RECORD_FORMAT}).encode())


def _unseal(raw: bytes, where: str) -> dict[str, Any]:
    """A marker or signal written by :func:`_seal` (or, unsealed, by an older release),
    its seal checked: any altered byte is damage."""
    try:
        doc = json.loads(raw)
    except ValueError as error:
        raise DamagedRecordError(f"{where} is unreadable: {error}") from error
    if type(doc) is not dict:
        raise DamagedRecordError(f"{where} is not a JSON object: the record is damaged.")
    records.check_seal(raw, doc, where)
    doc.pop("format", None)
    return doc


def _needed(doc: Any) -> set[str]:
    """The blobs a step record's JSON names: its ``blobs`` (every blob it needs, by
    contract) and, to be safe, its request, result and prebuilt refs and every ref among
    its ``meta`` values (checkpoint, screenshot...): keeping a blob too many is harmless."""
    refs = {str(r) for r in doc.get("blobs") or ()}
    prebuilt = doc.get("prebuilt")
    meta = doc.get("meta")
    for ref in (doc.get("request_ref"), doc.get("result_ref"),
                prebuilt.get("ref") if isinstance(prebuilt, dict) else None,
                *(meta.values() if isinstance(meta, dict) else ())):  # fmt: skip
        if is_tagged_hash(ref):
            refs.add(ref)
    return refs


def intent_key(run_id: str, generation: int, key: str, occurrence: int) -> str:
    """Where the intent marker of one effect call lives."""
    return f"intent/{run_id}/{generation:04d}/{key}/{occurrence:06d}"


def _step_key(run_id: str, step: StepRecord) -> str:
    return f"step/{run_id}/{step.generation:04d}/{step.key}/{step.occurrence:06d}"


def _is_part(item: object) -> bool:
    return type(item) is dict and len(item) == 1 and "$part" in item
