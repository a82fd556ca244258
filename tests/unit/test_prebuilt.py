"""The prebuilt-form contract of the core (``recorder.call.Prebuilt``), with a toy
integration: results are lists, "building" one makes a ``Built`` object from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import recorder
from recorder.call import READ_AHEAD, Prebuilt
from recorder.errors import DamagedRecordError
from recorder.journal import Journal
from recorder.memo import ResultCache
from recorder.records import StepRecord
from recorder.store import MemoryStore


class Built:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Built) and other.items == self.items


class Toy:
    """Counts builds, dumps and loads; ``tag`` is the "library version"."""

    def __init__(self, tag: str = "toy/1") -> None:
        self.tag = tag
        self.builds = self.dumps = self.loads = 0
        self.refuse_dump = self.refuse_load = False

    def build(self, result: Any) -> Built:
        self.builds += 1
        return Built(list(result))

    def dump(self, result: Any) -> Any:
        self.dumps += 1
        if self.refuse_dump:
            raise ValueError("no form for this one")
        return {"items": result}

    def load(self, form: Any) -> Built:
        self.loads += 1
        if self.refuse_load:
            raise ValueError("cannot load here")
        return Built(list(form["items"]))

    def prebuilt(self) -> Prebuilt:
        return Prebuilt(self.tag, self.dump, self.load)


def step(run: recorder.Run, toy: Toy, i: int, cache: ResultCache[Any] | None = None) -> Built:
    """One toy call: replayed through the toy, or live and committed with its form."""
    call = run.begin("toy", "t", {"i": i})
    if call.replayed:
        result: Built = call.replay(toy.build, cache, toy.prebuilt())
        return result
    value = ["x" * 600, i]  # over the inline limit: the result is a blob
    call.commit(value, prebuilt=toy.prebuilt())
    return Built(value)


def records(store: MemoryStore) -> list[StepRecord]:
    journal = Journal(store)
    (run,) = journal.list_runs("toy")
    return sorted(journal.steps(run.run_id), key=lambda r: r.seq)


def attempt(store: MemoryStore, toy: Toy, n: int = 3) -> list[Built]:
    with recorder.run("toy", store=store) as run:
        got = [step(run, toy, i) for i in range(n)]
    return got


def test_forms_are_written_when_the_attempt_ends_and_replays_load_them() -> None:
    store, toy = MemoryStore(), Toy()
    with recorder.run("toy", store=store) as run:
        live = [step(run, toy, i) for i in range(3)]
        assert [r.prebuilt for r in records(store)] == [None] * 3  # not in the call
        assert toy.dumps == 0
    assert toy.dumps == 3
    written = records(store)
    assert all(r.prebuilt and r.prebuilt["tag"] == "toy/1" for r in written)
    assert all(r.prebuilt and r.prebuilt["ref"] in r.blobs for r in written)
    replayed = attempt(store, toy)
    assert replayed == live and (toy.builds, toy.loads) == (0, 3)
    assert records(store) == written  # a replay that loaded its forms rewrites nothing
    assert not Journal(store).verify()


def test_another_tag_or_a_form_that_does_not_load_builds_and_leaves_a_new_form() -> None:
    store, toy = MemoryStore(), Toy()
    live = attempt(store, toy)
    first = {r.prebuilt["ref"] for r in records(store) if r.prebuilt}
    upgraded = Toy("toy/2")
    upgraded.dump = lambda result: {"items": result, "v": 2}  # type: ignore[method-assign]
    assert attempt(store, upgraded) == live
    assert (upgraded.builds, upgraded.loads) == (3, 0)
    second = {r.prebuilt["ref"] for r in records(store) if r.prebuilt}
    assert {r.prebuilt["tag"] for r in records(store) if r.prebuilt} == {"toy/2"}
    assert len(second) == 3 and not first & second
    assert not first & {b for r in records(store) for b in r.blobs}
    assert Journal(store).collect_garbage() == 3  # the first tag's forms, nothing else
    assert not Journal(store).verify()
    assert attempt(store, upgraded) == live and (upgraded.builds, upgraded.loads) == (3, 3)
    upgraded.refuse_load = True
    assert attempt(store, upgraded) == live and upgraded.builds == 6
    assert {r.prebuilt["ref"] for r in records(store) if r.prebuilt} == second


def test_a_result_without_a_form_replays_by_building() -> None:
    store, toy = MemoryStore(), Toy()
    toy.refuse_dump = True
    live = attempt(store, toy)
    assert [r.prebuilt for r in records(store)] == [None] * 3
    assert attempt(store, toy) == live and toy.builds == 3


def test_a_damaged_form_is_damage_naming_the_step() -> None:
    store, toy = MemoryStore(), Toy()
    attempt(store, toy)
    second = records(store)[1]
    assert second.prebuilt is not None
    store.write({"blob/" + second.prebuilt["ref"]: b'{"items": ["altered"]}'})
    with pytest.raises(DamagedRecordError, match=r"step #1 \(toy 't', attempt 1\).*no longer"):
        attempt(store, toy)
    assert toy.loads == 1  # the first step loaded; nothing was built from the JSON instead


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.batches: list[int] = []

    def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self.batches.append(len(keys))
        found = {}
        for key in keys:
            value = super().get(key)
            if value is not None:
                found[key] = value
        return found


def test_replays_read_the_forms_ahead_in_recorded_order() -> None:
    store, toy = CountingStore(), Toy()
    n = READ_AHEAD + 8
    live = attempt(store, toy, n)
    store.gets.clear()
    assert attempt(store, toy, n) == live
    assert store.batches == [READ_AHEAD, 8]  # two reads for all the forms
    assert not [key for key in store.gets if key.startswith("blob/")]
    assert toy.loads == n and toy.builds == 0


def test_the_outcome_is_written_after_the_forms_even_when_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while the forms are written: the attempt is still closed with its outcome
    (and unlocked), and the interrupt goes on to the caller."""
    from recorder import attempts

    def interrupted(*args: Any) -> int:
        raise KeyboardInterrupt

    store, toy = MemoryStore(), Toy()
    monkeypatch.setattr(attempts, "write_prebuilt", interrupted)
    with pytest.raises(KeyboardInterrupt), recorder.run("toy", store=store) as run:
        step(run, toy, 0)
    assert run.outcome is recorder.Outcome.COMPLETED
    monkeypatch.undo()
    assert attempt(store, toy, 1) and toy.builds == 1  # no form yet: built, then formed


_KILLED_WHILE_FORMING = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import recorder
from recorder import attempts
from test_prebuilt import Toy, step
def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)
attempts.write_prebuilt = killed
with recorder.run("toy", store=sys.argv[1]) as run:
    step(run, Toy(), 0)
"""


def test_a_process_killed_while_writing_forms_leaves_a_crashed_attempt(tmp_path: Any) -> None:
    """The outcome is the attempt's last write: killed before it, the attempt is seen as
    crashed when the run is next opened (not as completed with its forms missing), and
    the step replays."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    store = tmp_path / "store"
    here = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", _KILLED_WHILE_FORMING, str(store), here])
    assert done.returncode == -signal.SIGKILL
    toy = Toy()
    with recorder.run("toy", store=store) as run:
        assert step(run, toy, 0) == Built(["x" * 600, 0])
    assert run.stats.replayed == 1 and toy.builds == 1
    outcomes = [a.outcome for a in recorder.load("toy", store=store).attempts]
    assert outcomes == [recorder.Outcome.CRASHED, recorder.Outcome.COMPLETED]
