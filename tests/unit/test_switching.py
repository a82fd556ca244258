"""The switch interval is lowered during store writes and always put back."""

from __future__ import annotations

import sys
import threading

import pytest

from recorder.switching import HANDBACK_INTERVAL_S, prompt_handback


def test_lowered_inside_and_restored_after_the_last_writer_leaves() -> None:
    before = sys.getswitchinterval()
    inside = threading.Event()
    release = threading.Event()
    seen: list[float] = []

    def writer() -> None:
        with prompt_handback():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    with prompt_handback():  # overlapping writers: the first to leave restores nothing
        seen.append(sys.getswitchinterval())
    seen.append(sys.getswitchinterval())
    release.set()
    thread.join(10)
    assert seen == [pytest.approx(HANDBACK_INTERVAL_S)] * 2
    assert sys.getswitchinterval() == before


def test_a_lower_interval_of_the_process_is_left_alone_and_errors_restore() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(HANDBACK_INTERVAL_S / 2)
        lower = sys.getswitchinterval()
        with prompt_handback():
            assert sys.getswitchinterval() == lower
        assert sys.getswitchinterval() == lower
    finally:
        sys.setswitchinterval(before)
    try:
        with prompt_handback():
            raise OSError("disk full")
    except OSError:
        pass
    assert sys.getswitchinterval() == before
