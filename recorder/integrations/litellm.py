"""Recording of litellm's entry points.

:func:`install` replaces litellm's model-calling functions on the ``litellm`` module with
wrappers that route calls through the current run and call the original outside one, so
user code does not change (and ``litellm.Router``, which calls them, is recorded too).
(Code that did ``from litellm import completion`` before the first run holds the
original function: use ``litellm.completion`` or ``run.completion``.)

Recorded (sync and async): ``completion``, ``text_completion``, ``embedding``,
``responses`` (not streamed) and ``image_generation``. Every other model-calling entry
point in :data:`UNRECORDED`, and ``responses(stream=True)``, warns once per attempt
(:class:`UnrecordedLLMWarning`) that it runs live on every re-run.

The key covers every request parameter that can change the answer; parameters that
only say where and how to send it (keys, endpoints, headers, timeouts, retries,
metadata, credentials) or that identify, trace, log or price one call never enter the
key and are never written.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import litellm
from litellm.types.utils import ModelResponse, ModelResponseStream
from pydantic import BaseModel

from ..call import Prebuilt
from ..callsite import warn_at_caller
from ..errors import ReplayMissError
from ..limits import alimited, limited
from ..memo import ResultCache
from ..options import Mode
from ..retry import Retry, acall_with_retry, as_retry, call_with_retry
from ..runtime import Call, Run, current_run
from .modelstate import StateError, class_name, dump_state, load_state, model_class, state_form

__all__ = ["NOT_KEYED", "RECORDED", "UNRECORDED", "PartialStreamWarning", "UnrecordedLLMWarning",
           "copy_response", "install", "is_installed", "prebuilt_form", "recorded_acall",
           "recorded_acompletion",
           "recorded_call", "recorded_completion", "request_of", "responses",
           "uninstall"]  # fmt: skip

NOT_KEYED = frozenset(
    {
        # where and how to send, and who pays: never part of the answer
        "api_key", "api_base", "base_url", "api_version", "organization", "headers",
        "extra_headers", "timeout", "request_timeout", "stream_timeout", "max_retries",
        "num_retries", "retry_policy", "retry_strategy", "fallbacks",
        "context_window_fallback_dict", "metadata", "litellm_metadata", "litellm_call_id",
        "litellm_logging_obj", "logger_fn",
        "client", "shared_session", "model_list", "user", "proxy_server_request",
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name",
        "aws_profile_name", "aws_role_name", "aws_session_name", "aws_web_identity_token",
        "aws_sts_endpoint", "aws_bedrock_runtime_endpoint", "vertex_credentials",
        "vertex_project", "vertex_location", "azure_ad_token", "azure_ad_token_provider",
        "azure_username", "azure_password", "tenant_id", "client_id", "client_secret",
        "cache", "caching", "no-log", "input_cost_per_token", "output_cost_per_token",
        "deployment_id", "mock_timeout",
        # what a Router (or the proxy) adds to a call: deployment, routing, tracing,
        # logging and callbacks
        "model_info", "specific_deployment", "tags", "callbacks", "preset_cache_key",
        "cache_key", "ttl", "use_litellm_proxy", "use_in_pass_through",
        "allow_client_keepalive_override", "keepalive_seconds", "ssl_verify",
        "fallback_depth", "max_fallbacks", "attempted_targets", "completion_call_id",
        "cooldown_time", "max_parallel_requests", "silent_model", "include_fallback_errors",
        "turn_off_message_logging", "verbose",
    }
)  # fmt: skip
_NOT_KEYED_PREFIXES = ("litellm_", "_", "langfuse_", "langsmith_", "arize_", "dd_", "posthog_",
                       "newrelic_", "wandb_", "weave_", "signoz_", "humanloop_", "gcs_", "s3_",
                       "aws_", "vertex_", "azure_")  # fmt: skip
"""``litellm_*`` bookkeeping (trace, call and session ids, the logging object, the parent
span...), litellm's private ``_*`` plumbing, logging integrations, cloud settings."""
_KEYED_ANYWAY = frozenset({"litellm_system_prompt"})
"""Named like bookkeeping, but part of the prompt."""
_SECRET_SUFFIXES = ("_key", "_secret", "_password", "_token", "credentials", "authorization")
_META_PARAMS = ("temperature", "seed")
_SAFE_HIDDEN = ("custom_llm_provider", "model_id", "response_cost", "litellm_model_name",
                "provider_response_model", "region_name")  # fmt: skip
"""The parts of a response's ``_hidden_params`` that are kept: never ``api_base``
(it may carry a key) nor response headers."""
_UNSAFE_HIDDEN = frozenset({"api_base", "additional_headers", "headers", "original_response"})
"""What a stream chunk's ``_hidden_params`` never keeps (nor any unkeyed name):
``stream_chunk_builder`` reads the rest (``usage``, ``created_at``...)."""

RECORDED = ("completion", "text_completion", "embedding", "responses", "image_generation")
"""The recorded entry points; each has an async twin named ``a`` + name."""
_STREAMED = frozenset({"completion", "text_completion"})
"""Entry points whose ``stream=True`` answers are recorded chunk by chunk."""
UNRECORDED = (
    "batch_completion", "batch_completion_models", "batch_completion_models_all_responses",
    "moderation", "amoderation", "transcription", "atranscription", "speech", "aspeech",
    "rerank", "arerank", "image_edit", "aimage_edit", "image_variation", "aimage_variation",
    "ocr", "aocr", "search", "asearch", "video_generation", "avideo_generation",
    "anthropic_messages", "agenerate_content", "get_responses", "aget_responses",
    "compact_responses", "acompact_responses",
)  # fmt: skip
"""Model-calling entry points that are not recorded: inside a run each warns once per
attempt and runs live."""


class UnrecordedLLMWarning(UserWarning):
    """A litellm call the recorder does not record was made inside a run: it runs live,
    asking the model again, on every re-run."""


class PartialStreamWarning(UserWarning):
    """A replayed stream was recorded only in part (the recorded run stopped reading it)
    and this run reads further: it asks the model again for the rest."""


_originals: dict[str, Callable[..., Any]] = {}
_positional: dict[str, list[str]] = {}


@functools.lru_cache(maxsize=1024)
def _not_keyed(name: str) -> bool:
    lowered = name.lower()
    if lowered in _KEYED_ANYWAY:
        return False
    return (
        lowered in NOT_KEYED
        or lowered.startswith(_NOT_KEYED_PREFIXES)
        or lowered.endswith(_SECRET_SUFFIXES)
        or lowered.endswith(("_callback", "_callbacks"))
        or "auth" in lowered
        or "cost_per_" in lowered
    )


def request_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyed part of a request: every parameter that is not ``None`` and not in
    :data:`NOT_KEYED`, nor named like bookkeeping (``litellm_*``, ``_*``), a price
    (``*cost_per_*``), a callback or a secret."""
    return {k: v for k, v in kwargs.items() if v is not None and not _not_keyed(k)}


def _bind(which: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if not args:
        return dict(kwargs)
    names = _positional[which]
    if len(args) > len(names):
        raise TypeError(f"litellm.{which}() takes at most {len(names)} positional arguments")
    bound = dict(zip(names, args, strict=False))
    overlap = bound.keys() & kwargs.keys()
    if overlap:
        raise TypeError(f"litellm.{which}() got multiple values for {sorted(overlap)}")
    bound.update(kwargs)
    return bound


def _secret_env(name: str) -> bool:
    return name.upper().endswith(("_KEY", "_TOKEN", "_SECRET", "_PASSWORD"))


def secrets_of(kwargs: dict[str, Any]) -> list[str]:
    """Every string the unkeyed parameters carry (keys, endpoints and their query
    values, header values, credentials, metadata), and the values of environment
    variables named like secrets (``OPENAI_API_KEY``): redacted from recorded errors."""
    found: list[str] = [v for k, v in os.environ.items() if _secret_env(k)]
    stack = [v for k, v in kwargs.items() if v is not None and _not_keyed(k)]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
            parts = urllib.parse.urlsplit(value)
            if parts.query:
                for _, item in urllib.parse.parse_qsl(parts.query):
                    found.extend((item, urllib.parse.quote(item)))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found


def _endpoint(which: str) -> str:
    """The recorded entry point ``which`` (``aembedding``) is a form of (``embedding``)."""
    return which[1:] if which not in RECORDED else which


def _begin(run: Run, endpoint: str, kwargs: dict[str, Any]) -> Call:
    request = request_of(kwargs)
    model = request.get("model")
    if not isinstance(model, str):
        if endpoint == "completion":
            raise TypeError("litellm completion needs model=, a str")
        model = f"litellm.{endpoint} default model"
    if endpoint != "completion":
        # The same model and input asked of two endpoints are two steps; chat
        # completions carry no marker, so their keys stay what they were.
        request["$endpoint"] = endpoint
    meta = {p: request[p] for p in _META_PARAMS if p in request}
    meta["model"] = model
    unkeyed = {k: v for k, v in kwargs.items() if v is not None and _not_keyed(k)}
    return run.begin("llm", model, request, meta, secrets=lambda: secrets_of(unkeyed))


def _usage_meta(response: Any, cost: float | None = None) -> dict[str, Any]:
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    meta: dict[str, Any] = {
        "prompt_tokens": getattr(usage, "input_tokens", None) if prompt is None else prompt,
        "completion_tokens": (
            getattr(usage, "output_tokens", None) if completion is None else completion
        ),
    }
    if cost is None:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unknown model or no usage: NaN in the trace
            cost = None
    meta["cost_usd"] = cost if isinstance(cost, int | float) and math.isfinite(cost) else None
    return meta


def _document(response: Any) -> dict[str, Any]:
    """What is recorded of a response: its fields, the safe hidden parameters, and its
    class when it is not a chat ``ModelResponse``."""
    if not isinstance(response, BaseModel):
        return {"plain": response}
    hidden = getattr(response, "_hidden_params", None) or {}
    doc: dict[str, Any] = {
        "response": response.model_dump(),
        "hidden": {k: hidden.get(k) for k in _SAFE_HIDDEN if hidden.get(k) is not None},
    }
    if type(response) is not ModelResponse:
        doc["type"] = class_name(type(response))
    return doc


def _set_hidden(model: Any, hidden: dict[str, Any]) -> None:
    params = getattr(model, "_hidden_params", None)
    if params is None:
        return
    for k, v in hidden.items():
        params[k] = v  # a dict, or litellm's HiddenParams (item assignment too)


def _rebuilt(doc: Any) -> Any:
    if "plain" in doc:
        return doc["plain"]
    kind = model_class(doc["type"]) if "type" in doc else ModelResponse
    response = kind(**doc["response"])
    _set_hidden(response, {**doc["hidden"], "recorder_replayed": True})
    return response


def _dump_response(doc: Any) -> Any:
    """The state of the response a replay rebuilds from ``doc`` (raises ValueError if
    it has none: the replay then validates)."""
    try:
        response = _rebuilt(doc)
    except Exception as error:  # a replay of this record would raise it, not us now
        raise StateError(f"the recorded response does not rebuild: {error!r}") from error
    return dump_state(response)


def _load_response(tree: Any) -> Any:
    response = load_state(tree)
    if not isinstance(response, BaseModel):
        raise StateError(f"the state tree holds a {type(response).__name__}, not a response")
    return response


_ATOMS = frozenset({str, int, float, bool, type(None)})
_setattr = object.__setattr__


def copy_response(value: Any) -> Any:
    """A deep copy of a built response that shares nothing mutable with it.

    pydantic's ``model_copy(deep=True)`` goes through ``copy.deepcopy`` and its memo;
    a response is a tree of pydantic models, lists, dicts and immutable leaves, so it
    is copied directly: for a model, what ``BaseModel.__deepcopy__`` copies (``__dict__``,
    the set fields, the extra and private attributes). Anything else goes to
    ``copy.deepcopy``."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is list:
        return [v if type(v) in _ATOMS else copy_response(v) for v in value]
    if kind is dict:
        return _copy_dict(value)
    if isinstance(value, BaseModel):
        copied = object.__new__(kind)
        extra, private = value.__pydantic_extra__, value.__pydantic_private__
        _setattr(copied, "__dict__", _copy_dict(value.__dict__))
        _setattr(copied, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
        _setattr(copied, "__pydantic_extra__", None if extra is None else _copy_dict(extra))
        _setattr(copied, "__pydantic_private__", None if private is None else _copy_dict(private))
        return copied
    return copy.deepcopy(value)


def _copy_dict(value: dict[str, Any]) -> dict[str, Any]:
    copied = value.copy()
    for k, v in copied.items():
        if type(v) not in _ATOMS:
            copied[k] = copy_response(v)
    return copied


responses: ResultCache[Any] = ResultCache(copy_response)
"""Replayed responses built in this process (see :mod:`recorder.memo`)."""


def _prebuilt() -> Prebuilt:
    return Prebuilt(state_form(), _dump_response, _load_response)


def prebuilt_form() -> Prebuilt:
    """How chat responses are prebuilt under the installed litellm (``recorder verify``
    checks stored forms against their recorded JSON with it)."""
    return _prebuilt()


# -- warnings -----------------------------------------------------------------------------

_warned: dict[int, set[str]] = {}
"""What each open run (by id) was warned about in its current attempt."""


def _warn_once(run: Run, what: str, message: str, category: type[Warning]) -> None:
    """Warn ``message`` unless ``run`` was warned about ``what`` in this attempt."""
    key = id(run)
    seen = _warned.get(key)
    if seen is None:
        seen = _warned[key] = set()
        run.add_closer(lambda: _warned.pop(key, None))
    if what in seen:
        return
    seen.add(what)
    warn_at_caller(message, category)


def _warn_unrecorded(run: Run, what: str) -> None:
    _warn_once(
        run,
        what,
        f"{what} is not recorded: it runs live on every re-run of run {run.run_id!r}, "
        "asking the model again each time (warned once per attempt). To replay its "
        "answer, make it a step: run.step(name, lambda: <the call>.model_dump()).",
        UnrecordedLLMWarning,
    )


# -- calls --------------------------------------------------------------------------------


def _prepare(
    which: str, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], Call | None, bool, Retry | None]:
    """The bound arguments, the call (``None`` when this form of the call is not
    recorded: it then warns), whether it streams, and the recorder's own ``retry=``
    (taken out: litellm never sees it, the key never covers it)."""
    bound = _bind(which, args, kwargs)
    retry = as_retry(bound.pop("retry", None))
    stream = bool(bound.get("stream"))
    endpoint = _endpoint(which)
    if stream and endpoint not in _STREAMED:
        _warn_unrecorded(run, f"litellm.{which}(stream=True)")
        return bound, None, stream, retry
    return bound, _begin(run, endpoint, bound), stream, retry


def _finish(source: _Source, response: Any, stream: bool) -> Any:
    if stream:
        return RecordingStream(response, source)
    source.call.commit(_document(response), meta=_usage_meta(response), prebuilt=_prebuilt())
    return response


def recorded_call(which: str, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``litellm.<which>(*args, **kwargs)`` (a sync entry point of :data:`RECORDED`) as a
    recorded step of ``run``."""
    kwargs, call, stream, retry = _prepare(which, run, args, kwargs)
    original = _originals.get(which) or getattr(litellm, which)
    if call is None:
        return original(**kwargs)
    if call.replayed:
        return _replayed(which, run, call, kwargs, retry, stream)
    with call.live(record_errors=run.record_llm_errors):
        response = call_with_retry(retry, call, lambda: limited("llm", lambda: original(**kwargs)))
    return _finish(_Source(which, run, call, kwargs, retry), response, stream)


async def recorded_acall(
    which: str, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await litellm.<which>(*args, **kwargs)`` (an async entry point of
    :data:`RECORDED`) as a recorded step of ``run``."""
    kwargs, call, stream, retry = _prepare(which, run, args, kwargs)
    original = _originals.get(which) or getattr(litellm, which)
    if call is None:
        return await original(**kwargs)
    if call.replayed:
        return _replayed(which, run, call, kwargs, retry, stream)
    with call.live(record_errors=run.record_llm_errors):
        response = await acall_with_retry(
            retry, call, lambda: alimited("llm", lambda: original(**kwargs))
        )
    return _finish(_Source(which, run, call, kwargs, retry), response, stream)


def recorded_completion(run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``litellm.completion(*args, **kwargs)`` as a recorded step of ``run``."""
    return recorded_call("completion", run, args, kwargs)


async def recorded_acompletion(run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``litellm.acompletion(*args, **kwargs)`` as a recorded step of ``run``."""
    return await recorded_acall("acompletion", run, args, kwargs)


def _replayed(
    which: str, run: Run, call: Call, kwargs: dict[str, Any], retry: Retry | None, stream: bool
) -> Any:
    if stream:
        return ReplayedStream(call.replay(), _Source(which, run, call, kwargs, retry))
    return call.replay(_rebuilt, responses, _prebuilt())


# -- streams ------------------------------------------------------------------------------


class _Source:
    """Where a stream comes from: the entry point, the run, the call and its arguments
    (to ask the model again for the rest of a stream recorded in part)."""

    __slots__ = ("call", "endpoint", "kwargs", "retry", "run")

    def __init__(
        self, which: str, run: Run, call: Call, kwargs: dict[str, Any], retry: Retry | None
    ) -> None:
        self.endpoint = _endpoint(which)
        self.run, self.call, self.kwargs, self.retry = run, call, kwargs, retry

    def ask(self) -> Any:
        original = _originals.get(self.endpoint) or getattr(litellm, self.endpoint)
        with self.call.live(record_errors=False):
            return call_with_retry(
                self.retry, self.call, lambda: limited("llm", lambda: original(**self.kwargs))
            )

    async def aask(self) -> Any:
        name = "a" + self.endpoint
        original = _originals.get(name) or getattr(litellm, name)
        with self.call.live(record_errors=False):
            return await acall_with_retry(
                self.retry, self.call, lambda: alimited("llm", lambda: original(**self.kwargs))
            )


def _chunk_document(chunk: Any) -> dict[str, Any]:
    """A chunk's fields, its class when it is not a chat ``ModelResponseStream``, and its
    hidden parameters that ``stream_chunk_builder`` reads (``usage``, ``created_at``...):
    never an endpoint, headers or an unkeyed value."""
    doc: dict[str, Any] = {"chunk": chunk.model_dump()}
    if type(chunk) is not ModelResponseStream:
        doc["type"] = class_name(type(chunk))
    hidden = getattr(chunk, "_hidden_params", None)
    items = hidden.items() if isinstance(hidden, dict) else []
    kept: dict[str, Any] = {}
    for k, v in items:
        if k in _UNSAFE_HIDDEN or _not_keyed(k) or v is None:
            continue
        if isinstance(v, BaseModel):
            kept[k] = {"$model": class_name(type(v)), "fields": v.model_dump()}
        elif type(v) in _ATOMS or _is_json(v):
            kept[k] = v
    if kept:
        doc["hidden"] = kept
    return doc


def _is_json(value: Any) -> bool:
    if not isinstance(value, list | dict):
        return False
    try:
        json.dumps(value)
    except (TypeError, ValueError):  # an object inside: not kept
        return False
    return True


def _chunk(doc: dict[str, Any]) -> Any:
    kind = model_class(doc["type"]) if "type" in doc else ModelResponseStream
    chunk = kind(**doc["chunk"])
    hidden = {
        k: model_class(v["$model"])(**v["fields"]) if isinstance(v, dict) and "$model" in v else v
        for k, v in doc.get("hidden", {}).items()
    }
    _set_hidden(chunk, hidden)
    return chunk


class RecordingStream:
    """Wraps a live litellm stream and records the chunks the program reads: all of
    them once it is read to the end, or, for a stream left before its end (``break``),
    those read by the time the attempt ends (a re-run replays those, then asks the
    model again if it reads further). A stream that raises is not recorded. Other
    attributes reach the wrapped stream.
    """

    def __init__(
        self,
        inner: Any,
        source: _Source,
        prefix: list[dict[str, Any]] | None = None,
        prefix_chunks: list[Any] | None = None,
    ) -> None:
        self._inner = inner
        self._source = source
        self._prefix = prefix or []
        self._chunks: list[Any] = list(prefix_chunks or [])
        self._done = False
        source.run.add_closer(self._left)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _record(self, complete: bool) -> None:
        if self._done:
            return
        self._done = True
        meta: dict[str, Any] = {}
        try:
            built = litellm.stream_chunk_builder(self._chunks) if self._chunks else None
            meta = _usage_meta(built) if built is not None else {}
        except Exception:  # usage is a nicety; the chunks are the record
            meta = {}
        new = self._chunks[len(self._prefix) :]
        chunks = self._prefix + [_chunk_document(c) for c in new]
        self._source.call.commit({"complete": complete, "chunks": chunks}, meta=meta)

    def _left(self) -> None:
        """The attempt ends with the stream not read to its end: record what was read."""
        self._record(complete=False)

    def _failed(self, exc: BaseException) -> None:
        self._done = True
        if isinstance(exc, Exception):
            self._source.call.fail(exc, record=False)
        else:
            self._source.call.abandon()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._record(complete=True)
            raise
        except BaseException as exc:
            self._failed(exc)
            raise
        self._chunks.append(chunk)
        return chunk

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._record(complete=True)
            raise
        except BaseException as exc:
            self._failed(exc)
            raise
        self._chunks.append(chunk)
        return chunk


class ReplayedStream:
    """A recorded stream, replayed chunk by chunk (sync or async iteration). Past the
    end of a stream recorded in part, it asks the model again (warning once) and gives
    the new answer's chunks after as many as were replayed, recording them."""

    def __init__(self, recorded: Any, source: _Source) -> None:
        if isinstance(recorded, list):  # recorded before streams kept their hidden params
            recorded = {"complete": True, "chunks": [{"chunk": c} for c in recorded]}
        self._docs: list[dict[str, Any]] = recorded["chunks"]
        self._complete: bool = recorded["complete"]
        self._source = source
        self._given: list[Any] = []
        self._live: RecordingStream | None = None

    def _next(self) -> Any:
        index = len(self._given)
        if index >= len(self._docs):
            raise IndexError
        chunk = _chunk(self._docs[index])
        self._given.append(chunk)
        return chunk

    def _going_live(self) -> None:
        call, count = self._source.call, len(self._docs)
        if self._source.run.mode is Mode.REPLAY:
            raise ReplayMissError(
                f"{call.label}: the recorded run read {count} chunks of this stream and "
                "stopped; this run reads more, and mode='replay' never goes live. Use "
                "mode='auto' to ask the model again for the rest.",
                step={"kind": call.kind, "name": call.name, "seq": call.seq},
            )
        _warn_once(
            self._source.run,
            f"stream {call.seq}",
            f"{call.label} replayed the {count} chunks of this stream that the recorded run "
            "read before it stopped; this run reads further, so it asks the model again and "
            f"gives the chunks of the new answer after its first {count} (a model that is "
            "not deterministic may not continue the replayed text). The stream is recorded "
            "again as it is read.",
            PartialStreamWarning,
        )

    def _continue(self, inner: Any) -> RecordingStream:
        self._live = RecordingStream(inner, self._source, self._docs, self._given)
        return self._live

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._live is not None:
            return next(self._live)
        try:
            return self._next()
        except IndexError:
            if self._complete:
                raise StopIteration from None
        self._going_live()
        inner = iter(self._source.ask())
        for _ in self._docs:  # the part already given, from the recorded answer
            if next(inner, None) is None:
                self._continue(iter(())).__next__()
        return next(self._continue(inner))

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._live is not None:
            return await self._live.__anext__()
        try:
            return self._next()
        except IndexError:
            if self._complete:
                raise StopAsyncIteration from None
        self._going_live()
        inner = (await self._source.aask()).__aiter__()
        for _ in self._docs:
            try:
                await inner.__anext__()
            except StopAsyncIteration:
                return await self._continue(_empty()).__anext__()
        return await self._continue(inner).__anext__()


async def _empty() -> AsyncIterator[Any]:
    return
    yield  # an async generator with nothing in it


def _positional_names(fn: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def is_installed() -> bool:
    return bool(getattr(litellm.completion, "__recorder_original__", None))


def _recording(which: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper of recorded entry point ``which``."""
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def recording_async(*args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is None:
                return await original(*args, **kwargs)
            return await recorded_acall(which, run, args, kwargs)

        return recording_async

    @functools.wraps(original)
    def recording(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return original(*args, **kwargs)
        return recorded_call(which, run, args, kwargs)

    return recording


def _warning(which: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The wrapper of unrecorded entry point ``which``: warns inside a run."""
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def warning_async(*args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is not None:
                _warn_unrecorded(run, f"litellm.{which}")
            result: Awaitable[Any] = original(*args, **kwargs)
            return await result

        return warning_async

    @functools.wraps(original)
    def warning(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is not None:
            _warn_unrecorded(run, f"litellm.{which}")
        return original(*args, **kwargs)

    return warning


def install() -> None:
    """Route litellm's entry points through the current run (idempotent): those of
    :data:`RECORDED` are recorded, those of :data:`UNRECORDED` warn."""
    if is_installed():
        return
    recorded = [name for base in RECORDED for name in (base, "a" + base)]
    for name in (*recorded, *UNRECORDED):
        original = getattr(litellm, name, None)
        if not callable(original) or getattr(original, "__recorder_original__", None):
            continue
        _originals[name] = original
        if name in recorded:
            _positional[name] = _positional_names(original)
            wrapper = _recording(name, original)
        else:
            wrapper = _warning(name, original)
        wrapper.__recorder_original__ = original  # type: ignore[attr-defined]
        # completion goes last: it is what is_installed() looks at
        if name != "completion":
            setattr(litellm, name, wrapper)
        else:
            completion = wrapper
    litellm.completion = completion


def uninstall() -> None:
    """Put the original functions back."""
    if is_installed():
        for name, original in _originals.items():
            setattr(litellm, name, original)
