"""Recording of ``litellm.completion`` and ``litellm.acompletion``.

:func:`install` replaces the two functions on the ``litellm`` module with wrappers that
route calls through the current run and call the original outside one, so user code
does not change. (Code that did ``from litellm import completion`` before the first run
holds the original function: use ``litellm.completion`` or ``run.completion``.)

The key covers every request parameter that can change the answer; parameters that
only say where and how to send it (keys, endpoints, headers, timeouts, retries,
metadata, credentials) never enter the key and are never written.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import os
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import litellm
from litellm.types.utils import ModelResponse, ModelResponseStream
from pydantic import BaseModel

from ..call import Prebuilt
from ..memo import ResultCache
from ..retry import Retry, acall_with_retry, as_retry, call_with_retry
from ..runtime import Call, Run, current_run
from .modelstate import StateError, dump_state, load_state, state_form

__all__ = ["NOT_KEYED", "copy_response", "install", "is_installed", "recorded_acompletion",
           "recorded_completion", "request_of", "responses", "uninstall"]  # fmt: skip

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
    }
)  # fmt: skip
_SECRET_SUFFIXES = ("_key", "_secret", "_password", "_token", "credentials", "authorization")
_META_PARAMS = ("temperature", "seed")
_SAFE_HIDDEN = ("custom_llm_provider", "model_id", "response_cost", "litellm_model_name",
                "provider_response_model", "region_name")  # fmt: skip
"""The parts of a response's ``_hidden_params`` that are kept: never ``api_base``
(it may carry a key) nor response headers."""

_originals: dict[str, Callable[..., Any]] = {}
_positional: dict[str, list[str]] = {}


@functools.lru_cache(maxsize=1024)
def _not_keyed(name: str) -> bool:
    lowered = name.lower()
    return lowered in NOT_KEYED or lowered.endswith(_SECRET_SUFFIXES) or "auth" in lowered


def request_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyed part of a completion request: every parameter that is not ``None``
    and not in :data:`NOT_KEYED` (or named like a secret)."""
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


def _begin(run: Run, kwargs: dict[str, Any]) -> Call:
    request = request_of(kwargs)
    model = request.get("model")
    if not isinstance(model, str):
        raise TypeError("litellm completion needs model=, a str")
    meta = {p: request[p] for p in _META_PARAMS if p in request}
    meta["model"] = model
    unkeyed = {k: v for k, v in kwargs.items() if v is not None and _not_keyed(k)}
    return run.begin("llm", model, request, meta, secrets=lambda: secrets_of(unkeyed))


def _usage_meta(response: Any, cost: float | None = None) -> dict[str, Any]:
    usage = getattr(response, "usage", None)
    meta: dict[str, Any] = {
        "prompt_tokens": getattr(usage, "prompt_tokens", None),
        "completion_tokens": getattr(usage, "completion_tokens", None),
    }
    if cost is None:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unknown model or no usage: NaN in the trace
            cost = None
    meta["cost_usd"] = cost if cost is None or math.isfinite(cost) else None
    return meta


def _document(response: Any) -> dict[str, Any]:
    """What is recorded of a response: its fields and the safe hidden parameters."""
    hidden = getattr(response, "_hidden_params", None) or {}
    return {
        "response": response.model_dump(),
        "hidden": {k: hidden[k] for k in _SAFE_HIDDEN if hidden.get(k) is not None},
    }


def _rebuilt(doc: Any) -> ModelResponse:
    response = ModelResponse(**doc["response"])
    response._hidden_params.update(doc["hidden"], recorder_replayed=True)
    return response


def _dump_response(doc: Any) -> Any:
    """The state of the response a replay rebuilds from ``doc`` (raises ValueError if
    it has none: the replay then validates)."""
    try:
        response = _rebuilt(doc)
    except Exception as error:  # a replay of this record would raise it, not us now
        raise StateError(f"the recorded response does not rebuild: {error!r}") from error
    return dump_state(response)


def _load_response(tree: Any) -> ModelResponse:
    response = load_state(tree)
    if type(response) is not ModelResponse:
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


responses: ResultCache[ModelResponse] = ResultCache(copy_response)
"""Replayed responses built in this process (see :mod:`recorder.memo`)."""


def _prebuilt() -> Prebuilt:
    return Prebuilt(state_form(), _dump_response, _load_response)


def _replayed(call: Call, stream: bool) -> Any:
    if stream:
        return ReplayedStream(call.replay())
    return call.replay(_rebuilt, responses, _prebuilt())


def _prepare(
    which: str, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], Call, bool, Retry | None]:
    """The bound arguments, the call, whether it streams, and the recorder's own
    ``retry=`` (taken out: litellm never sees it, the key never covers it)."""
    bound = _bind(which, args, kwargs)
    retry = as_retry(bound.pop("retry", None))
    return bound, _begin(run, bound), bool(bound.get("stream")), retry


def _finish(call: Call, response: Any, stream: bool) -> Any:
    if stream:
        return RecordingStream(response, call)
    call.commit(_document(response), meta=_usage_meta(response), prebuilt=_prebuilt())
    return response


def recorded_completion(run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``litellm.completion(*args, **kwargs)`` as a recorded step of ``run``."""
    kwargs, call, stream, retry = _prepare("completion", run, args, kwargs)
    if call.replayed:
        return _replayed(call, stream)
    original = _originals.get("completion", litellm.completion)
    with call.live(record_errors=run.record_llm_errors):
        response = call_with_retry(retry, call, lambda: original(**kwargs))
    return _finish(call, response, stream)


async def recorded_acompletion(run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``litellm.acompletion(*args, **kwargs)`` as a recorded step of ``run``."""
    kwargs, call, stream, retry = _prepare("acompletion", run, args, kwargs)
    if call.replayed:
        return _replayed(call, stream)
    original = _originals.get("acompletion", litellm.acompletion)
    with call.live(record_errors=run.record_llm_errors):
        response = await acall_with_retry(retry, call, lambda: original(**kwargs))
    return _finish(call, response, stream)


class RecordingStream:
    """Wraps a live litellm stream; records its chunks once it is read to the end.

    A stream that is not read to the end, or that raises, is not recorded: the next
    run asks the model again. Other attributes reach the wrapped stream.
    """

    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call
        self._chunks: list[Any] = []
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        meta: dict[str, Any] = {}
        try:
            built = litellm.stream_chunk_builder(self._chunks)
            meta = _usage_meta(built) if built is not None else {}
        except Exception:  # usage is a nicety; the chunks are the record
            meta = {}
        self._call.commit([c.model_dump() for c in self._chunks], meta=meta)

    def _failed(self, exc: BaseException) -> None:
        self._done = True
        if isinstance(exc, Exception):
            self._call.fail(exc, record=False)
        else:
            self._call.abandon()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._finish()
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
            self._finish()
            raise
        except BaseException as exc:
            self._failed(exc)
            raise
        self._chunks.append(chunk)
        return chunk


class ReplayedStream:
    """A recorded stream, replayed chunk by chunk (sync or async iteration)."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks = chunks
        self._index = 0

    def _next(self) -> ModelResponseStream:
        if self._index >= len(self._chunks):
            raise IndexError
        chunk = self._chunks[self._index]
        self._index += 1
        return ModelResponseStream(**chunk)

    def __iter__(self) -> Iterator[ModelResponseStream]:
        return self

    def __next__(self) -> ModelResponseStream:
        try:
            return self._next()
        except IndexError:
            raise StopIteration from None

    def __aiter__(self) -> AsyncIterator[ModelResponseStream]:
        return self

    async def __anext__(self) -> ModelResponseStream:
        try:
            return self._next()
        except IndexError:
            raise StopAsyncIteration from None


def _positional_names(fn: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def is_installed() -> bool:
    return bool(getattr(litellm.completion, "__recorder_original__", None))


def install() -> None:
    """Route ``litellm.completion``/``acompletion`` through the current run (idempotent)."""
    if is_installed():
        return
    completion, acompletion = litellm.completion, litellm.acompletion
    _originals.update(completion=completion, acompletion=acompletion)
    _positional.update(
        completion=_positional_names(completion), acompletion=_positional_names(acompletion)
    )

    @functools.wraps(completion)
    def recording_completion(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return completion(*args, **kwargs)
        return recorded_completion(run, args, kwargs)

    @functools.wraps(acompletion)
    async def recording_acompletion(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return await acompletion(*args, **kwargs)
        return await recorded_acompletion(run, args, kwargs)

    recording_completion.__recorder_original__ = completion  # type: ignore[attr-defined]
    recording_acompletion.__recorder_original__ = acompletion  # type: ignore[attr-defined]
    litellm.completion = recording_completion
    litellm.acompletion = recording_acompletion


def uninstall() -> None:
    """Put the original functions back."""
    if is_installed():
        litellm.completion = _originals["completion"]
        litellm.acompletion = _originals["acompletion"]
