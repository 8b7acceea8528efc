"""OpenAI (sync and async clients): Chat Completions and Responses, plain and streamed.

    client = meterline.integrations.openai.instrument(OpenAI())

Streamed Chat Completions only report usage when asked to, so the wrapper adds
``stream_options={"include_usage": True}`` unless the caller set ``include_usage`` itself (or
passed ``include_usage=False`` to :func:`instrument`). The provider then ends the stream with one
extra chunk that has ``choices=[]`` and the usage; when the wrapper (not the caller) asked for it,
that chunk is read and kept from the app, whose loop over ``chunk.choices[0]`` sees the stream it
would have seen unwrapped. A caller who asked for ``include_usage`` gets every chunk, unchanged.

``chat.completions.parse`` and ``responses.parse`` are recorded like ``create``, and
``with_options(...)`` / ``copy(...)`` of an instrumented client return an instrumented client
(same recorder and settings).

Token fields follow the CallRecord: the prompt total includes cached tokens
(``prompt_tokens_details.cached_tokens`` → cache reads) and the completion total includes
reasoning tokens.

``finish_reason`` is the first choice's (``function_call`` → ``tool_calls``); for Responses it
follows ``status``: ``completed`` → ``stop`` (``tool_calls`` when the output calls a function),
``incomplete`` → ``length`` or ``content_filter`` from ``incomplete_details.reason``, ``failed`` →
``error``. The prompt prefix (:mod:`meterline.integrations.prefix`) is the leading system and
developer messages (Responses: ``instructions`` and the leading system/developer input items) and
the ``tools`` (Chat Completions: also the legacy ``functions``); ``count_prefix_tokens`` is the
app's own counter for its size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, TypeVar

from meterline.integrations._call import (
    AsyncRecordingStream,
    Call,
    Observer,
    Recorder,
    RecordingStream,
    as_int,
    default_recorder,
    get,
    is_async,
    status_of,
    wrap_copies,
)
from meterline.integrations.prefix import PrefixCounter, leading_system, prefix_fields
from meterline.integrations.ratelimits import OPENAI_HEADERS, current, watch

C = TypeVar("C")
_TIERS = {"default": "default", "flex": "flex", "priority": "priority"}
_MAX_TOKENS_ARGS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
           "content_filter": "content_filter"}  # fmt: skip
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def instrument(
    client: C,
    *,
    recorder: Recorder | None = None,
    provider: str = "openai",
    include_usage: bool = True,
    count_prefix_tokens: PrefixCounter | None = None,
) -> C:
    """Record every ``create`` and ``parse`` of ``client``'s chat completions and responses; returns it."""
    record = recorder or default_recorder()
    watch(client, OPENAI_HEADERS)
    completions = client.chat.completions  # type: ignore[attr-defined]
    settings = _Settings(record, provider, include_usage, count_prefix_tokens)
    for name in ("create", "parse"):
        _wrap(completions, name, _chat_fields, _ChatObserver, settings)
    responses = getattr(client, "responses", None)
    if responses is not None:
        for name in ("create", "parse"):
            _wrap(responses, name, _responses_fields, _ResponsesObserver, settings)
    again = functools.partial(
        instrument, recorder=record, provider=provider, include_usage=include_usage,
        count_prefix_tokens=count_prefix_tokens,
    )  # fmt: skip
    wrap_copies(client, again)
    return client


wrap = instrument


@dataclass(frozen=True)
class _Settings:
    record: Recorder
    provider: str
    include_usage: bool
    count_prefix_tokens: PrefixCounter | None


def _wrap(resource: Any, name: str, result_fields: Any, observer_type: type[Observer], settings: _Settings) -> None:
    record, provider, include_usage = settings.record, settings.provider, settings.include_usage
    original = getattr(resource, name, None)
    if original is None or getattr(original, "__meterline__", False):
        return  # not in this version of the client, or already instrumented
    chat = observer_type is _ChatObserver

    def begin(kwargs: dict[str, Any]) -> tuple[Call, bool, bool]:
        """The call, whether it streams, and whether the wrapper asked for the stream's usage chunk."""
        streamed = kwargs.get("stream") is True
        injected = False
        if streamed and chat and include_usage:
            options = kwargs.get("stream_options")
            if not isinstance(options, dict):
                kwargs["stream_options"] = {"include_usage": True}
                injected = True
            elif "include_usage" not in options:
                kwargs["stream_options"] = {**options, "include_usage": True}
                injected = True
        max_tokens = next((kwargs[k] for k in _MAX_TOKENS_ARGS if isinstance(kwargs.get(k), int)), None)
        model = kwargs.get("model")
        fields = {
            "provider": provider,
            "model": model if isinstance(model, str) else "unknown",
            "streamed": streamed,
            "max_tokens": max_tokens,
            **_safe(_prefix, kwargs, chat, settings.count_prefix_tokens),
        }
        return Call(record, fields), streamed, injected

    def observer(call: Call, injected: bool) -> Observer:
        return _ChatObserver(call, hide_usage_chunk=injected) if chat else observer_type(call)

    if is_async(original):

        @functools.wraps(original)
        async def async_create(*args: Any, **kwargs: Any) -> Any:
            call, streamed, injected = begin(kwargs)
            try:
                with current(call):
                    result = await original(*args, **kwargs)
            except BaseException as exc:
                call.finish(status_of(exc), exc)
                raise
            if streamed:
                return AsyncRecordingStream(result, observer(call, injected))
            call.finish("ok", fields=_safe(result_fields, result))
            return result

        async_create.__meterline__ = True  # type: ignore[attr-defined]
        setattr(resource, name, async_create)
        return

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call, streamed, injected = begin(kwargs)
        try:
            with current(call):
                result = original(*args, **kwargs)
        except BaseException as exc:
            call.finish(status_of(exc), exc)
            raise
        if streamed:
            return RecordingStream(result, observer(call, injected))
        call.finish("ok", fields=_safe(result_fields, result))
        return result

    create.__meterline__ = True  # type: ignore[attr-defined]
    setattr(resource, name, create)


def _safe(read: Any, *args: Any) -> dict[str, Any]:
    try:
        fields: dict[str, Any] = read(*args)
    except Exception:  # noqa: BLE001 (an unexpected shape: record the call without usage, never fail the app)
        return {}
    return fields


def _prefix(kwargs: dict[str, Any], chat: bool, count: PrefixCounter | None) -> dict[str, Any]:
    """The prompt prefix fields from the request: system/developer messages (or instructions) and tools."""
    tools = [*(kwargs.get("tools") or []), *(kwargs.get("functions") or [])] if chat else kwargs.get("tools")
    if chat:
        system: Any = leading_system(kwargs.get("messages"))
    else:
        instructions = kwargs.get("instructions")
        system = [instructions] if isinstance(instructions, str) and instructions else []
        system += leading_system(kwargs.get("input"))
    return prefix_fields(system, tools, count)


def _chat_finish(choices: Any) -> dict[str, Any]:
    reason = _FINISH.get(get(choices[0], "finish_reason") or "") if choices else None
    return {"finish_reason": reason} if reason else {}


def _usage(usage: Any, total_in: str, details_in: str, total_out: str, details_out: str) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "input_tokens": as_int(get(usage, total_in)),
        "cache_read_tokens": as_int(get(usage, details_in, "cached_tokens")),
        "output_tokens": as_int(get(usage, total_out)),
        "reasoning_tokens": as_int(get(usage, details_out, "reasoning_tokens")),
    }


def _chat_usage(usage: Any) -> dict[str, Any]:
    return _usage(usage, "prompt_tokens", "prompt_tokens_details", "completion_tokens", "completion_tokens_details")


def _responses_usage(usage: Any) -> dict[str, Any]:
    return _usage(usage, "input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details")


def _common(result: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    model = get(result, "model")
    if isinstance(model, str):
        fields["response_model"] = model
    tier = _TIERS.get(get(result, "service_tier") or "")
    if tier:
        fields["service_tier"] = tier
    request_id = getattr(result, "_request_id", None)
    if isinstance(request_id, str):
        fields["request_id"] = request_id[:128]
    return fields


def _chat_fields(result: Any) -> dict[str, Any]:
    choices = get(result, "choices") or []
    tool_calls = sum(len(get(choice, "message", "tool_calls") or []) for choice in choices)
    return {**_common(result), **_chat_usage(get(result, "usage")), "tool_calls": tool_calls, **_chat_finish(choices)}


def _function_calls(output: Any) -> int:
    return sum(1 for item in output or [] if get(item, "type") == "function_call")


def _responses_fields(result: Any) -> dict[str, Any]:
    status = get(result, "status")
    fields = {
        **_common(result),
        **_responses_usage(get(result, "usage")),
        "tool_calls": _function_calls(get(result, "output")),
    }
    if status == "cancelled":
        fields["status"] = "cancelled"
    elif status == "failed":
        fields["status"] = "error"
        fields["error_type"] = str(get(result, "error", "code") or "response.failed")[:200]
        fields["finish_reason"] = "error"
    elif status == "completed":
        fields["finish_reason"] = "tool_calls" if fields["tool_calls"] else "stop"
    elif status == "incomplete":
        reason = _INCOMPLETE.get(get(result, "incomplete_details", "reason") or "")
        if reason:
            fields["finish_reason"] = reason
    return fields


class _ChatObserver(Observer):
    """Chat Completions chunks: the first one is the first token; usage comes in the last.

    With ``hide_usage_chunk`` (the wrapper asked for usage, the caller did not), the usage-only
    chunk (``choices=[]`` and a usage) is kept from the app."""

    def __init__(self, call: Call, hide_usage_chunk: bool = False) -> None:
        super().__init__(call)
        self._fields: dict[str, Any] = {}
        self._tool_calls: set[tuple[int, int]] = set()
        self._hide_usage_chunk = hide_usage_chunk
        self._finish: str | None = None

    def observe(self, chunk: Any) -> None:
        choices = get(chunk, "choices") or []
        if choices:
            self.call.first_token()
        for choice in choices:
            for tool_call in get(choice, "delta", "tool_calls") or []:
                self._tool_calls.add((as_int(get(choice, "index")), as_int(get(tool_call, "index"))))
            if as_int(get(choice, "index")) == 0 and (reason := _FINISH.get(get(choice, "finish_reason") or "")):
                self._finish = reason
        if not self._fields:
            self._fields = _common(chunk)
        usage = get(chunk, "usage")
        if usage is not None:
            self._fields.update(_chat_usage(usage))

    def hides(self, chunk: Any) -> bool:
        return self._hide_usage_chunk and not get(chunk, "choices") and get(chunk, "usage") is not None

    def fields(self) -> dict[str, Any]:
        return {**self._fields, "tool_calls": len(self._tool_calls), "finish_reason": self._finish}


class _ResponsesObserver(Observer):
    """Responses events: the first ``*.delta`` is the first token; the final response has usage."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._fields: dict[str, Any] = {}

    def observe(self, event: Any) -> None:
        kind = get(event, "type") or ""
        if kind.endswith(".delta"):
            self.call.first_token()
        if kind in ("response.completed", "response.incomplete", "response.failed", "response.created"):
            self._fields = _responses_fields(get(event, "response"))

    def fields(self) -> dict[str, Any]:
        return self._fields
