"""Every litellm entry point is recorded, or says it is not: Router calls, text
completions, embeddings, the Responses API, images, and streams read in part. Real
litellm over HTTP to the fixture server."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litellm
import pytest

import recorder
from fixtures.llm_server import LLMServer
from recorder.integrations import litellm as adapter
from tests.integration.test_litellm import step_records_of

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Summarize ticket 123"}]
RECORDER_WARNINGS = (
    recorder.DivergenceWarning,
    adapter.UnrecordedLLMWarning,
    adapter.PartialStreamWarning,
)


def transport(server: LLMServer) -> dict[str, Any]:
    return {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}


def dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump() for c in chunks]


def recorder_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RECORDER_WARNINGS)]


# -- litellm.Router ------------------------------------------------------------------------


def test_per_call_bookkeeping_never_enters_the_key() -> None:
    """What litellm and its Router add to each call (trace and call ids, logging
    objects, callbacks, deployment info, private state, prices) is not keyed; what
    changes the prompt is."""
    asked = {"model": MODEL, "messages": MESSAGES, "temperature": 0.2, "seed": 1}
    noise = {
        "litellm_trace_id": "3e161fff-5d14-4e05-8d80-2163b1728133",
        "litellm_call_id": "c-1",
        "litellm_session_id": "s-1",
        "litellm_logging_obj": object(),
        "litellm_parent_otel_span": object(),
        "litellm_metadata": {"a": 1},
        "metadata": {"model_group": "fast", "deployment": "d"},
        "model_info": {"id": "d5efb2fc", "db_model": False},
        "_context_compaction_state": object(),
        "_skip_mcp_handler": True,
        "callbacks": [print],
        "success_callback": [print],
        "failure_callback": [print],
        "logger_fn": print,
        "input_cost_per_token": 1e-6,
        "cost_per_query": 0.1,
        "preset_cache_key": "k",
        "proxy_server_request": {"url": "u"},
        "use_litellm_proxy": False,
        "allow_client_keepalive_override": False,
        "use_in_pass_through": False,
        "langfuse_public_key": "pk",
        "tags": ["prod"],
        "specific_deployment": True,
    }
    assert adapter.request_of({**asked, **noise}) == asked
    prompt = {**asked, "litellm_system_prompt": "Be terse"}
    assert adapter.request_of(prompt) == prompt


def _router(server: LLMServer) -> litellm.Router:
    deployment = {"model": MODEL, "api_base": server.base_url, "api_key": "sk-test"}
    return litellm.Router(
        model_list=[{"model_name": "fast", "litellm_params": deployment}], num_retries=0
    )


@pytest.mark.parametrize("is_async", [False, True], ids=["completion", "acompletion"])
def test_router_calls_replay(store_dir: Path, llm_server: LLMServer, is_async: bool) -> None:
    """Router adds a fresh litellm_trace_id to each call: it must not make every re-run
    miss. A new Router in a new attempt replays with no request."""

    async def agent_async() -> tuple[recorder.Run, Any]:
        async with recorder.run("router", store=store_dir) as run:
            answer = await _router(llm_server).acompletion(model="fast", messages=MESSAGES)
        return run, answer

    def attempt() -> tuple[recorder.Run, Any]:
        if is_async:
            return asyncio.run(agent_async())
        with recorder.run("router", store=store_dir) as run:
            answer = _router(llm_server).completion(model="fast", messages=MESSAGES)
        return run, answer

    _, live = attempt()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, replayed = attempt()
    assert llm_server.requests == 1
    assert run.stats.replayed == 1 and run.stats.live == 0
    assert recorder_warnings(caught) == []
    assert type(replayed) is litellm.ModelResponse
    assert replayed.model_dump() == live.model_dump()


# -- text completions, embeddings, responses, images ---------------------------------------

ENTRY_POINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "text_completion": (
        "text_completion",
        {"model": "text-completion-openai/gpt-3.5-turbo-instruct", "prompt": "Say hi"},
    ),
    "text_completion_chat_model": ("text_completion", {"model": MODEL, "prompt": "Say hi"}),
    "embedding": ("embedding", {"model": "openai/text-embedding-3-small", "input": ["a b", "c"]}),
    "responses": ("responses", {"model": MODEL, "input": "Hello", "instructions": "Be terse"}),
    "image_generation": ("image_generation", {"model": "openai/dall-e-3", "prompt": "a cat"}),
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("case", sorted(ENTRY_POINTS))
def test_entry_point_is_recorded_and_replays_as_the_same_type(
    store_dir: Path, llm_server: LLMServer, case: str, is_async: bool
) -> None:
    name, asked = ENTRY_POINTS[case]
    kwargs = {**asked, **transport(llm_server)}

    async def agent_async(**options: Any) -> tuple[recorder.Run, Any]:
        async with recorder.run(case, store=store_dir, **options) as run:
            answer = await getattr(litellm, "a" + name)(**kwargs)
        return run, answer

    def attempt(**options: Any) -> tuple[recorder.Run, Any]:
        if is_async:
            return asyncio.run(agent_async(**options))
        with recorder.run(case, store=store_dir, **options) as run:
            answer = getattr(litellm, name)(**kwargs)
        return run, answer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, live = attempt()
        adapter.responses.clear()  # as in a new process
        second, replayed = attempt()
        third, again = attempt(mode="replay")
    assert recorder_warnings(caught) == []
    assert llm_server.requests == 1
    assert (first.stats.live, second.stats.replayed, third.stats.replayed) == (1, 1, 1)
    for copy in (replayed, again):
        assert type(copy) is type(live)
        assert copy.model_dump() == live.model_dump()
        assert copy._hidden_params["recorder_replayed"] is True
    row = second.to_dataframe().iloc[0]
    assert row["kind"] == "llm" and row["model"] == asked["model"]
    (record,) = step_records_of(store_dir, case)
    if name in ("embedding", "image_generation"):
        assert record.result_ref is not None  # a large result is a blob


def test_text_completion_streams_replay(store_dir: Path, llm_server: LLMServer) -> None:
    kwargs = {**ENTRY_POINTS["text_completion"][1], **transport(llm_server), "stream": True}

    def read() -> list[Any]:
        with recorder.run("text-stream", store=store_dir):
            return list(litellm.text_completion(**kwargs))

    live, replayed = read(), read()
    assert llm_server.requests == 1 and len(replayed) == len(live) > 2
    assert [type(c) for c in replayed] == [type(c) for c in live]
    assert dumps(replayed) == dumps(live)


def test_entry_points_do_not_share_keys(store_dir: Path, llm_server: LLMServer) -> None:
    """The same model and input asked of two endpoints are two steps."""
    kwargs = {"model": MODEL, "input": "same", **transport(llm_server)}
    with recorder.run("sep", store=store_dir):
        litellm.responses(**kwargs)
    with (
        recorder.run("sep", store=store_dir, mode="replay"),
        pytest.raises(recorder.ReplayMissError),
    ):
        litellm.embedding(**kwargs)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda kw: litellm.moderation(input="hi", **kw), id="moderation"),
        pytest.param(
            lambda kw: litellm.responses(model=MODEL, input="hi", stream=True, **kw),
            id="responses-stream",
        ),
    ],
)
def test_unrecorded_calls_warn_once_and_run_live(
    store_dir: Path, llm_server: LLMServer, call: Callable[[dict[str, Any]], Any]
) -> None:
    kw = transport(llm_server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with recorder.run("unrecorded", store=store_dir):
                for _ in range(2):
                    # The fixture serves neither: each call reaches it and fails.
                    with pytest.raises(Exception):  # noqa: B017
                        call(kw)
        with pytest.raises(Exception):  # noqa: B017
            call(kw)  # outside a run: no warning
    said = recorder_warnings(caught)
    assert len(said) == 2  # once per attempt
    assert "not recorded" in said[0] and "live on every re-run" in said[0]
    assert "litellm.moderation" in said[0] or "litellm.responses(stream=True)" in said[0]


# -- streams -------------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_stream_abandoned_with_break_is_recorded_and_replayed(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer, is_async: bool
) -> None:
    """What was read is the record: a re-run that reads as much replays it; one that
    reads more replays it, then asks the model again for the rest, and says so once."""

    async def read_async(take: int | None, options: dict[str, Any]) -> list[Any]:
        async with recorder.run("brk", store=store_dir, **options):
            got = []
            stream = await litellm.acompletion(messages=MESSAGES, stream=True, **llm)
            async for chunk in stream:
                got.append(chunk)
                if len(got) == take:
                    break
            return got

    def read(take: int | None, **options: Any) -> list[Any]:
        if is_async:
            return asyncio.run(read_async(take, options))
        with recorder.run("brk", store=store_dir, **options):
            got = []
            for chunk in litellm.completion(messages=MESSAGES, stream=True, **llm):
                got.append(chunk)
                if len(got) == take:
                    break
            return got

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = read(2)
        again = read(2)
        fewer = read(1)
        assert recorder_warnings(caught) == []
    assert llm_server.requests == 1
    assert dumps(again) == dumps(first) and dumps(fewer) == dumps(first[:1])
    with pytest.raises(recorder.ReplayMissError, match="read 2 chunks"):
        read(3, mode="replay")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = read(None)
    (said,) = recorder_warnings(caught)
    assert "2 chunks" in said and "asks the model again" in said
    assert llm_server.requests == 2
    assert len(full) > 3 and dumps(full[:2]) == dumps(first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replayed = read(None, mode="replay")
    assert recorder_warnings(caught) == [] and llm_server.requests == 2
    assert dumps(replayed) == dumps(full)


@pytest.mark.parametrize("usage", [False, True], ids=["no-usage", "include-usage"])
def test_replayed_chunks_build_the_same_response(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer, usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if usage else {}

    def read() -> list[Any]:
        with recorder.run("build", store=store_dir, inputs=usage):
            return list(litellm.completion(messages=MESSAGES, stream=True, **options, **llm))

    live, replayed = read(), read()
    assert llm_server.requests == 1
    for messages in (None, MESSAGES):
        built_live = litellm.stream_chunk_builder(live, messages=messages)
        built_replayed = litellm.stream_chunk_builder(replayed, messages=messages)
        assert built_live is not None and built_replayed is not None
        assert built_replayed.usage == built_live.usage
        assert built_replayed.model_dump() == built_live.model_dump()
