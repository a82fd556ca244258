"""Every notebook in ``notebooks/`` runs top to bottom on a real Jupyter kernel
(nbclient), with no error output; the live views and the run browser are plain HTML
outputs (no widget model to lose when the notebook is saved and reopened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(path: Path, store: Path) -> Any:
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=240, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )  # fmt: skip
    client.execute(env=_env(store))
    return book


def _env(store: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env["RECORDER_DIR"] = str(store)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def test_the_notebooks_are_the_generated_ones() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert names == {"quickstart.ipynb", "browser_agent.ipynb", "dataframes.ipynb",
                     "effects.ipynb", "fan_out.ipynb"}  # fmt: skip
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_errors(path: Path, tmp_path: Path) -> None:
    book = execute(path, tmp_path / "store")
    errors, stderr = [], []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                errors.append(f"{output['ename']}: {output['evalue']}")
            elif output["output_type"] == "stream" and output["name"] == "stderr":
                stderr.append(output["text"])
    assert errors == [], errors
    assert "Traceback" not in "".join(stderr), "".join(stderr)
    outputs = [o for c in book.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if WIDGET in o.get("data", {})], "no widget to lose"
    if path.stem == "fan_out":
        _check_fan_out(book)
        return
    views = _last_views(book)
    assert views, "every recorded run shows its live view"
    assert all('class="recorder-outcome"' in v for v in views)
    finals = " ".join(views)
    assert "completed" in finals
    if path.stem == "quickstart":
        assert "interrupted" in finals
    if path.stem == "effects":
        assert "suspended" in finals
    if path.stem == "dataframes":  # the plot is inline, not drawn to a file backend
        assert any("image/png" in o.get("data", {}) for o in outputs)
    json.dumps(book)  # the executed notebook is still valid JSON


def _last_views(book: Any) -> list[str]:
    """The live views of single runs as the saved notebook keeps them: plain HTML
    (nbclient applies each display update to its output)."""
    return [str(o["data"]["text/html"]) for c in book.cells for o in c.get("outputs", [])
            if "recorder-live" in str(o.get("data", {}).get("text/html", ""))]  # fmt: skip


def _check_fan_out(book: Any) -> None:
    """The fan-out's panel is plain HTML in the saved notebook (no widget model to lose),
    in its final state; the re-run replayed the six children the killed run finished and
    placed every order once."""
    panels = [o["data"] for c in book.cells for o in c.get("outputs", [])
              if "recorder-fanout" in str(o.get("data", {}).get("text/html", ""))]  # fmt: skip
    assert len(panels) == 1, panels
    final = panels[0]["text/html"]
    assert "finished" in final and "20 of 20 settled" in final, final
    assert panels[0]["text/plain"].startswith("recorder fan-out book-flights | 20/20 |")
    text = "".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []))
    assert "killed: True" in text
    done = text.split("| done: ", 1)[1].split(" |", 1)[0].split(", ")
    assert len(done) >= 6
    assert f'recorder-count-replayed">{len(done)}</b>' in final and "failed" not in final, final
    assert "each passenger's order placed exactly once: True" in text
