"""The live view's terminal form, its HTML, and the ``%%record`` cell rewriting."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import recorder
from recorder.display import REDRAW_S, LineView, Snapshot, make_view


def test_display_true_draws_one_progress_line_on_stderr(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        with recorder.run("shown", store=store_dir, display=True) as run:
            run.step("a", str.upper, "x")
            run.step("b", str.lower, "Y")
    err = capsys.readouterr().err
    final = err.rstrip("\n").split("\n")[-1].split("\r")[-1]
    assert final.startswith("recorder shown #2 | 2 replayed | 0 live | 0 failed")
    assert final.rstrip().endswith("completed")
    assert err.count("\n") == 2, "one line per attempt, redrawn in place"


def test_no_view_unless_asked_outside_a_terminal(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with recorder.run("quiet", store=store_dir) as run:  # stderr is not a terminal here
        run.step("a", str.upper, "x")
    with recorder.run("quiet", store=store_dir, display=False) as run:
        run.step("a", str.upper, "x")
    assert capsys.readouterr().err == ""
    assert make_view(False, "r", 1) is None and make_view(None, "r", 1) is None


def test_the_line_redraws_at_most_every_tenth_of_a_second() -> None:
    stream = io.StringIO()
    view = LineView("r", 1, stream)
    for _ in range(1000):
        view._maybe_draw()
    assert stream.getvalue().count("\r") == 1
    assert REDRAW_S == 0.1


def test_the_html_is_escaped_and_names_every_counter() -> None:
    snap = Snapshot(run="<script>x</script>", attempt=3, replayed=5, live=2, failed=1,
                    current="llm gpt-4o <b>", outcome="suspended",
                    detail="waiting for 'ok'")  # fmt: skip
    page = snap.html()
    assert "<script>" not in page and "&lt;script&gt;" in page
    for name in ("replayed", "live", "failed", "step", "elapsed", "saved", "outcome"):
        assert f'class="recorder-{name}"' in page
    assert "suspended: waiting for &#x27;ok&#x27;" in page


def test_a_suspended_attempt_says_what_it_waits_for(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with recorder.run("waits", store=store_dir, display=True) as run:
        run.wait_for_sync("approval")
    line = capsys.readouterr().err.strip().split("\r")[-1]
    assert "suspended (waiting for 'approval')" in line


# -- %%record ---------------------------------------------------------------------------


def test_record_cells_become_with_blocks(tmp_path: Path) -> None:
    import ast

    from IPython.core.error import UsageError

    from recorder.integrations.notebook import RecordCell, record_transformer

    plain = record_transformer(["%%record triage --inputs {'t': 1}\n", "x = run.step('a', f)\n"])
    assert plain == ["__recorder_cell__('triage', inputs=({'t': 1}))  # %%record triage --inputs "
                     "{'t': 1}\n", "x = run.step('a', f)\n"]  # fmt: skip
    assert record_transformer(["x = 1\n"]) == ["x = 1\n"]
    with pytest.raises(UsageError, match="needs one run name"):
        record_transformer(["%%record --mode replay\n", "pass\n"])
    with pytest.raises(UsageError, match="--bogus"):
        record_transformer(["%%record r --bogus 1\n", "pass\n"])
    with pytest.raises(UsageError, match="'fast' is not a mode: use one of auto, replay, record"):
        record_transformer(["%%record r --mode fast\n", "pass\n"])

    store = str(tmp_path / "store")
    source = "".join(record_transformer([
        f"%%record triage --inputs {{'t': 1}} --store {store}\n",
        "x = run.step('a', str.upper, 'a')\n",
        "x + '!'\n",
    ]))  # fmt: skip
    tree = RecordCell().visit(ast.parse(source))
    shown = ast.unparse(tree)
    assert "with __import__('recorder').run('triage', inputs={'t': 1}," in shown
    assert shown.splitlines()[-1] == "__recorder_last__"  # the last expression, displayed
    namespace: dict[str, object] = {}
    exec(compile(tree, "<cell>", "exec"), namespace)
    assert namespace["x"] == "A" and namespace["__recorder_last__"] == "A!"
    awaiting = RecordCell().visit(ast.parse(
        "__recorder_cell__('agent', mode='replay')\nr = await g()\nr\n"))  # fmt: skip
    assert "async with __import__('recorder').run('agent', mode='replay') as run:" in ast.unparse(
        awaiting
    )


def test_runs_render_as_html_tables_without_widgets(store_dir: Path) -> None:
    fresh = recorder.run("html", store=store_dir)
    assert "not entered yet" in fresh._repr_html_()
    with fresh as run:
        run.step("<b>bold</b>", str.upper, "x")
    page = run._repr_html_()
    assert "class='recorder-run'" in page and "completed" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "<table" in recorder.load("html", store=store_dir)._repr_html_()
    assert "html@" in recorder.runs(store=store_dir)._repr_html_()
