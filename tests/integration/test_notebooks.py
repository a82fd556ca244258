"""Every notebook in ``notebooks/`` runs top to bottom on a real Jupyter kernel
(nbclient), with no error output, and the live view reaches the notebook as a widget.
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
                     "effects.ipynb"}  # fmt: skip
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
    widgets = [o for c in book.cells for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
    assert widgets, "every recorded run shows its live view"
    state = book.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [m["state"]["value"] for m in state.values() if "recorder-live" in
             str(m.get("state", {}).get("value", ""))]  # fmt: skip
    assert views and all('class="recorder-outcome"' in v for v in views)
    finals = " ".join(views)
    assert "completed" in finals
    if path.stem == "quickstart":
        assert "interrupted" in finals
    if path.stem == "effects":
        assert "suspended" in finals
    json.dumps(book)  # the executed notebook is still valid JSON
