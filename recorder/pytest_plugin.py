"""pytest plugin (installed with the package): recorded runs as test fixtures.

A test asks for ``recorder_run`` and runs its agent inside it; the records come from a
store directory or a bundle under the project (``recorder_store`` in the pytest ini
options, default ``fixtures/recordings``; or ``@pytest.mark.recorder(store=...)``).
By default the run is in ``replay`` mode: nothing goes live, and a step that is not
recorded fails the test with the nearest recorded step and the differing fields.
``--recorder-mode=record`` re-records every step (``auto``: only the missing ones),
like pytest-recording's ``--record-mode``::

    @pytest.mark.recorder(name="book-flight")
    async def test_agent_books_the_flight(recorder_run):
        async with recorder_run(inputs={"task": TASK}) as run:
            result = await book_flight(run, SITE, LLM)
        assert result["answer"] == "Order 1 confirmed"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .errors import ConfigError
from .runtime import Mode, Run, run

__all__ = ["recorder_run"]

_DEFAULT_STORE = "fixtures/recordings"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recorder", "recorded agent runs (recorder)")
    group.addoption(
        "--recorder-mode",
        choices=[m.value for m in Mode],
        default=None,
        help="replay (default: never go live), auto (record what is missing) or record "
        "(re-record everything) for tests using the recorder_run fixture",
    )
    parser.addini("recorder_store", "store directory or bundle file of recorded runs",
                  default=_DEFAULT_STORE)  # fmt: skip
    parser.addini("recorder_mode", "default mode of recorder_run (replay)", default="replay")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "recorder(name=None, store=None, mode=None): the run recorder_run opens (name: the "
        "test's name by default) and where its records are",
    )


def _test_name(request: pytest.FixtureRequest) -> str:
    """The run name for a test: its name, made safe (brackets and spaces kept readable)."""
    return re.sub(r"[^A-Za-z0-9._\-\[\]= ,]", "_", request.node.name)[:200]


def _store(request: pytest.FixtureRequest, where: str | Path, mode: Mode, tmp: Path) -> Any:
    path = Path(where)
    if not path.is_absolute():
        path = Path(request.config.rootpath) / path
    if path.is_file():
        if mode is not Mode.REPLAY:
            raise ConfigError(
                f"{path} is a bundle: it can only be replayed. Record into a store directory "
                "(recorder_store = DIR, or @pytest.mark.recorder(store=DIR)) and export a "
                "bundle from it with `recorder export RUN --bundle FILE`."
            )
        from .bundle import import_bundle  # type: ignore[import-not-found,unused-ignore]

        store = tmp / "bundle-store"
        import_bundle(path, store=store)
        return store
    if mode is Mode.REPLAY and not path.exists():
        raise ConfigError(
            f"no recordings at {path}: record them first with --recorder-mode=auto (or "
            "record), or point recorder_store / @pytest.mark.recorder(store=...) at them."
        )
    return path


@pytest.fixture
def recorder_run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Run]:
    """``recorder_run(inputs=None, *, name=None, **options)`` makes the test's run (enter
    it with ``with`` or ``async with``) in the mode from ``--recorder-mode``, the marker
    or the ``recorder_mode`` ini option (default ``replay``)."""
    marker = request.node.get_closest_marker("recorder")
    marked: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(marked) - {"name", "store", "mode"}
    if unknown:
        raise ConfigError(f"@pytest.mark.recorder does not take {sorted(unknown)}.")
    mode = Mode(
        request.config.getoption("--recorder-mode")
        or marked.get("mode")
        or request.config.getini("recorder_mode")
        or "replay"
    )
    store = _store(request, marked.get("store") or request.config.getini("recorder_store"),
                   mode, tmp_path)  # fmt: skip
    default_name = marked.get("name") or _test_name(request)

    def make(inputs: Any = None, *, name: str | None = None, **options: Any) -> Run:
        options.setdefault("display", False)
        return run(name or default_name, inputs=inputs, store=store, mode=mode, **options)

    return make
