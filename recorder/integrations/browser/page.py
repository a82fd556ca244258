"""Recorded Playwright pages and locators.

A :class:`RecordedPage` stands for a Playwright page that may not exist yet. Each
recorded method becomes a ``browser`` step whose key is chained to the previous browser
step on the same page (its history determines its result), so a browser step replays
only if everything before it on that page replayed. Replaying launches nothing; the
first step that must run live starts Chromium (shared per process), opens a context
restored from the last replayed checkpoint (or re-executes the recorded actions, with
``browser_resume="reexecute"``), then runs the step and records it with a new
checkpoint. Methods not recorded reach the real page with a warning.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import effects
from ...errors import ConfigError, RecorderError
from ...keys import dumps, hash_bytes
from ...records import StepRecord
from . import checkpoint as checkpoints
from .drive import Op, drive_async, drive_sync
from .launch import launch_steps

if TYPE_CHECKING:
    from ...runtime import Run

__all__ = [
    "BrowserReexecutionError",
    "NavigationResult",
    "RecordedLocator",
    "RecordedPage",
    "UnrecordedWarning",
]

NAVIGATIONS = frozenset({"goto", "reload", "go_back", "go_forward"})
WAITS = frozenset({"wait_for_url", "wait_for_load_state"})
ACTIONS = frozenset({
    "click", "dblclick", "fill", "type", "press", "check", "uncheck", "set_checked",
    "select_option", "hover", "set_input_files", "drag_and_drop", "drag_to", "focus",
    "clear", "press_sequentially", "tap",
})  # fmt: skip
READS = frozenset({
    "content", "title", "inner_text", "inner_html", "text_content", "input_value",
    "get_attribute", "is_visible", "is_hidden", "is_checked", "is_enabled", "is_disabled",
    "is_editable", "count", "all_inner_texts", "all_text_contents", "aria_snapshot",
})  # fmt: skip
EVALUATES = frozenset({"evaluate"})
INPUTS = frozenset({
    "fill", "type", "press_sequentially", "check", "uncheck", "set_checked", "select_option",
    "set_input_files", "clear",
})  # fmt: skip
"""Actions that only set a form control: re-applied after a restore (see live_steps)."""
SCREENSHOTS = frozenset({"screenshot"})
RECORDED = NAVIGATIONS | WAITS | ACTIONS | READS | EVALUATES | SCREENSHOTS
CHANGES_STATE = NAVIGATIONS | WAITS | ACTIONS | EVALUATES
"""Steps after which a checkpoint is taken (a wait lets a navigation land)."""
BUILDERS = frozenset({
    "locator", "get_by_role", "get_by_text", "get_by_label", "get_by_placeholder",
    "get_by_test_id", "get_by_alt_text", "get_by_title", "nth", "filter", "and_", "or_",
})  # fmt: skip
PROPERTIES = frozenset({"first", "last"})


class UnrecordedWarning(UserWarning):
    """A Playwright method the recorder does not record was used: it runs on the real
    page (starting the browser if needed) and a replay will run it again."""


class BrowserReexecutionError(RecorderError):
    """``browser_resume="reexecute"`` re-ran a recorded browser step and got another
    result than the record: the page is not in the state the rest of the record assumes."""


@dataclass(frozen=True)
class NavigationResult:
    """What ``goto``/``reload``/``go_back``/``go_forward`` returned, live or replayed
    (``None`` when Playwright returned no response). ``await page.unwrap()`` gives the
    real page for anything more."""

    url: str
    status: int
    ok: bool
    status_text: str = ""


# -- arguments ---------------------------------------------------------------------------


def _encode_arg(value: Any) -> Any:
    """A step argument in a JSON form that can be run again: locators become their
    chain, regular expressions their pattern and flags."""
    if isinstance(value, RecordedLocator):
        return {"$locator": value._chain}
    if isinstance(value, re.Pattern):
        return {"$regex": value.pattern, "flags": int(value.flags)}
    if isinstance(value, list | tuple):
        return [_encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode_arg(v) for k, v in value.items()}
    return value


def _decode_arg(page: Any, value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_arg(page, v) for v in value]
    if isinstance(value, dict):
        if "$locator" in value and len(value) == 1:
            return resolve(page, value["$locator"])
        if "$regex" in value:
            return re.compile(value["$regex"], value.get("flags", 0))
        return {k: _decode_arg(page, v) for k, v in value.items()}
    return value


def resolve(page: Any, chain: list[Any]) -> Any:
    """The real Playwright object a chain of locator builders names, from ``page``."""
    target = page
    for name, args, kwargs in chain:
        if name in PROPERTIES:
            target = getattr(target, name)
        else:
            target = getattr(target, name)(*_decode_arg(page, args), **_decode_arg(page, kwargs))
    return target


def describe(chain: list[Any]) -> str:
    """``locator('#row') >> nth(2)``: a chain as the trace shows it."""
    parts = []
    for name, args, kwargs in chain:
        if name in PROPERTIES:
            parts.append(name)
            continue
        shown = [json.dumps(a) for a in args] + [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
        parts.append(f"{name}({', '.join(shown)})")
    return " >> ".join(parts)


def _selector_argument(action: str, args: tuple[Any, ...]) -> str | None:
    """The selector of a page-level call such as ``page.click("#go")``."""
    takes_selector = action in ACTIONS | READS and action not in ("content", "title")
    if takes_selector and args and isinstance(args[0], str):
        return args[0]
    return None


def _result_of(action: str, raw: Any) -> Any:
    """The recordable form of a Playwright return value."""
    if action in NAVIGATIONS:
        if raw is None:
            return None
        return {"url": raw.url, "status": raw.status, "ok": raw.ok, "status_text": raw.status_text}
    return raw


def _value_of(action: str, recorded: Any) -> Any:
    if action in NAVIGATIONS and isinstance(recorded, dict):
        return NavigationResult(**recorded)
    return recorded


# -- per-page state ----------------------------------------------------------------------


class PageState:
    """Everything one recorded page knows: its place in the run, its history, and the
    real page once it exists."""

    def __init__(self, run: Run, index: int, kind: str, options: dict[str, Any]) -> None:
        self.run = run
        self.attempt = run.attempt
        self.index = index
        self.kind = kind
        self.options = options
        self.last_key: str | None = None
        self.url = "about:blank"
        self.checkpoint: str | None = None
        self.history: list[StepRecord] = []
        self.inputs: list[StepRecord] = []
        """Replayed form inputs since the page last changed URL: a checkpoint does not
        hold typed values, so a restore puts them back."""
        self.local_by_origin: dict[str, list[Any]] = {}
        self.real: Any = None
        self.watch: checkpoints.NavigationWatch | None = None
        self.owned = True
        self.started = False

    def drive(self, steps: Generator[Op, Any, Any]) -> Any:
        if self.kind == "async":
            return drive_async(steps)
        return drive_sync(steps)

    def _check_attempt(self) -> None:
        if self.run.attempt != self.attempt or not self.run.is_open:
            raise RecorderError(
                "this page belongs to an attempt that has ended; create a new one with "
                "run.new_page() inside the new attempt."
            )

    # -- the recorded step -------------------------------------------------------------

    def step_steps(
        self, chain: list[Any], action: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Generator[Op, Any, Any]:
        self._check_attempt()
        run = self.run
        effect = kwargs.pop("effect", None)
        if effect is not None and (not isinstance(effect, str) or not effect):
            raise ConfigError(f"effect= names the side effect (a non-empty str), not {effect!r}.")
        enc_args, enc_kwargs = _encode_arg(list(args)), _encode_arg(kwargs)
        selector = describe(chain) if chain else _selector_argument(action, args)
        request = {"page": self.index, "prev": self.last_key, "target": chain,
                   "action": action, "args": enc_args, "kwargs": enc_kwargs}  # fmt: skip
        call = run.begin("browser", action, request, {"action": action, "selector": selector})
        if call.replayed:
            record = call.record
            assert record is not None
            self.last_key = call.key
            self.history.append(record)
            url = record.meta.get("url", self.url)
            if action in INPUTS and record.error is None:
                self.inputs.append(record)
            elif url != self.url or action in NAVIGATIONS:
                self.inputs = []
            self.url = url
            self.checkpoint = record.meta.get("checkpoint") or self.checkpoint
            value = call.replay()
            path = kwargs.get("path")
            if action in SCREENSHOTS and path and isinstance(value, bytes):
                with open(path, "wb") as handle:
                    handle.write(value)
            return _value_of(action, value)
        page = yield from self.live_steps()
        if effect is not None:  # right before the action: the browser is ready
            settled, value = effects.guard(run, call, effect)
            if settled:
                self.last_key = call.key
                return value
        blobs: dict[str, bytes] = {}
        meta: dict[str, Any] = {}
        try:
            target = resolve(page, chain)
            raw = yield lambda: getattr(target, action)(
                *_decode_arg(page, enc_args), **_decode_arg(page, enc_kwargs)
            )
        except Exception as exc:
            if run.screenshots != "off":
                shot = yield from self._screenshot_steps(page)
                if shot is not None:
                    meta["screenshot"] = hash_bytes(shot)
                    blobs[meta["screenshot"]] = shot
            meta["url"] = page.url
            call.fail(exc, record=True, meta=meta, blobs=blobs)
            self.last_key = call.key
            raise
        except BaseException:
            call.abandon()
            raise
        result = _result_of(action, raw)
        if action in CHANGES_STATE:
            data = yield from checkpoints.capture_steps(
                page, self.local_by_origin, indexed_db=run.indexed_db, watch=self.watch
            )
            ref = hash_bytes(data)
            blobs[ref] = data
            meta["checkpoint"] = self.checkpoint = ref
        if action in SCREENSHOTS and isinstance(result, bytes):
            meta["screenshot"] = hash_bytes(result)
        elif run.screenshots == "each_step":
            shot = yield from self._screenshot_steps(page)
            if shot is not None:
                meta["screenshot"] = hash_bytes(shot)
                blobs[meta["screenshot"]] = shot
        meta["url"] = self.url = page.url
        call.commit(result, meta=meta, blobs=blobs)
        self.last_key = call.key
        return _value_of(action, result)

    def _screenshot_steps(self, page: Any) -> Generator[Op, Any, bytes | None]:
        try:
            shot = yield page.screenshot
        except Exception:  # a screenshot is evidence, never the reason a step fails
            return None
        return bytes(shot)

    # -- going live --------------------------------------------------------------------

    def live_steps(self) -> Generator[Op, Any, Any]:
        """The real page, ready for a live step: on first use, launch (or reuse)
        Chromium and open a context restored from the last replayed checkpoint, or
        re-execute the page's recorded history. A page given to ``run.wrap`` is restored
        in place (its context gets the cookies, its origin the storage)."""
        if self.started:
            return self.real
        run = self.run
        restore = None
        if run.browser_resume == "restore" and self.checkpoint is not None:
            label = f"page {self.index} checkpoint"
            restore = json.loads(run.journal.blob(self.checkpoint, step=label))
        if self.real is None:
            browser = yield from launch_steps(
                self.kind, _starter(self.kind), chromium=run.chromium, headless=run.headless
            )
            options = dict(self.options)
            if restore is not None:
                options = checkpoints.context_options(restore, options)
            context = yield lambda: browser.new_context(**options)
            run.add_closer(context.close)
            self.real = yield context.new_page
        elif restore is not None and restore.get("cookies"):
            context = self.real.context
            yield lambda: context.add_cookies(restore["cookies"])
        page = self.real
        if restore is not None:
            self.local_by_origin = {
                o["origin"]: [[i["name"], i["value"]] for i in o.get("localStorage", [])]
                for o in restore.get("origins", [])
            }
            yield from checkpoints.restore_steps(
                page, restore, _fulfill(self.kind), local=not self.owned
            )
            if self.inputs and page.url == self.url:
                yield from self._reexecute_steps(page, self.inputs, "form inputs re-applied")
        elif run.browser_resume == "reexecute" and self.history:
            yield from self._reexecute_steps(page, self.history, "re-executing")
        self.watch = yield from checkpoints.watch_steps(page, page.context if self.owned else None)
        self.started = True
        return page

    def _reexecute_steps(
        self, page: Any, history: list[StepRecord], why: str
    ) -> Generator[Op, Any, None]:
        """Run recorded steps again, live, checking each result against the record
        (``why`` says in errors what was being done)."""
        journal = self.run.journal
        for record in history:
            request = journal.request(record)
            target = resolve(page, request["target"])
            action = request["action"]
            args, kwargs = _decode_arg(page, request["args"]), _decode_arg(page, request["kwargs"])
            where = describe(request["target"]) or request["args"]
            hint = (
                "Use browser_resume='restore' or record the run again."
                if why == "re-executing"
                else "The restored page lacks the form control: record the run again."
            )
            try:
                raw = yield functools.partial(getattr(target, action), *args, **kwargs)
            except Exception as error:
                if record.error is not None:
                    continue  # it failed when recorded too
                raise BrowserReexecutionError(
                    f"{why}: step #{record.seq} ({action} {where}) raised {error!r:.160}; the "
                    f"record has it succeeding. {hint}"
                ) from error
            if record.error is not None:
                raise BrowserReexecutionError(
                    f"{why}: step #{record.seq} ({action} {where}) succeeded; the record has "
                    f"it failing with {record.error.summary}. {hint}"
                )
            if action in SCREENSHOTS:
                continue
            got = _result_of(action, raw)
            want = (
                record.result
                if record.result_ref is None
                else json.loads(journal.blob(record.result_ref))
            )
            if action in NAVIGATIONS and isinstance(got, dict) and isinstance(want, dict):
                got, want = got.get("url"), want.get("url")
            if dumps(got) != dumps(want):
                raise BrowserReexecutionError(
                    f"{why}: step #{record.seq} ({action} {where}) gave {got!r:.120}, the "
                    f"record has {want!r:.120}: the page is not in the recorded state. {hint}"
                )


def _starter(kind: str) -> Op:
    if kind == "async":
        from playwright.async_api import async_playwright

        return lambda: async_playwright().start()
    from playwright.sync_api import sync_playwright

    return lambda: sync_playwright().start()


def _fulfill(kind: str) -> Any:
    body = "<!doctype html><title>recorder: restoring session storage</title>"
    if kind == "async":

        async def handler(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/html", body=body)

        return handler

    def sync_handler(route: Any) -> None:
        route.fulfill(status=200, content_type="text/html", body=body)

    return sync_handler


# -- the user-facing objects --------------------------------------------------------------


class _Recorded:
    """Shared by pages and locators: recorded methods, builders, and the rest."""

    _state: PageState
    _chain: list[Any]

    def _step(self, action: str, *args: Any, **kwargs: Any) -> Any:
        return self._state.drive(self._state.step_steps(self._chain, action, args, kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in RECORDED:
            return lambda *args, **kwargs: self._step(name, *args, **kwargs)
        if name in BUILDERS:
            return lambda *args, **kwargs: self._build(name, args, kwargs)
        if name in PROPERTIES:
            return self._build(name, None, None)
        return self._unrecorded(name)

    def _build(self, name: str, args: Any, kwargs: Any) -> RecordedLocator:
        link = (
            [name, None, None]
            if args is None
            else [name, _encode_arg(list(args)), _encode_arg(kwargs)]
        )
        return RecordedLocator(self._state, [*self._chain, link])

    def _unrecorded(self, name: str) -> Any:
        state, chain = self._state, self._chain
        api = _api_class(state.kind, "Page" if not chain else "Locator")
        if not hasattr(api, name):
            raise AttributeError(f"Playwright's {api.__name__} has no attribute {name!r}")
        warnings.warn(
            f"{type(self).__name__}.{name} is not recorded: it runs on the real page and will "
            "run again on replay.",
            UnrecordedWarning,
            stacklevel=3,
        )

        def real_steps() -> Generator[Op, Any, Any]:
            page = yield from state.live_steps()
            return resolve(page, chain)

        if state.kind == "sync" or state.started:
            return getattr(state.drive(real_steps()) if state.kind == "sync" else
                           resolve(state.real, chain), name)  # fmt: skip
        if not inspect.iscoroutinefunction(getattr(api, name)):
            raise RecorderError(
                f"{name} needs the real page, which is not started yet (the run has only "
                f"replayed so far). Call `real = await page.unwrap()` first (it starts the "
                f"browser and restores the page), then use real.{name}."
            )

        async def call_later(*args: Any, **kwargs: Any) -> Any:
            target = await state.drive(real_steps())
            return await getattr(target, name)(*args, **kwargs)

        return call_later


def _api_class(kind: str, name: str) -> Any:
    if kind == "async":
        import playwright.async_api as api
    else:
        import playwright.sync_api as api  # type: ignore[no-redef]
    return getattr(api, name)


class RecordedLocator(_Recorded):
    """A recorded Playwright locator: a chain of builders from its page."""

    def __init__(self, state: PageState, chain: list[Any]) -> None:
        self._state = state
        self._chain = chain

    def __repr__(self) -> str:
        return f"<RecordedLocator {describe(self._chain)}>"

    def all(self) -> Any:
        """``[locator.nth(i) for i in range(count)]`` with the count recorded."""
        if self._state.kind == "sync":
            return [self.nth(i) for i in range(self._step("count"))]

        async def gather() -> list[RecordedLocator]:
            return [self.nth(i) for i in range(await self._step("count"))]

        return gather()


class RecordedPage(_Recorded):
    """A recorded Playwright page (async or sync API, like the page it stands for)."""

    def __init__(self, state: PageState) -> None:
        self._state = state
        self._chain = []

    def __repr__(self) -> str:
        live = "live" if self._state.real is not None else "not started"
        return f"<RecordedPage #{self._state.index} {self._state.url} ({live})>"

    @property
    def url(self) -> str:
        """The page's URL: the real one once live, else the recorded one."""
        state = self._state
        return str(state.real.url) if state.started else state.url

    def unwrap(self) -> Any:
        """The real Playwright page, started (and restored) now if needed. Async pages
        return an awaitable."""
        return self._state.drive(self._state.live_steps())

    def drag_and_drop(self, source: str, target: str, **kwargs: Any) -> Any:
        return self._step("drag_and_drop", source, target, **kwargs)
