"""What is written for runs, attempts and steps: frozen dataclasses and their JSON form.

Every record is a JSON object carrying ``"format": RECORD_FORMAT``; a reader refuses a
record from a newer format instead of guessing. ``docs/storage.md`` documents the
layout; ``fixtures/`` keeps stores written by every released format.

Since format 2 every record is *sealed*: its last field, ``"sha"``, is the ``sha256:``
hash of the record's JSON bytes without it. A reader checks the seal before it trusts
a byte (:func:`load`, :func:`load_many`): an altered byte anywhere in the record, or a
format-2 record without a seal, is :class:`~recorder.errors.DamagedRecordError` naming
the record, never a silently different replay. Format-1 records (no seal) still read.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypeVar

from .errors import ConfigError, DamagedRecordError, StoreFormatError
from .keys import hash_bytes

__all__ = [
    "RECORD_FORMAT",
    "SEALED_SINCE",
    "AttemptRecord",
    "ErrorInfo",
    "Outcome",
    "RunRecord",
    "StepRecord",
    "TraceEvent",
]

RECORD_FORMAT = 2
SEALED_SINCE = 2
"""The first record format whose records carry a seal."""
_SEAL = b',"sha":"'


class Outcome(StrEnum):
    """How an attempt ended."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SUSPENDED = "suspended"
    """Waiting for a signal or a durable timer: re-run to go on."""
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception as recorded: its type's module and qualified name, ``str()``,
    ``args`` when they are JSON-representable, the formatted traceback, and its plain
    (str, number, bool, None) attributes, such as an HTTP error's ``status_code``."""

    type: str
    message: str
    module: str = ""
    args: list[Any] | None = None
    traceback: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: BaseException, *, redact: Iterable[str] = ()) -> ErrorInfo:
        """Describe ``exc``; every string in ``redact`` (secrets the failed call was
        given, such as an API key inside an endpoint URL) is replaced by ``[redacted]``
        in the message, the arguments and the traceback."""
        secrets = sorted({s for s in redact if s}, key=len, reverse=True)

        def scrub(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "[redacted]")
            return text

        kind = type(exc)
        args: list[Any] | None = [scrub(a) if isinstance(a, str) else a for a in exc.args]
        try:
            json.dumps(args, allow_nan=False)
        except (TypeError, ValueError):
            args = None
        attrs = {
            k: scrub(v) if isinstance(v, str) else v
            for k, v in getattr(exc, "__dict__", {}).items()
            if (v is None or isinstance(v, str | int | float | bool)) and not k.startswith("__")
        }
        return cls(
            type=kind.__qualname__,
            module=kind.__module__,
            message=scrub(str(exc)),
            args=args,
            traceback=scrub("".join(traceback.format_exception(exc))),
            attrs=attrs,
        )

    @property
    def summary(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run: its name, its inputs and their hash (which together identify it), and the
    current *generation* (bumped by each ``mode="record"`` attempt; replay reads only
    the current generation, older ones are kept)."""

    run_id: str
    name: str
    inputs_hash: str
    inputs: Any
    created_at: float
    generation: int = 0
    forked_from: dict[str, Any] | None = None
    """``{"run": run_id, "step": n}`` when the run began as a copy of another run's
    first ``n`` steps (``recorder.run(..., fork_from=...)``)."""
    format: int = RECORD_FORMAT


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One entry into the run's context and how it ended."""

    number: int
    mode: str
    generation: int
    started_at: float
    pid: int
    host: str
    outcome: Outcome = Outcome.RUNNING
    ended_at: float | None = None
    error: ErrorInfo | None = None
    process_start: float | None = None
    high_water: int | None = None
    """Written when the attempt ends: every step record of its generation numbered
    below this (:attr:`StepRecord.n`) was written and acknowledged, so each must be in
    the store unless replaced or dropped on purpose (see :mod:`recorder.sequence`).
    ``None`` in records of older releases and of attempts that never ended."""
    dropped: tuple[int, ...] = ()
    """Numbers of step records this attempt deleted on purpose (a retracted fatal step,
    a write the store refused, records an attempt killed part-way never wrote)."""
    format: int = RECORD_FORMAT


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step that ran live and finished, returning ``result`` or raising ``error``.

    ``result`` is the encoded result inline (small results) and ``result_ref`` the hash
    of its blob otherwise; ``request_ref`` is the blob of the canonical request that
    produced ``key`` (kept to explain misses); ``blobs`` lists every blob the step needs.
    """

    key: str
    occurrence: int
    kind: str
    name: str
    generation: int
    attempt: int
    seq: int
    started_at: float
    duration_s: float
    result: Any = None
    result_ref: str | None = None
    request_ref: str | None = None
    error: ErrorInfo | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    blobs: tuple[str, ...] = ()
    plain: bool = False
    """The encoded result has no ``$`` tag: a replay can skip decoding it."""
    prebuilt: dict[str, str] | None = None
    """``{"tag": ..., "ref": ...}``: a blob holding a JSON form of the object a replay
    builds from the result, which an integration loads faster than it builds (see
    :class:`recorder.call.Prebuilt`). Derived from the result; a reader that does not
    know the tag ignores it."""
    n: int | None = None
    """Its number in its generation, in write order, given by the attempt holding the
    run's lock (``None`` in records of older releases): a gap below an ended attempt's
    :attr:`AttemptRecord.high_water` is a lost record (see :mod:`recorder.sequence`)."""
    replaces: tuple[int, ...] = ()
    """Numbers of the records this one overwrote (same key and occurrence), and those
    they replaced in turn: gone on purpose, not lost."""
    format: int = RECORD_FORMAT

    @property
    def ident(self) -> tuple[str, int]:
        return (self.key, self.occurrence)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One step call in one attempt, as the trace shows it."""

    seq: int
    key: str
    occurrence: int
    kind: str
    name: str
    status: str  # "live", "replayed" or "failed"
    started_at: float
    duration_s: float
    generation: int = 0
    error: ErrorInfo | None = None
    meta: dict[str, Any] = field(default_factory=dict)


_R = TypeVar("_R")


def dump(record: Any) -> bytes:
    """The sealed JSON bytes of a record dataclass (see the module docstring); a list of
    them (a trace) is not sealed."""
    body = json.dumps(_plain(record), separators=(",", ":"), allow_nan=False).encode()
    return seal(body) if body.startswith(b"{") else body


def seal(body: bytes) -> bytes:
    """``body`` (the JSON bytes of an object) with its hash added as its last field."""
    if not body.endswith(b"}") or body == b"{}":
        raise ValueError("only a non-empty JSON object can be sealed")
    return body[:-1] + _SEAL + hash_bytes(body).encode() + b'"}'


def check_seal(data: bytes, doc: dict[str, Any], where: str) -> None:
    """Refuse ``data`` (whose parsed form is ``doc``) unless its seal matches, or it is
    an unsealed record of a format from before seals. (A record of a newer format is
    left to :func:`_build`, which refuses it by its format.)"""
    found = doc.get("format", 1)
    if isinstance(found, int) and found > RECORD_FORMAT:
        return
    claimed = doc.pop("sha", None)
    if claimed is None:
        if doc.get("format", 1) >= SEALED_SINCE:
            raise DamagedRecordError(
                f'{where} has no seal (its "sha" field): the record is damaged. {_RECOVER}'
            )
        return
    at = data.rfind(_SEAL)
    if at < 0 or hash_bytes(data[:at] + b"}") != claimed or not data.endswith(b'"}'):
        raise DamagedRecordError(
            f"{where} fails its seal (the sha256 of its bytes): the record was altered or "
            f"damaged after it was written. {_RECOVER}"
        )


_RECOVER = (
    "Run `recorder verify` to see all damage; `recorder rm RUN` removes a damaged run so "
    "that it can be recorded anew (export what is readable first with `recorder export`)."
)


def dump_trace(events: list[TraceEvent]) -> bytes:
    """:func:`dump` of an attempt's trace, written out field by field: a trace holds one
    event per step call, and this runs when every attempt ends."""
    rows = [
        {
            "seq": e.seq,
            "key": e.key,
            "occurrence": e.occurrence,
            "kind": e.kind,
            "name": e.name,
            "status": e.status,
            "started_at": e.started_at,
            "duration_s": e.duration_s,
            "generation": e.generation,
            "error": None if e.error is None else _plain(e.error),
            "meta": _plain(e.meta) if e.meta else {},
        }
        for e in events
    ]
    return json.dumps(rows, separators=(",", ":"), allow_nan=False).encode()


_SCALARS = (str, int, float, bool, type(None))
_FIELD_ORDER: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    names = _FIELD_ORDER.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_ORDER[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def load(cls: type[_R], data: bytes | dict[str, Any], *, where: str = "record") -> _R:
    """Rebuild a record dataclass from its JSON bytes, checking its seal; refuse newer
    formats. (A dict is taken as already checked: the caller parsed sealed bytes.)"""
    if not isinstance(data, bytes):
        raw = dict(data)
        raw.pop("sha", None)
        return _build(cls, raw, where)
    try:
        raw = json.loads(data)
    except ValueError as error:
        raise DamagedRecordError(
            f"{where} is not readable JSON ({error}): the record is damaged (truncated or "
            f"altered). {_RECOVER}"
        ) from error
    if type(raw) is dict:
        check_seal(data, raw, where)
    return _build(cls, raw, where)


def load_many(cls: type[_R], rows: list[tuple[str, bytes]]) -> list[_R]:
    """:func:`load` of each ``(where, data)`` row: all parsed by one ``json.loads`` (a
    run's step records are read together each time it is entered). A row that is not
    one JSON object is reported on its own, by its ``where``."""
    if not rows:
        return []
    try:
        docs = json.loads(b"[" + b",".join(data for _, data in rows) + b"]")
    except ValueError:
        docs = None
    if type(docs) is not list or len(docs) != len(rows):
        return [load(cls, data, where=where) for where, data in rows]
    for (where, data), raw in zip(rows, docs, strict=True):
        if type(raw) is dict:
            check_seal(data, raw, where)
    return [_build(cls, raw, where) for (where, _), raw in zip(rows, docs, strict=True)]


def _build(cls: type[_R], raw: Any, where: str) -> _R:
    if type(raw) is not dict:
        raise StoreFormatError(f"{where} is not a JSON object, so not a {cls.__name__}.")
    found = raw.get("format", RECORD_FORMAT)
    if not isinstance(found, int) or found > RECORD_FORMAT:
        raise StoreFormatError(
            f"{where} has record format {found!r}; this recorder reads format "
            f"{RECORD_FORMAT}. Upgrade recorder to read it."
        )
    names = _field_names(cls)
    # ``raw`` is the caller's own fresh dict: fields known to this version are used in
    # place, unknown ones (from a newer minor writer) dropped.
    kwargs = raw if names.issuperset(raw) else {k: v for k, v in raw.items() if k in names}
    try:
        if kwargs.get("error") is not None:
            kwargs["error"] = ErrorInfo(**kwargs["error"])
        if "outcome" in kwargs:
            kwargs["outcome"] = Outcome(kwargs["outcome"])
        for name in ("blobs", "replaces", "dropped"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise StoreFormatError(f"{where} is not a valid {cls.__name__}: {error}") from error


def parse_enum(enum_cls: type[Enum], value: object, *, argument: str) -> Any:
    """``enum_cls(value)``, or a :class:`ConfigError` listing the valid values."""
    try:
        return enum_cls(value)
    except ValueError:
        valid = ", ".join(repr(m.value) for m in enum_cls)
        raise ConfigError(f"{argument}={value!r} is not valid; use one of {valid}.") from None
