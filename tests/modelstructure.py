"""A pydantic object tree as plain data, for tests that compare built responses."""

from __future__ import annotations

from typing import Any

__all__ = ["mutable_ids", "structure"]


def structure(value: Any) -> Any:
    """Every model's class, ``__dict__``, set fields, extra and private attributes, as
    plain data: two responses with equal structures are indistinguishable to user code."""
    if isinstance(value, list):
        return [structure(v) for v in value]
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    if hasattr(value, "__pydantic_fields_set__"):
        return {
            "type": f"{type(value).__module__}.{type(value).__qualname__}",
            "dict": structure(value.__dict__),
            "set": sorted(value.__pydantic_fields_set__),
            "extra": structure(value.__pydantic_extra__),
            "private": structure(value.__pydantic_private__),
        }
    return value


def mutable_ids(value: Any) -> set[int]:
    """The ids of every list, dict, set and model reachable from ``value``."""
    found: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | dict | set) or hasattr(item, "__pydantic_fields_set__"):
            if id(item) in found:
                continue
            found.add(id(item))
        if isinstance(item, list | set):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif hasattr(item, "__pydantic_fields_set__"):
            stack.extend([item.__dict__, item.__pydantic_fields_set__])
            stack.extend(x for x in (item.__pydantic_extra__, item.__pydantic_private__) if x)
    return found
