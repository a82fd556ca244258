"""Which engine runs the children of a fan-out: the ``engine=`` argument of
:func:`recorder.fan_out`.

- ``None`` or ``"local"``: :class:`~recorder.engines.local.LocalEngine`, children in the
  caller's process (the default);
- ``"dask"``: :class:`~recorder.engines.dask.DaskEngine` on a ``distributed.LocalCluster``
  of worker processes that the fan-out starts and closes;
- a ``distributed.Client``: the Dask engine on that client's cluster (left running);
- a function of no arguments that returns an :class:`~recorder.engines.base.Engine`.

Nothing here imports Dask: a client is recognised only when ``distributed`` is already
imported (it must be, for a client to exist), and ``"dask"`` only checks that it can be.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from ..errors import ConfigError
from .base import Engine

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["EngineChoice", "check_engine", "make_engine"]

EngineChoice: TypeAlias = "str | Client | Callable[[], Engine] | None"
"""What ``fan_out(engine=...)`` takes."""

NAMES = ("local", "dask")


def is_dask_client(value: object) -> bool:
    """Whether ``value`` is a ``distributed.Client`` (without importing Dask)."""
    module = sys.modules.get("distributed")
    client = getattr(module, "Client", None) if module is not None else None
    return client is not None and isinstance(value, client)


def check_engine(choice: Any) -> EngineChoice:
    """``choice`` if ``fan_out(engine=...)`` can use it, else a ConfigError that says
    what it takes (before anything runs)."""
    if choice is None or is_dask_client(choice):
        return choice  # type: ignore[no-any-return]
    if isinstance(choice, str):
        if choice not in NAMES:
            raise ConfigError(
                f"fan_out(engine={choice!r}) names no engine; the engines are 'local' "
                "(children in this process, the default) and 'dask' (a LocalCluster of "
                "worker processes started for the fan-out). To use a Dask cluster of your "
                "own, pass its distributed.Client."
            )
        if choice == "dask" and (
            importlib.util.find_spec("dask") is None
            or importlib.util.find_spec("distributed") is None
        ):
            raise ConfigError(
                "fan_out(engine='dask') needs the dask and distributed packages, which "
                "are not installed here: `pip install 'recorder[dask]'`."
            )
        return choice
    if isinstance(choice, Engine):
        raise ConfigError(
            f"fan_out(engine=) got the engine {choice!r} itself; it takes a function that "
            f"makes one (each call of the fan-out starts and closes its engine), e.g. "
            f"engine=lambda: {type(choice).__name__}(...)."
        )
    if callable(choice):
        return choice  # type: ignore[no-any-return]
    raise ConfigError(
        f"fan_out(engine=) takes 'local', 'dask', a distributed.Client or a function that "
        f"makes an Engine, not {type(choice).__name__} {choice!r}."
    )


def make_engine(choice: EngineChoice, *, concurrency: int) -> Engine:
    """The engine for one call of a fan-out of at most ``concurrency`` children in
    flight (``choice`` as :func:`check_engine` returned it)."""
    if choice is None or choice == "local":
        from .local import LocalEngine

        return LocalEngine(threads=concurrency)
    if choice == "dask" or is_dask_client(choice):
        from .dask import DaskEngine

        client = None if isinstance(choice, str) else cast("Client", choice)
        return DaskEngine(client, concurrency=concurrency)
    assert callable(choice)
    made = choice()
    if not isinstance(made, Engine):
        raise ConfigError(
            f"fan_out(engine=) was given {choice!r}, which made {type(made).__name__} "
            f"{made!r}; the function must return a recorder.engines.Engine."
        )
    return made
