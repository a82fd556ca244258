"""The hashing contract: canonical JSON, tagged content hashes and step keys.

A step's *content key* is ``sha256:<hex>`` over the canonical JSON of
``{"v": KEY_VERSION, "kind": ..., "name": ..., "request": ...}``; a step is identified
inside a run by its content key plus its *occurrence* (0 for the first call with that
key in an attempt, 1 for the second...). ``docs/keys.md`` is the prose version of this
module; changing anything here changes every key and must bump ``KEY_VERSION``.

Canonical JSON (close to RFC 8785):

- objects have their keys sorted, no white space, UTF-8, no ASCII escaping;
- integral floats within 2**53 are written as integers (``1.0`` and ``1`` are one key);
  NaN and the infinities are written as ``{"$float": "nan" | "inf" | "-inf"}``;
- tuples are lists, sets are sorted lists, bytes are ``{"$bytes": "sha256:..."}``;
- enums use their value; dates, UUIDs, paths and decimals use ``str``/``isoformat``;
- pydantic models use ``model_dump(mode="json")``, pydantic model classes their JSON
  schema, dataclasses ``asdict``.

Anything else raises :class:`~recorder.errors.NotSerializableError` naming where it is.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .errors import NotSerializableError

__all__ = [
    "HASH_ALGORITHM",
    "KEY_VERSION",
    "canonical",
    "canonical_json",
    "content_key",
    "dumps",
    "hash_bytes",
    "hash_json",
    "is_tagged_hash",
]

HASH_ALGORITHM = "sha256"
KEY_VERSION = 1
_TAG = HASH_ALGORITHM + ":"
_MAX_SAFE_INT = 2**53

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
dumps = _dumps
"""Sorted, compact JSON text of a plain JSON structure (no conversion of values)."""


_GIL_FREE_CHUNK = 2047
"""hashlib releases the GIL for inputs of 2,048 bytes or more; for the small records a
step writes, each release can cost a thread switch (litellm's logging thread is busy
right after every call), so those are hashed in smaller pieces."""


def hash_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    if len(data) < _GIL_FREE_CHUNK or len(data) > 64 * 1024:
        return _TAG + hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(data), _GIL_FREE_CHUNK):
        digest.update(view[start : start + _GIL_FREE_CHUNK])
    return _TAG + digest.hexdigest()


def is_tagged_hash(value: object) -> bool:
    """True for a well-formed ``sha256:<64 hex>`` string."""
    if not isinstance(value, str) or not value.startswith(_TAG) or len(value) != len(_TAG) + 64:
        return False
    try:
        int(value[len(_TAG) :], 16)
    except ValueError:
        return False
    return True


_SAME = frozenset({str, bool, int, type(None)})
"""Types whose values are their own canonical form (floats are not: ``1.0`` is ``1``)."""


def canonical(value: Any, *, where: str = "value") -> Any:
    """Return the plain JSON structure (dict/list/str/int/float/bool/None) that stands
    for ``value`` in a key. ``where`` names the value in error messages."""
    # Fast path for the types a request is almost always made of.
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise NotSerializableError(
                    f"{where} has a key {k!r} of type {type(k).__name__}; "
                    "keys must be strings to be recorded."
                )
            # An atom is its own canonical form: no call, no ``where`` to format.
            out[k] = v if type(v) in _SAME else canonical(v, where=f"{where}[{k!r}]")
        return out
    if kind is list or kind is tuple:
        return [
            v if type(v) in _SAME else canonical(v, where=f"{where}[{i}]")
            for i, v in enumerate(value)
        ]
    if kind is float:
        return _canonical_float(value)
    return _canonical_other(value, where)


def _canonical_float(value: float) -> Any:
    if math.isnan(value):
        return {"$float": "nan"}
    if math.isinf(value):
        return {"$float": "inf" if value > 0 else "-inf"}
    if value.is_integer() and abs(value) <= _MAX_SAFE_INT:
        return int(value)
    return value


def _canonical_other(value: Any, where: str) -> Any:
    if isinstance(value, bool | int) and not isinstance(value, enum.Enum):
        return int(value) if not isinstance(value, bool) else bool(value)
    if isinstance(value, float) and not isinstance(value, enum.Enum):
        return _canonical_float(float(value))
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": hash_bytes(bytes(value))}
    if isinstance(value, enum.Enum):
        return canonical(value.value, where=where)
    if isinstance(value, Mapping):
        return canonical(dict(value), where=where)
    if isinstance(value, list | tuple):
        return canonical(list(value), where=where)
    if isinstance(value, set | frozenset):
        items = [canonical(v, where=f"{where} item") for v in value]
        return sorted(items, key=_dumps)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath | decimal.Decimal):
        return str(value)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        # A pydantic model class, as litellm accepts for response_format.
        return {"$schema": canonical(value.model_json_schema(), where=where)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return canonical(dump(mode="json"), where=where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return canonical(dataclasses.asdict(value), where=where)
    raise NotSerializableError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which has no "
        "JSON form to key a step on. Pass JSON-like values (dict, list, str, numbers, "
        "bytes), a dataclass or a pydantic model instead."
    )


def canonical_json(value: Any, *, where: str = "value") -> str:
    """The canonical JSON text of ``value`` (see the module docstring)."""
    return _dumps(canonical(value, where=where))


def hash_json(value: Any, *, where: str = "value") -> str:
    """``sha256:<hex>`` over the canonical JSON of ``value``."""
    return hash_bytes(canonical_json(value, where=where).encode())


def content_key(kind: str, name: str, request: Any) -> str:
    """The content key of a step: what determines its result, hashed.

    ``request`` must already be canonical (the output of :func:`canonical`); the run
    canonicalizes once and reuses the structure for both the key and the record.
    """
    body = {"v": KEY_VERSION, "kind": kind, "name": name, "request": request}
    return hash_bytes(_dumps(body).encode())
