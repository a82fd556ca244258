"""What counts as a secret in what a person reads, and how it is hidden there.

Two kinds of secret are hidden by their shape, wherever they appear in text:

- the value of a URL query or fragment parameter whose name is a secret's
  (:data:`SECRET_PARAMS`, plus the names in ``$RECORDER_SECRET_PARAMS`` and those a
  caller adds), also inside a URL-encoded URL (``?next=%2Fcb%3Ftoken%3D...``);
- the password of a URL's user information (``https://user:PASSWORD@host``).

Known secret values (an API key a call was given, a typed password) are hidden by
value, in every form a server may echo them: raw, URL-encoded and base64 (standard
and URL-safe, at any alignment inside a longer base64 text, as in a ``Basic`` header)
(:func:`secret_forms`). Every hidden part becomes :data:`REDACTED`.

Nothing here imports the rest of the recorder: the contracts and every view use it.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ENV_SECRET_PARAMS",
    "REDACTED",
    "SECRET_BLOB_FIELDS",
    "SECRET_PARAMS",
    "redact_text",
    "redact_value",
    "secret_forms",
    "secret_params",
    "url_secrets",
]

REDACTED = "[redacted]"
SECRET_BLOB_FIELDS = ("checkpoint", "hidden")
"""Trace fields naming a blob that holds secrets (a browser checkpoint's cookies and
storage; a step's real request, fields and result where they held secrets): such blobs
stay in the owner-only store and are withheld from bundles without secrets."""
ENV_SECRET_PARAMS = "RECORDER_SECRET_PARAMS"
"""Extra parameter names, separated by commas or white space."""
SECRET_PARAMS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "auth", "api_key", "apikey",
    "key", "secret", "client_secret", "sig", "signature", "code", "password", "passwd",
    "pwd", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential",
})  # fmt: skip
"""Query parameter names (compared without case) whose values are secrets."""

_VALUE = r"(?:[^&#\s\"'<>;%\\]|%(?!26|23)[0-9A-Fa-f]{2})+"
"""A parameter's value: up to the next separator, raw or URL-encoded (``%26``, ``%23``)."""


def secret_params(extra: Iterable[str] = ()) -> frozenset[str]:
    """:data:`SECRET_PARAMS`, the names in ``$RECORDER_SECRET_PARAMS`` and ``extra``,
    lower-cased."""
    return _params(os.environ.get(ENV_SECRET_PARAMS, ""), frozenset(n.lower() for n in extra))


@functools.lru_cache(maxsize=64)
def _params(env: str, extra: frozenset[str]) -> frozenset[str]:
    named = {n.strip().lower() for n in re.split(r"[,\s]+", env) if n.strip()}
    return SECRET_PARAMS | named | extra


@functools.lru_cache(maxsize=64)
def _pattern(params: frozenset[str]) -> re.Pattern[str]:
    names = "|".join(re.escape(n) for n in sorted(params, key=len, reverse=True))
    return re.compile(
        rf"(?P<pre>(?:[?&#;]|%3[Ff]|%26|%23)(?:{names})(?:=|%3[Dd]))(?P<value>{_VALUE})"
        r"|(?P<userpre>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@?#\"'<>]*:)(?P<userpass>[^@\s/?#\"'<>]+)(?=@)",
        re.IGNORECASE,
    )


def _replace(found: re.Match[str]) -> str:
    if found.group("pre") is not None:
        return found.group("pre") + REDACTED
    return found.group("userpre") + REDACTED


def redact_text(text: str, params: frozenset[str] | None = None) -> str:
    """``text`` with the value of every secret URL parameter (of ``params``, default
    :func:`secret_params`) and every URL password replaced by :data:`REDACTED`."""
    if "=" not in text and "%3" not in text and "@" not in text:
        return text
    return _pattern(secret_params() if params is None else params).sub(_replace, text)


def url_secrets(value: Any, params: frozenset[str] | None = None) -> list[str]:
    """The secret values :func:`redact_value` would hide in ``value``, decoded too."""
    pattern = _pattern(secret_params() if params is None else params)
    found: list[str] = []
    for text in _strings(value):
        for match in pattern.finditer(text):
            raw = match.group("value") or match.group("userpass") or ""
            if raw and raw != REDACTED:
                found.extend({raw, urllib.parse.unquote(raw), urllib.parse.unquote_plus(raw)})
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def redact_value(value: Any, params: frozenset[str] | None = None) -> Any:
    """``value`` (JSON-like: dicts, lists, tuples, strings, anything else kept as is)
    with :func:`redact_text` applied to every string (dict keys are kept). Returns
    ``value`` itself, not a copy, when nothing in it changed."""
    if params is None:
        params = secret_params()
    if isinstance(value, str):
        return redact_text(value, params)
    if isinstance(value, dict):
        items = {k: redact_value(v, params) for k, v in value.items()}
        same = all(items[k] is v for k, v in value.items())
        return value if same else items
    if isinstance(value, list | tuple):
        seq = [redact_value(v, params) for v in value]
        if all(a is b for a, b in zip(seq, value, strict=True)):
            return value
        return seq if isinstance(value, list) else tuple(seq)
    return value


_URLSAFE = str.maketrans("+/", "-_")


def secret_forms(secret: str) -> set[str]:
    """The forms of ``secret`` a server may echo: itself, URL-encoded, and the part of
    its base64 encoding that does not depend on what surrounds it, for each of the three
    byte alignments it can have inside a longer text (standard and URL-safe
    alphabets). Forms shorter than 6 characters are left out (they would erase
    ordinary words, not secrets)."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    raw = secret.encode()
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + raw).decode()
        # Characters holding bits of the lead bytes or of what follows differ with
        # the surroundings: keep those made of the secret's bits alone.
        core = encoded[-(-8 * lead // 6) : 8 * (lead + len(raw)) // 6]
        forms.update((core, core.translate(_URLSAFE)))
    return {f for f in forms if len(f) >= 6}
