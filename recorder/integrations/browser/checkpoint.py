"""Browser-state checkpoints: capture after a state-changing step, restore on resume.

A checkpoint is the JSON of the URL, the cookies, localStorage of every origin the
context visited (Playwright's ``storage_state``), the current origin's sessionStorage
(which ``storage_state`` lacks), the viewport, and IndexedDB when asked. It is stored as
a content-addressed blob, so an unchanged state costs nothing. Cookie and storage values
are secrets: they live only in these blobs (readable by the owner only), never in
traces, exports or CLI output.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

from .drive import Op

__all__ = ["CHECKPOINT_VERSION", "capture_steps", "context_options", "restore_steps"]

CHECKPOINT_VERSION = 1

_PAGE_STATE_JS = """() => {
  const session = [];
  try {
    for (let i = 0; i < sessionStorage.length; i++) {
      const name = sessionStorage.key(i);
      session.push([name, sessionStorage.getItem(name)]);
    }
  } catch (e) {}
  return {origin: location.origin, session, width: innerWidth, height: innerHeight};
}"""

_RESTORE_SESSION_JS = """items => { for (const [k, v] of items) sessionStorage.setItem(k, v); }"""
_RESTORE_PATH = "/__recorder_restore_session__"


def capture_steps(page: Any, *, indexed_db: bool) -> Generator[Op, Any, bytes]:
    """Steps returning the checkpoint of ``page`` as canonical JSON bytes."""
    context = page.context
    if indexed_db:
        storage = yield lambda: context.storage_state(indexed_db=True)
    else:
        storage = yield context.storage_state
    state = yield lambda: page.evaluate(_PAGE_STATE_JS)
    checkpoint = {
        "v": CHECKPOINT_VERSION,
        "url": page.url,
        "cookies": storage.get("cookies", []),
        "origins": storage.get("origins", []),
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


def restore_steps(page: Any, checkpoint: dict[str, Any], fulfill: Any) -> Generator[Op, Any, None]:
    """Steps that put back sessionStorage, then open the checkpoint's URL.

    sessionStorage belongs to the tab and the origin, so it is written from a blank page
    served by the recorder itself at that origin (no request reaches the site), then the
    real URL is loaded in the same tab. ``fulfill`` makes the route handler for the API
    in use (sync or async).
    """
    session = checkpoint.get("session") or {}
    items = session.get("items") or []
    origin = session.get("origin") or ""
    if items and origin.startswith(("http://", "https://")):
        blank = origin + _RESTORE_PATH
        yield lambda: page.route(blank, fulfill)
        try:
            yield lambda: page.goto(blank)
            yield lambda: page.evaluate(_RESTORE_SESSION_JS, items)
        finally:
            yield lambda: page.unroute(blank)
    url = checkpoint.get("url") or ""
    if urlsplit(url).scheme in ("http", "https", "file"):
        yield lambda: page.goto(url)
