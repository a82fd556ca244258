"""A lookup by name is exact: a run's name never reaches another run whose name starts
with it, and a name that matches several runs is refused with the candidates."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import recorder
from recorder.cli import main


def record(name: str, store: Path, value: str, inputs: object = None) -> str:
    with recorder.run(name, inputs=inputs, store=store, display=False) as run:
        run.step("s", lambda: value)
    return run.run_id


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(args))
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, out.getvalue()


def test_a_name_never_reaches_a_run_whose_name_extends_it(store_dir: Path) -> None:
    a = record("a", store_dir, "from a")
    other = record(a, store_dir, "from the run named like a's id")  # named "a@<hash>"
    assert recorder.load("a", store=store_dir).run_id == a
    assert recorder.load(other, store=store_dir).run_id == other
    with pytest.raises(recorder.AmbiguousRunError, match="names 2 runs") as raised:
        recorder.load(a, store=store_dir)  # a's id, and the other run's name
    assert repr(a) in str(raised.value) and repr(other) in str(raised.value)
    code, shown = cli("--store", str(store_dir), "show", "a")
    assert code == 0 and shown.startswith(f"run {a} ")
    code, _ = cli("--store", str(store_dir), "rm", "a")
    assert code == 0
    assert recorder.load(other, store=store_dir).run_id == other  # untouched
    with pytest.raises(recorder.RunNotFoundError):
        recorder.load("a", store=store_dir)


def test_runs_of_one_name_with_other_inputs_are_named_by_id_or_inputs(store_dir: Path) -> None:
    first = record("triage", store_dir, "one", inputs={"ticket": 1})
    second = record("triage", store_dir, "two", inputs={"ticket": 2})
    with pytest.raises(recorder.AmbiguousRunError, match="pass inputs="):
        recorder.load("triage", store=store_dir)
    code, said = cli("--store", str(store_dir), "rm", "triage")
    assert code != 0 and first in said and second in said
    assert recorder.load("triage", inputs={"ticket": 2}, store=store_dir).run_id == second
    assert recorder.load(first, store=store_dir).run_id == first
