"""The built state of a tree of pydantic models, as JSON, and the same objects again
from it without validation.

A replayed LLM call returns a litellm ``ModelResponse`` rebuilt from its recorded JSON;
``ModelResponse(**doc)`` validates every nested model and runs litellm's constructors,
which costs more than the rest of a replay together. What those constructors produce is
a plain tree: each model's ``__dict__``, its set fields, its extra and private
attributes (exactly what pydantic's own ``__getstate__`` and ``__deepcopy__`` carry).
:func:`dump_state` writes that tree down once, when the call is recorded, and
:func:`load_state` makes the objects from it by ``object.__new__`` and attribute
assignment: equal to what validation builds, at a third of the cost.

The tree is tied to the library versions that built it (:func:`state_form`): another
litellm or pydantic may build other objects from the same JSON, so a replay under other
versions takes the validating path. Only classes from :data:`ALLOWED_MODULES` are named
in a tree; loading one imports nothing (the class's module must already be imported)
and runs none of the class's own code (no ``__init__``, validators or ``__setattr__``).
A tree that does not load raises :class:`StateError`, and the caller builds the
object the validating way.

The JSON form::

    {"classes": ["litellm.types.utils:ModelResponse", ...], "root": NODE}
    NODE = str | int | float | bool | null            an immutable leaf
         | {"name": NODE, ...}                         a dict
         | ["L", NODE, ...]                            a list
         | ["M", CLASS, DICT, [FIELD, ...], EXTRA, PRIVATE]
                                                       a model: index into "classes",
                                                       __dict__, set fields, and the
                                                       extra and private dicts (or null)
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
from importlib import metadata
from typing import Any

from pydantic import BaseModel

__all__ = ["ALLOWED_MODULES", "StateError", "class_name", "dump_state", "load_state", "model_class",
           "state_form"]  # fmt: skip

ALLOWED_MODULES = ("litellm.", "openai.")
"""Module prefixes whose classes a tree may name."""
_FORM = "pydantic-state/1"
_ATOMS = frozenset({str, int, bool, type(None)})
_LEAVES = _ATOMS | {float}
_setattr = object.__setattr__
_new = object.__new__


class StateError(ValueError):
    """An object tree has no state form here (a value of another type, a class from
    another library), or a state tree cannot be loaded."""


@functools.cache
def state_form() -> str:
    """The tag of trees this process writes and reads: the form's version and the
    versions of the libraries whose classes build the objects."""
    versions = ";".join(f"{name}={_version(name)}" for name in ("litellm", "pydantic", "openai"))
    return f"{_FORM};{versions}"


_VERSION_ATTRIBUTES = {"litellm": ("litellm._version", "version"),
                       "pydantic": ("pydantic.version", "VERSION"),
                       "openai": ("openai._version", "__version__")}  # fmt: skip
"""Where each library keeps its version: reading the installed metadata costs ms."""


def _version(distribution: str) -> str:
    module_name, attribute = _VERSION_ATTRIBUTES[distribution]
    try:
        found = getattr(importlib.import_module(module_name), attribute, None)
    except ImportError:
        found = None
    if isinstance(found, str) and found and found != "unknown":
        return found
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "-"


def dump_state(value: Any) -> dict[str, Any]:
    """The state tree of ``value`` (models, lists, str-keyed dicts and JSON leaves), as
    plain JSON. Raises :class:`StateError` for anything else."""
    classes: dict[type, int] = {}
    root = _dump(value, classes, 0)
    names = [class_name(cls) for cls in classes]
    return {"classes": names, "root": root}


def _dump(value: Any, classes: dict[type, int], depth: int) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise StateError(f"the float {value!r} has no JSON form")
        return value
    if depth > 100:
        raise StateError("the object tree is nested more than 100 levels deep")
    if kind is dict:
        return _dump_dict(value, classes, depth)
    if kind is list:
        return ["L", *(_dump(v, classes, depth + 1) for v in value)]
    if isinstance(value, BaseModel):
        if not kind.__module__.startswith(ALLOWED_MODULES) or "<" in kind.__qualname__:
            name = f"{kind.__module__}.{kind.__qualname__}"
            raise StateError(f"{name} is not a class a state tree may name")
        index = classes.setdefault(kind, len(classes))
        extra, private = value.__pydantic_extra__, value.__pydantic_private__
        return [
            "M",
            index,
            _dump_dict(value.__dict__, classes, depth),
            sorted(value.__pydantic_fields_set__),
            None if extra is None else _dump_dict(extra, classes, depth),
            None if private is None else _dump_dict(private, classes, depth),
        ]
    raise StateError(f"a value of type {kind.__module__}.{kind.__qualname__} has no state form")


def _dump_dict(value: dict[Any, Any], classes: dict[type, int], depth: int) -> dict[str, Any]:
    if type(value) is not dict:
        raise StateError(f"a {type(value).__qualname__} is not a plain dict")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if type(k) is not str:
            raise StateError(f"the dict key {k!r} is not a str")
        out[k] = _dump(v, classes, depth + 1)
    return out


def load_state(tree: Any) -> Any:
    """The objects :func:`dump_state` described, made without validation. They share
    nothing mutable with ``tree``, which may be loaded again. Raises
    :class:`StateError` for a tree that is not well formed or names a class that is not
    allowed or not found."""
    try:
        classes = [_class(name) for name in tree["classes"]]
        return _load(tree["root"], classes)
    except StateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as error:
        raise StateError(f"the state tree is not well formed: {error!r}") from error


def class_name(kind: type) -> str:
    """``module:qualname`` of a class, as a state tree (and :func:`model_class`) names it."""
    return f"{kind.__module__}:{kind.__qualname__}"


def model_class(name: str) -> type[BaseModel]:
    """The pydantic model class ``module:qualname`` names, among the classes a state tree
    may name (:data:`ALLOWED_MODULES`, already imported, no alias). Raises
    :class:`StateError` for any other."""
    return _class(name)


@functools.lru_cache(maxsize=256)
def _class(name: str) -> type[BaseModel]:
    module_name, _, qualname = name.partition(":")
    if not (module_name + ".").startswith(ALLOWED_MODULES) or not qualname:
        raise StateError(f"the state tree names {name!r}, not an allowed class")
    # Only modules already imported are looked in: a store never makes the recorder
    # import code (a class a replay needs is one the validating path would import).
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is None:
        raise StateError(f"the state tree names {name!r}, which is not loaded here")
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise StateError(f"the state tree names {name!r}, which is not a pydantic model")
    if found.__module__ != module_name or found.__qualname__ != qualname:
        raise StateError(f"the state tree names {name!r}, an alias of another class")
    return found


def _load(node: Any, classes: list[type[BaseModel]]) -> Any:
    kind = type(node)
    if kind is dict:
        return _load_dict(node, classes)
    if kind is not list:
        return node  # a leaf: str, int, float, bool or None, all immutable
    tag = node[0]
    if tag == "L":
        return [v if type(v) in _LEAVES else _load(v, classes) for v in node[1:]]
    if tag != "M" or len(node) != 6:
        raise StateError(f"a node tagged {tag!r} with {len(node)} items is not a list or model")
    _, index, state, fields, extra, private = node
    model = _new(classes[index])
    _setattr(model, "__dict__", _load_dict(state, classes))
    _setattr(model, "__pydantic_fields_set__", set(fields))
    _setattr(model, "__pydantic_extra__", None if extra is None else _load_dict(extra, classes))
    _setattr(
        model, "__pydantic_private__", None if private is None else _load_dict(private, classes)
    )
    return model


def _load_dict(node: dict[str, Any], classes: list[type[BaseModel]]) -> dict[str, Any]:
    if type(node) is not dict:
        raise StateError(f"expected a dict node, found {type(node).__name__}")
    out = node.copy()
    for k, v in out.items():
        if type(v) not in _LEAVES:
            out[k] = _load(v, classes)
    return out
