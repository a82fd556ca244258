"""The browser options of a run: ``recorder.run(..., browser=recorder.Browser(...))``.

The core run carries this object without looking inside it; only the browser
integration reads it. Everything here is validated when the object is made, so a typo
fails at the call that made it, not at the first live browser step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import ConfigError

__all__ = ["Browser", "BrowserResume", "Screenshots", "browser_options"]


class BrowserResume(StrEnum):
    """How a page that must go live after replayed steps is brought to the recorded state.

    - ``restore`` (default): a fresh context from the last replayed checkpoint (cookies,
      localStorage, sessionStorage, viewport), the page's recorded URL, then the in-page
      steps replayed since that page last navigated (form inputs and ``evaluate``),
      each checked against its record;
    - ``reexecute``: run every recorded browser step of the page again, live, from the
      start, checking each against its record (rebuilds in-page state no checkpoint
      holds, repeats what the page's clicks did).
    """

    RESTORE = "restore"
    REEXECUTE = "reexecute"

    @classmethod
    def _missing_(cls, value: object) -> BrowserResume:
        raise ConfigError(f"Browser(resume={value!r}) is not valid; use {_valid(cls)}.")


class Screenshots(StrEnum):
    """When live browser steps are screenshotted: only when one fails, after every
    step, or never."""

    ON_ERROR = "on_error"
    EACH_STEP = "each_step"
    OFF = "off"

    @classmethod
    def _missing_(cls, value: object) -> Screenshots:
        raise ConfigError(f"Browser(screenshots={value!r}) is not valid; use {_valid(cls)}.")


def _valid(enum: type[StrEnum]) -> str:
    return "one of " + ", ".join(repr(m.value) for m in enum)


@dataclass(frozen=True)
class Browser:
    """How a run's recorded pages use Chromium.

    ``chromium`` names the executable (else ``$RECORDER_CHROMIUM``, a Playwright-managed
    build, or the system's ``chromium``); ``headless``; ``resume`` is ``"restore"`` or
    ``"reexecute"`` (see :class:`BrowserResume`); ``screenshots`` is ``"on_error"``,
    ``"each_step"`` or ``"off"``; ``indexed_db`` adds IndexedDB to checkpoints (several
    times their cost); ``context`` is passed to ``browser.new_context`` for every page
    (``run.new_page(**options)`` adds to it per page); ``secret_params`` names URL
    query parameters whose values are secrets, besides
    :data:`recorder.redaction.SECRET_PARAMS` and ``$RECORDER_SECRET_PARAMS``.
    """

    chromium: str | None = None
    headless: bool = True
    resume: BrowserResume | str = BrowserResume.RESTORE
    screenshots: Screenshots | str = Screenshots.ON_ERROR
    indexed_db: bool = False
    context: dict[str, Any] = field(default_factory=dict)
    secret_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.chromium is not None and not isinstance(self.chromium, str):
            raise ConfigError(
                f"Browser(chromium=...) names an executable (a str), not {self.chromium!r}."
            )
        if not isinstance(self.context, dict):
            raise ConfigError(
                f"Browser(context=...) is a dict of new_context options, not {self.context!r}."
            )
        names = self.secret_params
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                "Browser(secret_params=...) is a sequence of parameter names (str), not "
                f"{names!r}; for example Browser(secret_params=('session_id',))."
            )
        object.__setattr__(self, "secret_params", tuple(names))
        object.__setattr__(self, "resume", BrowserResume(self.resume))
        object.__setattr__(self, "screenshots", Screenshots(self.screenshots))
        object.__setattr__(self, "headless", bool(self.headless))
        object.__setattr__(self, "indexed_db", bool(self.indexed_db))


_DEFAULT = Browser()


def browser_options(value: Any) -> Browser:
    """``recorder.run``'s ``browser=`` argument as a :class:`Browser` (``None`` is the
    defaults); anything else is refused, saying what to pass."""
    if value is None:
        return _DEFAULT
    if isinstance(value, Browser):
        return value
    raise ConfigError(
        f"browser= takes recorder.Browser(...), not {type(value).__name__}; for example "
        "recorder.run(name, browser=recorder.Browser(headless=False))."
    )
