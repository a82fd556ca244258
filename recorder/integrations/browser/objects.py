"""The objects the program holds: recorded pages, locators, frames, input devices and
contexts, for Playwright's sync and async APIs alike.

Recorded methods become steps (:meth:`~.page.PageState.step_steps`); builders
(``locator``, ``get_by_role``, ``frame_locator``, ``keyboard``...) only extend a chain;
anything else is *unrecorded*: the page goes live there (brought to its recorded state
first, with one warning per call site) and the call reaches the real object.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ...errors import RecorderError
from . import events
from .chains import (
    BUILDERS,
    PROPERTIES,
    RECORDED,
    api_class,
    api_name,
    describe,
    encode_arg,
    has_method,
    resolve,
)
from .drive import Op
from .page import PageState, unrecorded_warning

if TYPE_CHECKING:
    from ...runtime import Run

__all__ = ["RecordedContext", "RecordedFrame", "RecordedLocator", "RecordedPage",
           "new_page", "next_index", "wrap"]  # fmt: skip

_EVENT_METHODS = ("on", "once", "remove_listener", "off")


def next_index(run: Run, index: int | None = None) -> int:
    """A new page number in the current attempt (or ``index``, a replayed popup's)."""
    attempt = run._require_open()
    if index is None:
        index = attempt.pages
    attempt.pages = max(attempt.pages, index + 1)
    return index


def new_page(run: Run, context_options: dict[str, Any], kind: str) -> RecordedPage:
    """A new recorded page in a family (context) of its own."""
    family = events.Family(dict(context_options))
    state = PageState(run, next_index(run), kind, family)
    family.root = state
    page = RecordedPage(state)
    family.pages[state.index] = page
    return page


def wrap(run: Run, real: Any, kind: str) -> RecordedPage:
    """A recorded page standing for a Playwright page the program made."""
    family = events.Family({}, context=real.context)
    state = PageState(run, next_index(run), kind, family)
    state.real, state.owned = real, False
    family.root = state
    page = RecordedPage(state)
    family.pages[state.index] = page
    return page


def _unrecorded(state: PageState, what: str, cls: str, name: str,
                target: Callable[[Any], Any], label: str | None = None) -> Any:  # fmt: skip
    """``name`` of the real object ``target(real_page)`` for an unrecorded use: the page
    goes live here (see :mod:`.page`). An async method waits for that; a plain method
    of the async API is made when the page goes live, at its next step."""
    api = api_class(state.kind, cls)
    if not hasattr(api, name):
        raise AttributeError(f"Playwright's {cls} has no attribute {name!r}")
    unrecorded_warning(label or f"{what}.{name}")
    if state.started:
        return getattr(target(state.real), name)
    if state.kind == "sync":
        return getattr(target(state.drive(state.live_steps())), name)
    member = getattr(api, name)
    if inspect.iscoroutinefunction(member):

        async def call_live(*args: Any, **kwargs: Any) -> Any:
            page = await state.drive(state.live_steps())
            return await getattr(target(page), name)(*args, **kwargs)

        return call_live
    if callable(member):

        def call_at_next_step(*args: Any, **kwargs: Any) -> None:
            state.deferred.append(lambda page: getattr(target(page), name)(*args, **kwargs))

        return call_at_next_step
    raise RecorderError(
        f"{what}.{name} needs the real page, which does not exist yet (this page has only "
        f"replayed so far). Call `real = await page.unwrap()` first: it brings the page to "
        f"its recorded state; then use real.{name}."
    )


class _Recorded:
    """Shared by pages, locators, frames and devices: recorded methods, builders, and
    the rest."""

    _state: PageState
    _chain: list[Any]

    @property
    def _type(self) -> str:
        return api_name(self._chain)

    def _step(self, action: str, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        return state.drive(state.step_steps(self._chain, action, args, kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        kind, cls = self._state.kind, self._type
        if name in RECORDED and has_method(kind, cls, name):
            return lambda *args, **kwargs: self._step(name, *args, **kwargs)
        if name in BUILDERS and has_method(kind, cls, name):
            return lambda *args, **kwargs: self._build(name, args, kwargs)
        if name in PROPERTIES and has_method(kind, cls, name):
            return self._build(name, None, None)
        chain = self._chain
        what = "page" + "".join(f".{link[0]}" for link in chain) if chain else "page"
        return _unrecorded(self._state, what, cls, name, lambda page: resolve(page, chain))

    def _build(self, name: str, args: Any, kwargs: Any) -> Any:
        link = (
            [name, None, None]
            if args is None
            else [name, encode_arg(list(args)), encode_arg(kwargs)]
        )
        chain = [*self._chain, link]
        if api_name(chain) == "Frame":
            return RecordedFrame(self._state, chain)
        return RecordedLocator(self._state, chain)


class RecordedLocator(_Recorded):
    """A recorded Playwright locator (or frame locator, keyboard, mouse): a chain of
    builders from its page."""

    def __init__(self, state: PageState, chain: list[Any]) -> None:
        self._state = state
        self._chain = chain

    def __repr__(self) -> str:
        return f"<Recorded{self._type} {describe(self._chain)}>"

    @property
    def page(self) -> RecordedPage:
        return self._state.public

    def all(self) -> Any:
        """``[locator.nth(i) for i in range(count)]`` with the count recorded."""
        if self._state.kind == "sync":
            return [self.nth(i) for i in range(self._step("count"))]

        async def gather() -> list[Any]:
            return [self.nth(i) for i in range(await self._step("count"))]

        return gather()


class RecordedFrame(RecordedLocator):
    """A recorded frame (``page.frame(name=...)``, ``page.main_frame``, ``page.frames``):
    the page's methods, run inside the frame."""

    def __init__(self, state: PageState, chain: list[Any], known: list[str] | None = None) -> None:
        super().__init__(state, chain)
        self._known = known

    @property
    def name(self) -> str:
        if self._known is not None:
            return self._known[0]
        return str(self.__getattr__("name"))

    @property
    def url(self) -> str:
        if self._known is not None:
            return self._known[1]
        return str(self.__getattr__("url"))


class RecordedPage(_Recorded):
    """A recorded Playwright page (async or sync API, like the page it stands for)."""

    def __init__(self, state: PageState) -> None:
        self._state = state
        self._chain = []
        state.public = self

    def __repr__(self) -> str:
        state = self._state
        live = "live" if state.started else "not started"
        return f"<RecordedPage #{state.index} {self.url} ({live})>"

    @property
    def url(self) -> str:
        """The page's URL: the real one once live, else the recorded one."""
        state = self._state
        return str(state.real.url) if state.started else state.url

    @property
    def context(self) -> RecordedContext:
        return RecordedContext(self._state)

    @property
    def frames(self) -> list[RecordedFrame]:
        """The page's frames: the real ones once live, else those the last replayed
        step recorded (the main frame alone when it recorded none)."""
        state = self._state
        if state.started:
            known = [[f.name, f.url] for f in state.real.frames]
        else:
            known = state.frames or [["", state.url]]
        return [RecordedFrame(state, [["$frames", [i], {}]], k) for i, k in enumerate(known)]

    def is_closed(self) -> bool:
        state = self._state
        return bool(state.real.is_closed()) if state.started else False

    def unwrap(self) -> Any:
        """The real Playwright page, brought to the state the record describes now if it
        is not live yet; from here the page's steps run live. Async pages return an
        awaitable."""
        return self._state.drive(self._state.live_steps())

    def drag_and_drop(self, source: str, target: str, **kwargs: Any) -> Any:
        return self._step("drag_and_drop", source, target, **kwargs)

    # -- events ------------------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Add a handler. ``dialog``, ``popup`` and ``download`` are recorded (a replay
        hands the handler the recorded event); any other event needs the live page."""
        self._listen("on", event, handler)

    def once(self, event: str, handler: Callable[..., Any]) -> None:
        self._listen("once", event, handler)

    def remove_listener(self, event: str, handler: Callable[..., Any]) -> None:
        self._listen("remove_listener", event, handler)

    off = remove_listener

    def _listen(self, how: str, event: str, handler: Callable[..., Any]) -> None:
        state = self._state
        if event not in events.RECORDED_EVENTS:
            real = _unrecorded(state, "page", "Page", how, lambda page: page,
                               label=f"page.{how}({event!r}, ...)")  # fmt: skip
            real(event, handler)
            return
        found = state.listeners.setdefault(event, [])
        if how == "remove_listener":
            if handler in found:
                found.remove(handler)
            state.once.discard(id(handler))
            return
        found.append(handler)
        if how == "once":
            state.once.add(id(handler))

    def expect_popup(self, predicate: Any = None, timeout: float | None = None) -> Any:
        return events.RecordedExpectation(self._state, "popup", page=self._state.index,
                                          predicate=predicate, timeout=timeout)  # fmt: skip

    def expect_download(self, predicate: Any = None, timeout: float | None = None) -> Any:
        return events.RecordedExpectation(self._state, "download", page=self._state.index,
                                          predicate=predicate, timeout=timeout)  # fmt: skip

    def expect_event(self, event: str, predicate: Any = None, timeout: float | None = None) -> Any:
        return events.RecordedExpectation(self._state, event, page=self._state.index,
                                          predicate=predicate, timeout=timeout)  # fmt: skip

    def wait_for_event(
        self, event: str, predicate: Any = None, timeout: float | None = None
    ) -> Any:
        """The next ``event`` (recorded events only), live or replayed; an event the
        page's latest step raised that no expectation took counts as next (a popup
        opened by the click just before)."""
        expectation = self.expect_event(event, predicate, timeout)
        state = self._state
        expectation._start = state.log_mark

        def steps() -> Generator[Op, Any, Any]:
            return (yield from expectation.resolve_steps())

        return state.drive(steps())


class RecordedContext:
    """``page.context``: new pages and ``expect_page`` are recorded; anything else
    reaches the real context (the page goes live first)."""

    def __init__(self, state: PageState) -> None:
        self._state = state

    def __repr__(self) -> str:
        return f"<RecordedContext of page #{self._state.index}>"

    @property
    def pages(self) -> list[RecordedPage]:
        family = self._state.family
        return [family.pages[i] for i in sorted(family.pages)]

    def new_page(self) -> Any:
        """A new recorded page in the same context (no browser until it goes live)."""
        state = self._state
        state.check_attempt()
        page = state.opened(None, index=None, url="about:blank")
        return events.result_for(state.kind, page)

    def expect_page(self, predicate: Any = None, timeout: float | None = None) -> Any:
        """A page this context opens (a popup of any of its pages)."""
        return events.RecordedExpectation(self._state, "popup", page=None,
                                          predicate=predicate, timeout=timeout)  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _unrecorded(self._state, "page.context", "BrowserContext", name,
                           lambda page: page.context)  # fmt: skip
