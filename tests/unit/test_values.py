"""Results round-trip exactly through the value encoding."""

from __future__ import annotations

import math
from typing import Any

import pytest

from recorder import values
from recorder.errors import NotSerializableError


def roundtrip(value: Any) -> Any:
    blobs: dict[str, bytes] = {}
    encoded = values.encode(value, blobs)
    return values.decode(encoded, blobs.__getitem__)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -5,
        1.5,
        "text",
        [1, "a", None],
        (1, (2, 3)),
        {"a": {"b": [1, 2]}},
        {"$blob": "looks like a tag"},
        {"$dict": 1, "x": 2},
        b"\x00\x01binary",
        {"shot": b"png", "items": (b"a", b"a")},
        [],
        {},
        (),
    ],
)
def test_roundtrip_is_exact(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_non_finite_floats_roundtrip() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip([float("inf"), float("-inf")]) == [float("inf"), float("-inf")]


def test_bytes_become_content_addressed_blobs() -> None:
    blobs: dict[str, bytes] = {}
    encoded = values.encode({"a": b"same", "b": b"same"}, blobs)
    assert len(blobs) == 1
    assert values.blob_refs(encoded) == [next(iter(blobs))] * 2


def test_blob_refs_ignore_escaped_dicts() -> None:
    blobs: dict[str, bytes] = {}
    encoded = values.encode({"$blob": "not-a-ref"}, blobs)
    assert values.blob_refs(encoded) == []


@pytest.mark.parametrize("bad", [object(), {1: "int key"}, {"a": {1, 2}}, [lambda: 1]])
def test_unrepresentable_results_are_refused(bad: Any) -> None:
    with pytest.raises(NotSerializableError, match="result"):
        values.encode(bad, {})
