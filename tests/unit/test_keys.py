"""The hashing contract: canonical JSON and content keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from pathlib import Path

import pytest

from recorder.errors import NotSerializableError
from recorder.keys import canonical, canonical_json, content_key, hash_json, is_tagged_hash


def test_canonical_json_sorts_keys_and_is_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": "é"}]}) == (
        '{"a":[1,2,{"c":"é","d":null}],"b":1}'
    )


def test_integral_floats_are_integers_and_non_finite_are_tagged() -> None:
    assert canonical_json({"t": 1.0, "u": 0.5}) == '{"t":1,"u":0.5}'
    assert canonical(float("nan")) == {"$float": "nan"}
    assert canonical(float("-inf")) == {"$float": "-inf"}


def test_tuples_sets_bytes_enums_dates_and_models() -> None:
    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Dumpable:
        def model_dump(self, mode: str = "python") -> dict[str, int]:
            return {"a": 1}

    value = {
        "tuple": (1, 2),
        "set": {3, 1, 2},
        "bytes": b"abc",
        "enum": Color.RED,
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "id": uuid.UUID(int=1),
        "path": Path("/tmp/x"),
        "point": Point(1, 2),
        "model": Dumpable(),
    }
    out = canonical(value)
    assert out["tuple"] == [1, 2]
    assert out["set"] == [1, 2, 3]
    assert out["bytes"]["$bytes"].startswith("sha256:")
    assert out["enum"] == "red"
    assert out["when"] == "2026-01-02T03:04:05+00:00"
    assert out["id"] == str(uuid.UUID(int=1))
    assert out["path"] == "/tmp/x"
    assert out["point"] == {"x": 1, "y": 2}
    assert out["model"] == {"a": 1}


def test_unknown_objects_are_refused_with_their_place() -> None:
    with pytest.raises(NotSerializableError, match=r"inputs\['bad'\]\[1\] is a builtins.object"):
        canonical({"bad": [1, object()]}, where="inputs")
    with pytest.raises(NotSerializableError, match="keys must be strings"):
        canonical({1: "a"})


def test_content_key_is_tagged_and_depends_on_every_part() -> None:
    key = content_key("llm", "gpt", {"a": 1})
    assert is_tagged_hash(key)
    assert key != content_key("step", "gpt", {"a": 1})
    assert key != content_key("llm", "gpt-4", {"a": 1})
    assert key != content_key("llm", "gpt", {"a": 2})
    assert hash_json({"a": 1, "b": 2}) == hash_json({"b": 2, "a": 1})


def test_is_tagged_hash() -> None:
    assert is_tagged_hash("sha256:" + "0" * 64)
    assert not is_tagged_hash("sha256:" + "g" * 64)
    assert not is_tagged_hash("md5:" + "0" * 64)
    assert not is_tagged_hash(None)
