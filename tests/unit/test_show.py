"""``recorder.show``: the run browser (one self-contained HTML fragment: attempts as groups
with their outcomes, a grid of step calls, each opening on its detail) and the
side-by-side view of a replay miss or a divergence."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder.integrations import viewer

HOSTILE = "</script><img src=x onerror=alert(1)><script>alert(2)</script>"


def boom(x: str) -> str:
    raise ValueError(f"bad <{x}>")


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A real PNG of one grey shade (the viewer embeds it as it is)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def fake_llm(run: recorder.Run, messages: list[dict[str, Any]], reply: dict[str, Any]) -> Any:
    """An LLM step as the litellm integration records one (without litellm)."""
    request = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "temperature": 0,
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    call = run.begin("llm", "gpt-4o-mini", request, {"model": "gpt-4o-mini"})
    if call.replayed:
        return call.replay()
    result = {
        "response": {"choices": [{"index": 0, "message": reply, "finish_reason": "tool_calls"}]}
    }
    meta = {"prompt_tokens": 12345, "completion_tokens": 67, "cost_usd": 3.6000000000000003e-06}
    call.commit(result, meta=meta)
    return result


def fake_click(run: recorder.Run, selector: str, shot: bytes) -> None:
    """A browser step with its screenshot, as the browser integration records one."""
    request = {"action": "click", "args": [], "kwargs": {}, "target": [["locator", [selector]]]}
    call = run.begin("browser", "click", request, {"action": "click", "selector": selector})
    if call.replayed:
        call.replay()
        return
    ref = "sha256:" + __import__("hashlib").sha256(shot).hexdigest()
    call.commit(
        None, meta={"screenshot": ref, "url": "http://127.0.0.1/page?q=1"}, blobs={ref: shot}
    )


def bundle(view: Any) -> tuple[str, str]:
    found = view._repr_mimebundle_()
    assert set(found) == {"text/html", "text/plain"}
    return found["text/html"], found["text/plain"]


def attempt_groups(page: str) -> list[tuple[str, bool, str]]:
    """(attempt number, open, outcome) of each attempt group, in order."""
    return re.findall(
        r"<details class='rv-attempt' data-attempt='(\d+)'( open)?>.*?rv-outcome-(\w+)", page
    )


def test_attempts_are_groups_with_their_outcomes_and_the_last_is_open(store_dir: Path) -> None:
    with pytest.raises(ValueError), recorder.run("browse", store=store_dir) as run:
        run.step("shout", str.upper, "<hello>")
        run.step("fail", boom, "x")
    with recorder.run("browse", store=store_dir) as run:
        run.step("shout", str.upper, "<hello>")
        with pytest.raises(ValueError):
            run.step("fail", boom, "x")
    page, text = bundle(recorder.show(run))
    assert attempt_groups(page) == [("1", "", "failed"), ("2", " open", "completed")]
    # The failed attempt's error, on one line in its group's head
    assert re.search(r"rv-attempt-error[^>]*>ValueError: bad &lt;x&gt;</div>", page)
    assert "<x>" not in page
    assert page.count("class='rv-step") == 4
    assert page.count("rv-status-replayed") == 1 and page.count("rv-status-failed") == 2
    assert "&lt;HELLO&gt;" in page and "&quot;&lt;hello&gt;&quot;" in page  # result, arguments
    assert "traceback (" in page and "in boom" in page
    lines = text.splitlines()
    assert lines[0] == f"run {run.run_id}: completed, 2 attempts"
    assert lines[1].startswith("  attempt 1: failed, 2 step calls (0 replayed · 1 live · 1 failed)")
    assert lines[1].endswith(": ValueError: bad <x>")
    assert lines[2].startswith(
        "  attempt 2: completed, 2 step calls (1 replayed · 0 live · 1 failed"
    )
    assert repr(recorder.show(run)) == text
    again, _ = bundle(recorder.show("browse", store=store_dir))
    assert attempt_groups(again) == attempt_groups(page)
    with pytest.raises(TypeError, match=r"recorder\.show"):
        recorder.show(42)


def test_each_outcome_has_its_colour(store_dir: Path) -> None:
    with recorder.run("done", store=store_dir) as run:
        run.step("one", int, "1")
    page, _ = bundle(recorder.show(run))
    assert re.search(r"background:#1a7f37;color:#fff[^>]*>completed<", page)
    with pytest.raises(KeyboardInterrupt), recorder.run("stopped", store=store_dir) as run:
        raise KeyboardInterrupt
    page, text = bundle(recorder.show(run))
    assert re.search(r"background:#9a6700;color:#fff[^>]*>interrupted<", page)
    assert "attempt 1: interrupted" in text


def test_an_llm_call_shows_as_a_conversation_with_tool_calls(store_dir: Path) -> None:
    messages = [
        {"role": "system", "content": "You look things up."},
        {"role": "user", "content": "Find <b>Ada</b>"},
    ]
    reply = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"who": "Ada", "limit": 3}'},
            }
        ],
    }
    with recorder.run("chat", store=store_dir) as run:
        fake_llm(run, messages, reply)
        follow = [*messages, reply, {"role": "tool", "tool_call_id": "call_7", "content": "found"}]
        fake_llm(run, follow, {"role": "assistant", "content": "Ada is here."})
    page, text = bundle(recorder.show(run))
    first, second = page.split("class='rv-step")[1:3]
    for role in ("system", "user", "assistant"):
        assert f"rv-role-{role}" in first
    assert "Find &lt;b&gt;Ada&lt;/b&gt;" in first
    assert "<span class='rv-fn'>lookup</span>" in first
    assert "{\n  &quot;who&quot;: &quot;Ada&quot;,\n  &quot;limit&quot;: 3\n}" in first  # pretty
    assert "→ lookup(who=&quot;Ada&quot;, limit=3)" in first  # the row names the tool call
    # The second call goes on from the first: what the first was sent folds away.
    assert "2 earlier messages (as in step #0)" in second
    assert "tool result · lookup (call_7)" in second and "Ada is here." in second
    # Numbers for people: money, tokens.
    assert "e-06" not in page and "title='$0.0000036'" in page
    assert ">&lt;$0.0001<" in page and "12,345 prompt + 67 completion = 12,412" in page
    assert "LLM: 2 calls, 24,824 tokens, spent <$0.0001, saved $0" in text


def test_numbers_read_as_people_write_them() -> None:
    from recorder.integrations.tracehtml import tokens, usd

    assert usd(3.6000000000000003e-06) == "<$0.0001"
    assert usd(0.0042) == "$0.0042" and usd(1.234) == "$1.23" and usd(None) == ""
    assert tokens(1234567) == "1,234,567" and tokens(None) == "-"


def test_hostile_text_is_escaped_everywhere_and_the_data_script_cannot_close(
    store_dir: Path,
) -> None:
    with recorder.run("hostile", store=store_dir, inputs={"q": HOSTILE}) as run:
        run.step(HOSTILE, str.lower, HOSTILE)
        fake_llm(
            run, [{"role": "user", "content": HOSTILE}], {"role": "assistant", "content": HOSTILE}
        )
    page, _ = bundle(recorder.show(run))
    assert "<img src=x" not in page and "alert(2)</script>" not in page
    # Two scripts only: the JSON data and the viewer's own code.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    data = re.search(r"<script type='application/json' class='rv-data'>(.*?)</script>", page, re.S)
    assert data is not None and "<" not in data.group(1) and "\\u003c/script" in data.group(1)
    rows = json.loads(data.group(1))["rows"]
    assert HOSTILE.lower() in rows[0]["text"]


def test_one_root_id_per_view_scopes_its_style(store_dir: Path) -> None:
    with recorder.run("twice", store=store_dir) as run:
        run.step("one", int, "1")
    first, second = recorder.show(run), recorder.show(run)
    assert first.root_id != second.root_id
    page, _ = bundle(first)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    selectors = [
        s.strip()
        for rule in style.group(1).split("}")
        if "{" in rule
        for s in rule.split("{")[0].split(",")
    ]
    assert selectors and all(s.startswith("#" + first.root_id) for s in selectors)
    assert "http" not in style.group(1) and "@import" not in style.group(1)
    code = page.split("<script>")[1]
    assert "eval(" not in code and "innerHTML" not in code and "window." not in code


def test_screenshots_are_embedded_at_full_size_up_to_the_budget(store_dir: Path) -> None:
    shots = [png(300, 200, shade) for shade in range(3)]
    for _ in range(2):
        with recorder.run("shots", store=store_dir) as run:
            for n, shot in enumerate(shots):
                fake_click(run, f"#b{n}", shot)
            fake_click(run, "#b0", shots[0])  # the same page again: not embedded twice
    page, _ = bundle(recorder.show(run))
    uris = re.findall(r"src='(data:image/png;base64,[^']+)'", page)
    assert len(uris) == 6 and base64.b64decode(uris[0].split(",")[1]) == shots[0]
    images = re.findall(r"<img [^>]*>", page)
    assert all("max-width:100%;height:auto" in i and " width=" not in i for i in images)
    assert "the page is as after step" in page
    # A budget for four: the last attempt's three first, then the first one of attempt 1
    budget = sum(len(uri) for uri in uris[3:]) + len(uris[0])
    page, _ = bundle(viewer.show(run, image_budget=budget))
    assert re.findall(r"src='(data:image[^']+)'", page) == uris[:1] + uris[3:]
    called = f"recorder.show(&#x27;{run.run_id}&#x27;, attempt=1"
    assert f"attempt 1: 2 (<code>{called})</code>)" in page
    assert f"{called}, step=2)" in page


def test_attempt_and_step_filters(store_dir: Path) -> None:
    for _ in range(2):
        with recorder.run("filters", store=store_dir) as run:
            run.step("a", str.upper, "a")
            run.step("b", str.upper, "b")
    page, _ = bundle(viewer.show(run, attempt=1))
    assert attempt_groups(page) == [("1", " open", "completed")]
    assert page.count("class='rv-step") == 2
    page, _ = bundle(viewer.show("filters", store=store_dir, step=1))
    assert page.count("class='rv-step") == 2  # step #1 of each attempt, opened
    assert page.count("class='rv-step' id=") == 2 and "data-row='a1-r1' open" in page
    with pytest.raises(recorder.ConfigError, match="no attempt 3; its attempts are 1, 2"):
        viewer.show(run, attempt=3)


def test_checkpoint_contents_are_never_read(store_dir: Path) -> None:
    with recorder.run("secret", store=store_dir) as run:
        call = run.begin("browser", "fill", {"action": "fill", "args": ["x"]}, {"action": "fill"})
        blob = b'{"cookies": [{"value": "COOKIE-VALUE"}]}'
        ref = "sha256:" + __import__("hashlib").sha256(blob).hexdigest()
        call.commit(None, meta={"checkpoint": ref}, blobs={ref: blob})
    page, _ = bundle(recorder.show(run))
    assert "COOKIE-VALUE" not in page and ref not in page


def test_save_writes_a_standalone_page(store_dir: Path, tmp_path: Path) -> None:
    with recorder.run("saved", store=store_dir) as run:
        run.step("one", int, "1")
    path = recorder.show(run).save(tmp_path / "run.html")
    text = path.read_text()
    assert text.startswith("<!doctype html>") and "<meta charset='utf-8'>" in text


def test_a_miss_shows_recorded_and_asked_side_by_side(store_dir: Path) -> None:
    with recorder.run("miss", store=store_dir) as run:
        run.step("shout", str.upper, "hello")
    replaying = recorder.run("miss", store=store_dir, mode="replay")
    with pytest.raises(recorder.ReplayMissError) as caught, replaying as run:
        run.step("shout", str.upper, "<goodbye>")
    page, text = bundle(recorder.show(caught.value))
    assert "ReplayMissError" in page and "asked for now" in page
    assert "hello" in page and "&lt;goodbye&gt;" in page and "<goodbye>" not in page
    assert "<script" not in page and text.startswith("ReplayMissError: ")


async def test_a_fan_out_child_opens_in_the_run_browser() -> None:
    async def agent(run: recorder.Run, x: int) -> int:
        return int(await run.astep("double", lambda v: 2 * v, x))

    fan = recorder.fan_out(agent, range(2), name="kids", key=int, store=recorder.MemoryStore(),
                           display=False)  # fmt: skip
    await fan
    page, text = bundle(fan.show(1))
    assert text.startswith("run kids:1@") and ": completed, 1 attempt" in text
    assert attempt_groups(page) == [("1", " open", "completed")] and ">double<" in page
