"""The demo's fan-out inputs: each passenger's task reaches the scripted model, which
fills in that name and seat count; the demo's default task is unchanged."""

from __future__ import annotations

from typing import Any

from fixtures.agent import PLAN, TASK, policy, task_for
from fixtures.demo import PASSENGERS, booking_key, bookings


def _answer(task: str, done: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"},
                                      {"role": "user", "content": task}]  # fmt: skip
    for _ in range(done):
        messages.append({"role": "assistant", "tool_calls": [{"id": "x"}]})
    messages.append({"role": "user", "content": "page"})
    call = policy({"messages": messages})["tool_calls"][0]
    return {"name": call["name"], **call["arguments"]}


def test_the_model_books_what_the_task_asks() -> None:
    name_turn = next(i for i, (_, a) in enumerate(PLAN) if a.get("selector") == "#name")
    seats_turn = next(i for i, (_, a) in enumerate(PLAN) if a.get("selector") == "#seats")
    assert task_for("Ada Lovelace", 2) == TASK
    assert _answer(TASK, name_turn)["text"] == "Ada Lovelace"
    assert _answer(TASK, seats_turn)["value"] == "2"
    task = task_for("Alan Turing", 1)
    assert _answer(task, name_turn)["text"] == "Alan Turing"
    assert _answer(task, seats_turn)["value"] == "1"


def test_the_demo_inputs_are_distinct_runs() -> None:
    inputs = bookings(20)
    assert len({booking_key(b) for b in inputs}) == 20 == len(set(PASSENGERS[:20]))
    assert {b["seats"] for b in inputs} == {1, 2, 3, 4}
