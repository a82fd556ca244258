"""Playwright's own ``expect`` on recorded pages and locators.

``from playwright.async_api import expect; await expect(page.locator("#x")).to_have_text("y")``
works on a recorded page: each assertion is a browser step. Live, it asserts against
the real object with Playwright's own assertion (its retries and timeout); recorded,
its outcome (passed, or Playwright's AssertionError message) replays with no browser.

Playwright's ``expect`` accepts only its own Page, Locator and APIResponse classes, so
:func:`install` wraps the dispatch of its ``Expect`` class (both APIs) to hand recorded
objects to :class:`RecordedAssertions` and everything else to Playwright unchanged.
``Expect._dispatch`` is private: where a Playwright release lacks it, the public
``__call__`` is wrapped instead (``soft`` then stays Playwright's), and the test suite
checks that the hook is in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RecordedAssertions", "install"]

_installed = False


class RecordedAssertions:
    """What ``expect(recorded)`` returns: every ``to_*`` assertion (and ``not_``) of
    Playwright's Page/Locator assertions, as a recorded step."""

    def __init__(
        self, target: Any, dispatch: Callable[..., Any], expect: Any, message: str | None,
        soft: bool, negated: bool = False,
    ) -> None:  # fmt: skip
        self._target, self._dispatch, self._expect = target, dispatch, expect
        self._message, self._soft, self._negated = message, soft, negated

    @property
    def not_(self) -> RecordedAssertions:
        return RecordedAssertions(self._target, self._dispatch, self._expect, self._message,
                                  self._soft, not self._negated)  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("to_"):
            raise AttributeError(name)
        target = self._target
        state, chain = target._state, target._chain

        def assertion(*args: Any, **kwargs: Any) -> Any:
            recorded_kwargs = dict(kwargs)
            timeout = getattr(self._expect, "_timeout", None)
            if timeout is not None:
                recorded_kwargs.setdefault("timeout", timeout)
            if self._message is not None:
                recorded_kwargs["$message"] = self._message
            if self._negated:
                recorded_kwargs["$not"] = True

            def execute(page: Any) -> Any:
                from .chains import decode_arg, encode_arg, resolve

                real = resolve(page, chain)
                checks = self._dispatch(self._expect, real, self._message, self._soft)
                if self._negated:
                    checks = checks.not_
                real_args = decode_arg(page, encode_arg(list(args)))
                real_kwargs = decode_arg(page, encode_arg(kwargs))
                if timeout is not None:
                    real_kwargs.setdefault("timeout", timeout)
                return lambda: getattr(checks, name)(*real_args, **real_kwargs)

            steps = state.step_steps(chain, "expect", (name, *args), recorded_kwargs,
                                     execute=execute, name=f"expect.{name}")  # fmt: skip
            return state.drive(steps)

        return assertion


def install() -> None:
    """Let Playwright's ``expect`` take recorded pages and locators (once per process)."""
    global _installed
    if _installed:
        return
    from playwright import async_api, sync_api

    from .objects import RecordedLocator, RecordedPage

    for api in (async_api, sync_api):
        cls = api.Expect
        if hasattr(cls, "_dispatch"):
            original = cls._dispatch

            def dispatch(self: Any, actual: Any, message: Any, is_soft: bool,
                         _original: Any = original) -> Any:  # fmt: skip
                if isinstance(actual, RecordedPage | RecordedLocator):
                    return RecordedAssertions(actual, _original, self, message, is_soft)
                return _original(self, actual, message, is_soft)

            cls._dispatch = dispatch
        else:
            call = cls.__call__

            def plain(self: Any, actual: Any, message: Any = None, _call: Any = call) -> Any:
                if isinstance(actual, RecordedPage | RecordedLocator):
                    return RecordedAssertions(
                        actual, lambda e, a, m, s: _call(e, a, m), self, message, False
                    )
                return _call(self, actual, message)

            cls.__call__ = plain
    _installed = True
