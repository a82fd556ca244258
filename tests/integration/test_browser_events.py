"""Playwright's event-driven surface under interruption, as real agent code uses it:
popups, ``window.open``, dialogs, frames, downloads, ``expect``, waits, the keyboard
and mouse, routes; async and sync API.

Each scenario (``event_agents.py``) runs in processes of its own against the fixture
site and real Chromium: once uninterrupted in one store; then, in another store, an
attempt that ends with an exception, a later attempt SIGKILLed, a resume, and a full
replay. The resume must give the uninterrupted result, the site's counted side effects
must have happened exactly as often as in the uninterrupted run, and the full replay
must send no request and launch no browser; stderr carries nothing but what the
scenario is expected to print.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.site import FixtureSite

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EFFECTS = ("popup_actions", "deletions", "frame_orders", "downloads", "canvas_clicks", "cart")


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as running:
        yield running


def effects(site: FixtureSite) -> dict[str, Any]:
    stats = site.stats()
    return {name: stats[name] for name in EFFECTS}


def attempt(
    name: str, store: Path, site: FixtureSite, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.event_agents", name, str(store), site.url],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
    )  # fmt: skip


def outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        found[word] = json.loads(rest)
    return found


def quiet(done: subprocess.CompletedProcess[str], allowed: tuple[str, ...] = ()) -> None:
    """Nothing on stderr but the lines ``allowed`` (substrings) explain."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    unexpected = [line for line in lines if not any(a in line for a in allowed)]
    assert not unexpected, done.stderr[-3000:]


REPLAYABLE = [
    "popup_link", "window_open", "dialogs", "frames", "downloads", "waits", "devices",
    "sync_popup_link", "sync_dialogs", "sync_downloads", "sync_frames_and_devices",
]  # fmt: skip


@pytest.mark.parametrize("name", REPLAYABLE)
def test_interrupted_killed_resumed_and_replayed(
    name: str, site: FixtureSite, tmp_path: Path
) -> None:
    uninterrupted = outcome(attempt(name, tmp_path / "once", site))
    once = effects(site)
    site.reset()

    store = tmp_path / "store"
    stopped = attempt(name, store, site, STOP_AT="1")
    assert stopped.returncode == 3, stopped.stderr[-3000:]
    killed = attempt(name, store, site, KILL_AT="2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = attempt(name, store, site)
    assert outcome(resumed)["RESULT"] == uninterrupted["RESULT"]
    quiet(resumed)
    assert effects(site) == once, "a side effect was repeated or lost"

    requests = site.requests
    replayed = attempt(name, store, site)
    found = outcome(replayed)
    assert found["RESULT"] == uninterrupted["RESULT"]
    assert (found["LAUNCHES"], found["LIVE"]) == (0, 0)
    assert site.requests == requests, "the full replay sent requests to the site"
    quiet(replayed)


def test_a_route_makes_the_page_live_with_one_warning(site: FixtureSite, tmp_path: Path) -> None:
    """page.route needs a live browser: the page goes live where the route is installed,
    on every run, with one warning; an interrupted and killed run resumes (no timeout)."""
    uninterrupted = outcome(attempt("route", tmp_path / "once", site))
    assert uninterrupted["RESULT"][0] == "routed"
    store = tmp_path / "store"
    assert attempt("route", store, site, STOP_AT="1").returncode == 3
    assert attempt("route", store, site, KILL_AT="2").returncode == -signal.SIGKILL
    resumed = attempt("route", store, site)
    assert outcome(resumed)["RESULT"] == uninterrupted["RESULT"]
    warned = [line for line in resumed.stderr.splitlines() if "UnrecordedWarning" in line]
    assert len(warned) == 1 and "page.route is not recorded: the page goes live here" in warned[0]
    quiet(resumed, allowed=("UnrecordedWarning", "await page.route("))
