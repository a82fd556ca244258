"""Secrets in browser steps: what a person reads is redacted, what a replay needs is kept
where secrets are kept.

A browser step's request, its trace fields (``url``, ``frames``, ``events``,
``selector``) and its result may hold secrets: a token in a URL's query string, a value
typed into a password field. The step is keyed on the real request (replay finds it),
but the step record holds the redacted forms (:mod:`recorder.redaction`; a typed
password becomes ``[redacted]``), and the real request, trace fields and result go in
one blob of their own named by the record's ``meta["secret"]``, which, like a
checkpoint, lives only in the owner-only store and is withheld from bundles made
without ``include_secrets``.

A replay reads that blob for the steps that have one: ``page.url``, the recorded
result and the requests a restore runs again are the real ones. When the blob was
withheld (a bundle imported without secrets), a replay gives the redacted values, and
a restore that must type a withheld password raises, naming the bundle as the cause.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ... import values
from ...errors import DamagedRecordError
from ...journal import Journal, step_label
from ...keys import dumps, hash_bytes
from ...records import StepRecord
from ...redaction import REDACTED, SECRET_BLOB_FIELDS, redact_value, url_secrets
from .chains import api_name, resolve
from .drive import Op

if TYPE_CHECKING:
    from ...call import Call

__all__ = ["SECRET_FIELD", "TYPED", "is_password_steps", "real_request", "real_result", "seal",
           "unseal"]  # fmt: skip

SECRET_FIELD = SECRET_BLOB_FIELDS[1]
"""The trace field naming the blob of a step's real request, fields and result."""
TYPED = frozenset({"fill", "type", "press_sequentially", "insert_text"})
"""Actions whose text lands in the element they target (the focused one for the
keyboard): a password field's is a secret."""

_IS_PASSWORD = (
    "e => !!e && e.tagName === 'INPUT' && (e.type === 'password' || "
    "/password/i.test(e.getAttribute('autocomplete') || ''))"
)
_LOWER = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'"
_NOT_PASSWORD = (
    f"xpath=self::*[not(translate(@type, {_LOWER}) = 'password' or "
    f"contains(translate(@autocomplete, {_LOWER}), 'password'))]"
)
"""The element itself, unless it is a password field (XPath 1.0 has no lower-case)."""
_FOCUSED_IS_PASSWORD = (
    "() => { let e = document.activeElement; "
    "for (;;) { const inner = e && ((e.shadowRoot && e.shadowRoot.activeElement) || "
    "(e.contentDocument && e.contentDocument.activeElement)); if (!inner) break; e = inner; } "
    f"return ({_IS_PASSWORD})(e); }}"
)


def _typed_index(chain: list[Any]) -> int:
    """Where the typed text is among the arguments: after the selector on a page or a
    frame (``page.fill(selector, value)``), first on a locator or the keyboard."""
    return 1 if api_name(chain) in ("Page", "Frame") else 0


def is_password_steps(
    page: Any, chain: list[Any], action: str, args: tuple[Any, ...]
) -> Generator[Op, Any, bool]:
    """Whether ``action`` typed into a password field (``input[type=password]``, or one
    whose ``autocomplete`` names a password), asked of the live page right after the
    action. When the page cannot tell (the element is gone), the text counts as a
    secret."""
    if action not in TYPED:
        return False
    kind = api_name(chain)
    try:
        target = resolve(page, chain)
        if kind == "Keyboard":
            found = yield lambda: page.evaluate(_FOCUSED_IS_PASSWORD)
            return bool(found)
        if kind in ("Page", "Frame"):
            if not args or not isinstance(args[0], str):
                return True
            target = target.locator(args[0])
        # One selector, not an evaluate: Playwright matches it in its own isolated world,
        # which the action has just used, while a locator's evaluate would first load
        # Playwright's script into the page's world (some 50 ms of CPU per document).
        # It finds the element only when it is not a password field, so an element gone
        # since the action counts as one too. Without the tag name, a non-input marked
        # as a password counts as one.
        plain = yield target.locator(_NOT_PASSWORD).count
    except Exception:
        return True
    return not plain


def _hide_typed(request: Any, chain: list[Any]) -> tuple[Any, list[str]]:
    """``request`` with the typed text replaced by ``[redacted]``, and that text."""
    found: list[str] = []
    args = list(request.get("args") or [])
    index = _typed_index(chain)
    if index < len(args) and isinstance(args[index], str):
        found.append(args[index])
        args[index] = REDACTED
    kwargs = dict(request.get("kwargs") or {})
    for name in ("value", "text"):
        if isinstance(kwargs.get(name), str):
            found.append(kwargs[name])
            kwargs[name] = REDACTED
    return {**request, "args": args, "kwargs": kwargs}, found


def seal(
    call: Call,
    result: Any,
    meta: dict[str, Any],
    blobs: dict[str, bytes],
    *,
    params: frozenset[str],
    password: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The result and trace fields to write for ``call`` (live), redacted; sets the
    request to write (``call.written``), adds the blob of what was hidden to ``blobs``
    and names it in the returned fields, and tells the attempt the hidden values (so
    that a recorded error never shows them)."""
    request = call.request
    written_request = redact_value(request, params)
    hidden = url_secrets([request, meta, result], params)
    if password and isinstance(written_request, dict):
        written_request, typed = _hide_typed(written_request, call.request.get("target") or [])
        hidden.extend(typed)
    written_meta = redact_value(meta, params)
    written_result = redact_value(result, params)
    kept: dict[str, Any] = {}
    if written_request is not request:
        kept["request"] = request
        call.written = written_request
    if written_meta is not meta:
        kept["meta"] = meta
    if written_result is not result:
        kept["result"] = values.encode(result, blobs, where=f"the result of {call.label}")
    if not kept:
        return result, meta
    call.add_secrets(hidden)
    data = dumps(kept).encode()
    ref = hash_bytes(data)
    blobs[ref] = data
    return written_result, {**written_meta, SECRET_FIELD: ref}


def _kept(journal: Journal, record: StepRecord, *, strict: bool) -> dict[str, Any] | None:
    ref = record.meta.get(SECRET_FIELD)
    if not isinstance(ref, str):
        return None
    try:
        doc: dict[str, Any] = json.loads(journal.blob(ref, step=step_label(record)))
    except DamagedRecordError:
        withheld = any(k.endswith("/" + ref) for k in journal.store.keys("withheld/"))
        if strict or not withheld:
            raise
        return None
    return doc


def unseal(journal: Journal, record: StepRecord) -> tuple[StepRecord, dict[str, Any] | None]:
    """A replayed record with its real trace fields, and the kept values (``None``
    when it has none, or they were withheld from the bundle it came in)."""
    kept = _kept(journal, record, strict=False)
    if kept is None or "meta" not in kept:
        return record, kept
    return dataclasses.replace(record, meta={**record.meta, **kept["meta"]}), kept


def real_result(
    journal: Journal, record: StepRecord, kept: dict[str, Any] | None, value: Any
) -> Any:
    """The real result of a replayed step: ``value`` (decoded from the record) unless
    the kept values hold another."""
    if kept is None or "result" not in kept:
        return value
    label = step_label(record)
    return values.decode(kept["result"], lambda ref: journal.blob(ref, step=label))


def real_request(journal: Journal, record: StepRecord) -> tuple[Any, Any]:
    """The real request and encoded result of a step a restore runs again (a withheld
    blob raises: a password cannot be typed from ``[redacted]``)."""
    kept = _kept(journal, record, strict=True) or {}
    request = kept["request"] if "request" in kept else journal.request(record)
    if "result" in kept:
        return request, kept["result"]
    if record.result_ref is None:
        return request, record.result
    return request, json.loads(journal.blob(record.result_ref, step=step_label(record)))
