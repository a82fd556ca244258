"""The step drivers' ``together``: parts run side by side, each with its own answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recorder.integrations.browser.drive import Parallel, Steps, drive_async, drive_sync, together


def counting(name: str, rounds: int, log: list[str]) -> Steps[str]:
    got = []
    for n in range(rounds):
        got.append((yield lambda n=n: log.append(f"{name}{n}") or n))
    return f"{name}:{got}"


def test_parts_get_their_own_results_in_order_with_the_sync_driver() -> None:
    log: list[str] = []
    result = drive_sync(together(counting("a", 3, log), lambda: "op", counting("b", 1, log)))
    assert result == ("a:[0, 1, 2]", "op", "b:[0]")
    assert log == ["a0", "b0", "a1", "a2"]  # one round of each unfinished part at a time


def test_a_round_runs_concurrently_with_the_async_driver() -> None:
    async def main() -> tuple[Any, ...]:
        ready = asyncio.Event()

        async def waits() -> str:
            await asyncio.wait_for(ready.wait(), 5)  # only the other part sets it
            return "waited"

        async def sets() -> str:
            ready.set()
            return "set"

        def nested() -> Steps[Any]:
            inner = yield Parallel(sets, lambda: "plain")  # a Parallel inside a part
            return inner

        return await drive_async(together(waits, nested()))

    assert asyncio.run(main()) == ("waited", ("set", "plain"))


def test_an_error_reaches_its_own_part_and_the_others_go_on() -> None:
    log: list[str] = []

    def fails() -> Any:
        raise ValueError("boom")

    def handles() -> Steps[str]:
        try:
            yield fails
        except ValueError as exc:
            return f"handled {exc}"
        return "not reached"

    assert drive_sync(together(handles(), counting("b", 2, log))) == (
        "handled boom",
        "b:[0, 1]",
    )


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_first_parts_error_is_raised_once_all_have_finished(driver: str) -> None:
    log: list[str] = []

    def fails(message: str) -> Any:
        def op() -> Any:
            raise RuntimeError(message)

        return op

    steps = together(counting("a", 2, log), fails("first"), fails("second"))
    with pytest.raises(RuntimeError, match="first"):
        if driver == "sync":
            drive_sync(steps)
        else:
            asyncio.run(drive_async(steps))
    assert log == ["a0", "a1"]
