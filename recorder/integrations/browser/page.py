"""The state of one recorded page: its recorded steps and the one way it goes live.

Each recorded method becomes a ``browser`` step whose key is chained to the previous
browser step on the same page (its history determines its result), so a browser step
replays only if everything before it on that page replayed. Replaying launches nothing.

**The one rule for the real page.** A page goes live when a step must run live (it is
not recorded), or when the program needs something the record cannot answer (an
unrecorded method, ``unwrap()``, a route, a handler for an unrecorded event). Either
way :meth:`PageState.live_steps` first brings a real page to the exact state the
record describes at that point: a context restored from the last replayed checkpoint
of its context (cookies, storage, viewport), the page's recorded URL, then the in-page
steps replayed since that page last navigated (form inputs, ``evaluate``; see
``chains.REAPPLIED``), each checked against its record with a short timeout. Nothing
a restore runs again is in the checkpoint it starts from (see ``_needs_checkpoint``
and ``PageState._track``), so no step lands twice. From then on every step of that
page runs live (on this attempt; a later attempt replays what this one recorded), so a
real page never sits elsewhere while replayed steps pretend to move it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ... import effects
from ...callsite import caller, warn_at_caller
from ...errors import ConfigError, RecorderError
from ...keys import dumps, hash_bytes
from ...records import StepRecord
from ...redaction import redact_text, secret_params
from . import checkpoint as checkpoints
from . import events, secret_steps
from .chains import (
    CHANGES_STATE,
    NAVIGATIONS,
    REAPPLIED,
    SCREENSHOTS,
    api_name,
    decode_arg,
    describe,
    encode_arg,
    resolve,
    selector_argument,
    takes_timeout,
)
from .drive import Op, drive_async, drive_sync, together
from .launch import launch_steps
from .options import Browser, BrowserResume, Screenshots, browser_options

if TYPE_CHECKING:
    from ...runtime import Run
    from .objects import RecordedPage

__all__ = ["RESUME_TIMEOUT_MS", "BrowserReexecutionError", "NavigationResult", "PageState",
           "RecordedHandle", "UnrecordedWarning", "unrecorded_warning"]  # fmt: skip

RESUME_TIMEOUT_MS = 5_000
"""How long a step run again to bring a page to its recorded state may wait for its
element: a state that cannot be rebuilt is reported in seconds, not after 30."""


class UnrecordedWarning(UserWarning):
    """A Playwright method the recorder does not record was used: the page goes live
    there (brought to its recorded state first) and runs live from then on."""


class BrowserReexecutionError(RecorderError):
    """A page could not be brought to its recorded state: a step run again to rebuild
    it failed or gave another result than its record."""


@dataclass(frozen=True)
class NavigationResult:
    """What ``goto``/``reload``/``go_back``/``go_forward`` returned, live or replayed
    (``None`` when Playwright returned no response). ``await page.unwrap()`` gives the
    real page for anything more."""

    url: str
    status: int
    ok: bool
    status_text: str = ""


class RecordedHandle:
    """What ``wait_for_function`` returned: its value, recorded (``json_value()``)."""

    def __init__(self, kind: str, value: Any) -> None:
        self._kind, self._value = kind, value

    def json_value(self) -> Any:
        return events.result_for(self._kind, self._value)

    def dispose(self) -> Any:
        return events.result_for(self._kind, None)


_warned: set[tuple[str, int, str]] = set()


def unrecorded_warning(what: str) -> None:
    """Warn once per call site (the program's line) that ``what`` is not recorded and
    the page goes live there."""
    site = (*caller()[:2], what)
    if site in _warned:
        return
    _warned.add(site)
    warn_at_caller(
        f"{what} is not recorded: the page goes live here. It is first brought to the "
        "state the record describes (restored from its last checkpoint), then this call and "
        "every later step of the page run live, on every re-run. Use a recorded method "
        "where there is one (docs/browser.md lists them) to replay with no browser.",
        UnrecordedWarning,
    )


def _result_of(action: str, raw: Any) -> Any:
    """The recordable form of a Playwright return value."""
    if action in NAVIGATIONS:
        if raw is None:
            return None
        return {"url": raw.url, "status": raw.status, "ok": raw.ok, "status_text": raw.status_text}
    if action == "wait_for_selector":
        return raw is not None
    return raw


class PageState:
    """Everything one recorded page knows: its place in the run, its history, its
    family (the pages sharing its context), and the real page once it exists."""

    def __init__(
        self,
        run: Run,
        index: int,
        kind: str,
        family: events.Family,
        *,
        url: str = "about:blank",
    ) -> None:
        self.run = run
        self.attempt = run.attempt
        self.index = index
        self.kind = kind
        self.family = family
        self.options: Browser = browser_options(run.browser)
        self.secret_params = secret_params(self.options.secret_params)
        self.last_key: str | None = None
        self.url = url
        self.checkpoint: str | None = None
        self.history: list[StepRecord] = []
        self.window: list[StepRecord] = []
        """Replayed in-page steps since the page last navigated (see chains.REAPPLIED):
        a restore runs them again."""
        self.frames: list[list[str]] = []
        self.local_by_origin: dict[str, list[Any]] = {}
        self.real: Any = None
        self.watch: checkpoints.NavigationWatch | None = None
        self.owned = True
        self.started = False
        self.deferred: list[Callable[[Any], Any]] = []
        """Calls on the real page the program made before it existed (``page.on`` for an
        unrecorded event...): made when the page goes live, at its next step."""
        self.listeners: dict[str, list[Callable[..., Any]]] = {}
        self.once: set[int] = set()
        self.log_mark = 0
        """Where the events of the page's latest step begin in its family's log."""
        self.public: RecordedPage = None  # type: ignore[assignment]  # set by RecordedPage

    def drive(self, steps: Generator[Op, Any, Any]) -> Any:
        if self.kind == "async":
            return drive_async(steps)
        return drive_sync(steps)

    def check_attempt(self) -> None:
        if self.run.attempt != self.attempt or not self.run.is_open:
            raise RecorderError(
                "this page belongs to an attempt that has ended; create a new one with "
                "run.new_page() inside the new attempt."
            )

    # -- handlers of recorded events -----------------------------------------------------

    def handlers(self, event: str) -> list[Callable[..., Any]]:
        """The program's handlers for ``event``; ``once`` handlers are taken off."""
        found = list(self.listeners.get(event, ()))
        for handler in found:
            if id(handler) in self.once:
                self.once.discard(id(handler))
                self.listeners[event].remove(handler)
        return found

    def opened(
        self, real: Any, *, index: int | None = None, url: str = "about:blank"
    ) -> RecordedPage:
        """The recorded page for a popup of this page: live (``real``) or replayed (its
        recorded ``index`` and URL). The same index gives the same object."""
        from .objects import RecordedPage, next_index

        family = self.family
        if index is not None and index in family.pages:
            return family.pages[index]
        index = next_index(self.run, index)
        state = PageState(self.run, index, self.kind, family, url=url)
        page = RecordedPage(state)
        family.pages[index] = page
        if real is not None:
            state.real, state.started, state.url = real, True, real.url
            state.watch = checkpoints.NavigationWatch(real)
            events.listen(state)
        return page

    # -- the recorded step -------------------------------------------------------------

    def step_steps(
        self,
        chain: list[Any],
        action: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        execute: Callable[[Any], Op] | None = None,
        name: str | None = None,
    ) -> Generator[Op, Any, Any]:
        """One recorded call of ``action`` on the object ``chain`` names. ``execute``
        gives the live call for a step that is not a plain method call (``expect``)."""
        self.check_attempt()
        run = self.run
        effect = kwargs.pop("effect", None)
        if effect is not None and (not isinstance(effect, str) or not effect):
            raise ConfigError(f"effect= names the side effect (a non-empty str), not {effect!r}.")
        enc_args, enc_kwargs = encode_arg(list(args)), encode_arg(kwargs)
        selector = describe(chain) if chain else selector_argument(action, args)
        if selector is not None:
            selector = redact_text(selector, self.secret_params)
        request = {"page": self.index, "prev": self.last_key, "target": chain,
                   "action": action, "args": enc_args, "kwargs": enc_kwargs}  # fmt: skip
        call = run.begin(
            "browser",
            name or action,
            request,
            {"action": action, "selector": selector},
            live=self.started or bool(self.deferred),
        )
        if call.replayed:
            assert call.record is not None
            journal = run.journal
            record, kept = secret_steps.unseal(journal, call.record)
            self.last_key = call.key
            self._follow(record, action)
            for event in record.meta.get("events", ()):
                yield from events.deliver_steps(self, event)
            value = secret_steps.real_result(journal, record, kept, call.replay())
            path = kwargs.get("path")
            if action in SCREENSHOTS and path and isinstance(value, bytes):
                with open(path, "wb") as handle:
                    handle.write(value)
            return self._value_of(chain, action, args, value)
        page = yield from self.live_steps()
        if effect is not None:  # right before the action: the browser is ready
            settled, value = effects.guard(run, call, effect)
            if settled:
                self.last_key = call.key
                return value
        blobs: dict[str, bytes] = {}
        meta: dict[str, Any] = {}
        try:
            if execute is not None:
                raw = yield execute(page)
            else:
                target = resolve(page, chain)
                raw = yield lambda: getattr(target, action)(
                    *decode_arg(page, enc_args), **decode_arg(page, enc_kwargs)
                )
            if action == "wait_for_function":
                raw = yield raw.json_value
        except Exception as exc:
            if self.options.screenshots != Screenshots.OFF:
                shot = yield from self._screenshot_steps(page)
                if shot is not None:
                    meta["screenshot"] = hash_bytes(shot)
                    blobs[meta["screenshot"]] = shot
            yield from self._events_steps(meta, blobs)
            meta["url"] = page.url
            password = yield from secret_steps.is_password_steps(page, chain, action, args)
            _, meta = secret_steps.seal(call, None, meta, blobs, params=self.secret_params,
                                        password=password)  # fmt: skip
            call.fail(exc, record=True, meta=meta, blobs=blobs)
            self.last_key = call.key
            raise
        except BaseException:
            call.abandon()
            raise
        result = _result_of(action, raw)

        def afterwards() -> Generator[Op, Any, bytes | None]:
            yield from self._events_steps(meta, blobs)
            return (yield from self._checkpoint_steps(page, chain, action, raw, effect))

        # The password check (right after the action) goes out with the first of these.
        password, data = yield from together(
            secret_steps.is_password_steps(page, chain, action, args), afterwards()
        )
        if data is not None:
            ref = hash_bytes(data)
            blobs[ref] = data
            meta["checkpoint"] = ref
        if action in SCREENSHOTS and isinstance(result, bytes):
            meta["screenshot"] = hash_bytes(result)
        elif self.options.screenshots == Screenshots.EACH_STEP and not page.is_closed():
            shot = yield from self._screenshot_steps(page)
            if shot is not None:
                meta["screenshot"] = hash_bytes(shot)
                blobs[meta["screenshot"]] = shot
        frames = page.frames if not page.is_closed() else []
        if len(frames) > 1:
            meta["frames"] = self.frames = [[f.name, f.url] for f in frames]
        meta["url"] = page.url
        self._track(action, meta, marked=effect is not None, failed=False)
        written, meta = secret_steps.seal(call, result, meta, blobs, params=self.secret_params,
                                          password=password)  # fmt: skip
        call.commit(written, meta=meta, blobs=blobs)
        self.last_key = call.key
        return self._value_of(chain, action, args, result)

    def _value_of(self, chain: list[Any], action: str, args: tuple[Any, ...], recorded: Any) -> Any:
        """What the program gets for a step's recorded result, live or replayed."""
        if action in NAVIGATIONS and isinstance(recorded, dict):
            return NavigationResult(**recorded)
        if action == "wait_for_selector":
            if not recorded:
                return None
            from .objects import RecordedLocator

            return RecordedLocator(self, [*chain, ["locator", [args[0]], {}]])
        if action == "wait_for_function":
            return RecordedHandle(self.kind, recorded)
        return recorded

    def _follow(self, record: StepRecord, action: str) -> None:
        """Keep what a replayed step tells of the page (see :meth:`_track`)."""
        if action != "expect":
            self.history.append(record)
        meta = record.meta
        if self._track(action, meta, marked="effect" in meta, failed=record.error is not None):
            self.window.append(record)

    def _track(self, action: str, meta: dict[str, Any], *, marked: bool, failed: bool) -> bool:
        """Keep what a step tells of the page: its URL, its frames and the checkpoint a
        restore starts from. True when a restore runs the step again (an in-page step
        since the page last navigated, see chains.REAPPLIED): its own checkpoint is not
        that start, as the restore runs it on the state before it, so it lands once."""
        url = meta.get("url", self.url)
        reapplied = False
        if url != self.url or action in NAVIGATIONS:
            self.window = []  # what the page did before is gone, and so is what this did
        else:
            reapplied = _reapplies(action, marked) and not failed
        self.url = url
        if "checkpoint" in meta and not reapplied:
            self.checkpoint = self.family.checkpoint = meta["checkpoint"]
        if "frames" in meta:
            self.frames = meta["frames"]
        return reapplied

    def _checkpoint_steps(
        self, page: Any, chain: list[Any], action: str, raw: Any, effect: str | None
    ) -> Generator[Op, Any, bytes | None]:
        """The checkpoint of a step that needs one (see :func:`_needs_checkpoint`); an
        in-page step a restore runs again only settles, unless it navigated."""
        if page.is_closed() or not _needs_checkpoint(chain, action, raw, effect, page, self.watch):
            return None
        capture = functools.partial(
            checkpoints.capture_steps, page, self.local_by_origin,
            indexed_db=self.options.indexed_db, watch=self.watch,
        )  # fmt: skip
        data = yield from capture(settle_only=_reapplies(action, effect is not None))
        if data is None and page.url != self.url:  # an in-page step that navigated
            data = yield from capture()
        return data

    def _events_steps(
        self, meta: dict[str, Any], blobs: dict[str, bytes]
    ) -> Generator[Op, Any, None]:
        found, more = yield from events.collect_steps(self)
        if found:
            meta["events"] = found
            blobs.update(more)

    def event_step_steps(
        self, kind: str, pending: events.Pending | None
    ) -> Generator[Op, Any, None]:
        """An event an expectation waited for, written as a step of its own (it came
        after the step that caused it was written): live, ``pending`` is it; replayed,
        the record gives it back."""
        request = {"page": self.index, "prev": self.last_key, "event": kind}
        call = self.run.begin("browser", "event", request, {"action": f"event:{kind}"},
                              live=self.started)  # fmt: skip
        if call.replayed:
            assert call.record is not None
            self.last_key = call.key
            record, kept = secret_steps.unseal(self.run.journal, call.record)
            event = secret_steps.real_result(self.run.journal, record, kept, call.replay())
            yield from events.deliver_steps(self, event)
            return
        if pending is None:
            raise BrowserReexecutionError(
                f"page {self.index}: the {kind} this code waits for was not recorded: the "
                f"step that caused it replayed (the process stopped between that step and "
                f"the {kind}'s record), so it will not happen again. Re-run the cell with "
                "recorder.run(..., mode='record') to record the run anew."
            )
        found, blobs = yield from events.collect_steps(self, pending)
        written, meta = secret_steps.seal(call, found[0], {"url": self.url}, blobs,
                                          params=self.secret_params)  # fmt: skip
        call.commit(written, meta=meta, blobs=blobs)
        self.last_key = call.key

    def _screenshot_steps(self, page: Any) -> Generator[Op, Any, bytes | None]:
        try:
            shot = yield page.screenshot
        except Exception:  # a screenshot is evidence, never the reason a step fails
            return None
        return bytes(shot)

    # -- going live --------------------------------------------------------------------

    def _restore_point(self) -> dict[str, Any] | None:
        """The state a restore starts from: cookies, localStorage and viewport from the
        latest checkpoint of the page's context (any of its pages), sessionStorage from
        the page's own latest (none for a page with no checkpoint of its own: a new tab),
        and the page's recorded URL, where it ended after the checkpoint too (a ``goto``
        that took none)."""
        latest = self.family.checkpoint
        if latest is None:
            return None
        found: dict[str, Any] = self._load_checkpoint(latest)
        if self.checkpoint is None:
            found["session"] = {}
        elif self.checkpoint != latest:
            own = self._load_checkpoint(self.checkpoint)
            found["session"] = own.get("session") or {}
            found["viewport"] = own.get("viewport") or found.get("viewport")
        found["url"] = self.url
        return found

    def _load_checkpoint(self, ref: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.run.journal.blob(ref, step=f"page {self.index} checkpoint")
        )
        return found

    def live_steps(self) -> Generator[Op, Any, Any]:
        """The real page, at the state the record describes (see the module docstring);
        from now on the page's steps run live. A page given to ``run.wrap`` is restored
        in place (its context gets the cookies, its origin the storage)."""
        if self.started:
            if self.watch is not None and not self.watch.attached:  # a popup
                yield from self.watch.attach_steps(self.real, None)
            return self.real
        opts, family = self.options, self.family
        restore = self._restore_point() if opts.resume == BrowserResume.RESTORE else None
        if self.real is None:
            if family.context is None:
                browser = yield from launch_steps(
                    self.kind, _starter(self.kind), chromium=opts.chromium, headless=opts.headless
                )
                options = {**opts.context, **family.options}
                if restore is not None:
                    options = checkpoints.context_options(restore, options)
                context = yield lambda: browser.new_context(**options)
                self.run.add_closer(context.close)
                family.context = context
            elif restore is not None and restore.get("cookies"):
                context = family.context
                yield lambda: context.add_cookies(restore["cookies"])
            context = family.context
            self.real = yield context.new_page
            family.pages.setdefault(self.index, self.public)
        elif restore is not None and restore.get("cookies"):
            context = self.real.context
            yield lambda: context.add_cookies(restore["cookies"])
        page = self.real
        if opts.resume == BrowserResume.REEXECUTE and self.history:
            yield from self._reexecute_steps(page, self.history, "re-executing")
        elif opts.resume == BrowserResume.RESTORE:
            if restore is not None:
                self.local_by_origin = {
                    o["origin"]: [[i["name"], i["value"]] for i in o.get("localStorage", [])]
                    for o in restore.get("origins", [])
                }
                yield from checkpoints.restore_steps(
                    page, restore, _fulfill(self.kind), local=not self.owned
                )
            elif urlsplit(self.url).scheme in checkpoints.LOADABLE and page.url != self.url:
                yield lambda: page.goto(self.url)  # nothing to restore but the URL
            if self.window:
                yield from self._reexecute_steps(page, self.window, "restoring")
        self.watch = yield from checkpoints.watch_steps(page, page.context if self.owned else None)
        events.listen(self)
        for deferred in self.deferred:
            yield functools.partial(deferred, page)
        self.deferred = []
        self.started = True
        return page

    def _reexecute_steps(
        self, page: Any, history: list[StepRecord], why: str
    ) -> Generator[Op, Any, None]:
        """Run recorded steps again, live, checking each result against the record
        (``why`` says in errors what was being done), each waiting at most
        :data:`RESUME_TIMEOUT_MS` for its element."""
        journal = self.run.journal
        hint = (
            "Record the run again (recorder.run(..., mode='record'))."
            if why == "re-executing"
            else "The page's state came partly from steps that are never run again (clicks, "
            "key presses). Use recorder.Browser(resume='reexecute') to run the whole page "
            "history again, or record the run again (mode='record')."
        )
        for record in history:
            request, want = secret_steps.real_request(journal, record)
            chain, action = request["target"], request["action"]
            where = f"step #{record.seq} ({action} {describe(chain) or request['args']})"
            args = decode_arg(page, request["args"])
            kwargs = decode_arg(page, request["kwargs"])
            if takes_timeout(self.kind, api_name(chain), action):
                kwargs.setdefault("timeout", RESUME_TIMEOUT_MS)
            try:
                target = resolve(page, chain)
                raw = yield functools.partial(getattr(target, action), *args, **kwargs)
            except Exception as error:
                if record.error is not None:
                    continue  # it failed when recorded too
                raise BrowserReexecutionError(
                    f"{why} page {self.index} at {page.url}: {where} raised {error!r:.200}; the "
                    f"record has it succeeding. {hint}"
                ) from error
            if record.error is not None:
                raise BrowserReexecutionError(
                    f"{why} page {self.index}: {where} succeeded; the record has it failing "
                    f"with {record.error.summary}. {hint}"
                )
            if action in SCREENSHOTS:
                continue
            got = _result_of(action, raw)
            if action in NAVIGATIONS and isinstance(got, dict) and isinstance(want, dict):
                got, want = got.get("url"), want.get("url")
            if isinstance(got, bytes | bytearray) or (isinstance(want, dict) and "$blob" in want):
                continue
            if dumps(got) != dumps(want):
                raise BrowserReexecutionError(
                    f"{why} page {self.index}: {where} gave {got!r:.160}, the record has "
                    f"{want!r:.160}: the page is not in the recorded state. {hint}"
                )


def _reapplies(action: str, marked: bool) -> bool:
    """Whether a restore runs the step again when the page has not navigated since (see
    chains.REAPPLIED; never one ``marked`` as a side effect)."""
    return action in REAPPLIED and not marked


def _needs_checkpoint(
    chain: list[Any],
    action: str,
    raw: Any,
    effect: str | None,
    page: Any,
    watch: checkpoints.NavigationWatch | None,
) -> bool:
    """Whether a live step that succeeded takes a checkpoint: every step that can change
    state does, except a page's ``goto`` that landed where it was sent. A restore loads
    the page's recorded URL anyway, so the answer's cookies and the page's scripts act
    once, on the state from before the ``goto`` (its own checkpoint would make them act
    twice). One that was redirected, or whose page has moved on or is moving on (a
    script's redirect), takes one: the URL it started from may have set state the one
    it ends on does not (a sign-in link). So does one marked as a side effect.
    An in-page step a restore runs again (:func:`_reapplies`) has its page's state read
    to see a navigation it started land (a ``select_option`` whose change handler
    submits its form), and takes a checkpoint only if it navigated."""
    if action not in CHANGES_STATE:
        return False
    if action == "goto" and not chain and effect is None and raw is not None:
        redirected = raw.request.redirected_from is not None
        moving = page.url != raw.url or (watch is not None and bool(watch.pending))
        return redirected or moving
    return True


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
