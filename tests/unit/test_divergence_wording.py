"""What a re-run is told when it asks for a step the record lacks: an edit is named by
the fields that changed (and the run goes live from there); "non-deterministic" is said
only when the recorder can tell: the same step at the same position whose request
differs only in values shaped like an unrecorded clock or random id."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.differences import looks_nondeterministic


def _echo(x: Any) -> Any:
    return x


def _divergence(store_dir: Path, first: list[Any], second: list[Any]) -> str:
    with recorder.run("r", store=store_dir) as run:
        for value in first:
            run.step("f", _echo, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recorder.run("r", store=store_dir) as run:
            for value in second:
                run.step("f", _echo, value)
    found = [w for w in caught if issubclass(w.category, recorder.DivergenceWarning)]
    assert len(found) == 1
    return str(found[0].message)


def test_an_edit_says_what_changed_and_that_the_rest_goes_live(store_dir: Path) -> None:
    message = _divergence(store_dir, ["Paris", "Rome", "Oslo"], ["Paris", "Lima", "Oslo"])
    assert "deterministic" not in message
    assert "changed since it was recorded" in message
    assert "args[0]: 'Rome' -> 'Lima'" in message
    assert "goes live" in message
    assert "2 recorded step(s) are unused so far" in message


def test_a_clock_read_outside_the_recorder_is_called_non_deterministic(store_dir: Path) -> None:
    then = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    message = _divergence(
        store_dir,
        ["plan", f"report for {then.isoformat()}"],
        ["plan", f"report for {(then + timedelta(days=3, seconds=7)).isoformat()}"],
    )
    assert "non-deterministic" in message
    assert "run.now()" in message
    assert "goes live" in message


def test_the_same_step_elsewhere_is_not_called_non_deterministic(store_dir: Path) -> None:
    """A uuid that changed at another position: the program changed shape, not only
    a value, so the recorder does not claim non-determinism."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    message = _divergence(store_dir, ["x", a], ["x", "y", b])
    assert "non-deterministic" not in message


def test_replay_mode_miss_names_the_change(store_dir: Path) -> None:
    with recorder.run("r", store=store_dir) as run:
        run.step("f", _echo, 1)
    with (
        recorder.run("r", store=store_dir, mode="replay") as run,
        pytest.raises(recorder.ReplayMissError) as caught,
    ):
        run.step("f", _echo, 2)
    message = str(caught.value)
    assert "changed since it was recorded" in message and "args[0]: 1 -> 2" in message
    assert "deterministic" not in message


@pytest.mark.parametrize(
    ("recorded", "asked", "expected"),
    [
        ("at 2024-05-01T09:30:00+00:00", "at 2024-05-04T09:30:07.123+00:00", True),
        (
            "id 0f8fad5b-d9cb-469f-a165-70867728950e",
            "id 7c9e6679-7425-40de-944b-e07fc1f90ae7",
            True,
        ),
        (1714555800.25, 1714815007.5, True),
        (1714555800250, 1714815007500, True),
        ("Rome", "Lima", False),
        (0.7, 0.2, False),
        ("at 2024-05-01T09:30:00", "on 2024-05-04T09:30:00", False),
        (3, 4, False),
    ],
)
def test_volatile_values(recorded: Any, asked: Any, expected: bool) -> None:
    assert looks_nondeterministic({"args[0]": (recorded, asked)}) is expected


def test_no_difference_at_all_is_not_non_deterministic() -> None:
    assert looks_nondeterministic({}) is False
