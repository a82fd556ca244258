"""Browser-state checkpoints: capture after a state-changing step, restore on resume.

A checkpoint is the JSON of the URL, the cookies, localStorage of every origin the
context visited (Playwright's ``storage_state``), the current origin's sessionStorage
(which ``storage_state`` lacks), the viewport, and IndexedDB when asked. It is stored as
a content-addressed blob, so an unchanged state costs nothing. Cookie and storage values
are secrets: they live only in these blobs (readable by the owner only), never in
traces, exports or CLI output.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

from .drive import Op, Parallel, together

__all__ = [
    "CHECKPOINT_VERSION",
    "LOADABLE",
    "NAVIGATION_JS",
    "NavigationWatch",
    "capture_steps",
    "context_options",
    "restore_steps",
    "watch_steps",
]

CHECKPOINT_VERSION = 1
SETTLE_LIMIT_S = 10.0
"""How long a capture waits for a navigation the step started to land."""
_POLL_MS = 20

# The two zero-delay timers let the page run what the action queued (a form submitted
# from a click handler, a redirect in a timeout 0) before the state is read.
_PAGE_STATE_JS = """async () => {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  const read = (storage) => {
    const items = [];
    try {
      for (let i = 0; i < storage.length; i++) {
        const name = storage.key(i);
        items.push([name, storage.getItem(name)]);
      }
    } catch (e) {}
    return items;
  };
  const nav = window.__recorderNavigation;
  return {origin: location.origin, local: read(localStorage), session: read(sessionStorage),
          width: innerWidth, height: innerHeight, ready: document.readyState,
          leaving: nav ? nav.leaving : null};
}"""

# Where no DevTools session can be opened (not Chromium), installed in every document of
# a watched page: the Navigation API's "navigate" event fires in the page, synchronously,
# when the document starts a navigation away (a form submitted, location assigned, a link
# followed), before any network event reaches Playwright; the capture reads it to know
# the document is about to be replaced.
NAVIGATION_JS = """(() => {
  if (window.__recorderNavigation || !window.navigation) return;
  const state = window.__recorderNavigation = {leaving: null};
  window.navigation.addEventListener("navigate", (event) => {
    if (!event.destination.sameDocument) state.leaving = event.destination.url;
  });
})()"""
_LEAVING_POLLS = 50
"""Polls (of _POLL_MS) a document that announced it is leaving is waited for when no
navigation request follows (a download, a 204 answer, a navigation the page cancelled)."""
_NAVIGATION_EVENTS = (
    "Page.frameRequestedNavigation",
    "Page.frameStartedLoading",
    "Page.frameNavigated",
    "Page.frameStoppedLoading",
)

_RESTORE_STORAGE_JS = """([session, local]) => {
  for (const [k, v] of session) sessionStorage.setItem(k, v);
  for (const [k, v] of local) localStorage.setItem(k, v);
}"""
_RESTORE_PATH = "/__recorder_restore_session__"
LOADABLE = ("http", "https", "file")
"""URL schemes a restore loads (others, such as ``about:`` and ``data:``, are left)."""


def watch_steps(page: Any, context: Any | None) -> Generator[Op, Any, NavigationWatch]:
    """Start watching ``page`` (see :class:`NavigationWatch`); ``context`` is the page's
    context when the recorder made it."""
    watch = NavigationWatch(page)
    yield from watch.attach_steps(page, context)
    return watch


class NavigationWatch:
    """Follows a real page's main-frame navigations, so a capture can tell that the step
    it follows started one that has not landed yet.

    Playwright no longer promises that ``click`` or ``press`` return after the
    navigation they cause (a form posted from a click handler, a redirect in a timer):
    without this a checkpoint could hold the page before the navigation, and a resumed
    run would be restored to it (signed out, on the old URL).

    Two sources: Playwright's events for the page's navigation requests (``pending``,
    ``seen``), and, from :meth:`attach_steps` on, the page's own word that its document
    is leaving. In Chromium that word is a DevTools session of the page's own
    (``Page.frameRequestedNavigation``, sent by the renderer as the navigation starts,
    so before the answer of any state read that runs after it on the same session),
    and the state is read through that session too: no script is added to the page,
    and no Playwright script is loaded into its JavaScript world (a page without
    scripts of its own would otherwise get one, some 30 ms of CPU per document).
    Elsewhere :data:`NAVIGATION_JS` is installed in every document and read with the
    state.
    """

    def __init__(self, page: Any) -> None:
        self.pending: set[Any] = set()
        self.seen = 0
        self.attached = False
        self.session: Any | None = None
        self.leaving: str | None = None
        self._main_frame: str | None = None
        self._loading = False
        self.page = _listen_quietly(page, {
            "request": self._request,
            "requestfinished": self._finished,
            "requestfailed": self._finished,
            "framenavigated": self._navigated,
        })  # fmt: skip

    def attach_steps(self, page: Any, context: Any | None) -> Generator[Op, Any, None]:
        """Open the page's DevTools session (Chromium), else install
        :data:`NAVIGATION_JS` (for ``context`` when given, so that its popups have it
        too, else for the page) and run it in the current document unless it is the
        blank document of a new page. Once per page, before its first live step."""
        self.attached = True
        try:
            session = yield lambda: page.context.new_cdp_session(page)
        except Exception:  # not Chromium (or a page being closed): the script instead
            session = None
        if session is not None:
            for name in _NAVIGATION_EVENTS:
                session.on(name, functools.partial(self._devtools, name))
            _, tree = yield Parallel(
                lambda: session.send("Page.enable"), lambda: session.send("Page.getFrameTree")
            )
            self._main_frame = tree["frameTree"]["frame"]["id"]
            self.session = session
            return
        if context is not None:
            yield lambda: context.add_init_script(NAVIGATION_JS)
        else:
            yield lambda: page.add_init_script(NAVIGATION_JS)
        if page.url != "about:blank":  # a new page's next document gets the init script
            with contextlib.suppress(Exception):  # a page mid-navigation: its next has it
                yield lambda: page.evaluate(NAVIGATION_JS)

    def _devtools(self, name: str, params: dict[str, Any]) -> None:
        frame = params.get("frame") or {}
        if (params.get("frameId") or frame.get("id")) != self._main_frame:
            return
        if name == "Page.frameRequestedNavigation":
            if params.get("disposition", "currentTab") == "currentTab":
                self.leaving, self._loading = params.get("url") or "", False
        elif name == "Page.frameStartedLoading":
            self._loading = self.leaving is not None
        elif name == "Page.frameNavigated" or self._loading:  # a new document, or none
            self.leaving, self._loading = None, False  # (a 204 answer, a download)

    def _request(self, request: Any) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.pending.add(request)
            self.seen += 1

    def _finished(self, request: Any) -> None:
        # a redirect finishes its request and issues the next one at once
        if request.redirected_to is None:
            self.pending.discard(request)

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.pending.clear()


def _listen_quietly(page: Any, listeners: dict[str, Callable[[Any], None]]) -> Any:
    """Hear ``listeners``' events of ``page`` without asking Playwright's driver for
    more events, and return the object they hear from (Playwright's own page object:
    its requests and frames are Playwright's own too, compared with its ``main_frame``).

    The driver sends every navigation request of a page (and its redirects, finish or
    failure) whatever the client listens to; ``page.on("request")`` would add a call
    per event and make the driver send every other request of the page as well, for
    nothing the watch uses. So the page's ``emit`` is wrapped, which leaves its
    listeners as they were: a ``page.on("request")`` of the program still subscribes.
    Where Playwright's internals differ, ``page.on``."""
    impl = getattr(page, "_impl_obj", None)
    emit = getattr(impl, "emit", None)
    if impl is None or emit is None or not hasattr(impl, "main_frame"):
        for event, listener in listeners.items():
            page.on(event, listener)
        return page

    def heard(event: Any, *args: Any, **kwargs: Any) -> Any:
        listener = listeners.get(event) if isinstance(event, str) else None
        if listener is not None and args:
            listener(args[0])
        return emit(event, *args, **kwargs)

    impl.emit = heard
    return impl


def _is_navigation_race(error: Exception) -> bool:
    text = str(error)
    return any(
        part in text
        for part in ("context was destroyed", "navigat", "Cannot find default execution context")
    )


def _read_state_steps(page: Any, watch: NavigationWatch | None) -> Generator[Op, Any, Any]:
    """:data:`_PAGE_STATE_JS` run in the page: through the watch's DevTools session
    when it has one (no Playwright script loaded into the page's world), else with
    ``page.evaluate``."""
    session = watch.session if watch is not None else None
    if session is None:
        return (yield lambda: page.evaluate(_PAGE_STATE_JS))
    answer = yield lambda: session.send("Runtime.evaluate", {
        "expression": f"({_PAGE_STATE_JS})()", "awaitPromise": True, "returnByValue": True,
    })  # fmt: skip
    details = answer.get("exceptionDetails")
    if details:
        thrown = details.get("exception") or {}
        raise RuntimeError(
            "the page's state could not be read: "
            + str(thrown.get("description") or details.get("text") or details)
        )
    return answer["result"]["value"]


def capture_steps(
    page: Any,
    local_by_origin: dict[str, list[Any]],
    *,
    indexed_db: bool,
    watch: NavigationWatch | None = None,
    settle_only: bool = False,
) -> Generator[Op, Any, bytes | None]:
    """Steps returning the checkpoint of ``page`` as canonical JSON bytes (with
    ``settle_only``, None: the page's storage is read and a navigation waited for as
    below, but not the cookies, and no checkpoint is made).

    Cookies come from the context and the current origin's storage from one script in
    the page, read together (two round trips, in parallel with the async API).
    ``local_by_origin`` carries localStorage of the origins this page visited before
    and is updated with the current one. With ``indexed_db`` Playwright's
    ``storage_state(indexed_db=True)`` is used instead, at several times the cost.

    The state is read once the page has settled: a main-frame navigation that ``watch``
    saw start (before or during the read) is waited for, up to :data:`SETTLE_LIMIT_S`,
    and the state read again on the new document. A navigation that a page starts
    later than its queued tasks (after a fetch, in a delayed timer) is not waited for:
    follow such an action with ``page.wait_for_url(...)``, which is recorded and
    checkpointed.
    """
    context = page.context
    polls = int(SETTLE_LIMIT_S * 1000 / _POLL_MS)
    for poll in range(polls + 1):
        seen = watch.seen if watch is not None else 0
        try:
            if settle_only:
                state = yield from _read_state_steps(page, watch)
            elif indexed_db:
                storage, state = yield from together(
                    lambda: context.storage_state(indexed_db=True),
                    _read_state_steps(page, watch),
                )
            else:
                cookies, state = yield from together(
                    context.cookies, _read_state_steps(page, watch)
                )
        except Exception as error:
            if poll == polls or not _is_navigation_race(error):
                raise
            yield lambda: page.wait_for_timeout(_POLL_MS)
            continue
        moving = watch is not None and (watch.pending or watch.seen != seen)
        announced = state.get("leaving") or (watch is not None and watch.leaving is not None)
        leaving = announced and poll < _LEAVING_POLLS
        if poll == polls or not (moving or leaving or state["ready"] == "loading"):
            break
        yield lambda: page.wait_for_timeout(_POLL_MS)
    if watch is not None and poll >= _LEAVING_POLLS:
        watch.leaving = None  # announced, never followed (cancelled): not waited for again
    if not indexed_db and state["origin"].startswith(("http://", "https://")):
        local_by_origin[state["origin"]] = state["local"]
    if settle_only:
        return None
    if indexed_db:
        origins = storage.get("origins", [])
        cookies = storage.get("cookies", [])
    else:
        origins = [
            {"origin": origin, "localStorage": [{"name": k, "value": v} for k, v in items]}
            for origin, items in sorted(local_by_origin.items())
            if items
        ]
    checkpoint = {
        "v": CHECKPOINT_VERSION,
        "url": page.url,
        "cookies": cookies,
        "origins": origins,
        "session": {"origin": state["origin"], "items": state["session"]},
        "viewport": page.viewport_size or {"width": state["width"], "height": state["height"]},
    }
    return json.dumps(checkpoint, sort_keys=True, separators=(",", ":")).encode()


def context_options(checkpoint: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``new_context`` options that put back the checkpoint's cookies, localStorage and
    viewport (the caller's own options win where both are given)."""
    options = dict(base)
    options.setdefault(
        "storage_state", {"cookies": checkpoint["cookies"], "origins": checkpoint["origins"]}
    )
    if checkpoint.get("viewport"):
        options.setdefault("viewport", checkpoint["viewport"])
    return options


def restore_steps(
    page: Any, checkpoint: dict[str, Any], fulfill: Any, *, local: bool = False
) -> Generator[Op, Any, None]:
    """Steps that put back sessionStorage (and, with ``local``, localStorage of the same
    origin, for a page whose context the recorder did not make), then open the
    checkpoint's URL.

    Storage belongs to the origin (sessionStorage also to the tab), so it is written
    from a blank page served by the recorder itself at that origin (no request reaches
    the site), then the real URL is loaded in the same tab. ``fulfill`` makes the route
    handler for the API in use (sync or async).
    """
    session = checkpoint.get("session") or {}
    origin = session.get("origin") or ""
    items = session.get("items") or []
    local_items: list[list[str]] = []
    if local:
        for entry in checkpoint.get("origins", []):
            if entry.get("origin") == origin:
                local_items = [[i["name"], i["value"]] for i in entry.get("localStorage", [])]
    if (items or local_items) and origin.startswith(("http://", "https://")):
        blank = origin + _RESTORE_PATH
        yield lambda: page.route(blank, fulfill)
        try:
            yield lambda: page.goto(blank)
            yield lambda: page.evaluate(_RESTORE_STORAGE_JS, [items, local_items])
        finally:
            yield lambda: page.unroute(blank)
    url = checkpoint.get("url") or ""
    if urlsplit(url).scheme in LOADABLE:
        yield lambda: page.goto(url)
