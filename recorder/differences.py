"""Why did a step miss? Field-by-field differences and the nearest recorded candidate."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import DivergenceError, ReplayMissError
from .journal import step_label
from .records import StepRecord

__all__ = ["describe_differences", "field_differences", "mismatch", "nearest"]

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


def mismatch(
    error_type: type[ReplayMissError] | type[DivergenceError],
    run_id: str,
    why: str,
    pool: list[StepRecord],
    kind: str,
    name: str,
    seq: int,
    request: Any,
    load_request: Callable[[StepRecord], Any],
) -> ReplayMissError | DivergenceError:
    """The error for step ``seq`` of ``run_id`` that is not recorded (``why`` says why
    that matters), naming the nearest candidate of ``pool`` and the differing fields."""
    candidate, diffs = nearest(
        pool, kind=kind, name=name, seq=seq, request=request, load_request=load_request
    )
    message = f"run {run_id!r}: step #{seq} ({kind} {name!r}) is not recorded; {why}."
    if candidate is None:
        message += f" No recorded {kind} step to compare with."
    else:
        message += (
            f" Nearest recorded: {step_label(candidate)}. Differences (recorded -> now): "
            f"{describe_differences(diffs)}."
        )
    step_info = {"seq": seq, "kind": kind, "name": name, "request": request}
    cand_info = None
    if candidate is not None:
        cand_info = {"seq": candidate.seq, "kind": candidate.kind, "name": candidate.name,
                     "attempt": candidate.attempt, "key": candidate.key}  # fmt: skip
    return error_type(message, step=step_info, candidate=cand_info, differences=diffs)
