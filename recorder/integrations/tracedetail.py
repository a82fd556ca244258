"""The detail of one step call in the run browser (:mod:`.tracehtml`): the LLM call as a
conversation (roles, tool calls with their arguments, tool results), the browser action
with its screenshot at full size, a step's arguments and result, the error with its
traceback; and the small formatters the page shares (money, tokens, times, escaped text).

What is shown is what the store holds, where the recorder already redacted secrets
(:mod:`recorder.redaction`); the blobs that hold cookies, storage or a step's real
secrets (:data:`recorder.redaction.SECRET_BLOB_FIELDS`) are never read.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..display import format_usd
from ..keys import dumps
from ..records import ErrorInfo, StepRecord, TraceEvent
from ..redaction import SECRET_BLOB_FIELDS
from .traceassets import OUTCOME_COLOURS

__all__ = [
    "TEXT_LIMIT",
    "StepRow",
    "badge",
    "cut",
    "detail",
    "dl",
    "esc",
    "exact_usd",
    "llm_reply",
    "name_and_target",
    "one_line",
    "outcome_badge",
    "pre",
    "row_error",
    "show_call",
    "tokens",
    "usd",
    "when",
]

TEXT_LIMIT = 20_000
"""Characters of one message, argument or result shown; the rest is cut with a note."""

esc = html.escape
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+")
_HIDDEN_META = frozenset({*SECRET_BLOB_FIELDS, "screenshot", "events", "try"})


@dataclass
class StepRow:
    """One step call of one attempt, with what the view shows of it."""

    run_id: str
    attempt: int
    index: int
    event: TraceEvent
    record: StepRecord | None
    meta: dict[str, Any]
    request: Any = None
    result: Any = None
    damage: str | None = None
    shot: str | None = None
    """The screenshot's data URI, when embedded."""
    shot_same_as: StepRow | None = None
    shot_skipped: bool = False

    @property
    def dom_id(self) -> str:
        return f"a{self.attempt}-r{self.index}"


# -- numbers and text ----------------------------------------------------------------------


def usd(value: Any) -> str:
    """:func:`~recorder.display.format_usd` of a number, ``""`` of anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return format_usd(float(value))
    return ""


def exact_usd(value: Any) -> str:
    """Money to the millionth of a cent, for a tooltip (``$0.0000036``)."""
    return f"${float(value):.8f}".rstrip("0").rstrip(".")


def tokens(value: Any) -> str:
    """A token count with thousands separators (``1,234``)."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def one_line(text: str, width: int = 120) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def cut(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    more = len(text) - TEXT_LIMIT
    return text[:TEXT_LIMIT] + f"\n… ({more:,} more characters: recorder.load(...) has them all)"


def as_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    return str(value)


def pre(value: Any, cls: str = "") -> str:
    return f"<pre class='rv-pre {cls}'>{esc(cut(as_json(value)))}</pre>"


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def badge(text: str, colour: str, cls: str) -> str:
    return (
        f"<span class='rv-badge {cls}' style='background:{colour};color:#fff;"
        f"border-radius:10px;padding:0 7px;white-space:nowrap'>{esc(text)}</span>"
    )


def outcome_badge(outcome: str) -> str:
    colour = OUTCOME_COLOURS.get(outcome, OUTCOME_COLOURS["running"])
    return badge(outcome, colour, f"rv-outcome rv-outcome-{esc(outcome)}")


def dl(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v)
    return f"<dl class='rv-kv'>{rows}</dl>" if rows else ""


def show_call(run_id: str, attempt: int, step: int | None = None) -> str:
    """The call that shows what a view left out."""
    tail = f", step={step}" if step is not None else ""
    return f"recorder.show({run_id!r}, attempt={attempt}{tail})"


# -- one row -------------------------------------------------------------------------------


def llm_reply(result: Any) -> dict[str, Any] | None:
    """The first choice's message of a recorded chat response or stream."""
    if isinstance(result, dict):
        response = result.get("response")
        if isinstance(response, dict):
            choices = response.get("choices") or []
            if choices and isinstance(choices[0], dict):
                message = choices[0].get("message")
                return message if isinstance(message, dict) else None
    if isinstance(result, list):  # a recorded stream: its chunks
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        for chunk in result:
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            delta = (choices or [{}])[0].get("delta") or {}
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call.get("index", 0), {"function": {"name": "", "arguments": ""}}
                )
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot.get("id")
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
        return {
            "role": "assistant",
            "content": "".join(text),
            "tool_calls": [calls[i] for i in sorted(calls)],
        }
    return None


def _call_text(call: Any) -> str:
    function = (call.get("function") if isinstance(call, dict) else None) or {}
    arguments = function.get("arguments")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())
    else:
        inner = str(arguments or "")
    return f"{function.get('name') or '?'}({inner})"


def name_and_target(row: StepRow) -> tuple[str, str]:
    event, meta = row.event, row.meta
    if event.kind == "llm":
        reply = llm_reply(row.result)
        name = ""
        if reply is not None:
            calls = reply.get("tool_calls") or []
            name = "→ " + _call_text(calls[0]) if calls else _text_of(reply.get("content"))
        return name or event.name, str(meta.get("model") or event.name)
    if event.kind == "browser":
        action = str(meta.get("action") or "")
        name = event.name if not action or event.name == action else f"{event.name} ({action})"
        return name, str(meta.get("selector") or meta.get("url") or "")
    request = row.request
    if isinstance(request, dict) and ("args" in request or "kwargs" in request):
        args = [dumps(a) for a in request.get("args") or []]
        args += [f"{k}={dumps(v)}" for k, v in (request.get("kwargs") or {}).items()]
        return event.name, ", ".join(args)
    return event.name, ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text") or "") for part in content if isinstance(part, dict)
        ).strip()
    return "" if content is None else as_json(content)


def row_error(row: StepRow) -> str:
    failure = row.event.error or (row.record.error if row.record else None)
    if failure is None:
        return ""
    return f"<span class='rv-row-error'> · {esc(one_line(failure.summary, 160))}</span>"


def detail(row: StepRow, previous: dict[str, Any] | None, root: str) -> str:
    event = row.event
    parts: list[str] = []
    failure = event.error or (row.record.error if row.record else None)
    if failure is not None:
        parts.append(_error_block(failure))
    if row.damage:
        parts.append(f"<div class='rv-damaged'>damaged record: {esc(row.damage)}</div>")
    if event.kind == "llm":
        parts.append(_llm_detail(row, previous))
    elif event.kind == "browser":
        parts.append(_browser_detail(row, root))
    else:
        if row.request is not None:
            parts.append(_section("arguments", pre(row.request)))
        if row.result is not None:
            parts.append(_section("result", pre(row.result)))
    extra = {
        k: v
        for k, v in row.meta.items()
        if k not in _HIDDEN_META and k not in _SHOWN_META.get(event.kind, ())
    }
    facts = [
        ("started", esc(when(event.started_at))),
        ("duration", esc(f"{event.duration_s:.3f} s")),
    ]
    if row.record is not None and event.status == "replayed":
        facts.append(
            ("recorded", esc(f"{row.record.duration_s:.3f} s live, attempt {row.record.attempt}"))
        )
    facts += [(k, esc(one_line(as_json(v), 300))) for k, v in extra.items()]
    facts.append(
        (
            "key",
            f"<code class='rv-key'>{esc(event.key)}</code> "
            f"occurrence {event.occurrence}, generation {event.generation}",
        )
    )
    parts.append(_section("step", dl(facts)))
    return "".join(parts)


_SHOWN_META = {
    "llm": ("model", "prompt_tokens", "completion_tokens", "cost_usd", "temperature", "seed"),
    "browser": ("action", "selector", "url"),
}


def _section(title: str, body: str) -> str:
    return f"<div class='rv-section'><div class='rv-label'>{esc(title)}</div>{body}</div>"


def _error_block(failure: ErrorInfo) -> str:
    trace = ""
    if failure.traceback:
        lines = failure.traceback.count("\n")
        trace = (
            f"<details class='rv-trace'><summary>traceback ({lines} lines)</summary>"
            f"{pre(failure.traceback)}</details>"
        )
    return f"<div class='rv-error'><b>{esc(one_line(failure.summary, 400))}</b>{trace}</div>"


# -- LLM conversations ---------------------------------------------------------------------


def _llm_detail(row: StepRow, previous: dict[str, Any] | None) -> str:
    request = row.request if isinstance(row.request, dict) else {}
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                names[call.get("id")] = (call.get("function") or {}).get("name")
    earlier = 0
    before = (previous or {}).get("messages") or []
    if previous is not None and 0 < len(before) < len(messages):
        # A conversation that goes on from the previous call: what that call was sent
        # folds away, and what is new since (its reply, tool results) stays in view.
        earlier = len(before) if messages[: len(before)] == before else 0
    parts = []
    if messages:
        bubbles = [_message(m, names) for m in messages]
        conversation = "".join(bubbles[earlier:])
        if earlier:
            conversation = (
                f"<details class='rv-earlier'><summary>{earlier} earlier message"
                f"{'s' if earlier != 1 else ''} (as in step #{previous and previous['seq']})"
                f"</summary>{''.join(bubbles[:earlier])}</details>{conversation}"
            )
        parts.append(_section("conversation", f"<div class='rv-chat'>{conversation}</div>"))
    elif "input" in request or "prompt" in request:
        parts.append(_section("input", pre(request.get("input", request.get("prompt")))))
    reply = llm_reply(row.result)
    if reply is not None:
        finish = ""
        response = row.result.get("response") if isinstance(row.result, dict) else None
        if isinstance(response, dict) and response.get("choices"):
            finish = str(response["choices"][0].get("finish_reason") or "")
        label = "response" + (f" · {finish}" if finish else "")
        parts.append(_section(label, "<div class='rv-chat'>" + _message(reply, names) + "</div>"))
    elif row.result is not None:
        shown = row.result.get("plain", row.result) if isinstance(row.result, dict) else row.result
        parts.append(_section("response", pre(shown)))
    meta = row.meta
    prompt, completion = meta.get("prompt_tokens"), meta.get("completion_tokens")
    total = prompt + completion if isinstance(prompt, int) and isinstance(completion, int) else None
    params = {k: v for k, v in request.items() if k not in ("messages", "tools", "input", "prompt")}
    tools = [
        ((t.get("function") or {}).get("name") or t.get("name") or "?")
        for t in request.get("tools") or []
        if isinstance(t, dict)
    ]
    facts = [
        ("model", esc(str(meta.get("model") or params.get("model") or ""))),
        (
            "tokens",
            esc(
                f"{tokens(prompt)} prompt + {tokens(completion)} completion"
                + (f" = {tokens(total)}" if total is not None else "")
            ),
        ),
        (
            "cost",
            esc(usd(meta.get("cost_usd")) or "unknown")
            + (
                " <span class='rv-muted'>(replayed: not spent)</span>"
                if row.event.status == "replayed"
                else ""
            ),
        ),
        (
            "parameters",
            esc(", ".join(f"{k}={dumps(v)}" for k, v in params.items() if k != "model")),
        ),
    ]
    if tools:
        facts.append(
            (
                "tools",
                esc(", ".join(tools)) + f"<details class='rv-tools'><summary>schemas</summary>"
                f"{pre(request.get('tools'))}</details>",
            )
        )
    parts.append(_section("call", dl(facts)))
    return "".join(parts)


def _message(message: dict[str, Any], names: dict[Any, Any]) -> str:
    role = str(message.get("role") or "?")
    label = role
    if role == "tool":
        call_id = message.get("tool_call_id")
        label = f"tool result · {names.get(call_id) or '?'} ({call_id})"
    elif message.get("name"):
        label = f"{role} · {message['name']}"
    body = _content(message.get("content"))
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        arguments = function.get("arguments")
        try:
            shown = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            shown = arguments
        body += (
            f"<div class='rv-call'><span class='rv-fn'>{esc(str(function.get('name')))}</span>"
            f"<span class='rv-muted'> tool call {esc(str(call.get('id') or ''))}</span>"
            f"{pre(shown if shown is not None else '', 'rv-args')}</div>"
        )
    safe_role = re.sub(r"[^a-z]", "", role.lower()) or "other"
    return (
        f"<div class='rv-msg rv-role-{safe_role}'><div class='rv-who'>{esc(label)}</div>"
        f"{body or '<span class=rv-muted>(empty)</span>'}</div>"
    )


def _content(content: Any) -> str:
    if content is None or content == "":
        return ""
    if isinstance(content, str):
        return f"<div class='rv-text'>{esc(cut(content))}</div>"
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                out.append(f"<div class='rv-text'>{esc(cut(str(part.get('text') or '')))}</div>")
            elif isinstance(part, dict) and part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                out.append(_message_image(str(url or "")))
            else:
                out.append(pre(part))
        return "".join(out)
    return pre(content)


def _message_image(url: str) -> str:
    # Only an inline image is drawn: a remote URL would be a request from the reader's
    # browser (and the view loads nothing from outside).
    if _DATA_IMAGE.fullmatch(url) and len(url) < 2_000_000:
        return f"<img class='rv-shot' alt='image in the message' src='{esc(url)}' loading='lazy'>"
    return f"<div class='rv-muted'>[image: {esc(one_line(url, 100))}]</div>"


# -- browser steps -------------------------------------------------------------------------


def _browser_detail(row: StepRow, root: str) -> str:
    meta = row.meta
    facts = [
        (name, f"<code>{esc(str(meta[name]))}</code>")
        for name in ("action", "selector", "url")
        if meta.get(name) is not None
    ]
    request = row.request if isinstance(row.request, dict) else None
    if request is not None:
        args = [dumps(a) for a in request.get("args") or []]
        args += [f"{k}={dumps(v)}" for k, v in (request.get("kwargs") or {}).items()]
        if args:
            facts.append(("arguments", f"<code>{esc(cut(', '.join(args)))}</code>"))
    if isinstance(meta.get("frames"), list):
        facts.append(("frames", esc(", ".join(str(f) for f in meta["frames"]))))
    parts = [_section("browser", dl(facts))]
    if row.result is not None and not isinstance(row.result, bytes):
        parts.append(_section("result", pre(row.result)))
    parts.append(_screenshot(row, root))
    return "".join(parts)


def _screenshot(row: StepRow, root: str) -> str:
    if row.shot is not None:
        return _section(
            "screenshot (after the step)",
            f"<img class='rv-shot' src='{row.shot}' alt='screenshot after step #{row.event.seq}' "
            "loading='lazy' decoding='async' title='click to view at full size' "
            "style='max-width:100%;height:auto'>",
        )
    same = row.shot_same_as
    if same is not None:
        if same.shot is None:
            return ""
        return _section(
            "screenshot",
            (
                f"<span class='rv-muted'>the page is as after step </span><a class='rv-shot-ref' "
                f"href='#{root}-{same.dom_id}' data-ref='{same.dom_id}'>#{same.event.seq}</a>"
                "<span class='rv-muted'> (same screenshot)</span>"
            ),
        )
    if row.shot_skipped:
        return _section(
            "screenshot",
            (
                "<span class='rv-muted'>not embedded: this view's image budget is spent; "
                f"<code>{esc(show_call(row.run_id, row.attempt, row.event.seq))}</code>"
                " shows it</span>"
            ),
        )
    return ""
