"""``%%record`` is a cell like any other, on a real kernel (issue 14, point 4): its last
expression displays (a DataFrame as a table), a trailing ``;`` keeps it quiet, top-level
``await`` works, and a usage mistake is one line, not a traceback of rewritten source.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CELLS = [
    "%load_ext recorder",
    '%%record table --inputs {"n": 2}\n'
    "import pandas as pd\n"
    'values = [run.step("square", pow, i, 2) for i in range(3)]\n'
    'pd.DataFrame({"value": values})',
    "%%record quiet\nrun.step('one', int, '1');",
    '%%record awaiting\nv = await run.astep("five", lambda: 5)\nv * 2',
    "%%record wrong --mode fast\npass",
    '%%record boom\nx = 1\nraise ValueError("no such seat")',
]


def test_record_cells_display_their_last_expression(tmp_path: Path) -> None:
    book = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env.update(RECORDER_DIR=str(tmp_path / "store"), LITELLM_LOCAL_MODEL_COST_MAP="True")
    client = NotebookClient(book, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute(env=env)
    _, table, quiet, awaiting, wrong, boom = book.cells

    result = _result(table)
    assert "<table" in result["text/html"] and "value" in result["text/plain"]
    assert _result(quiet) is None
    assert _result(awaiting)["text/plain"] == "10"

    said = "".join(o.get("text", "") for o in wrong.outputs)
    assert said.strip() == (
        "UsageError: %%record --mode 'fast' is not a mode: use one of auto, replay, record."
    ), wrong.outputs
    assert not [o for o in wrong.outputs if o["output_type"] == "error"]

    error = next(o for o in boom.outputs if o["output_type"] == "error")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))  # no colours
    assert error["ename"] == "ValueError" and "no such seat" in shown
    assert "__import__('recorder')" not in shown and "# %%record boom" in shown
    assert 'raise ValueError("no such seat")' in shown  # the user's own line


def _result(cell: Any) -> Any:
    found = [o["data"] for o in cell.outputs if o["output_type"] == "execute_result"]
    return found[0] if found else None
