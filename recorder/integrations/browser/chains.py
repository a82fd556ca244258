"""What a recorded browser call is made of: its method family, its target (a chain of
builders from the page, such as ``locator("#row") >> nth(2)`` or ``frame_locator("#f")
>> get_by_role("button")``), and its arguments in a JSON form that can run again.

Nothing here touches a browser: :func:`resolve` turns a chain back into the real
Playwright object once there is a real page.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from typing import Any

__all__ = [
    "ACTIONS", "BUILDERS", "CHANGES_STATE", "EVALUATES", "INPUTS", "NAVIGATIONS",
    "PLAIN_WAITS", "PROPERTIES", "READS", "REAPPLIED", "RECORDED", "SCREENSHOTS", "WAITS",
    "api_class", "api_name", "decode_arg", "describe", "encode_arg", "has_method",
    "resolve", "selector_argument", "takes_timeout",
]  # fmt: skip

NAVIGATIONS = frozenset({"goto", "reload", "go_back", "go_forward"})
WAITS = frozenset({"wait_for_url", "wait_for_load_state"})
"""Waits after which a checkpoint is taken (they let a navigation land)."""
PLAIN_WAITS = frozenset({"wait_for_selector", "wait_for", "wait_for_timeout", "wait_for_function"})
"""Waits recorded as steps: a replay returns at once, with no browser."""
ACTIONS = frozenset({
    "click", "dblclick", "fill", "type", "press", "check", "uncheck", "set_checked",
    "select_option", "hover", "set_input_files", "drag_and_drop", "drag_to", "focus",
    "clear", "press_sequentially", "tap", "blur", "dispatch_event",
    "scroll_into_view_if_needed", "select_text", "bring_to_front", "set_viewport_size",
    # keyboard and mouse (page.keyboard.press, page.mouse.click...)
    "down", "up", "insert_text", "move", "wheel",
})  # fmt: skip
READS = frozenset({
    "content", "title", "inner_text", "inner_html", "text_content", "input_value",
    "get_attribute", "is_visible", "is_hidden", "is_checked", "is_enabled", "is_disabled",
    "is_editable", "count", "all_inner_texts", "all_text_contents", "aria_snapshot",
    "bounding_box",
})  # fmt: skip
EVALUATES = frozenset({"evaluate", "evaluate_all"})
INPUTS = frozenset({
    "fill", "type", "press_sequentially", "check", "uncheck", "set_checked", "select_option",
    "set_input_files", "clear",
})  # fmt: skip
"""Actions that only set a form control."""
REAPPLIED = INPUTS | EVALUATES | frozenset({"hover", "focus", "scroll_into_view_if_needed"})
"""In-page steps a restore runs again after the checkpoint's URL is loaded: they rebuild
what no checkpoint holds (typed values, marks an ``evaluate`` left in the DOM) and send
nothing to the site by themselves. Clicks and key presses are never run again: they
may submit."""
SCREENSHOTS = frozenset({"screenshot"})
RECORDED = NAVIGATIONS | WAITS | PLAIN_WAITS | ACTIONS | READS | EVALUATES | SCREENSHOTS
CHANGES_STATE = NAVIGATIONS | WAITS | ACTIONS | EVALUATES
"""Steps after which a checkpoint is taken (but a plain ``goto``: see page._needs_checkpoint)."""
BUILDERS = frozenset({
    "locator", "get_by_role", "get_by_text", "get_by_label", "get_by_placeholder",
    "get_by_test_id", "get_by_alt_text", "get_by_title", "nth", "filter", "and_", "or_",
    "frame_locator", "frame",
})  # fmt: skip
PROPERTIES = frozenset({
    "first", "last", "keyboard", "mouse", "touchscreen", "main_frame", "content_frame", "owner",
})  # fmt: skip
_FRAMES = "$frames"
"""The chain link of ``page.frames[i]``."""


def encode_arg(value: Any) -> Any:
    """A step argument in a JSON form that can be run again: recorded locators become
    their chain, regular expressions their pattern and flags."""
    chain = getattr(value, "_chain", None)
    if chain is not None and hasattr(value, "_state"):
        return {"$locator": chain}
    if isinstance(value, re.Pattern):
        return {"$regex": value.pattern, "flags": int(value.flags)}
    if isinstance(value, list | tuple):
        return [encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_arg(v) for k, v in value.items()}
    return value


def decode_arg(page: Any, value: Any) -> Any:
    if isinstance(value, list):
        return [decode_arg(page, v) for v in value]
    if isinstance(value, dict):
        if "$locator" in value and len(value) == 1:
            return resolve(page, value["$locator"])
        if "$regex" in value:
            return re.compile(value["$regex"], value.get("flags", 0))
        return {k: decode_arg(page, v) for k, v in value.items()}
    return value


def resolve(page: Any, chain: list[Any]) -> Any:
    """The real Playwright object a chain of builders names, from ``page``."""
    target = page
    for name, args, kwargs in chain:
        if name == _FRAMES:
            target = target.frames[args[0]]
        elif name in PROPERTIES:
            target = getattr(target, name)
        else:
            target = getattr(target, name)(*decode_arg(page, args), **decode_arg(page, kwargs))
        if target is None:
            raise LookupError(f"{describe(chain)}: Playwright found no such frame")
    return target


def describe(chain: list[Any]) -> str:
    """``locator('#row') >> nth(2)``: a chain as the trace shows it."""
    parts = []
    for name, args, kwargs in chain:
        if name in PROPERTIES:
            parts.append(name)
            continue
        if name == _FRAMES:
            parts.append(f"frames[{args[0]}]")
            continue
        shown = [json.dumps(a) for a in args] + [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
        parts.append(f"{name}({', '.join(shown)})")
    return " >> ".join(parts)


def selector_argument(action: str, args: tuple[Any, ...]) -> str | None:
    """The selector of a page-level call such as ``page.click("#go")``."""
    takes_selector = action in ACTIONS | READS | {"wait_for_selector"} and action not in (
        "content", "title", "bring_to_front", "set_viewport_size",
    )  # fmt: skip
    if takes_selector and args and isinstance(args[0], str):
        return args[0]
    return None


def api_name(chain: list[Any]) -> str:
    """The Playwright class of the object a chain names (``Page``, ``Locator``,
    ``FrameLocator``, ``Frame``, ``Keyboard``, ``Mouse``, ``Touchscreen``)."""
    kind = "Page"
    for name, _args, _kwargs in chain:
        if name in ("keyboard", "mouse", "touchscreen"):
            kind = name.capitalize()
        elif name in ("frame_locator", "content_frame"):
            kind = "FrameLocator"
        elif name in ("frame", "main_frame", _FRAMES):
            kind = "Frame"
        elif name in ("nth", "first", "last") and kind == "FrameLocator":
            continue
        else:
            kind = "Locator"
    return kind


def api_class(kind: str, name: str) -> Any:
    """Playwright's class ``name`` of the sync or async API."""
    if kind == "async":
        import playwright.async_api as api
    else:
        import playwright.sync_api as api  # type: ignore[no-redef]
    return getattr(api, name)


@functools.cache
def has_method(kind: str, cls: str, name: str) -> bool:
    return hasattr(api_class(kind, cls), name)


@functools.cache
def takes_timeout(kind: str, cls: str, name: str) -> bool:
    try:
        return "timeout" in inspect.signature(getattr(api_class(kind, cls), name)).parameters
    except (AttributeError, TypeError, ValueError):
        return False
