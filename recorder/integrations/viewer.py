"""``recorder.show(...)``: the run browser, and the side-by-side view of a replay miss or
a divergence.

Both are plain HTML (no widget, no kernel): what a notebook saves is what a reader sees
later, in JupyterLab, Notebook 7, VS Code, nbconvert's HTML or on GitHub. The run
browser (:mod:`recorder.integrations.tracehtml`) groups a run's step calls by attempt,
with each attempt's outcome, and opens a step on its detail: the LLM conversation with
its tool calls, the browser action with its screenshot at full size, a step's
arguments and result, the error with its traceback. Everything shown is escaped; cookie
and storage values (in checkpoints) are never shown.
"""

from __future__ import annotations

import html
import uuid
from pathlib import Path
from typing import Any

from ..errors import ConfigError, _StepMismatch
from ..history import RunHistory
from ..keys import dumps
from .tracehtml import IMAGE_BUDGET, render_run

__all__ = ["ErrorView", "RunView", "divergence_html", "show"]


class _View:
    """Something a notebook displays as HTML, with a text form elsewhere."""

    html: str
    text: str

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> dict[str, str]:  # fmt: skip
        return {"text/html": self.html, "text/plain": self.text}

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text

    def save(self, path: str | Path, *, title: str = "recorder") -> Path:
        """Write the view as a standalone HTML page (UTF-8) and return its path."""
        target = Path(path)
        target.write_text(
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title></head><body>{self.html}</body></html>",
            encoding="utf-8",
        )
        return target


class RunView(_View):
    """The run browser of one run (what :func:`show` returns for a run)."""

    def __init__(self, history: RunHistory, html_: str, text: str, root_id: str) -> None:
        self.history = history
        self.html = html_
        self.text = text
        self.root_id = root_id

    def save(self, path: str | Path, *, title: str = "") -> Path:
        return super().save(path, title=title or f"recorder · {self.history.run_id}")


class ErrorView(_View):
    """A replay miss or divergence, recorded and asked side by side."""

    def __init__(self, error: _StepMismatch) -> None:
        self.error = error
        self.html = divergence_html(error)
        self.text = f"{type(error).__name__}: {error}"


_DIFF_CSS = (
    "#R{font-size:13px;line-height:1.45;margin:2px 0 8px}"
    "#R .rv-title{margin-bottom:6px}"
    "#R table{border-collapse:collapse;width:100%;table-layout:fixed}"
    "#R th,#R td{border:1px solid var(--jp-border-color2,rgba(127,127,127,.32));"
    "padding:4px 8px;text-align:left;vertical-align:top}"
    "#R th{background:rgba(127,127,127,.08);font-size:12px}"
    "#R col.rv-field{width:14em}"
    "#R pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;max-height:320px;overflow:auto;"
    "font-size:12px;font-family:var(--jp-code-font-family,ui-monospace,monospace)}"
    "#R td.rv-recorded{background:rgba(229,83,75,.08)}"
    "#R td.rv-asked{background:rgba(46,160,67,.08)}"
)


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def divergence_html(error: _StepMismatch) -> str:
    """A replay miss or divergence, side by side: what was recorded, what the re-run
    asked for, field by field."""
    rows = "".join(
        f"<tr><td><code>{html.escape(field or '(whole request)')}</code></td>"
        f"<td class='rv-recorded'>{_pre(dumps(recorded) if recorded is not None else '(absent)')}"
        f"</td><td class='rv-asked'>{_pre(dumps(asked) if asked is not None else '(absent)')}"
        "</td></tr>"
        for field, (recorded, asked) in error.differences.items()
    )
    step = error.step or {}
    candidate = error.candidate
    title = html.escape(f"step #{step.get('seq')} ({step.get('kind')} {step.get('name')!r})")
    nearest = "none"
    if candidate:
        nearest = html.escape(
            f"#{candidate.get('seq')} ({candidate.get('kind')} {candidate.get('name')!r}, "
            f"attempt {candidate.get('attempt')})"
        )
    root = "recorder-diff-" + uuid.uuid4().hex[:12]
    return (
        f"<div class='recorder-divergence mathjax_ignore tex2jax_ignore' id='{root}'>"
        f"<style>{_DIFF_CSS.replace('#R', '#' + root)}</style>"
        f"<div class='rv-title'><b style='color:#cf222e'>{html.escape(type(error).__name__)}"
        f"</b>: {title} is not recorded; nearest recorded: {nearest}</div>"
        "<table><colgroup><col class='rv-field'><col><col></colgroup>"
        "<tr><th>field</th><th>recorded</th><th>asked for now</th></tr>"
        f"{rows or '<tr><td colspan=3>no recorded step of that kind</td></tr>'}</table></div>"
    )


def show(
    target: Any,
    *,
    store: Any = None,
    attempt: int | None = None,
    step: int | None = None,
    image_budget: int = IMAGE_BUDGET,
) -> RunView | ErrorView:
    """The run browser for ``target``: a run (``Run``, loaded run, name or run id), only
    its attempt ``attempt`` and its step call(s) numbered ``step`` when given; or the
    side-by-side view of a ReplayMissError / DivergenceError. The result displays as
    HTML in a notebook (and as a text summary elsewhere); ``.save(path)`` writes it as
    a page."""
    if isinstance(target, _StepMismatch):
        return ErrorView(target)
    from ..history import load
    from ..runtime import Run

    if isinstance(target, Run):
        history = target.history()
    elif isinstance(target, RunHistory):
        history = target
    elif isinstance(target, str):
        history = load(target, store=store)
    else:
        raise TypeError(
            f"recorder.show() takes a run, a run name, a loaded run or a replay miss, not "
            f"{type(target).__name__}."
        )
    numbers = [a.number for a in history.attempts]
    if attempt is not None and attempt not in numbers:
        raise ConfigError(
            f"run {history.run_id!r} has no attempt {attempt}; its attempts are "
            f"{', '.join(map(str, numbers)) or 'none yet'}. Pass one of them, or no attempt= "
            "to see them all."
        )
    page = render_run(history, attempt=attempt, step=step, image_budget=image_budget)
    return RunView(history, page.html, page.text, page.root_id)
