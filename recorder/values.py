"""Exact, JSON-based encoding of step results.

A step result must round-trip: what a replay returns equals what the live call
returned, type for type. JSON covers dicts with string keys, lists, strings, ints,
finite floats, booleans and None as they are; the rest is written as a one-key object
whose key starts with ``$``:

=========================  ==========================================
value                      encoded as
=========================  ==========================================
``bytes``                  ``{"$blob": "sha256:..."}`` (the bytes are a blob)
``tuple``                  ``{"$tuple": [...]}``
NaN, inf, -inf             ``{"$float": "nan" | "inf" | "-inf"}``
a dict with a ``$`` key    ``{"$dict": {...}}`` (its keys are taken literally)
=========================  ==========================================

Anything else raises :class:`~recorder.errors.NotSerializableError` before anything is
written, naming where in the result the offending value sits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import NotSerializableError
from .keys import hash_bytes

__all__ = ["blob_refs", "decode", "encode"]

BlobLoader = Callable[[str], bytes]


def encode(value: Any, blobs: dict[str, bytes], *, where: str = "result") -> Any:
    """Encode ``value``; bytes found inside are added to ``blobs`` by their hash."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if kind is list:
        return [encode(v, blobs, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is dict:
        out: dict[str, Any] = {}
        tagged = False
        for k, v in value.items():
            if type(k) is not str:
                raise NotSerializableError(
                    f"{where} has a key {k!r} of type {type(k).__name__}; only string keys "
                    "can be recorded. Convert the keys to str before returning."
                )
            tagged = tagged or k.startswith("$")
            out[k] = encode(v, blobs, where=f"{where}[{k!r}]")
        return {"$dict": out} if tagged else out
    if kind is tuple:
        return {"$tuple": [encode(v, blobs, where=f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is bytes or kind is bytearray or kind is memoryview:
        data = bytes(value)
        ref = hash_bytes(data)
        blobs[ref] = data
        return {"$blob": ref}
    raise NotSerializableError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}; a recorded step must return "
        "JSON-representable data (dict with str keys, list, tuple, str, int, float, bool, "
        "None, bytes). Convert it first, for example with .model_dump() or dataclasses.asdict()."
    )


def decode(data: Any, load_blob: BlobLoader) -> Any:
    """Inverse of :func:`encode`; ``load_blob`` returns the bytes of a blob hash."""
    kind = type(data)
    if kind is list:
        return [decode(v, load_blob) for v in data]
    if kind is not dict:
        return data
    if len(data) == 1:
        ((tag, inner),) = data.items()
        if tag == "$blob":
            return load_blob(inner)
        if tag == "$tuple":
            return tuple(decode(v, load_blob) for v in inner)
        if tag == "$float":
            return float(inner)
        if tag == "$dict":
            return {k: decode(v, load_blob) for k, v in inner.items()}
    return {k: decode(v, load_blob) for k, v in data.items()}


def blob_refs(data: Any) -> list[str]:
    """Every blob hash an encoded value refers to."""
    refs: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            if len(item) == 1 and "$blob" in item:
                refs.append(item["$blob"])
            elif len(item) == 1 and "$dict" in item:
                stack.extend(item["$dict"].values())
            else:
                stack.extend(item.values())
    return refs
