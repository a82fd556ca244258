"""Page events, recorded: dialogs, popups and downloads, their handlers and expectations.

While a page is live, the recorder listens to the real page's ``dialog``, ``popup`` and
``download`` events. A dialog is handed at once to the program's handlers as a
:class:`RecordedDialog` (its answer, accept with prompt text or dismiss, is noted); a
popup becomes a recorded page of its own; a download is read to its end and kept as a
content-addressed blob. Each event waits in its family's buffer until the next step of
its page is written, and travels in that step's record (``meta["events"]``). Replaying
the step delivers the same events again, with no browser: the program's handlers get a
replayed dialog, page or download, and expectations (``expect_popup``,
``expect_download``, ``expect_event``, ``context.expect_page``, ``wait_for_event``)
take their value from them.

An expectation that ends before its event was written (a popup that opened after the
click returned) takes it from the buffer and writes it as a step of its own
(``event``), so that a replay finds it at the same place.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, RecorderError
from ...keys import hash_bytes
from .drive import Op

if TYPE_CHECKING:
    from .objects import RecordedPage
    from .page import PageState

__all__ = [
    "RECORDED_EVENTS",
    "Delivered",
    "Family",
    "RecordedDialog",
    "RecordedDownload",
    "RecordedExpectation",
    "listen",
]

RECORDED_EVENTS = frozenset({"dialog", "popup", "download"})
"""Page events whose handlers are recorded; any other event needs the live page."""
_POLL_MS = 20
_POPUP_LOAD_MS = 10_000


@dataclass
class Pending:
    """An event a live page fired that no step record holds yet."""

    kind: str
    page: int
    data: dict[str, Any]
    real: Any = None
    value: Any = None


@dataclass
class Delivered:
    """An event handed to the program (live or replayed), in order, for expectations."""

    kind: str
    page: int
    value: Any
    taken: bool = False
    """An expectation took it: no other one will."""


@dataclass
class Family:
    """Pages that share one browser context: a page from ``run.new_page()`` and every
    page opened from it (popups, ``page.context.new_page()``)."""

    options: dict[str, Any]
    context: Any = None
    pages: dict[int, RecordedPage] = field(default_factory=dict)
    buffer: list[Pending] = field(default_factory=list)
    log: list[Delivered] = field(default_factory=list)
    root: PageState | None = None
    checkpoint: str | None = None
    """The latest checkpoint taken on any of its pages: cookies and localStorage belong
    to the context, so a restore takes them from here."""


# -- the objects handed to the program ----------------------------------------------------


def result_for(kind: str, value: Any) -> Any:
    """``value``, awaitable for the async API."""
    if kind == "sync":
        return value

    async def ready() -> Any:
        return value

    return ready()


class RecordedDialog:
    """A dialog (alert, confirm, prompt, beforeunload), live or replayed. Live, ``accept``
    and ``dismiss`` answer the real dialog; replayed, they answer nothing (the record
    holds what the program answered)."""

    def __init__(self, kind: str, page: Any, data: dict[str, Any], real: Any = None) -> None:
        self._kind, self._page, self._data, self._real = kind, page, data, real

    type = property(lambda self: self._data["type"])
    message = property(lambda self: self._data["message"])
    default_value = property(lambda self: self._data.get("default_value", ""))
    page = property(lambda self: self._page)

    @property
    def handled(self) -> bool:
        return self._data.get("action") is not None

    def accept(self, prompt_text: str | None = None) -> Any:
        self._data["action"] = "accept"
        self._data["prompt_text"] = prompt_text
        if self._real is None:
            return result_for(self._kind, None)
        return self._real.accept(prompt_text) if prompt_text is not None else self._real.accept()

    def dismiss(self) -> Any:
        self._data["action"] = "dismiss"
        if self._real is None:
            return result_for(self._kind, None)
        return self._real.dismiss()

    def __repr__(self) -> str:
        return f"<RecordedDialog {self.type} {self.message!r}>"


_DOWNLOADS = Path(tempfile.gettempdir()) / f"recorder-downloads-{os.getuid()}"


class RecordedDownload:
    """A download whose bytes are in the store (a content-addressed blob): the same
    object, live or replayed. ``path()`` writes the bytes to a private temporary file;
    ``save_as(path)`` writes them where asked."""

    def __init__(
        self, kind: str, page: Any, data: dict[str, Any], content: Callable[[], bytes]
    ) -> None:
        self._kind, self._page, self._data, self._content = kind, page, data, content

    suggested_filename = property(lambda self: self._data["suggested_filename"])
    url = property(lambda self: self._data["url"])
    page = property(lambda self: self._page)

    def _write(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self._content())
        return target

    def path(self) -> Any:
        _DOWNLOADS.mkdir(mode=0o700, exist_ok=True)
        name = self._data["blob"].replace(":", "-")
        return result_for(self._kind, self._write(_DOWNLOADS / name))

    def save_as(self, path: str | os.PathLike[str]) -> Any:
        self._write(Path(path))
        return result_for(self._kind, None)

    def failure(self) -> Any:
        return result_for(self._kind, self._data.get("failure"))

    def cancel(self) -> Any:
        return result_for(self._kind, None)

    def delete(self) -> Any:
        return result_for(self._kind, None)

    def __repr__(self) -> str:
        return f"<RecordedDownload {self.suggested_filename!r} ({self._data.get('size')} bytes)>"


# -- live: listening to the real page ----------------------------------------------------


def listen(state: PageState) -> None:
    """Listen to the real page of ``state`` for the recorded events."""
    page, family = state.real, state.family

    def dialog_value(real: Any) -> tuple[Pending, RecordedDialog]:
        data = {"type": real.type, "message": real.message,
                "default_value": real.default_value, "action": None}  # fmt: skip
        pending = Pending("dialog", state.index, data)
        family.buffer.append(pending)
        return pending, RecordedDialog(state.kind, state.public, data, real)

    def popup(real: Any) -> None:
        opened = state.opened(real)
        family.buffer.append(
            Pending(
                "popup", state.index, {"page": opened._state.index, "url": real.url}, real, opened
            )
        )
        for handler in state.handlers("popup"):
            _fire(handler, opened)

    def download(real: Any) -> None:
        data = {"suggested_filename": real.suggested_filename, "url": real.url}
        family.buffer.append(Pending("download", state.index, data, real))

    if state.kind == "async":

        async def on_dialog(real: Any) -> None:
            pending, wrapper = dialog_value(real)
            for handler in state.handlers("dialog"):
                result = handler(wrapper)
                if inspect.isawaitable(result):
                    await result
            if not wrapper.handled:  # Playwright dismisses a dialog nobody listens to
                await wrapper.dismiss()
            pending.value = wrapper

        page.on("dialog", on_dialog)
    else:

        def on_sync_dialog(real: Any) -> None:
            pending, wrapper = dialog_value(real)
            for handler in state.handlers("dialog"):
                handler(wrapper)
            if not wrapper.handled:
                wrapper.dismiss()
            pending.value = wrapper

        page.on("dialog", on_sync_dialog)
    page.on("popup", popup)
    page.on("download", download)


_tasks: set[Any] = set()
"""Handler coroutines in flight (a task nobody references may be collected)."""


def _fire(handler: Callable[..., Any], value: Any) -> None:
    result = handler(value)
    if inspect.iscoroutine(result):
        import asyncio

        task = asyncio.ensure_future(result)
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


def collect_steps(
    state: PageState, only: Pending | None = None
) -> Generator[Op, Any, tuple[list[dict[str, Any]], dict[str, bytes]]]:
    """The events of ``state``'s page waiting in the buffer (or just ``only``), made
    ready to be written: a download read to its end (its bytes become a blob), a
    popup's URL read once it has loaded. They are delivered (logged for expectations,
    download handlers called) and returned with their blobs."""
    family = state.family
    taken = [only] if only is not None else [p for p in family.buffer if p.page == state.index]
    for pending in taken:
        family.buffer.remove(pending)
    events: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    for pending in taken:
        data = pending.data
        if pending.kind == "download":
            real = pending.real
            failure = yield real.failure
            location = None if failure else (yield real.path)
            content = Path(location).read_bytes() if location else b""
            ref = hash_bytes(content)
            blobs[ref] = content
            data.update(blob=ref, size=len(content), failure=failure)
        elif pending.kind == "popup":
            real = pending.real
            with contextlib.suppress(Exception):  # one that never loads is still the popup
                yield functools.partial(
                    real.wait_for_load_state, "domcontentloaded", timeout=_POPUP_LOAD_MS
                )
            data["url"] = real.url
            pending.value._state.url = real.url
        events.append({"event": pending.kind, **data})
        yield from deliver_steps(state, events[-1], live=pending, blobs=blobs)
    return events, blobs


def deliver_steps(
    state: PageState,
    event: dict[str, Any],
    *,
    live: Pending | None = None,
    blobs: dict[str, bytes] | None = None,
) -> Generator[Op, Any, Any]:
    """Hand one recorded event to the program: log it for expectations and, when it is
    replayed (``live`` is None), call the page's handlers as the live page did (a live
    dialog or popup reached them when it happened; a download reaches them here)."""
    kind = event["event"]
    if live is not None and live.value is not None:
        value = live.value
    elif kind == "dialog":
        value = RecordedDialog(state.kind, state.public, dict(event))
    elif kind == "popup":
        value = state.opened(None, index=event["page"], url=event.get("url", "about:blank"))
    elif kind == "download":
        ref = event["blob"]
        known = dict(blobs or {})

        def content() -> bytes:
            return known[ref] if ref in known else state.run.journal.blob(ref, step="a download")

        value = RecordedDownload(state.kind, state.public, dict(event), content)
    else:
        raise RecorderError(f"a step record holds an event of unknown kind {kind!r}")
    state.family.log.append(Delivered(kind, state.index, value))
    if live is None or kind == "download":
        for handler in state.handlers(kind):
            yield functools.partial(handler, value)
    return value


# -- expectations ------------------------------------------------------------------------


class RecordedExpectation:
    """``page.expect_popup()``, ``expect_download()``, ``expect_event(...)``,
    ``context.expect_page()``: a context manager (``with`` / ``async with``) whose
    ``value`` is the first matching event after it was entered, live or replayed."""

    def __init__(
        self,
        owner: PageState,
        kind: str,
        *,
        page: int | None,
        predicate: Callable[[Any], Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if kind not in RECORDED_EVENTS:
            raise ConfigError(
                f"expect_event({kind!r}) is not recorded; recorded events are "
                f"{sorted(RECORDED_EVENTS)}. For another event, use the real page: "
                "`real = await page.unwrap()` (the page then runs live)."
            )
        self._owner, self._kind, self._page = owner, kind, page
        self._predicate, self._timeout = predicate, timeout
        self._start = len(owner.family.log)
        self._value: Any = None
        self._done = False

    # -- the context manager -----------------------------------------------------------

    def __enter__(self) -> RecordedExpectation:
        self._start = len(self._owner.family.log)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.resolve()

    async def __aenter__(self) -> RecordedExpectation:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.resolve()

    @property
    def value(self) -> Any:
        if not self._done:
            raise RecorderError(
                "the expected event is known when the `with` block ends; read .value after it."
            )
        return result_for(self._owner.kind, self._value)

    def is_done(self) -> bool:
        return self._done

    # -- finding the event -------------------------------------------------------------

    def resolve(self) -> Any:
        """Wait for the event and keep its value (awaitable for the async API)."""
        return self._owner.drive(self.resolve_steps())

    def _matches(self, kind: str, page: int) -> bool:
        return kind == self._kind and (self._page is None or page == self._page)

    def _accept(self, value: Any) -> bool:
        return self._predicate is None or bool(self._predicate(value))

    def resolve_steps(self) -> Generator[Op, Any, Any]:
        owner = self._owner
        family = owner.family
        timeout = 30_000.0 if self._timeout is None else float(self._timeout)
        waited = 0.0
        while True:
            for entry in family.log[self._start :]:
                self._start += 1
                if entry.taken or not self._matches(entry.kind, entry.page):
                    continue
                if self._accept(entry.value):
                    entry.taken = True
                    self._value, self._done = entry.value, True
                    return entry.value
            pending = next((p for p in family.buffer if self._matches(p.kind, p.page)), None)
            if pending is not None or not owner.started:
                yield from owner.event_step_steps(self._kind, pending)
                continue
            if waited >= timeout:
                raise _timeout_error(self._kind, timeout)
            real = owner.real
            yield functools.partial(real.wait_for_timeout, _POLL_MS)
            waited += _POLL_MS


def _timeout_error(kind: str, timeout: float) -> Exception:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    return PlaywrightTimeout(f"Timeout {timeout:.0f}ms exceeded while waiting for event {kind!r}")
