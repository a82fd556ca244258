"""Stores written by earlier versions still read and replay (the format is an API)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.integrations.browser import launch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STORES = sorted((ROOT / "fixtures" / "stores").iterdir())


def _maker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "maker", ROOT / "scripts" / "make_format_fixture.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_a_fixture_for_the_current_format() -> None:
    from recorder.records import RECORD_FORMAT
    from recorder.store import STORE_FORMAT

    assert any(p.name == f"format-{STORE_FORMAT}.{RECORD_FORMAT}" for p in STORES)


@pytest.mark.parametrize("fixture", STORES, ids=[p.name for p in STORES])
def test_an_old_store_replays_without_going_live(fixture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(fixture, store)
    store.chmod(0o700)
    expected = json.loads((fixture / "expected.json").read_text())
    maker = _maker()
    dead = {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1", "api_key": "x",
            "num_retries": 0}  # fmt: skip
    record_format = int(fixture.name.rsplit(".", 1)[1])  # the maker's inputs name it
    inputs = {"format": record_format}
    with recorder.run("fixture", inputs=inputs, store=store, mode="replay") as run:
        assert maker.program(run, dead) == expected["program"]

    launches = launch.launches

    async def browse() -> dict[str, Any]:
        async with recorder.run(
            "fixture-browser", inputs={"site": expected["site"]}, store=store, mode="replay"
        ) as run:
            result: dict[str, Any] = await maker.browser_program(run, expected["site"])
            return result

    assert asyncio.run(browse()) == expected["browser"]
    assert launch.launches == launches
    assert recorder.store.DiskStore(store).integrity_check() == []
    assert recorder.journal.Journal(recorder.store.DiskStore(store)).verify() == []
