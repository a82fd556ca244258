"""Record (de)serialization: the JSON forms round-trip and the fast paths agree."""

from __future__ import annotations

import json

import pytest

from recorder import records
from recorder.errors import DamagedRecordError, StoreFormatError
from recorder.records import AttemptRecord, ErrorInfo, Outcome, StepRecord, TraceEvent


def test_dump_trace_writes_what_dump_writes() -> None:
    """The trace writer's field-by-field copy stays in step with the dataclass."""
    events = [
        TraceEvent(
            1,
            "sha256:k",
            0,
            "llm",
            "m",
            "live",
            1.0,
            0.5,
            2,
            ErrorInfo("E", "boom"),
            {"model": "m", "cost_usd": 0.1},
        ),
        TraceEvent(2, "sha256:k", 1, "step", "s", "replayed", 2.0, 0.0001),
    ]
    assert records.dump_trace(events) == records.dump(events)
    loaded = [records.load(TraceEvent, e) for e in json.loads(records.dump_trace(events))]
    assert loaded == events


def test_records_round_trip() -> None:
    step = StepRecord(
        key="sha256:k", occurrence=1, kind="step", name="n", generation=0, attempt=2, seq=3,
        started_at=1.5, duration_s=0.25, result={"a": [1, 2]}, error=ErrorInfo("E", "m"),
        meta={"model": "x"}, blobs=("sha256:b",), plain=True,
    )  # fmt: skip
    assert records.load(StepRecord, records.dump(step)) == step
    attempt = AttemptRecord(number=1, mode="auto", generation=0, started_at=1.0, pid=7,
                            host="h", outcome=Outcome.CRASHED)  # fmt: skip
    assert records.load(AttemptRecord, records.dump(attempt)) == attempt


def test_a_newer_record_format_is_refused() -> None:
    data = json.loads(records.dump(TraceEvent(1, "k", 0, "llm", "m", "live", 1.0, 0.5)))
    data["format"] = records.RECORD_FORMAT + 1
    with pytest.raises(StoreFormatError, match="Upgrade recorder"):
        records.load(TraceEvent, json.dumps(data).encode())


def _step(seq: int, **changes: object) -> StepRecord:
    fields: dict[str, object] = dict(
        key=f"sha256:{seq}", occurrence=0, kind="llm", name="m", generation=0, attempt=1,
        seq=seq, started_at=1.0, duration_s=0.5, result_ref="sha256:r", blobs=("sha256:r",),
    )  # fmt: skip
    fields.update(changes)
    return StepRecord(**fields)  # type: ignore[arg-type]


def test_load_many_reads_what_load_reads_and_names_a_bad_row() -> None:
    steps = [_step(0), _step(1, error=ErrorInfo("E", "m"), meta={"x": 1}), _step(2)]
    rows = [(f"step/{s.seq}", records.dump(s)) for s in steps]
    assert records.load_many(StepRecord, rows) == steps
    assert records.load_many(StepRecord, []) == []
    # A field a newer minor version added is dropped, as load() drops it.
    newer = json.loads(rows[0][1]) | {"added_later": True}
    del newer["sha"]
    sealed = records.seal(json.dumps(newer).encode())  # a newer writer seals what it writes
    assert records.load_many(StepRecord, [("step/0", sealed)]) == steps[:1]
    for bad, why in [
        (b'{"key": "sha256:t", "occurrence"', "not readable JSON"),  # truncated
        (b"\xff\xfe", "not readable JSON"),
        (b'{"a": 1}, {"b": 2}', "not readable JSON"),  # two values in one row
        (b"[1, 2]", "not a JSON object"),
        (b'{"key": "sha256:x"}', "not a valid StepRecord"),
    ]:
        with pytest.raises((DamagedRecordError, StoreFormatError), match=why) as raised:
            records.load_many(StepRecord, [rows[0], ("step/damaged", bad), rows[2]])
        assert str(raised.value).startswith("step/damaged ")


def test_any_altered_byte_of_a_record_is_refused() -> None:
    """Every record is sealed: flipping any one bit anywhere in it is refused by load
    and load_many (damage, or a format this version refuses), never read as a record."""
    step = _step(3, meta={"url": "http://127.0.0.1/x", "cost_usd": 0.25})
    data = records.dump(step)
    assert data.endswith(b'"}') and b',"sha":"sha256:' in data
    for at in range(len(data)):
        for bit in (0x01, 0x10):
            altered = bytearray(data)
            altered[at] ^= bit
            with pytest.raises((DamagedRecordError, StoreFormatError)):
                records.load(StepRecord, bytes(altered), where="step/x")
            with pytest.raises((DamagedRecordError, StoreFormatError)):
                records.load_many(StepRecord, [("step/x", bytes(altered))])


def test_a_record_of_the_sealed_format_without_its_seal_is_damage() -> None:
    doc = json.loads(records.dump(_step(4)))
    del doc["sha"]
    with pytest.raises(DamagedRecordError, match="has no seal"):
        records.load(StepRecord, json.dumps(doc).encode(), where="step/4")
    doc["format"] = 1  # written before seals: read as it is
    assert records.load(StepRecord, json.dumps(doc).encode()).seq == 4


def test_an_altered_intent_marker_or_signal_is_damage() -> None:
    """Effect intent markers and signals are sealed like every record: one altered byte
    is reported by verify and refused when read."""
    from recorder.journal import Journal
    from recorder.store import MemoryStore

    store = MemoryStore()
    journal = Journal(store)
    intent = "intent/r@abc/0000/sha256:" + "ab" * 32 + "/000000"
    journal.put_intent(intent, {"effect": "pay", "pid": 7})
    journal.put_signal("r@abc", "approval", {"value": 10})
    assert journal.verify() == []
    assert journal.signals("r@abc", "approval") == [{"value": 10}]
    (signal,) = store.keys("signal/")
    for key, before, after in ((intent, b'"pay"', b'"pax"'), (signal, b"10", b"11")):
        raw = store.get(key)
        assert raw is not None and before in raw
        store.write({key: raw.replace(before, after)})
        assert any(d.step == key and "fails its seal" in d.problem for d in journal.verify())
    with pytest.raises(DamagedRecordError, match="fails its seal"):
        journal.intents("r@abc", 0)
    with pytest.raises(DamagedRecordError, match="fails its seal"):
        journal.signals("r@abc", "approval")
