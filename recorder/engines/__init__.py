"""How the children of a fan-out run: a small engine interface (:mod:`.base`) and its
engines. :class:`~recorder.engines.local.LocalEngine` (the default) runs children as
asyncio tasks in the caller's event loop, and a plain (sync) agent in threads.

The core run does not import this package; :mod:`recorder.fanout` does.
"""

from __future__ import annotations

from .base import AgentRef, ChildOutcome, ChildSpec, Engine, StoreRef
from .local import LocalEngine

__all__ = ["AgentRef", "ChildOutcome", "ChildSpec", "Engine", "LocalEngine", "StoreRef"]
