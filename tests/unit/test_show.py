"""``recorder.show``: the run browser widget and the divergence view."""

from __future__ import annotations

from pathlib import Path

import pytest

import recorder


def boom(x: str) -> str:
    raise ValueError(f"bad <{x}>")


def test_the_run_browser_lists_every_call_and_details_the_selected_one(store_dir: Path) -> None:
    for _ in range(2):
        with recorder.run("browse", store=store_dir) as run:
            run.step("shout", str.upper, "<hello>")
            with pytest.raises(ValueError):
                run.step("fail", boom, "x")
    widget = recorder.show(run)
    header, body = widget.children
    listing, detail = body.children
    assert "browse@" in header.value and "2 attempt(s), 4 step call(s)" in header.value
    labels = [label for label, _ in listing.options]
    assert [lab.split()[0] for lab in labels] == ["a1", "a1", "a2", "a2"]
    assert labels[2].endswith("replayed")
    assert "&lt;HELLO&gt;" in detail.value  # the result, escaped
    assert "&lt;hello&gt;" in detail.value  # the arguments
    listing.value = 1
    assert "ValueError: bad &lt;x&gt;" in detail.value and "traceback" in detail.value
    assert recorder.show("browse", store=store_dir).children[0].value == header.value
    with pytest.raises(TypeError, match=r"recorder\.show"):
        recorder.show(42)


def test_a_miss_shows_recorded_and_asked_side_by_side(store_dir: Path) -> None:
    with recorder.run("miss", store=store_dir) as run:
        run.step("shout", str.upper, "hello")
    replaying = recorder.run("miss", store=store_dir, mode="replay")
    with pytest.raises(recorder.ReplayMissError) as caught, replaying as run:
        run.step("shout", str.upper, "<goodbye>")
    page = recorder.show(caught.value).value
    assert "ReplayMissError" in page and "asked for now" in page
    assert "hello" in page and "&lt;goodbye&gt;" in page
