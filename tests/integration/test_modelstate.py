"""The state form of litellm responses: what validation builds, made again without it.

Real litellm classes, no server: every response here is built by litellm's own
constructors from a generated OpenAI-style document, as a replay builds it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import litellm
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrations import litellm as adapter
from recorder.integrations.modelstate import (
    StateError,
    dump_state,
    load_state,
    state_form,
)
from tests.modelstructure import mutable_ids, structure

pytestmark = pytest.mark.integration

text = st.text(max_size=40)
ids = st.from_regex(r"[a-zA-Z0-9_-]{1,16}", fullmatch=True)
json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | text
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ids, inner, max_size=3),
    max_leaves=8,
)
tool_call = st.fixed_dictionaries(
    {
        "id": ids,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": ids, "arguments": text}),
    }
)
message = st.fixed_dictionaries(
    {"role": st.just("assistant"), "content": st.none() | text},
    optional={
        "tool_calls": st.none() | st.lists(tool_call, min_size=1, max_size=3),
        "function_call": st.none() | st.fixed_dictionaries({"name": ids, "arguments": text}),
        "refusal": st.none() | text,
        "reasoning_content": st.none() | text,
        "provider_specific_fields": st.none() | st.dictionaries(ids, json_value, max_size=2),
    },
)
logprobs = st.none() | st.fixed_dictionaries(
    {
        "content": st.lists(
            st.fixed_dictionaries(
                {
                    "token": text,
                    "logprob": st.floats(-20, 0),
                    "bytes": st.lists(st.integers(0, 255), max_size=4),
                    "top_logprobs": st.just([]),
                }
            ),
            max_size=2,
        )
    }
)
choice = st.fixed_dictionaries(
    {
        "index": st.integers(0, 3),
        "message": message,
        "finish_reason": st.sampled_from(
            ["stop", "length", "tool_calls", "content_filter", "function_call", "eos", None]
        ),
    },
    optional={"logprobs": logprobs},
)
usage = st.fixed_dictionaries(
    {
        "prompt_tokens": st.integers(0, 10_000),
        "completion_tokens": st.integers(0, 10_000),
        "total_tokens": st.integers(0, 20_000),
    },
    optional={
        "completion_tokens_details": st.none()
        | st.fixed_dictionaries({"reasoning_tokens": st.integers(0, 100)}),
        "prompt_tokens_details": st.none()
        | st.fixed_dictionaries({"cached_tokens": st.integers(0, 100)}),
    },
)
response_doc = st.fixed_dictionaries(
    {
        "id": ids,
        "created": st.integers(0, 2**31),
        "model": ids,
        "object": st.just("chat.completion"),
        "choices": st.lists(choice, min_size=1, max_size=3),
    },
    optional={
        "usage": usage,
        "system_fingerprint": st.none() | ids,
        "service_tier": st.none() | st.sampled_from(["default", "flex"]),
        "x_vendor_field": json_value,
    },
)
hidden = st.fixed_dictionaries(
    {}, optional={"custom_llm_provider": ids, "response_cost": st.floats(0, 1)}
)


def rebuilt(doc: dict[str, Any], hidden_params: dict[str, Any]) -> Any:
    """A response as a replay builds it from its record, validating."""
    return adapter._rebuilt({"response": doc, "hidden": hidden_params})


def through_json(tree: Any) -> Any:
    return json.loads(json.dumps(tree, allow_nan=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=response_doc, hidden_params=hidden)
def test_a_loaded_response_is_what_validation_builds(
    doc: dict[str, Any], hidden_params: dict[str, Any]
) -> None:
    built = rebuilt(doc, hidden_params)
    tree = through_json(dump_state(built))
    loaded = load_state(tree)
    assert type(loaded) is litellm.ModelResponse
    assert structure(loaded) == structure(built)
    assert loaded == built and loaded.model_dump() == built.model_dump()
    assert loaded.model_dump_json() == built.model_dump_json()
    # Each load owns its objects: nothing mutable shared with the tree or another load.
    again = load_state(tree)
    assert not mutable_ids(loaded) & mutable_ids(again)
    assert not mutable_ids(loaded) & mutable_ids(tree)
    assert structure(again) == structure(built)


def test_a_loaded_response_behaves_like_a_built_one() -> None:
    doc = {
        "id": "c1", "created": 1, "model": "gpt-4o-mini", "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "t1", "type": "function",
                            "function": {"name": "click", "arguments": "{\"n\": 1}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }  # fmt: skip
    built = rebuilt(doc, {"custom_llm_provider": "openai"})
    loaded = load_state(through_json(dump_state(built)))
    call = loaded.choices[0].message.tool_calls[0]
    assert call.function.name == "click" and json.loads(call.function.arguments) == {"n": 1}
    assert loaded["choices"][0]["finish_reason"] == "tool_calls"  # litellm's dict access
    assert loaded.usage.total_tokens == 7 and loaded._hidden_params["recorder_replayed"]
    loaded.choices[0].message.content = "changed"  # pydantic assignment still works
    assert loaded.choices[0].message.content == "changed"
    assert built.choices[0].message.content is None
    assert litellm.completion_cost(completion_response=loaded) == litellm.completion_cost(
        completion_response=built
    )


class Outsider(pydantic.BaseModel):
    value: int = 0


@pytest.mark.parametrize(
    "value",
    [Outsider(), (1, 2), {1: "a"}, math.inf, float("nan"), {"a": {1, 2}}, b"raw"],
    ids=["foreign class", "tuple", "int key", "inf", "nan", "set", "bytes"],
)
def test_what_has_no_state_form_is_refused(value: Any) -> None:
    with pytest.raises(StateError):
        dump_state({"x": [value]})


def _tree() -> dict[str, Any]:
    doc = {"id": "c1", "created": 1, "model": "m", "object": "chat.completion",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
    return through_json(dump_state(rebuilt(doc, {})))


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t["classes"].__setitem__(0, "os:system"),
        lambda t: t["classes"].__setitem__(0, "subprocess:Popen"),
        lambda t: t["classes"].__setitem__(0, "litellm.types.utils:NoSuchClass"),
        lambda t: t["classes"].__setitem__(0, "litellm:ModelResponse"),  # an alias
        lambda t: t["classes"].__setitem__(0, "litellm.types.utils:json"),  # not a model
        lambda t: t["root"].__setitem__(1, 99),
        lambda t: t["root"].__setitem__(0, "X"),
        lambda t: t["root"].pop(),
        lambda t: t["root"].__setitem__(2, ["L"]),
        lambda t: t["root"].__setitem__(3, [{"a": 1}]),
        lambda t: t.pop("classes"),
    ],
    ids=[
        "os",
        "subprocess",
        "missing",
        "alias",
        "not a model",
        "index",
        "tag",
        "arity",
        "dict as list",
        "unhashable field",
        "no classes",
    ],
)
def test_a_malformed_tree_is_refused_without_running_code(damage: Any) -> None:
    tree = _tree()
    damage(tree)
    with pytest.raises(StateError):
        load_state(tree)


def test_the_form_names_the_versions_that_build_the_objects() -> None:
    form = state_form()
    assert form.startswith("pydantic-state/1;")
    assert f"pydantic={pydantic.VERSION}" in form
    assert "litellm=" in form and "litellm=-" not in form and "openai=" in form
