"""Every Python example of docs/fanout.md runs, in order, as one notebook would."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "fanout.md"


async def test_every_example_of_docs_fanout_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECORDER_DIR", str(tmp_path / "store"))
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {"__name__": "docs_fanout"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/fanout.md block {number}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # fmt: skip
        result = eval(code, namespace)
        if inspect.isawaitable(result):
            await result
