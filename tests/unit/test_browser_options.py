"""recorder.Browser: the run's browser options in one object, checked when it is made."""

from __future__ import annotations

import pytest

import recorder


def test_defaults_and_values() -> None:
    options = recorder.Browser(headless=False, resume="reexecute", screenshots="off")
    assert (options.headless, options.resume, options.screenshots) == (False, "reexecute", "off")
    assert recorder.Browser().resume == "restore"
    run = recorder.run("b", store=recorder.MemoryStore(), browser=options)
    assert run.browser is options


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"resume": "later"}, "Browser(resume='later') is not valid"),
        ({"screenshots": "all"}, "Browser(screenshots='all') is not valid"),
        ({"chromium": 3}, "names an executable"),
        ({"context": "x"}, "dict of new_context options"),
    ],
)
def test_bad_options_are_refused_when_made(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(recorder.ConfigError, match=said(says)):
        recorder.Browser(**kwargs)  # type: ignore[arg-type]


def said(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    ("old", "new"),
    [("headless", "headless"), ("browser_resume", "resume"), ("screenshots", "screenshots"),
     ("chromium", "chromium"), ("indexed_db", "indexed_db")],
)  # fmt: skip
def test_the_old_keywords_say_where_they_moved(old: str, new: str) -> None:
    with pytest.raises(recorder.ConfigError, match=said(f"browser=recorder.Browser({new}=...)")):
        recorder.run("b", **{old: True})


def test_a_browser_option_of_another_type_is_refused() -> None:
    with pytest.raises(recorder.ConfigError, match=said("browser= takes recorder.Browser")):
        recorder.run("b", browser={"headless": False})
    with pytest.raises(TypeError, match="unexpected keyword argument 'headles'"):
        recorder.run("b", headles=False)
