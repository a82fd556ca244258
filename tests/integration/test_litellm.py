"""LLM calls through real litellm over HTTP to the fixture server, recorded and replayed."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import litellm
import pytest

import recorder
from fixtures.llm_server import LLMServer
from recorder.integrations import litellm as adapter
from recorder.integrations.modelstate import StateError
from tests.modelstructure import structure

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Summarize ticket 123"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "click",
            "description": "Click an element",
            "parameters": {"type": "object", "properties": {"selector": {"type": "string"}}},
        },
    }
]


def text(response: Any) -> str:
    return str(response.choices[0].message.content)


def test_completion_is_recorded_with_no_change_to_user_code(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    answers = []
    for _ in range(3):
        with recorder.run("triage", inputs={"ticket": 123}, store=store_dir):
            answers.append(litellm.completion(messages=MESSAGES, temperature=0.7, seed=1, **llm))
    assert llm_server.requests == 1
    live, replayed = answers[0], answers[2]
    assert type(replayed) is litellm.ModelResponse
    assert replayed.model_dump() == live.model_dump()
    assert replayed._hidden_params["recorder_replayed"] is True
    assert replayed._hidden_params["custom_llm_provider"] == "openai"


def test_outside_a_run_litellm_is_untouched(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    with recorder.run("r", store=store_dir):
        litellm.completion(messages=MESSAGES, **llm)
    assert adapter.is_installed()
    first = litellm.completion(messages=MESSAGES, **llm)
    second = litellm.completion(messages=MESSAGES, **llm)
    assert text(first) != text(second)  # random mode: both went to the server
    assert llm_server.requests == 3


def test_acompletion_and_explicit_methods(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    async def agent() -> list[str]:
        async with recorder.run("a", store=store_dir) as run:
            one = await litellm.acompletion(messages=MESSAGES, **llm)
            two = await run.acompletion(messages=[{"role": "user", "content": "2"}], **llm)
            three = run.completion(messages=[{"role": "user", "content": "3"}], **llm)
            return [text(one), text(two), text(three)]

    assert asyncio.run(agent()) == asyncio.run(agent())
    assert llm_server.requests == 3


def test_positional_arguments_bind_like_litellm(store_dir: Path, llm: dict[str, Any]) -> None:
    model = llm.pop("model")
    with recorder.run("p", store=store_dir):
        by_position = litellm.completion(model, MESSAGES, **llm)
    with recorder.run("p", store=store_dir, mode="replay"):
        by_keyword = litellm.completion(model=model, messages=MESSAGES, **llm)
    assert by_keyword.model_dump() == by_position.model_dump()


def test_transport_parameters_do_not_enter_the_key(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    with recorder.run("k", store=store_dir):
        live = litellm.completion(messages=MESSAGES, **llm)
    moved = {
        **llm,
        "api_key": "sk-other",
        "api_base": "http://127.0.0.1:9/v1",  # nothing listens there: a live call would fail
        "timeout": 3,
        "num_retries": 2,
        "extra_headers": {"X-Trace": "1"},
        "metadata": {"user": "someone"},
    }
    with recorder.run("k", store=store_dir, mode="replay"):
        assert litellm.completion(messages=MESSAGES, **moved).model_dump() == live.model_dump()
    assert llm_server.requests == 1


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.1},
        {"top_p": 0.5},
        {"seed": 2},
        {"max_tokens": 5},
        {"stop": ["\n"]},
        {"n": 2},
        {"tools": TOOLS},
        {"tool_choice": "auto", "tools": TOOLS},
        {"response_format": {"type": "json_object"}},
        {"presence_penalty": 0.5},
        {"messages": [{"role": "user", "content": "Summarize ticket 124"}]},
        {"model": "openai/gpt-4o"},
    ],
)
def test_every_answer_determining_parameter_enters_the_key(
    store_dir: Path, llm: dict[str, Any], change: dict[str, Any]
) -> None:
    base = {**llm, "messages": MESSAGES, "temperature": 0.7}
    with recorder.run("d", store=store_dir):
        litellm.completion(**base)
    with (
        recorder.run("d", store=store_dir, mode="replay"),
        pytest.raises(recorder.ReplayMissError) as caught,
    ):
        litellm.completion(**{**base, **change})
    assert caught.value.candidate is not None
    changed_fields = {path.split(".")[0].split("[")[0] for path in caught.value.differences}
    assert changed_fields <= set(change) and changed_fields


def test_sampling_twice_stays_two_samples(store_dir: Path, llm: dict[str, Any]) -> None:
    def sample_twice() -> list[str]:
        with recorder.run("s", store=store_dir):
            return [text(litellm.completion(messages=MESSAGES, **llm)) for _ in range(2)]

    first = sample_twice()
    assert first[0] != first[1]
    assert sample_twice() == first


def test_streams_are_recorded_chunk_by_chunk(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    def stream() -> list[Any]:
        with recorder.run("st", store=store_dir):
            return list(litellm.completion(messages=MESSAGES, stream=True, **llm))

    live = stream()
    replayed = stream()
    assert llm_server.requests == 1
    assert len(replayed) == len(live) > 2
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in live]
    rebuilt = litellm.stream_chunk_builder(replayed)
    assert rebuilt is not None and text(rebuilt) == "".join(
        c.choices[0].delta.content or "" for c in live
    )


def test_async_streams_replay(store_dir: Path, llm: dict[str, Any], llm_server: LLMServer) -> None:
    async def stream() -> str:
        async with recorder.run("ast", store=store_dir):
            response = await litellm.acompletion(messages=MESSAGES, stream=True, **llm)
            return "".join([c.choices[0].delta.content or "" async for c in response])

    assert asyncio.run(stream()) == asyncio.run(stream())
    assert llm_server.requests == 1


def test_an_unfinished_stream_replays_what_was_read_then_goes_live(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    """(More in test_litellm_entrypoints.py.)"""
    with recorder.run("half", store=store_dir):
        response = litellm.completion(messages=MESSAGES, stream=True, **llm)
        first = next(iter(response))
    with (
        pytest.warns(adapter.PartialStreamWarning, match="asks the model again"),
        recorder.run("half", store=store_dir),
    ):
        full = list(litellm.completion(messages=MESSAGES, stream=True, **llm))
    assert full[0].model_dump() == first.model_dump()
    with recorder.run("half", store=store_dir, mode="replay"):
        again = list(litellm.completion(messages=MESSAGES, stream=True, **llm))
    assert llm_server.requests == 2
    assert [c.model_dump() for c in again] == [c.model_dump() for c in full]


def test_tool_calls_replay(store_dir: Path, llm: dict[str, Any]) -> None:
    server = LLMServer(
        policy=[
            {"content": None, "tool_calls": [{"name": "click", "arguments": {"selector": "#go"}}]}
        ]
    )
    with server:
        kwargs = {**llm, "api_base": server.base_url}
        results = []
        for _ in range(2):
            with recorder.run("tools", store=store_dir):
                results.append(litellm.completion(messages=MESSAGES, tools=TOOLS, **kwargs))
        assert server.requests == 1
    call = results[1].choices[0].message.tool_calls[0]
    assert call.function.name == "click" and call.function.arguments == '{"selector": "#go"}'
    assert results[1].model_dump() == results[0].model_dump()


def test_failed_calls_are_not_recorded_unless_asked(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    llm_server.fail_next(1, status=500)
    with recorder.run("f", store=store_dir), pytest.raises(litellm.InternalServerError):
        litellm.completion(messages=MESSAGES, **llm)
    with recorder.run("f", store=store_dir):
        litellm.completion(messages=MESSAGES, **llm)
    assert llm_server.requests == 2
    statuses = [(r["attempt"], r["status"]) for r in recorder.load("f", store=store_dir).rows()]
    assert statuses == [(1, "failed"), (2, "live")]


def test_failed_calls_recorded_when_asked_replay_as_errors(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    llm_server.fail_next(1, status=500, message="overloaded")
    for _ in range(2):
        with (
            recorder.run("fe", store=store_dir, record_llm_errors=True),
            pytest.raises(litellm.InternalServerError, match="overloaded"),
        ):
            litellm.completion(messages=MESSAGES, **llm)
    assert llm_server.requests == 1


def test_retry_on_llm_calls_is_the_recorders_own(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    """``retry=`` never reaches litellm nor the key; failed tries are trace rows."""
    llm_server.fail_next(2, status=503)
    quick = recorder.Retry(attempts=3, initial=0, jitter=0, on=(litellm.ServiceUnavailableError,))
    with recorder.run("rl", store=store_dir) as run:
        answer = text(litellm.completion(messages=MESSAGES, retry=quick, **llm))
    assert llm_server.requests == 3
    rows = run.to_dataframe()
    assert rows["status"].tolist() == ["failed", "failed", "live"]
    assert "ServiceUnavailable" in rows["error"].iloc[0]
    with recorder.run("rl", store=store_dir) as run:  # replayed, with or without retry=
        assert text(litellm.completion(messages=MESSAGES, **llm)) == answer
    assert llm_server.requests == 3 and run.stats.replayed == 1


def test_redact_scrubs_prompts_and_replay_still_works(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    """``redact=`` rewrites what is written of each request; the key is the real
    request's, so the replay matches and makes no call."""
    canary = "CANARY-PROMPT-Zq81"

    def redact(kind: str, request: Any) -> Any:
        if kind == "llm":
            for message in request["messages"]:
                message["content"] = message["content"].replace(canary, "[name]")
        return request

    prompt = [{"role": "user", "content": f"Write to {canary} about the refund"}]
    answers = []
    for _ in range(2):
        with recorder.run("redacted", store=store_dir, redact=redact) as run:
            answers.append(text(litellm.completion(messages=prompt, **llm)))
    assert answers[0] == answers[1] and llm_server.requests == 1
    assert run.stats.replayed == 1
    for path in store_dir.rglob("*"):
        if path.is_file():
            for form in _forms(canary):
                assert form not in path.read_bytes(), path
    replaying = recorder.run("redacted", store=store_dir, redact=redact, mode="replay")
    with replaying, pytest.raises(recorder.ReplayMissError, match=r"\[name\]"):
        litellm.completion(messages=[{"role": "user", "content": "other"}], **llm)


def test_the_run_browser_shows_messages_response_and_tokens(
    store_dir: Path, llm: dict[str, Any]
) -> None:
    with recorder.run("shown", store=store_dir) as run:
        answer = text(litellm.completion(messages=MESSAGES, tools=TOOLS, **llm))
    detail = recorder.show(run)._repr_mimebundle_()["text/html"]
    assert "Summarize ticket 123" in detail and "tokens" in detail
    assert answer.split()[0] in detail or "tool call" in detail


def test_trace_has_llm_columns(store_dir: Path, llm: dict[str, Any]) -> None:
    for _ in range(2):
        with recorder.run("t", store=store_dir) as run:
            litellm.completion(messages=MESSAGES, temperature=0.3, seed=4, **llm)
    frame = run.to_dataframe()
    assert frame["status"].tolist() == ["live", "replayed"]
    row = frame.iloc[1]
    assert row["kind"] == "llm" and row["model"] == llm["model"]
    assert row["temperature"] == 0.3 and row["seed"] == 4
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["cost_usd"] > 0  # gpt-4o-mini is in litellm's cost table
    assert row["recorded_duration_s"] == frame.iloc[0]["duration_s"]
    assert run.stats.llm_calls_saved == 1 and run.stats.saved_cost_usd == row["cost_usd"]


def test_divergent_prompt_warns_and_goes_live(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    with recorder.run("dv", store=store_dir):
        litellm.completion(messages=MESSAGES, **llm)
        litellm.completion(messages=[{"role": "user", "content": "then this"}], **llm)
    with (
        pytest.warns(recorder.DivergenceWarning, match=r"messages\[0\]\.content"),
        recorder.run("dv", store=store_dir),
    ):
        litellm.completion(messages=[{"role": "user", "content": "Summarize ticket 999"}], **llm)
    assert llm_server.requests == 3


CANARIES = {
    "api_key": "sk-CANARY-KEY-0001",
    "header": "Bearer CANARY-HEADER-0002",
    "query": "CANARY-QUERY-0003",
    "aws": "CANARY-AWS-SECRET-0004",
    "meta": "CANARY-METADATA-0005",
}


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, urllib.parse.quote(secret).encode(), base64.b64encode(raw)]


def test_secrets_never_reach_the_store(
    store_dir: Path, llm: dict[str, Any], llm_server: LLMServer
) -> None:
    kwargs = {
        **llm,
        "api_key": CANARIES["api_key"],
        "extra_headers": {"Authorization": CANARIES["header"]},
        "aws_secret_access_key": CANARIES["aws"],
        "metadata": {"note": CANARIES["meta"]},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for stream in (False, True):
            with recorder.run("secret", store=store_dir, inputs={"stream": stream}) as run:
                result = litellm.completion(messages=MESSAGES, stream=stream, **kwargs)
                if stream:
                    list(result)
            run.to_dataframe()
        # A key in the endpoint's query string makes litellm fail with the URL in its
        # message: the recorded error (trace, step record, attempt) must not carry it.
        broken = {**kwargs, "api_base": f"{llm_server.base_url}?key={CANARIES['query']}"}
        for record_errors in (False, True):
            run = recorder.run("secret-fail", store=store_dir, record_llm_errors=record_errors)
            with pytest.raises(litellm.NotFoundError), run:
                litellm.completion(messages=MESSAGES, **broken)
        assert "[redacted]" in (recorder.load("secret-fail", store=store_dir).rows()[0]["error"])
    files = [p for p in store_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in CANARIES.values():
            for form in _forms(secret):
                assert form not in data, f"{secret} found in {path}"


def test_litellm_imported_inside_the_run_is_recorded(tmp_path: Path, llm_server: LLMServer) -> None:
    """An agent that imports litellm only after the run began (a fresh process where
    nothing imported it before) still has its calls recorded and replayed."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import recorder
        assert "litellm" not in sys.modules
        for _ in range(2):
            with recorder.run("late", store={str(tmp_path / "store")!r}) as run:
                from litellm import completion
                completion(model="openai/gpt-4o-mini", api_base={llm_server.base_url!r},
                           api_key="sk-x", num_retries=0,
                           messages=[{{"role": "user", "content": "hi"}}])
            print(run.stats.live, run.stats.replayed)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "0", "0", "1"]
    assert llm_server.requests == 1


def test_a_response_replayed_again_in_one_process_is_a_fresh_equal_copy(
    store_dir: Path, llm: dict[str, Any]
) -> None:
    server = LLMServer(
        policy=[
            {"content": "thinking", "tool_calls": [{"name": "click", "arguments": {"n": 1}}]},
            {"content": "done"},
        ]
    )
    asked = [MESSAGES, [{"role": "user", "content": "and then?"}]]
    with server:
        kwargs = {**llm, "api_base": server.base_url}

        def attempt() -> list[Any]:
            with recorder.run("memo", store=store_dir) as run:
                got = [litellm.completion(messages=m, tools=TOOLS, **kwargs) for m in asked]
            assert run.stats.replayed in (0, 2)
            return got

        attempt()
        adapter.responses.clear()
        cold = attempt()  # built from the record, and kept
        expected = [structure(r) for r in cold]
        hits = adapter.responses.hits
        warm = attempt()  # copies of what the cold replay built
        assert adapter.responses.hits == hits + 2
        assert server.requests == 2
    for a, b in zip(cold, warm, strict=True):
        assert type(b) is litellm.ModelResponse
        assert b == a and b.model_dump() == a.model_dump()
        assert structure(b) == structure(a)
        assert b._hidden_params["recorder_replayed"] is True
    # Each replay owns its response: changing one changes no later replay.
    message = warm[0].choices[0].message
    message.content = "changed"
    message.tool_calls.append(message.tool_calls[0])
    message.tool_calls[0].function.arguments = "{}"
    warm[0].usage.prompt_tokens = -1
    warm[0]._hidden_params["mine"] = True
    with server:
        again = attempt()
    assert [structure(r) for r in again] == expected
    assert [structure(r) for r in cold] == expected


def test_a_replay_loads_the_prebuilt_response_and_equals_a_validated_one(
    store_dir: Path, llm: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorded call gets the state of the response a replay builds, written when the
    attempt ends. A replay in a process that has built nothing loads it with no
    validation; under another library version (another form tag), or when the form does
    not load, it validates the recorded JSON instead, and leaves a form of its own tag
    for the next replay. All give the same response."""
    server = LLMServer(
        policy=[
            {"content": "thinking", "tool_calls": [{"name": "click", "arguments": {"n": 1}}]},
            {"content": "done"},
        ]
    )
    asked = [MESSAGES, [{"role": "user", "content": "and then?"}]]
    built: list[Any] = []
    validate = adapter._rebuilt

    def counted(doc: Any) -> Any:
        built.append(doc)
        return validate(doc)

    monkeypatch.setattr(adapter, "_rebuilt", counted)
    with server:
        kwargs = {**llm, "api_base": server.base_url}

        def attempt() -> list[Any]:
            adapter.responses.clear()  # as in a new process
            with recorder.run("prebuilt", store=store_dir) as run:
                got = [litellm.completion(messages=m, tools=TOOLS, **kwargs) for m in asked]
            assert run.stats.replayed in (0, 2)
            return got

        live = attempt()
        assert len(built) == 2  # the state is that of the rebuilt response, not the live one
        records = step_records_of(store_dir, "prebuilt")
        assert all(r.prebuilt and r.prebuilt["tag"] == adapter.state_form() for r in records)
        assert all(r.prebuilt["ref"] in r.blobs for r in records if r.prebuilt)
        built.clear()
        loaded = attempt()
        assert built == []  # nothing validated
        monkeypatch.setattr(adapter, "state_form", lambda: "pydantic-state/1;litellm=other")
        other_version = attempt()
        assert len(built) == 4  # each replay, then each form at the attempt's end
        records = step_records_of(store_dir, "prebuilt")
        assert [r.prebuilt["tag"] for r in records if r.prebuilt] == [adapter.state_form()] * 2
        monkeypatch.undo()
        monkeypatch.setattr(adapter, "_rebuilt", counted)
        built.clear()
        attempt()  # back on this version: rebuilt once more, and its forms rewritten
        assert len(built) == 4
        built.clear()
        assert len({str(structure(r)) for r in attempt()}) == 2 and built == []
        after = step_records_of(store_dir, "prebuilt")
        assert {r.prebuilt["ref"] for r in after if r.prebuilt} == {
            r.prebuilt["ref"] for r in records if r.prebuilt
        }  # the same state as before: the forms are content-addressed

        def refuse(tree: Any) -> Any:
            raise StateError("not loadable here")

        monkeypatch.setattr(adapter, "_load_response", refuse)
        built.clear()
        not_loadable = attempt()
        assert len(built) == 4
        assert server.requests == 2
    assert [r.choices[0].message.content for r in live] == ["thinking", "done"]
    for replays in zip(loaded, other_version, not_loadable, strict=True):
        # Equal down to the order of every dict's keys (iteration order shows).
        assert len({repr(structure(r)) for r in replays}) == 1
        assert replays[0]._hidden_params["recorder_replayed"] is True
    assert loaded[0].choices[0].message.tool_calls[0].function.name == "click"


def step_records_of(store_dir: Path, name: str) -> list[Any]:
    from recorder.journal import Journal
    from recorder.store import DiskStore

    store = DiskStore(store_dir)
    try:
        journal = Journal(store)
        (run,) = journal.list_runs(name)
        return journal.steps(run.run_id)
    finally:
        store.close()


def test_a_store_that_refuses_the_prebuilt_forms_warns_and_replays_anyway(
    store_dir: Path, llm: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forms are derived data: when their write at the attempt's end is refused
    (here: the store's size limit), the attempt still completes, with a warning, and
    the next replay rebuilds the responses from their JSON."""
    from recorder import attempts
    from recorder.errors import QuotaExceededError

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise QuotaExceededError("the store is at its size limit (test)")

    with monkeypatch.context() as patched:
        patched.setattr(attempts, "write_prebuilt", refuse)
        warned = pytest.warns(UserWarning, match=r"prebuilt forms of 1 step\(s\).*size limit")
        with warned, recorder.run("refused", store=store_dir) as run:
            live = litellm.completion(messages=MESSAGES, **llm)
    assert run.stats.live == 1 and run.outcome == recorder.Outcome.COMPLETED
    assert [r.prebuilt for r in step_records_of(store_dir, "refused")] == [None]
    adapter.responses.clear()
    with recorder.run("refused", store=store_dir) as run:
        again = litellm.completion(messages=MESSAGES, **llm)
    assert run.stats.replayed == 1 and again.id == live.id
    assert again.choices[0].message.content == live.choices[0].message.content
    assert [bool(r.prebuilt) for r in step_records_of(store_dir, "refused")] == [True]
