"""The side-effect ledger, retries, sagas, durable waits and the redact hook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import AmbiguousEffectError, Outcome, Retry, Suspended


class Effect:
    """A side effect that counts how often it really happened and with which keys."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[str] = []
        self.fail_times = fail_times

    def __call__(self, amount: int, *, idempotency_key: str) -> dict[str, Any]:
        self.calls.append(idempotency_key)
        if len(self.calls) <= self.fail_times:
            raise ConnectionError(f"try {len(self.calls)} failed")
        return {"charged": amount, "n": len(self.calls)}


def interrupted_inside(store: Path, name: str = "pay") -> Effect:
    """Record a run whose effect is interrupted while it runs (after its intent)."""
    effect = Effect()

    def dies(amount: int, *, idempotency_key: str) -> None:
        effect(amount, idempotency_key=idempotency_key)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), recorder.run(name, store=store) as run:
        run.once("charge", dies, 10)
    return effect


# -- done, failed, ambiguous -------------------------------------------------------------


def test_a_done_effect_returns_its_record_and_is_not_called_again(store_dir: Path) -> None:
    effect = Effect()
    results = []
    for _ in range(3):
        with recorder.run("pay", store=store_dir) as run:
            results.append(run.once("charge", effect, 10))
    assert len(effect.calls) == 1
    assert results == [{"charged": 10, "n": 1}] * 3
    assert run.stats.replayed == 1 and run.stats.live == 0
    assert effect.calls[0].startswith("rec-")
    frame = run.to_dataframe()
    assert frame["kind"].tolist()[:1] == ["effect"]


def test_the_idempotency_key_is_stable_and_distinct_per_effect(store_dir: Path) -> None:
    effect = Effect()
    with recorder.run("pay", store=store_dir) as run:
        run.once("charge", effect, 10)
        run.once("charge", effect, 10)  # a second identical effect is another effect
        run.once("charge", effect, 20)
    assert len(set(effect.calls)) == 3
    other = Effect()
    with recorder.run("pay", store=store_dir, mode="record") as run:
        run.once("charge", other, 10)
    assert other.calls[0] == effect.calls[0], "a re-recording reuses the key"


def test_an_effect_interrupted_inside_is_ambiguous_and_raises(store_dir: Path) -> None:
    effect = interrupted_inside(store_dir)
    again = Effect()
    with pytest.raises(AmbiguousEffectError) as caught, recorder.run("pay", store=store_dir) as run:
        run.once("charge", again, 10)
    error = caught.value
    assert again.calls == [], "an ambiguous effect never runs silently"
    assert error.effect == "charge" and error.attempt == 1
    assert error.idempotency_key == effect.calls[0]
    assert "on_ambiguous='retry'" in str(error) and "check=" in str(error)
    assert run.outcome is Outcome.FAILED
    with pytest.raises(AmbiguousEffectError), recorder.run("pay", store=store_dir) as run:
        run.once("charge", again, 10)  # still ambiguous until someone decides


def test_on_ambiguous_retry_calls_it_again_with_the_same_key(store_dir: Path) -> None:
    first = interrupted_inside(store_dir)
    again = Effect()
    with recorder.run("pay", store=store_dir) as run:
        assert run.once("charge", again, 10, on_ambiguous="retry") == {"charged": 10, "n": 1}
    assert again.calls == first.calls
    with recorder.run("pay", store=store_dir) as run:  # now done: plain replay
        assert run.once("charge", again, 10) == {"charged": 10, "n": 1}
    assert len(again.calls) == 1


def test_on_ambiguous_assume_done_skips_it(store_dir: Path) -> None:
    interrupted_inside(store_dir)
    again = Effect()
    with recorder.run("pay", store=store_dir, on_ambiguous="assume_done") as run:
        assert run.once("charge", again, 10) is None
    assert again.calls == []
    rows = run.to_dataframe()
    assert rows.iloc[-1]["status"] == "live"


@pytest.mark.parametrize(
    ("verdict", "expected", "runs_again"),
    [(True, None, False), ({"charged": 10, "n": 0}, {"charged": 10, "n": 0}, False),
     (False, {"charged": 10, "n": 1}, True)],
)  # fmt: skip
def test_check_decides_an_ambiguous_effect(
    store_dir: Path, verdict: Any, expected: Any, runs_again: bool
) -> None:
    first = interrupted_inside(store_dir)
    asked: list[str] = []

    def check(key: str) -> Any:
        asked.append(key)
        return verdict

    again = Effect()
    with recorder.run("pay", store=store_dir) as run:
        assert run.once("charge", again, 10, check=check) == expected
    assert asked == first.calls
    assert bool(again.calls) is runs_again


def test_a_raising_effect_is_not_ambiguous(store_dir: Path) -> None:
    """It raised: it did not happen. Caught, it replays its error; uncaught, it ended
    the attempt and the next attempt tries it again, without an ambiguity."""
    effect = Effect(fail_times=1)
    with recorder.run("pay", store=store_dir) as run, pytest.raises(ConnectionError):
        run.once("charge", effect, 10)
    with recorder.run("pay", store=store_dir) as run, pytest.raises(ConnectionError):
        run.once("charge", effect, 10)
    assert len(effect.calls) == 1
    failing = Effect(fail_times=1)
    with pytest.raises(ConnectionError), recorder.run("pay2", store=store_dir) as run:
        run.once("charge", failing, 10)
    with recorder.run("pay2", store=store_dir) as run:
        assert run.once("charge", failing, 10) == {"charged": 10, "n": 2}


def test_async_effects_and_checks(store_dir: Path) -> None:
    calls: list[str] = []

    async def charge(amount: int, idempotency_key: str) -> int:
        await asyncio.sleep(0)
        calls.append(idempotency_key)
        return amount

    async def main() -> list[int]:
        async with recorder.run("apay", store=store_dir) as run:
            return [await run.once("charge", charge, 5), await run.aonce("sync", int, "7")]

    assert asyncio.run(main()) == asyncio.run(main()) == [5, 7]
    assert len(calls) == 1


# -- sagas ------------------------------------------------------------------------------


def test_a_failing_saga_compensates_its_done_effects_newest_first_once(store_dir: Path) -> None:
    undone: list[Any] = []
    effect = Effect()

    def book(what: str) -> str:
        return f"booking-{what}"

    for _ in range(2):
        with pytest.raises(RuntimeError), recorder.run("trip", store=store_dir, saga=True) as run:
            run.once("flight", book, "flight", compensate=undone.append)
            run.once("hotel", book, "hotel", compensate=undone.append)
            run.once("charge", effect, 10)  # no compensation
            raise RuntimeError("the car is not available")
    assert undone == ["booking-hotel", "booking-flight"], "each compensation ran once"
    kinds = run.to_dataframe().query("attempt == 2")["name"].tolist()
    assert kinds[-2:] == ["compensate:hotel", "compensate:flight"]


def test_no_compensation_without_saga_or_on_interrupt(store_dir: Path) -> None:
    undone: list[Any] = []
    with pytest.raises(RuntimeError), recorder.run("nosaga", store=store_dir) as run:
        run.once("flight", str, "x", compensate=undone.append)
        raise RuntimeError
    with pytest.raises(KeyboardInterrupt), recorder.run("int", store=store_dir, saga=True) as run:
        run.once("flight", str, "x", compensate=undone.append)
        raise KeyboardInterrupt
    assert undone == []


# -- retries ----------------------------------------------------------------------------


def test_retry_tries_again_and_traces_every_failed_try(store_dir: Path) -> None:
    effect = Effect(fail_times=2)
    quick = Retry(attempts=3, initial=0, jitter=0)
    with recorder.run("retry", store=store_dir) as run:
        assert run.once("charge", effect, 10, retry=quick) == {"charged": 10, "n": 3}
        assert run.step("flaky", Effect(fail_times=1), 1, idempotency_key="k", retry=quick)
    assert len(set(effect.calls)) == 1, "every try has the same idempotency key"
    rows = run.to_dataframe()
    failed = rows[rows["status"] == "failed"]
    assert failed["name"].tolist() == ["charge", "charge", "flaky"]
    assert "ConnectionError" in failed["error"].iloc[0]
    with recorder.run("retry", store=store_dir) as run:
        run.once("charge", effect, 10, retry=quick)
    assert len(effect.calls) == 3


def test_retry_gives_up_and_records_the_last_error(store_dir: Path) -> None:
    effect = Effect(fail_times=5)
    with recorder.run("giveup", store=store_dir) as run:
        with pytest.raises(ConnectionError, match="try 2"):
            run.once("charge", effect, 10, retry=Retry(attempts=2, initial=0, jitter=0))
        with pytest.raises(ValueError):  # not in on=: no second try
            run.step("v", int, "x", retry=Retry(attempts=5, initial=0, on=(ConnectionError,)))
    assert len(effect.calls) == 2


@pytest.mark.parametrize(
    "bad", [{"attempts": 0}, {"attempts": True}, {"initial": -1}, {"on": (KeyboardInterrupt,)}]
)
def test_bad_retry_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(recorder.ConfigError):
        Retry(**bad)


# -- durable waits ----------------------------------------------------------------------


def test_wait_for_suspends_until_a_signal_arrives(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    after: list[str] = []
    with recorder.run("approve", store=store_dir) as run:
        run.step("draft", str, "plan")
        approval = run.wait_for_sync("approval")
        after.append("unreachable")
    assert after == [] and run.outcome is Outcome.SUSPENDED
    assert isinstance(run.suspension, Suspended) and run.suspension.name == "approval"
    assert "waiting for 'approval'" in capsys.readouterr().err
    assert recorder.signal("approve", "approval", {"ok": True}, store=store_dir) == 0
    for _ in range(2):
        with recorder.run("approve", store=store_dir) as run:
            run.step("draft", str, "plan")
            approval = run.wait_for_sync("approval")
        assert approval == {"ok": True} and run.outcome is Outcome.COMPLETED


def test_async_wait_for_and_except_exception_does_not_swallow_it(store_dir: Path) -> None:
    async def main() -> Any:
        async with recorder.run("aapprove", store=store_dir) as run:
            try:
                return await run.wait_for("go")
            except Exception:  # user code that catches everything it should
                return "swallowed"
        return "suspended"

    assert asyncio.run(main()) == "suspended"
    recorder.signal("aapprove", "go", 1, store=store_dir)
    recorder.signal("aapprove", "go", 2, store=store_dir)
    assert asyncio.run(main()) == 1


def test_durable_sleep(store_dir: Path) -> None:
    now = [1_000.0]
    for clock_at, outcome in [(1_000.0, "suspended"), (1_030.0, "suspended"),
                              (1_061.0, "completed")]:  # fmt: skip
        now[0] = clock_at
        with recorder.run("nap", store=store_dir, clock=lambda: now[0]) as run:
            run.sleep_sync(60)
        assert run.outcome == outcome
    until = datetime.now(UTC) - timedelta(seconds=1)
    with recorder.run("past", store=store_dir) as run:
        run.sleep_until_sync(until)
    assert run.outcome is Outcome.COMPLETED


def test_bad_wait_arguments_are_refused(store_dir: Path) -> None:
    with recorder.run("bad", store=store_dir) as run:
        with pytest.raises(recorder.ConfigError, match="aware"):
            run.sleep_until_sync(datetime(2030, 1, 1))
        with pytest.raises(recorder.ConfigError):
            run.sleep_sync(-1)
        with pytest.raises(recorder.ConfigError):
            run.wait_for_sync("../escape")
    with pytest.raises(recorder.ConfigError):
        recorder.run("bad", on_ambiguous="maybe")
    with pytest.raises(recorder.RunNotFoundError):
        recorder.signal("nobody", "go", 1, store=store_dir)


# -- redact -----------------------------------------------------------------------------


def test_redact_scrubs_what_is_written_and_replay_still_works(store_dir: Path) -> None:
    def redact(kind: str, request: Any) -> Any:
        request["args"] = ["<redacted>" for _ in request["args"]]
        return request

    secret = "patient-name-Zebulon-Quux"
    for _ in range(2):
        with recorder.run("private", store=store_dir, redact=redact) as run:
            assert run.step("shout", str.upper, secret) == secret.upper()
    assert run.stats.replayed == 1
    for path in store_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
