"""recorder: durable, replayable recording of LLM + browser agent runs, for notebooks.

>>> import recorder
>>> with recorder.run("triage", inputs={"ticket": 123}, store=recorder.MemoryStore()) as run:
...     total = run.step("add", lambda a, b: a + b, 2, 3)
>>> total
5

Nothing heavy is imported here: litellm, Playwright, pandas and ipywidgets load only
when a feature that needs them is used.
"""

from __future__ import annotations

from .bundle import BundleError, export_bundle, import_bundle
from .effects import OnAmbiguous
from .errors import (
    AmbiguousEffectError,
    AmbiguousRunError,
    Cancelled,
    ConfigError,
    DamagedRecordError,
    DivergenceError,
    DivergenceWarning,
    EngineLostError,
    FanOutError,
    Interrupted,
    NotSerializableError,
    QuotaExceededError,
    RecordedStepError,
    RecorderError,
    ReplayMissError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    StoreFormatError,
    Suspended,
    UnsafeStoreError,
)
from .fanout import FanOut, fan_out
from .forking import fork
from .history import RunHistory, load, runs
from .integrations.browser.options import Browser
from .options import Mode, OnDivergence
from .records import Outcome
from .retry import Retry
from .rundiff import diff
from .runtime import Run, current_run, run
from .steps import step
from .stores import DiskStore, MemoryStore, Store, open_store
from .waits import signal

__version__ = "0.1.0"


def show(
    target: object, *, store: object = None, attempt: int | None = None, step: int | None = None
) -> object:
    """The run browser for a run (``Run``, loaded run, name or run id): its attempts with
    their outcomes, each step call with its status, time and cost, and on demand its
    detail (the LLM conversation, the screenshot at full size, arguments, result,
    error); only attempt ``attempt`` and step ``step`` when given. For a
    ReplayMissError / DivergenceError: what was recorded and what was asked, side by
    side. It displays as self-contained HTML (no widget: a saved notebook keeps it)."""
    from .integrations.viewer import show as make

    return make(target, store=store, attempt=attempt, step=step)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext recorder``: ``%%record NAME [--mode M] [--inputs EXPR]`` cells."""
    from .integrations.notebook import load_ipython_extension as load

    load(ipython)


__all__ = [
    "AmbiguousEffectError",
    "AmbiguousRunError",
    "Browser",
    "BundleError",
    "Cancelled",
    "ConfigError",
    "DamagedRecordError",
    "DiskStore",
    "DivergenceError",
    "DivergenceWarning",
    "EngineLostError",
    "FanOut",
    "FanOutError",
    "Interrupted",
    "MemoryStore",
    "Mode",
    "NotSerializableError",
    "OnAmbiguous",
    "OnDivergence",
    "Outcome",
    "QuotaExceededError",
    "RecordedStepError",
    "RecorderError",
    "ReplayMissError",
    "Retry",
    "Run",
    "RunHistory",
    "RunLockedError",
    "RunNotFoundError",
    "Store",
    "StoreError",
    "StoreFormatError",
    "Suspended",
    "UnsafeStoreError",
    "current_run",
    "diff",
    "export_bundle",
    "fan_out",
    "fork",
    "import_bundle",
    "load",
    "load_ipython_extension",
    "open_store",
    "run",
    "runs",
    "show",
    "signal",
    "step",
]
