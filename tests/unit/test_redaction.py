"""Secrets in what is written: every form of a known secret (raw, URL-encoded, base64)
and every secret URL parameter are hidden from recorded errors; the rules of
:mod:`recorder.redaction`."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

import pytest

import recorder
from recorder.redaction import (
    REDACTED,
    redact_text,
    redact_value,
    secret_forms,
    secret_params,
    url_secrets,
)
from recorder.store import open_store

API_KEY = "sk-live-Zq8xV3mN0pL5tR7w"


class ProviderError(Exception):
    """An HTTP error of a provider that echoes what it was sent."""

    def __init__(self, message: str, header: str) -> None:
        super().__init__(message)
        self.header = header


def _echoes(key: str) -> list[str]:
    basic = base64.b64encode(f"user:{key}".encode()).decode()
    return [
        f"401 for https://api.example/v1/chat?key={urllib.parse.quote(key, safe='')} "
        f"(Authorization: Basic {basic}; token {base64.urlsafe_b64encode(key.encode()).decode()})",
        f"Basic {basic}",
    ]


def _store_text(store_dir: Path) -> bytes:
    return b"\n".join(value for _, value in open_store(store_dir).scan(""))


def test_a_provider_error_echoing_the_key_in_base64_is_redacted(store_dir: Path) -> None:
    message, header = _echoes(API_KEY)
    with pytest.raises(ProviderError), recorder.run("provider", store=store_dir) as run:
        call = run.begin("llm", "m", {"messages": ["hi"]}, secrets=lambda: [API_KEY])
        error = ProviderError(message, header)
        call.fail(error, record=True)  # recorded as the step's result
        raise error  # and it ends the attempt: the attempt's error
    written = _store_text(store_dir)
    assert b"[redacted]" in written
    for form in (API_KEY, urllib.parse.quote(API_KEY, safe="")):
        assert form.encode() not in written
    # No base64 run of the key's bytes survives, at any alignment.
    for text in (base64.b64encode(API_KEY.encode()), base64.b64encode(b"user:" + API_KEY.encode())):
        assert text[8:20] not in written
    frame = recorder.load("provider", store=store_dir).to_dataframe()
    assert "[redacted]" in frame["error"].iloc[0]


def test_secret_forms_cover_every_alignment() -> None:
    forms = secret_forms(API_KEY)
    for lead in (b"", b"u", b"us", b"use:"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(lead + API_KEY.encode() + b"!tail").decode()
            assert any(form in text for form in forms), (lead, text)
    assert all(len(form) >= 6 for form in forms)


def test_url_parameters_are_redacted_in_any_text(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://h.example/cb?a=1&code=abc123&sig=x%2By&next=%2Fgo%3Faccess_token%3Dzz%26b%3D2"
    assert redact_text(url) == (
        "https://h.example/cb?a=1&code=[redacted]&sig=[redacted]"
        "&next=%2Fgo%3Faccess_token%3D[redacted]%26b%3D2"
    )
    assert redact_text("postgresql://ada:hunter2@db/x") == "postgresql://ada:[redacted]@db/x"
    assert redact_text("?monkey=1&keys=2&Token=3") == "?monkey=1&keys=2&Token=[redacted]"
    assert redact_text("no url here") == "no url here"
    assert "abc123" in url_secrets({"u": [url]}) and "x+y" in url_secrets(url)
    monkeypatch.setenv("RECORDER_SECRET_PARAMS", "session_id, otp")
    assert (
        redact_text("/x?session_id=s1&otp=9&q=1") == "/x?session_id=[redacted]&otp=[redacted]&q=1"
    )
    assert "session_id" in secret_params() and "extra" in secret_params(["Extra"])


def test_redact_value_keeps_what_did_not_change() -> None:
    plain = {"a": ["x", 1, None], "b": ("y",)}
    assert redact_value(plain) is plain
    changed = redact_value({"a": ["/?token=t0k3n"], "b": b"bytes"})
    assert changed == {"a": [f"/?token={REDACTED}"], "b": b"bytes"}
