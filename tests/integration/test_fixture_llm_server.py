"""Integration tests of ``fixtures.llm_server`` through real litellm over loopback HTTP."""

from __future__ import annotations

import os

# Must precede the litellm import, or importing litellm tries to fetch the cost map online.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import base64
import http.client
import importlib.util
import json
import selectors
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import openai
import pytest

from fixtures.llm_server import ECHO_CREATED, LLMServer

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"
REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about the weather in Paris today"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
# litellm 1.106's completion() imports its MCP gateway (which needs the optional ``mcp``
# package) whenever ``tools`` is passed; without ``mcp`` installed it fails with
# ModuleNotFoundError before sending anything. The private ``_skip_mcp_handler`` flag
# bypasses that check; only use it when ``mcp`` is missing.
TOOL_KW: dict[str, Any] = {} if importlib.util.find_spec("mcp") else {"_skip_mcp_handler": True}


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fixture-llm-server")]


@pytest.fixture(autouse=True)
def _quiet_litellm_and_no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Silence litellm's "Give Feedback" banner; fail if a test leaves server threads."""
    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    yield
    deadline = time.monotonic() + 2.0
    while _server_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _server_threads() == []


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def _kw(srv: LLMServer, **extra: Any) -> dict[str, Any]:
    """Common litellm arguments; no retries so request counts are exact."""
    return {
        "model": MODEL,
        "api_base": srv.base_url,
        "api_key": "sk-test",
        "num_retries": 0,
        "max_retries": 0,
        **extra,
    }


def _get_json(url: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- non-streaming ------------------------------------------------------------------------


def test_non_streaming_completion(server: LLMServer) -> None:
    resp = litellm.completion(messages=MESSAGES, **_kw(server))

    text = resp.choices[0].message.content
    assert text.startswith("echo-")
    assert text.endswith(": Tell me about the weather in Paris today")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o-mini"
    assert resp.created == ECHO_CREATED
    assert resp.system_fingerprint == "fp_fixture"
    assert resp.usage.prompt_tokens == 11
    assert resp.usage.completion_tokens == len(text.split())
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert server.requests == 1
    assert server.bodies[0]["messages"] == MESSAGES
    assert server.bodies[0]["model"] == "gpt-4o-mini"


def test_echo_is_deterministic(server: LLMServer) -> None:
    first = litellm.completion(messages=MESSAGES, **_kw(server))
    second = litellm.completion(messages=MESSAGES, **_kw(server))
    other = litellm.completion(messages=MESSAGES, **_kw(server, temperature=0.5))

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id == second.id
    assert other.choices[0].message.content != first.choices[0].message.content
    assert server.requests == 3


def test_n_choices(server: LLMServer) -> None:
    resp = litellm.completion(messages=MESSAGES, **_kw(server, n=3))

    texts = [c.message.content for c in resp.choices]
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert server.requests == 1


def test_random_mode_gives_fresh_text_and_seed_reproduces() -> None:
    with LLMServer(mode="random", seed=7) as a, LLMServer(mode="random", seed=7) as b:
        a1 = litellm.completion(messages=MESSAGES, **_kw(a)).choices[0].message.content
        a2 = litellm.completion(messages=MESSAGES, **_kw(a)).choices[0].message.content
        b1 = litellm.completion(messages=MESSAGES, **_kw(b)).choices[0].message.content
    assert a1 != a2
    assert a1 == b1
    assert a1.startswith("random-")


def test_policy_list_then_fallback_and_error_reply(server: LLMServer) -> None:
    server.policy = ["scripted one", {"error": 400, "message": "bad scripted request"}]

    assert litellm.completion(messages=MESSAGES, **_kw(server)).choices[0].message.content == (
        "scripted one"
    )
    with pytest.raises(litellm.BadRequestError, match="bad scripted request"):
        litellm.completion(messages=MESSAGES, **_kw(server))
    fallback = litellm.completion(messages=MESSAGES, **_kw(server)).choices[0].message.content
    assert fallback.startswith("echo-")
    assert server.requests == 3


def test_policy_callable_sees_body() -> None:
    def policy(body: dict[str, Any]) -> str | None:
        return f"saw {len(body['messages'])} messages" if body.get("temperature") else None

    with LLMServer(policy) as srv:
        hot = litellm.completion(messages=MESSAGES, **_kw(srv, temperature=1.0))
        cold = litellm.completion(messages=MESSAGES, **_kw(srv))
    assert hot.choices[0].message.content == "saw 2 messages"
    assert cold.choices[0].message.content.startswith("echo-")


def test_broken_policy_answers_500_and_new_policy_restarts(server: LLMServer) -> None:
    def broken(body: dict[str, Any]) -> str:
        raise KeyError("boom")

    server.policy = broken
    with pytest.raises(litellm.InternalServerError, match="policy raised KeyError"):
        litellm.completion(messages=MESSAGES, **_kw(server))
    for _ in range(2):
        server.policy = ["again"]
        assert litellm.completion(messages=MESSAGES, **_kw(server)).choices[0].message.content == (
            "again"
        )


def test_delay_slows_answers() -> None:
    with LLMServer(delay_s=0.3) as srv:
        start = time.monotonic()
        litellm.completion(messages=MESSAGES, **_kw(srv))
        assert time.monotonic() - start >= 0.3


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        LLMServer(host="0.0.0.0")
    with pytest.raises(RuntimeError):
        _ = LLMServer().url


# -- streaming ----------------------------------------------------------------------------


def test_streaming_matches_non_streaming(server: LLMServer) -> None:
    plain = litellm.completion(messages=MESSAGES, **_kw(server)).choices[0].message.content

    stream = litellm.completion(messages=MESSAGES, **_kw(server, stream=True))
    chunks = list(stream)

    assert isinstance(stream, litellm.CustomStreamWrapper)
    assert all(isinstance(c, litellm.ModelResponseStream) for c in chunks)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert _stream_text(chunks) == plain
    assert chunks[-1].choices[0].finish_reason == "stop"
    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert built.choices[0].message.content == plain
    assert built.choices[0].finish_reason == "stop"
    assert server.bodies[1]["stream"] is True
    assert server.requests == 2


def test_streaming_usage_only_when_requested(server: LLMServer) -> None:
    without = list(litellm.completion(messages=MESSAGES, **_kw(server, stream=True)))
    with_usage = list(
        litellm.completion(
            messages=MESSAGES, **_kw(server, stream=True, stream_options={"include_usage": True})
        )
    )

    assert all(getattr(c, "usage", None) is None for c in without)
    usages = [c.usage for c in with_usage if getattr(c, "usage", None) is not None]
    assert len(usages) == 1
    assert usages[0].prompt_tokens == 11
    assert usages[0].completion_tokens >= 1
    built = litellm.stream_chunk_builder(with_usage, messages=MESSAGES)
    assert built.usage.total_tokens == usages[0].total_tokens


def test_raw_sse_wire_format(server: LLMServer) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/chat/completions", json.dumps(body), {"Content-Type": "json"})
        resp = conn.getresponse()
        raw = resp.read().decode()
    finally:
        conn.close()

    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] >= 2


# -- async --------------------------------------------------------------------------------


async def test_acompletion_non_stream_and_stream(server: LLMServer) -> None:
    sync_text = litellm.completion(messages=MESSAGES, **_kw(server)).choices[0].message.content

    resp = await litellm.acompletion(messages=MESSAGES, **_kw(server))
    stream = await litellm.acompletion(messages=MESSAGES, **_kw(server, stream=True))
    chunks = [chunk async for chunk in stream]

    assert resp.choices[0].message.content == sync_text
    assert _stream_text(chunks) == sync_text
    assert litellm.stream_chunk_builder(chunks).choices[0].message.content == sync_text
    assert server.requests == 3


# -- tool calls ---------------------------------------------------------------------------


def test_tool_calls_non_stream_and_stream() -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
    reply = {"content": None, "tool_calls": [call]}
    with LLMServer([reply, reply]) as srv:
        resp = litellm.completion(messages=MESSAGES, **_kw(srv, tools=TOOLS, **TOOL_KW))
        chunks = list(
            litellm.completion(messages=MESSAGES, **_kw(srv, tools=TOOLS, stream=True, **TOOL_KW))
        )

    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (tool_call,) = choice.message.tool_calls
    assert tool_call.type == "function"
    assert tool_call.id.startswith("call_")
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris", "days": 3}

    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    (streamed_call,) = built.choices[0].message.tool_calls
    assert built.choices[0].finish_reason == "tool_calls"
    assert streamed_call.function.name == "get_weather"
    assert json.loads(streamed_call.function.arguments) == {"city": "Paris", "days": 3}
    assert streamed_call.id != tool_call.id


def test_tool_call_reply_without_tools_in_request_is_text() -> None:
    reply = {"content": "no tools offered", "tool_calls": [{"name": "x", "arguments": {}}]}
    with LLMServer([reply]) as srv:
        resp = litellm.completion(messages=MESSAGES, **_kw(srv))
    assert resp.choices[0].message.content == "no tools offered"
    assert not resp.choices[0].message.tool_calls
    assert resp.choices[0].finish_reason == "stop"


# -- failures -----------------------------------------------------------------------------


def test_fail_next_raises_then_recovers(server: LLMServer) -> None:
    server.fail_next()
    with pytest.raises(litellm.InternalServerError, match="Injected failure") as info:
        litellm.completion(messages=MESSAGES, **_kw(server))
    assert isinstance(info.value, openai.APIError)
    assert info.value.status_code == 500
    assert server.requests == 1

    server.fail_next(status=429, message="slow down")
    with pytest.raises(litellm.RateLimitError, match="slow down"):
        litellm.completion(messages=MESSAGES, **_kw(server))

    ok = litellm.completion(messages=MESSAGES, **_kw(server))
    assert ok.choices[0].message.content.startswith("echo-")
    assert server.requests == 3
    assert len(server.bodies) == 3


async def test_fail_next_async(server: LLMServer) -> None:
    server.fail_next(2)
    for stream in (False, True):
        with pytest.raises(litellm.InternalServerError):
            response = await litellm.acompletion(messages=MESSAGES, **_kw(server, stream=stream))
            if stream:  # pragma: no cover - an error status is raised before streaming
                _ = [c async for c in response]
    assert server.requests == 2


# -- HTTP endpoints -----------------------------------------------------------------------


def test_stats_reset_models_and_404(server: LLMServer) -> None:
    litellm.completion(messages=MESSAGES, **_kw(server))
    litellm.completion(messages=MESSAGES, **_kw(server))

    assert _get_json(server.url + "/__stats") == (200, {"requests": 2})
    assert _get_json(server.url + "/__reset", method="POST") == (200, {"requests": 0})
    assert _get_json(server.url + "/__stats") == (200, {"requests": 0})
    assert server.requests == 0
    assert server.bodies == []

    status, models = _get_json(server.base_url + "/models")
    assert status == 200
    assert models["object"] == "list"
    assert models["data"][0]["id"] == "gpt-4o-mini"

    status, err = _get_json(server.url + "/nope")
    assert status == 404
    assert set(err["error"]) >= {"message", "type", "code"}

    server.reset()
    assert server.requests == 0


# -- command line -------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("no LISTENING line from the fixture server")
    return proc.stdout.readline()


def test_command_line(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["from the script"]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fixtures.llm_server", "--port", "0", "--script", str(script)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(proc, timeout=10)
        assert line.startswith("LISTENING http://127.0.0.1:")
        url = line.split()[1]
        kw = {"model": MODEL, "api_base": url + "/v1", "api_key": "sk-test", "max_retries": 0}
        first = litellm.completion(messages=MESSAGES, num_retries=0, **kw)
        second = litellm.completion(messages=MESSAGES, num_retries=0, **kw)
        assert first.choices[0].message.content == "from the script"
        assert second.choices[0].message.content.startswith("echo-")
        assert _get_json(url + "/__stats") == (200, {"requests": 2})
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line was printed, and it was consumed above
    assert err == ""  # no request logging


# -- text completions, responses, embeddings, images --------------------------------------


def test_text_completions_plain_and_streamed(server: LLMServer) -> None:
    kw = _kw(server, model="text-completion-openai/gpt-3.5-turbo-instruct")
    plain = litellm.text_completion(prompt="Say hi to Paris", **kw)
    assert plain.choices[0].text.startswith("echo-") and plain.choices[0].text.endswith("Paris")
    assert plain.id.startswith("cmpl-") and plain.created == ECHO_CREATED
    streamed = list(litellm.text_completion(prompt="Say hi to Paris", stream=True, **kw))
    assert "".join(c.choices[0].text or "" for c in streamed if c.choices) == plain.choices[0].text
    assert server.bodies[0] == {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi to Paris"}
    assert server.requests == 2


def test_responses_api(server: LLMServer) -> None:
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Hello Paris"}]}]
    for asked in ("Hello Paris", items):
        response = litellm.responses(input=asked, instructions="Be terse", **_kw(server))
        text = response.output[0].content[0].text
        assert text.startswith("echo-") and text.endswith("Hello Paris")
        assert response.usage.input_tokens == 2 and response.status == "completed"
    server.policy = [{"error": 429, "message": "slow down"}]
    with pytest.raises(litellm.RateLimitError, match="slow down"):
        litellm.responses(input="again", **_kw(server))
    status, err = _post_json(server.base_url + "/responses", {"input": "x", "stream": True})
    assert status == 400 and "does not stream" in err["error"]["message"]
    assert server.requests == 4


def test_embeddings_as_floats_and_base64(server: LLMServer) -> None:
    kw = _kw(server, model="openai/text-embedding-3-small")
    first = litellm.embedding(input=["a b", "c"], **kw)
    again = litellm.embedding(input=["a b", "c"], **kw)
    assert [len(d["embedding"]) for d in first.data] == [8, 8]
    assert first.data[0]["embedding"] == again.data[0]["embedding"] != first.data[1]["embedding"]
    assert first.usage.prompt_tokens == 3
    body = {"model": "m", "input": "a b", "encoding_format": "base64", "dimensions": 3}
    status, raw = _post_json(server.base_url + "/embeddings", body)
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert status == 200 and len(struct.unpack("<3f", packed)) == 3


def test_image_generation_b64_and_url(server: LLMServer) -> None:
    kw = _kw(server, model="openai/dall-e-3")
    image = litellm.image_generation(prompt="a cat", n=2, **kw)
    raw = [base64.b64decode(d.b64_json) for d in image.data]
    assert [len(r) for r in raw] == [1024, 1024] and raw[0] != raw[1]
    assert image.created == ECHO_CREATED and image.data[0].revised_prompt == "a cat"
    status, by_url = _post_json(
        server.url + "/images/generations", {"prompt": "x", "response_format": "url"}
    )
    assert status == 200 and by_url["data"][0]["url"].startswith(server.url)
    server.fail_next(1, status=400)  # (litellm's images client retries a 5xx on its own)
    with pytest.raises(litellm.BadRequestError):
        litellm.image_generation(prompt="a cat", **kw)
    assert server.requests == 3


def test_random_mode_vectors_are_fresh() -> None:
    with LLMServer(mode="random", seed=3) as srv:
        kw = _kw(srv, model="openai/text-embedding-3-small")
        one, two = (litellm.embedding(input="same", **kw) for _ in range(2))
    assert one.data[0]["embedding"] != two.data[0]["embedding"]


def _post_json(url: str, payload: object) -> tuple[int, Any]:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, method="POST", data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
