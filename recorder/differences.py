"""Why did a step miss? Field-by-field differences and the nearest recorded candidate."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .errors import DivergenceError, ReplayMissError
from .journal import step_label
from .records import StepRecord

__all__ = ["describe_differences", "field_differences", "looks_nondeterministic", "mismatch",
           "nearest"]  # fmt: skip

_MAX_FIELDS = 12
_MAX_CANDIDATES = 40
_MISSING = "<absent>"


def field_differences(recorded: Any, asked: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Map each differing leaf path (``messages[1].content``) to ``(recorded, asked)``."""
    out: dict[str, tuple[Any, Any]] = {}
    _walk(recorded, asked, path, out)
    return out


def _walk(a: Any, b: Any, path: str, out: dict[str, tuple[Any, Any]]) -> None:
    if len(out) >= _MAX_FIELDS or a == b:
        return
    if type(a) is dict and type(b) is dict:
        for k in sorted(a.keys() | b.keys()):
            sub = f"{path}.{k}" if path else k
            _walk(a.get(k, _MISSING), b.get(k, _MISSING), sub, out)
        return
    if type(a) is list and type(b) is list:
        for i in range(max(len(a), len(b))):
            _walk(
                a[i] if i < len(a) else _MISSING,
                b[i] if i < len(b) else _MISSING,
                f"{path}[{i}]",
                out,
            )
        return
    out[path or "request"] = (a, b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_differences(differences: dict[str, tuple[Any, Any]]) -> str:
    """``temperature: 0.7 -> 0.2; messages[1].content: 'a' -> 'b'`` (recorded -> now)."""
    if not differences:
        return "no field differs (the step's occurrence number differs: it was called more often)"
    return "; ".join(f"{p}: {_short(a)} -> {_short(b)}" for p, (a, b) in differences.items())


def nearest(
    pool: Iterable[StepRecord],
    *,
    kind: str,
    name: str,
    seq: int,
    request: Any,
    load_request: Callable[[StepRecord], Any],
) -> tuple[StepRecord | None, dict[str, tuple[Any, Any]]]:
    """The recorded step most like the one asked for, and how they differ.

    Same kind first, then same name, then fewest differing fields, then closest
    position in the run. Only the closest few dozen by position are compared.
    """
    candidates = [r for r in pool if r.kind == kind]
    if not candidates:
        return None, {}
    candidates.sort(key=lambda r: (r.name != name, abs(r.seq - seq)))
    best: tuple[tuple[int, int, int], StepRecord, dict[str, tuple[Any, Any]]] | None = None
    for record in candidates[:_MAX_CANDIDATES]:
        diffs = field_differences(load_request(record), request)
        rank = (int(record.name != name), len(diffs), abs(record.seq - seq))
        if best is None or rank < best[0]:
            best = (rank, record, diffs)
    assert best is not None
    return best[1], best[2]


_VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![\d.])1\d{9}(?:\d{3})?(?:\.\d+)?(?![\d.])"
)
"""Values only a clock or a random source gives: ISO date-times, UUIDs, and epoch
seconds or milliseconds of 2001-2033."""
_PLACEHOLDER = "\x00"


def _volatile_number(value: Any) -> bool:
    return type(value) in (int, float) and (1e9 <= value < 2e9 or 1e12 <= value < 2e12)


def _same_but_volatile(recorded: Any, asked: Any) -> bool:
    """Whether two differing values have the same shape with only clock or random parts
    changed: two epoch times, or two strings equal once every date-time, UUID and epoch
    time in them is blanked out (and holding at least one)."""
    if _volatile_number(recorded) and _volatile_number(asked):
        return True
    if type(recorded) is not str or type(asked) is not str:
        return False
    blank_a, found_a = _VOLATILE.subn(_PLACEHOLDER, recorded)
    blank_b, found_b = _VOLATILE.subn(_PLACEHOLDER, asked)
    return found_a > 0 and found_a == found_b and blank_a == blank_b


def looks_nondeterministic(differences: dict[str, tuple[Any, Any]]) -> bool:
    """The rule for calling a miss non-deterministic rather than an edit: some field
    differs and every differing field differs only in values an unrecorded clock or
    random source gives (see :func:`_same_but_volatile`). The caller checks the rest of
    the rule: the nearest recorded step has the same kind and name, at the same
    position in the run."""
    return bool(differences) and all(_same_but_volatile(a, b) for a, b in differences.values())


def mismatch(
    error_type: type[ReplayMissError] | type[DivergenceError],
    run_id: str,
    then: str,
    pool: list[StepRecord],
    kind: str,
    name: str,
    seq: int,
    request: Any,
    load_request: Callable[[StepRecord], Any],
) -> ReplayMissError | DivergenceError:
    """The error for step ``seq`` of ``run_id`` that is not recorded, naming the nearest
    candidate of ``pool`` and what changed; ``then`` says what happens next.

    A step the record lacks is, as far as the recorder can tell, an edit: the message
    names the fields that changed. It says "non-deterministic" only when the nearest
    recorded step has the same kind and name, sits at the same position (``seq``), and
    differs only in values shaped like an unrecorded clock or random id
    (:func:`looks_nondeterministic`): an edit to the code does not give that."""
    candidate, diffs = nearest(
        pool, kind=kind, name=name, seq=seq, request=request, load_request=load_request
    )
    message = f"run {run_id!r}: step #{seq} ({kind} {name!r}) is not recorded"
    if candidate is None:
        message += f"; there is no recorded {kind} step to compare it with. {then}"
    else:
        label = step_label(candidate)
        same_place = candidate.kind == kind and candidate.name == name and candidate.seq == seq
        if same_place and looks_nondeterministic(diffs):
            message += (
                f". The recorded {label} at the same position differs from it only in "
                f"values that look like an unrecorded clock or random id "
                f"({describe_differences(diffs)}): the run is non-deterministic here. Get "
                "such values from run.now(), run.uuid() or run.random(), or pass them as "
                f"inputs, so that a re-run replays them. {then}"
            )
        elif not diffs:
            message += (
                f": it is called more often than recorded (the nearest recorded step, "
                f"{label}, has the same request). {then}"
            )
        else:
            message += (
                f": it changed since it was recorded. Nearest recorded: {label}; what "
                f"changed (recorded -> now): {describe_differences(diffs)}. {then}"
            )
    step_info = {"seq": seq, "kind": kind, "name": name, "request": request}
    cand_info = None
    if candidate is not None:
        cand_info = {"seq": candidate.seq, "kind": candidate.kind, "name": candidate.name,
                     "attempt": candidate.attempt, "key": candidate.key}  # fmt: skip
    return error_type(message, step=step_info, candidate=cand_info, differences=diffs)
