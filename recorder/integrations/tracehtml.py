"""The run browser as one self-contained HTML fragment: no widget and no kernel, so it
survives a saved notebook and reads the same in JupyterLab, Notebook 7, VS Code,
nbconvert's HTML and (without its script) on GitHub.

The fragment is complete without JavaScript: a header with the run's totals; one
``<details>`` per attempt (the last one open) with its outcome coloured and its error on
one line; inside, a grid of step rows with aligned columns, each row a ``<details>`` that
opens on its detail (the LLM conversation, the browser action with its screenshot at
full size, a step's arguments and result, the error and its traceback). Its inline
script (:mod:`recorder.integrations.traceassets`) adds keyboard navigation, a filter and
a screenshot overlay where outputs may run scripts.

Everything shown is escaped. Cookie and storage values (checkpoints) and the blobs that
hold a step's secrets are never read. Screenshots are embedded as data URIs up to a
budget per view (:data:`IMAGE_BUDGET`); the rows past it say how to see them.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..display import format_seconds
from ..errors import RecorderError
from ..history import RunHistory
from ..keys import dumps
from ..records import AttemptRecord
from ..values import decode
from .traceassets import STATUS_COLOURS, script, style
from .tracedetail import (
    StepRow,
    badge,
    cut,
    detail,
    esc,
    exact_usd,
    name_and_target,
    one_line,
    outcome_badge,
    row_error,
    show_call,
    tokens,
    usd,
    when,
)

__all__ = ["IMAGE_BUDGET", "RunPage", "render_run", "summary_text"]

IMAGE_BUDGET = 8_000_000
"""Bytes of embedded images (as base64 text) one view holds at most."""

_GRID = (
    "display:grid;grid-template-columns:4.2em 6.4em 5em minmax(9em,3fr) minmax(7em,2fr) "
    "5.2em 6.4em;column-gap:10px;align-items:baseline"
)
"""The columns of a step row and of the header row (inline: kept where styles are cut)."""
_HEADS = ("#", "status", "kind", "name / action", "target", "duration", "cost")


@dataclass
class RunPage:
    """A rendered run: the HTML fragment and its text summary."""

    html: str
    text: str
    root_id: str


@dataclass
class _Images:
    """The image budget of one view, spent on the last attempt first."""

    limit: int
    used: int = 0
    skipped: dict[int, int] = field(default_factory=dict)

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True


# -- loading -------------------------------------------------------------------------------


def _rows(history: RunHistory, attempt: int) -> list[StepRow]:
    by_ident = {(s.generation, s.key, s.occurrence): s for s in history.steps}
    out = []
    for index, event in enumerate(history.traces.get(attempt, [])):
        record = by_ident.get((event.generation, event.key, event.occurrence))
        meta = {**(record.meta if record else {}), **event.meta}
        out.append(StepRow(history.run_id, attempt, index, event, record, meta))
    return out


def _load(history: RunHistory, row: StepRow) -> None:
    """The row's request and result (as stored: secrets already redacted)."""
    journal = history.journal
    record = row.record
    if record is None or journal is None:
        return
    try:
        row.request = journal.request(record)
        if record.error is None:
            encoded = record.result
            if record.result_ref is not None:
                encoded = json.loads(journal.blob(record.result_ref))
            row.result = decode(encoded, journal.blob)
    except RecorderError as damage:
        row.damage = str(damage)


def _spend_images(history: RunHistory, attempts: list[list[StepRow]], images: _Images) -> None:
    """Embed screenshots, the newest attempt first, each one once per attempt."""
    journal = history.journal
    if journal is None:
        return
    for rows in reversed(attempts):
        seen: dict[str, StepRow] = {}
        left_out: set[str] = set()
        for row in rows:
            ref = row.meta.get("screenshot")
            if not isinstance(ref, str):
                continue
            if ref in seen:
                row.shot_same_as = seen[ref]
                continue
            if ref in left_out:
                row.shot_skipped = True
                continue
            try:
                data = journal.blob(ref)
            except RecorderError as damage:
                row.damage = row.damage or str(damage)
                continue
            uri = "data:" + _image_type(data) + ";base64," + base64.b64encode(data).decode()
            if images.take(len(uri)):
                row.shot = uri
                seen[ref] = row
            else:
                row.shot_skipped = True
                left_out.add(ref)
                images.skipped[row.attempt] = images.skipped.get(row.attempt, 0) + 1


def _image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "image/png"


# -- rows and the page --------------------------------------------------------------------


def _bar(seconds: float, longest: float) -> str:
    """A bar behind a duration, as long as its share of the attempt's longest step: the
    slow steps stand out while scanning."""
    share = 100 * seconds / longest if longest > 0 and seconds == seconds else 0.0
    return (
        f"background:linear-gradient(to left,rgba(56,139,253,.22) {share:.1f}%,"
        f"transparent {share:.1f}%)"
    )


def _row_html(
    row: StepRow, previous: dict[str, Any] | None, *, open_: bool, root: str, longest: float
) -> str:
    event = row.event
    name, target = name_and_target(row)
    status = event.status
    colour = STATUS_COLOURS.get(status, STATUS_COLOURS["other"])
    try_number = row.meta.get("try")
    seq = f"{event.seq}" + (f".{try_number}" if isinstance(try_number, int) else "")
    cost = usd(row.meta.get("cost_usd")) if event.kind == "llm" else ""
    cost_title = exact_usd(row.meta.get("cost_usd")) if cost else ""
    if cost and status == "replayed":
        cost_title = f"not spent: replayed (recorded cost {cost_title})"
    duration = format_seconds(event.duration_s)
    if status == "replayed" and row.record is not None:
        duration_title = (
            f"replayed in {event.duration_s:.3f} s; recorded live in "
            f"{format_seconds(row.record.duration_s)}"
        )
    else:
        duration_title = f"{event.duration_s:.3f} s"
    cells = [
        f"<span class='rv-seq' title='started {esc(when(event.started_at))}'>"
        f"<span class='rv-caret'>▸</span>{esc(seq)}</span>",
        f"<span>{badge(status, colour, 'rv-status rv-status-' + esc(status))}</span>",
        f"<span class='rv-kind'>{esc(event.kind)}</span>",
        f"<span class='rv-name rv-ell' title='{esc(name)}'>{esc(one_line(name, 160))}"
        f"{row_error(row)}</span>",
        f"<span class='rv-target rv-ell rv-mono' title='{esc(target)}'>"
        f"{esc(one_line(target, 160))}</span>",
        f"<span class='rv-num rv-dur' title='{esc(duration_title)}' "
        f"style='{_bar(event.duration_s, longest)}'>{esc(duration)}</span>",
        f"<span class='rv-num{' rv-saved' if status == 'replayed' else ''}' "
        f"title='{esc(cost_title)}'>{esc(cost)}</span>",
    ]
    failed = " rv-failed-row" if status == "failed" else ""
    return (
        f"<details class='rv-step{failed}' id='{root}-{row.dom_id}' data-row='{row.dom_id}'"
        f"{' open' if open_ else ''}><summary class='rv-row' style='{_GRID}'>{''.join(cells)}"
        f"</summary><div class='rv-detail'>{detail(row, previous, root)}</div></details>"
    )


# -- the page ------------------------------------------------------------------------------


def _attempt_stats(rows: list[StepRow]) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "replayed": 0,
        "live": 0,
        "failed": 0,
        "llm": 0,
        "llm_live": 0,
        "tokens": 0,
        "spent": 0.0,
        "saved": 0.0,
    }
    for row in rows:
        status = row.event.status
        if status in ("replayed", "live", "failed"):
            stats[status] += 1
        if row.event.kind != "llm":
            continue
        stats["llm"] += 1
        cost = row.meta.get("cost_usd")
        cost = float(cost) if isinstance(cost, int | float) and cost == cost else 0.0
        if status == "replayed":
            stats["saved"] += cost
            continue
        stats["llm_live"] += 1
        stats["spent"] += cost
        for part in ("prompt_tokens", "completion_tokens"):
            if isinstance(row.meta.get(part), int):
                stats["tokens"] += row.meta[part]
    return stats


def _duration(history: RunHistory, attempt: AttemptRecord, rows: list[StepRow]) -> float:
    end = attempt.ended_at
    if end is None:
        ends = [r.event.started_at + r.event.duration_s for r in rows]
        end = max([attempt.started_at, *ends])
    return max(0.0, end - attempt.started_at)


def _outcome(history: RunHistory, attempt: AttemptRecord) -> str:
    if history.attempts and attempt is history.attempts[-1]:
        return history.status
    return attempt.outcome.value


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _counts(stats: dict[str, Any]) -> str:
    return " · ".join(f"{stats[s]} {s}" for s in ("replayed", "live", "failed"))


def render_run(
    history: RunHistory,
    *,
    attempt: int | None = None,
    step: int | None = None,
    image_budget: int = IMAGE_BUDGET,
    root_id: str | None = None,
) -> RunPage:
    """The run browser of ``history`` (only attempt ``attempt`` and step ``step`` when
    given) as an HTML fragment and its text summary."""
    root = root_id or "recorder-run-" + uuid.uuid4().hex[:12]
    attempts = [a for a in history.attempts if attempt is None or a.number == attempt]
    every = [_rows(history, a.number) for a in attempts]
    shown = [[r for r in rows if step is None or r.event.seq == step] for rows in every]
    for rows in shown:
        for row in rows:
            _load(history, row)
    images = _Images(image_budget)
    _spend_images(history, shown, images)
    all_stats = [_attempt_stats(rows) for rows in every]
    total = (
        {k: sum(s[k] for s in all_stats) for k in all_stats[0]} if all_stats else _attempt_stats([])
    )
    seconds = sum(_duration(history, a, r) for a, r in zip(attempts, every, strict=True))
    name = history.name
    label = f"{name} (attempt {attempt})" if attempt is not None else name
    parts = [
        f"<div class='recorder-viewer mathjax_ignore tex2jax_ignore' id='{root}' tabindex='0'"
        " data-lm-suppress-shortcuts='true'"
        " style='font-size:13px;line-height:1.45;max-width:100%'>",
        style(root),
        "<div class='rv-head'>",
        f"<div class='rv-title'>{outcome_badge(history.status)} <b class='rv-run'>"
        f"{esc(label)}</b> <code class='rv-runid rv-muted'>{esc(history.run_id)}</code></div>",
        f"<div class='rv-inputs rv-mono' title='{esc(cut(dumps(history.inputs)))}'>"
        f"<span class='rv-muted'>inputs </span>{esc(_inputs(history.inputs))}</div>",
        "<div class='rv-stats'>"
        + " · ".join(_stat(v, t) for v, t in _totals(history, every, total, seconds))
        + "</div></div>",
    ]
    if images.skipped:
        hint = "; ".join(
            f"attempt {n}: {count} (<code>{esc(show_call(history.run_id, n))}</code>)"
            for n, count in sorted(images.skipped.items())
        )
        parts.append(
            f"<div class='rv-note'>Screenshots past this view's "
            f"{image_budget / 1e6:g} MB of images are not embedded: {hint}.</div>"
        )
    parts.append("<div class='rv-toolbar' hidden></div>")
    index: list[dict[str, Any]] = []
    last = attempts[-1].number if attempts else None
    for record, rows, stats in zip(attempts, shown, all_stats, strict=True):
        parts.append(
            _attempt_html(
                history,
                record,
                rows,
                stats,
                every,
                attempts,
                open_=record.number == last,
                step=step,
                root=root,
            )
        )
        index += [_index_entry(r) for r in rows]
    if not attempts:
        parts.append("<div class='rv-note'>No attempt yet: the run was never entered.</div>")
    data = json.dumps({"root": root, "rows": index}, ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts.append(f"<script type='application/json' class='rv-data'>{data}</script>")
    parts.append(script())
    parts.append("</div>")
    page = "".join(parts)
    return RunPage(html=page, text=summary_text(history, attempts, every), root_id=root)


def _totals(
    history: RunHistory, every: list[list[StepRow]], total: dict[str, Any], seconds: float
) -> list[tuple[Any, str]]:
    count = len(history.attempts)
    out: list[tuple[Any, str]] = [
        (count, "attempts" if count != 1 else "attempt"),
        (sum(len(r) for r in every), _plural(sum(len(r) for r in every), "step call")),
        (total["replayed"], "replayed"),
        (total["live"], "live"),
        (total["failed"], "failed"),
    ]
    if total["llm"]:
        out += [
            (total["llm"], _plural(total["llm"], "LLM call")),
            (tokens(total["tokens"]), "tokens"),
            (usd(total["spent"]), "spent"),
            (usd(total["saved"]), "saved"),
        ]
    out.append((format_seconds(seconds), ""))
    return out


def _inputs(inputs: Any) -> str:
    return "none" if inputs is None else one_line(dumps(inputs), 240)


def _stat(value: Any, text: str) -> str:
    return f"<span class='rv-stat'><b>{esc(str(value))}</b> {esc(text)}</span>"


def _index_entry(row: StepRow) -> dict[str, Any]:
    name, target = name_and_target(row)
    return {
        "id": row.dom_id,
        "attempt": row.attempt,
        "seq": row.event.seq,
        "status": row.event.status,
        "kind": row.event.kind,
        "text": f"{row.event.name} {name} {target}".lower(),
    }


def _attempt_html(
    history: RunHistory,
    record: AttemptRecord,
    rows: list[StepRow],
    stats: dict[str, Any],
    every: list[list[StepRow]],
    attempts: list[AttemptRecord],
    *,
    open_: bool,
    step: int | None,
    root: str,
) -> str:
    outcome = _outcome(history, record)
    all_rows = every[attempts.index(record)]
    facts = [
        f"{record.mode}",
        f"started {when(record.started_at)}",
        f"{len(all_rows)} {_plural(len(all_rows), 'step call')}: {_counts(stats)}",
        format_seconds(_duration(history, record, all_rows)),
    ]
    if stats["llm"]:
        facts.append(
            f"{stats['llm']} {_plural(stats['llm'], 'LLM call')}, {tokens(stats['tokens'])} tokens"
        )
    if stats["spent"] or stats["llm_live"]:
        facts.append(f"spent {usd(stats['spent'])}")
    if stats["saved"]:
        facts.append(f"saved {usd(stats['saved'])}")
    error = ""
    if record.error is not None:
        error = (
            f"<div class='rv-attempt-error rv-ell' title='{esc(cut(record.error.summary))}'>"
            f"{esc(one_line(record.error.summary, 300))}</div>"
        )
    head = "".join(
        f"<span class='rv-cell' style='white-space:nowrap'>{esc(h)}</span>" for h in _HEADS
    )
    body = []
    previous: dict[str, Any] | None = None
    longest = max((r.event.duration_s for r in all_rows), default=0.0)
    for row in rows:
        body.append(_row_html(row, previous, open_=step is not None, root=root, longest=longest))
        if row.event.kind == "llm" and isinstance(row.request, dict):
            previous = {"seq": row.event.seq, "messages": row.request.get("messages") or []}
    if not rows:
        body.append(
            "<div class='rv-note'>no step call"
            + (f" #{step}" if step is not None else "")
            + " in this attempt</div>"
        )
    return (
        f"<details class='rv-attempt' data-attempt='{record.number}'{' open' if open_ else ''}>"
        f"<summary class='rv-attempt-head'><span class='rv-caret'>▸</span>"
        f"<b>attempt {record.number}</b> {outcome_badge(outcome)} "
        f"<span class='rv-muted'>{esc(' · '.join(facts))}</span>{error}</summary>"
        f"<div class='rv-table'><div class='rv-row rv-headrow' style='{_GRID}'>{head}</div>"
        f"{''.join(body)}</div></details>"
    )


def summary_text(
    history: RunHistory, attempts: list[AttemptRecord], every: list[list[StepRow]]
) -> str:
    """The plain-text form: the run, each attempt with its outcome, the totals."""
    lines = [
        f"run {history.run_id}: {history.status}, {len(history.attempts)} attempt"
        f"{'s' if len(history.attempts) != 1 else ''}"
    ]
    spent = saved = 0.0
    llm = count = 0
    for record, rows in zip(attempts, every, strict=True):
        stats = _attempt_stats(rows)
        spent, saved, llm = spent + stats["spent"], saved + stats["saved"], llm + stats["llm"]
        count += stats["tokens"]
        line = (
            f"  attempt {record.number}: {_outcome(history, record)}, {len(rows)} "
            f"{_plural(len(rows), 'step call')} ({_counts(stats)}), "
            f"{format_seconds(_duration(history, record, rows))}"
        )
        if record.error is not None:
            line += f": {one_line(record.error.summary, 100)}"
        lines.append(line)
    if llm:
        lines.append(
            f"  LLM: {llm} {_plural(llm, 'call')}, {tokens(count)} tokens, spent {usd(spent)}, "
            f"saved {usd(saved)}"
        )
    return "\n".join(lines)
