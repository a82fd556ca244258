"""``recorder.show(...)``: a run browser for notebooks (ipywidgets), and the side-by-side
view of a replay miss or a divergence.

The run browser lists a run's step calls (every attempt) in a table-like list; selecting
one shows its detail: the LLM messages and response, tool calls, tokens and cost; the
browser action, selector, URL and screenshot; a step's arguments and result; the error
with its traceback. Everything shown is escaped; cookie and storage values (in
checkpoints) are never shown.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import ipywidgets

from ..errors import RecorderError, _StepMismatch
from ..history import RunHistory
from ..keys import dumps
from ..records import StepRecord, TraceEvent
from ..values import decode

__all__ = ["divergence_html", "show", "step_html"]

_PRE = "white-space:pre-wrap;margin:2px 0;font-size:12px;max-height:260px;overflow:auto"


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
    return f"<pre style='{_PRE}'>{html.escape(text)}</pre>"


def _row(name: str, value: str) -> str:
    return (
        f"<tr><th style='text-align:left;vertical-align:top;padding-right:8px'>"
        f"{html.escape(name)}</th><td style='text-align:left'>{value}</td></tr>"
    )


def _record_of(history: RunHistory, event: TraceEvent) -> StepRecord | None:
    for step in history.steps:
        if (step.key, step.occurrence, step.generation) == (
            event.key, event.occurrence, event.generation,
        ):  # fmt: skip
            return step
    return None


def _result(history: RunHistory, record: StepRecord) -> Any:
    journal = history.journal
    if journal is None:
        return record.result
    encoded = record.result
    if record.result_ref is not None:
        encoded = json.loads(journal.blob(record.result_ref))
    return decode(encoded, journal.blob)


def _llm_rows(request: Any, result: Any, meta: dict[str, Any]) -> list[str]:
    rows = []
    messages = (request or {}).get("messages") or []
    shown = "".join(
        f"<div><b>{html.escape(str(m.get('role', '?')))}</b>{_pre(m.get('content') or '')}</div>"
        for m in messages
        if isinstance(m, dict)
    )
    rows.append(_row("messages", shown or "-"))
    params = {k: v for k, v in (request or {}).items() if k not in ("messages", "tools")}
    rows.append(_row("parameters", _pre(params)))
    response = result.get("response") if isinstance(result, dict) else None
    if isinstance(response, dict):
        for choice in response.get("choices") or []:
            message = choice.get("message") or {}
            rows.append(_row("response", _pre(message.get("content") or "")))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                rows.append(_row("tool call", _pre(
                    f"{function.get('name')}({function.get('arguments')})")))  # fmt: skip
    elif isinstance(result, list):  # a recorded stream: its chunks
        text = "".join(
            ((c.get("choices") or [{}])[0].get("delta") or {}).get("content") or ""
            for c in result
            if isinstance(c, dict)
        )
        rows.append(_row("response (stream)", _pre(text)))
    tokens = f"{meta.get('prompt_tokens')} prompt, {meta.get('completion_tokens')} completion"
    rows.append(_row("tokens", html.escape(tokens)))
    rows.append(_row("cost (USD)", html.escape(str(meta.get("cost_usd")))))
    return rows


def step_html(history: RunHistory, event: TraceEvent) -> str:
    """The detail of one step call of ``history``."""
    record = _record_of(history, event)
    meta = {**(record.meta if record else {}), **event.meta}
    rows = [
        _row("step", html.escape(f"#{event.seq} {event.kind} {event.name!r}")),
        _row("status", html.escape(f"{event.status} ({event.duration_s:.4f} s)")),
        _row("key", f"<code>{html.escape(event.key)}</code> #{event.occurrence}"),
    ]
    journal = history.journal
    request = result = None
    if record is not None and journal is not None:
        try:
            request = journal.request(record)
            result = _result(history, record) if record.error is None else None
        except RecorderError as damage:
            rows.append(_row("damaged", html.escape(str(damage))))
    if event.kind == "llm":
        rows += _llm_rows(request, result, meta)
    elif event.kind == "browser":
        for name in ("action", "selector", "url"):
            if meta.get(name) is not None:
                rows.append(_row(name, html.escape(str(meta[name]))))
        if request is not None:
            rows.append(_row("arguments", _pre({"args": request.get("args"),
                                                "kwargs": request.get("kwargs")})))  # fmt: skip
        shot = meta.get("screenshot")
        if shot and journal is not None:
            data = base64.b64encode(journal.blob(shot)).decode()
            rows.append(_row("screenshot", f"<img style='max-width:480px' "
                                           f"src='data:image/png;base64,{data}'>"))  # fmt: skip
        if result is not None and meta.get("action") not in ("screenshot",):
            rows.append(_row("result", _pre(result)))
    else:
        if request is not None:
            rows.append(_row("request", _pre(request)))
        if result is not None:
            shown = result if not isinstance(result, bytes) else f"<{len(result)} bytes>"
            rows.append(_row("result", _pre(shown)))
    failure = event.error or (record.error if record else None)
    if failure is not None:
        rows.append(_row("error", _pre(failure.summary)))
        if failure.traceback:
            rows.append(_row("traceback", _pre(failure.traceback)))
    return f"<table class='recorder-step'>{''.join(rows)}</table>"


def divergence_html(error: _StepMismatch) -> str:
    """A replay miss or divergence, side by side: what was recorded, what the re-run
    asked for, field by field."""
    rows = "".join(
        f"<tr><td><code>{html.escape(field or '(whole request)')}</code></td>"
        f"<td>{_pre(dumps(recorded) if recorded is not None else '(absent)')}</td>"
        f"<td>{_pre(dumps(asked) if asked is not None else '(absent)')}</td></tr>"
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
    return (
        f"<div class='recorder-divergence'><b>{html.escape(type(error).__name__)}</b>: "
        f"{title} is not recorded; nearest recorded: {nearest}"
        "<table><tr><th>field</th><th>recorded</th><th>asked for now</th></tr>"
        f"{rows or '<tr><td colspan=3>no recorded step of that kind</td></tr>'}</table></div>"
    )


def show(target: Any, *, store: Any = None) -> Any:
    """A widget for ``target``: a run (``Run``, history, name or run id) or a
    ReplayMissError / DivergenceError."""
    if isinstance(target, _StepMismatch):
        return ipywidgets.HTML(divergence_html(target))
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
    events = [(n, e) for n in sorted(history.traces) for e in history.traces[n]]
    options = [
        (f"a{n} #{e.seq:<4} {e.kind:<8} {e.name[:40]:<40} {e.status}", i)
        for i, (n, e) in enumerate(events)
    ]
    header = ipywidgets.HTML(
        f"<b>{html.escape(history.run_id)}</b>: {html.escape(history.status)}, "
        f"{len(history.attempts)} attempt(s), {len(events)} step call(s)"
    )
    listing = ipywidgets.Select(
        options=options, rows=min(18, max(3, len(options))),
        layout=ipywidgets.Layout(width="48%"),
    )  # fmt: skip
    detail = ipywidgets.HTML(layout=ipywidgets.Layout(width="52%"))

    def select(change: dict[str, Any]) -> None:
        index = change["new"]
        if index is not None:
            detail.value = step_html(history, events[index][1])

    listing.observe(select, names="value")
    if options:
        listing.value = options[0][1]
        detail.value = step_html(history, events[0][1])
    box = ipywidgets.VBox([header, ipywidgets.HBox([listing, detail])])
    box.add_class("recorder-show")
    return box
