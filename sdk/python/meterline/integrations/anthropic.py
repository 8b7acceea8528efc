"""Anthropic (sync and async clients): ``messages.create``, plain and streamed, and the
``messages.stream()`` helper.

    client = meterline.integrations.anthropic.instrument(Anthropic())

``with_options(...)`` / ``copy(...)`` of an instrumented client return an instrumented client
(same recorder and settings).

Anthropic's ``input_tokens`` EXCLUDES the prompt cache, so the record's ``input_tokens`` is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (the CallRecord total),
with the two cache parts in ``cache_read_tokens`` and ``cache_write_tokens``.

``stop_reason`` becomes ``finish_reason``: ``end_turn`` and ``stop_sequence`` → ``stop``,
``max_tokens`` → ``length``, ``tool_use`` → ``tool_calls``, ``refusal`` → ``content_filter``
(others, such as ``pause_turn``, leave it absent). The prompt prefix
(:mod:`meterline.integrations.prefix`) is ``system`` and ``tools``; ``count_prefix_tokens`` is the
app's own counter for its size.
"""

from __future__ import annotations

import functools
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
from meterline.integrations.prefix import PrefixCounter, prefix_fields
from meterline.integrations.ratelimits import ANTHROPIC_HEADERS, current, watch

C = TypeVar("C")
_TIERS = {"standard": "default", "priority": "priority", "batch": "batch"}
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
         "refusal": "content_filter"}  # fmt: skip


def instrument(
    client: C,
    *,
    recorder: Recorder | None = None,
    provider: str = "anthropic",
    count_prefix_tokens: PrefixCounter | None = None,
) -> C:
    """Record every ``messages.create`` of ``client``; returns it."""
    record = recorder or default_recorder()
    messages = client.messages  # type: ignore[attr-defined]
    original = messages.create
    if getattr(original, "__meterline__", False):
        return client
    watch(client, ANTHROPIC_HEADERS)
    wrap_copies(
        client,
        lambda copy: instrument(copy, recorder=record, provider=provider, count_prefix_tokens=count_prefix_tokens),
    )

    def begin(kwargs: dict[str, Any]) -> tuple[Call, bool]:
        streamed = kwargs.get("stream") is True
        model = kwargs.get("model")
        max_tokens = kwargs.get("max_tokens")
        fields = {
            "provider": provider,
            "model": model if isinstance(model, str) else "unknown",
            "streamed": streamed,
            "max_tokens": max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            **_safe_prefix(kwargs, count_prefix_tokens),
        }
        return Call(record, fields), streamed

    helper = getattr(messages, "stream", None)
    if helper is not None:
        messages.stream = _wrap_helper(helper, begin)

    if is_async(original):

        @functools.wraps(original)
        async def async_create(*args: Any, **kwargs: Any) -> Any:
            call, streamed = begin(kwargs)
            try:
                with current(call):
                    result = await original(*args, **kwargs)
            except BaseException as exc:
                call.finish(status_of(exc), exc)
                raise
            if streamed:
                return AsyncRecordingStream(result, _MessageObserver(call))
            call.finish("ok", fields=_safe_fields(result))
            return result

        async_create.__meterline__ = True  # type: ignore[attr-defined]
        messages.create = async_create
        return client

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call, streamed = begin(kwargs)
        try:
            with current(call):
                result = original(*args, **kwargs)
        except BaseException as exc:
            call.finish(status_of(exc), exc)
            raise
        if streamed:
            return RecordingStream(result, _MessageObserver(call))
        call.finish("ok", fields=_safe_fields(result))
        return result

    create.__meterline__ = True  # type: ignore[attr-defined]
    messages.create = create
    return client


wrap = instrument


def _wrap_helper(helper: Any, begin: Any) -> Any:
    """``messages.stream(...)``: its manager, whose stream reads raw events we can watch."""

    @functools.wraps(helper)
    def stream(*args: Any, **kwargs: Any) -> Any:
        call, _ = begin({**kwargs, "stream": True})
        return _Manager(helper(*args, **kwargs), call)

    stream.__meterline__ = True  # type: ignore[attr-defined]
    return stream


class _Manager:
    """The helper's stream manager, unchanged for the app, with the raw event stream under watch.

    ``MessageStream`` reads its events from ``_raw_stream`` lazily, so putting the recording proxy
    there right after entering sees every event; without that attribute (another SDK version) the
    call is recorded without usage rather than not at all."""

    def __init__(self, manager: Any, call: Call) -> None:
        self._manager = manager
        self._call = call

    def _watch(self, stream: Any, proxy: type[RecordingStream] | type[AsyncRecordingStream]) -> Any:
        raw = getattr(stream, "_raw_stream", None)
        if raw is None:
            self._call.finish("ok")
        else:
            stream._raw_stream = proxy(raw, _MessageObserver(self._call))
        return stream

    def __enter__(self) -> Any:
        try:
            with current(self._call):
                stream = self._manager.__enter__()
        except BaseException as exc:
            self._call.finish(status_of(exc), exc)
            raise
        return self._watch(stream, RecordingStream)

    def __exit__(self, *exc_info: Any) -> Any:
        return self._manager.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        try:
            with current(self._call):
                stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._call.finish(status_of(exc), exc)
            raise
        return self._watch(stream, AsyncRecordingStream)

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._manager.__aexit__(*exc_info)


def usage_fields(usage: Any) -> dict[str, Any]:
    """Anthropic usage → CallRecord token fields (input is made the total, cache parts included)."""
    if usage is None:
        return {}
    uncached = as_int(get(usage, "input_tokens"))
    cache_read = as_int(get(usage, "cache_read_input_tokens"))
    cache_write = as_int(get(usage, "cache_creation_input_tokens"))
    fields: dict[str, Any] = {
        "input_tokens": uncached + cache_read + cache_write,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": as_int(get(usage, "output_tokens")),
    }
    tier = _TIERS.get(get(usage, "service_tier") or "")
    if tier:
        fields["service_tier"] = tier
    return fields


def _safe_prefix(kwargs: dict[str, Any], count: PrefixCounter | None) -> dict[str, Any]:
    try:
        return prefix_fields(kwargs.get("system"), kwargs.get("tools"), count)
    except Exception:  # noqa: BLE001 (an unexpected shape: record the call without a prefix, never fail the app)
        return {}


def _finish(stop_reason: Any) -> dict[str, Any]:
    reason = _STOP.get(stop_reason) if isinstance(stop_reason, str) else None
    return {"finish_reason": reason} if reason else {}


def _safe_fields(message: Any) -> dict[str, Any]:
    try:
        return _message_fields(message)
    except Exception:  # noqa: BLE001 (an unexpected shape: record the call without usage, never fail the app)
        return {}


def _message_fields(message: Any) -> dict[str, Any]:
    fields = usage_fields(get(message, "usage"))
    model = get(message, "model")
    if isinstance(model, str):
        fields["response_model"] = model
    fields["tool_calls"] = sum(1 for block in get(message, "content") or [] if get(block, "type") == "tool_use")
    fields.update(_finish(get(message, "stop_reason")))
    request_id = getattr(message, "_request_id", None)
    if isinstance(request_id, str):
        fields["request_id"] = request_id[:128]
    return fields


class _MessageObserver(Observer):
    """Stream events: ``message_start`` has the input usage, ``message_delta`` the running output count."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._usage: dict[str, Any] = {}
        self._fields: dict[str, Any] = {}
        self._tool_calls = 0

    def observe(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self._fields = _message_fields(message)
            self._usage = _plain_usage(get(message, "usage"))
        elif kind == "content_block_start":
            if get(event, "content_block", "type") == "tool_use":
                self._tool_calls += 1
        elif kind == "content_block_delta":
            self.call.first_token()
        elif kind == "message_delta":
            # Counts in message_delta are cumulative; newer APIs repeat the input ones there too.
            self._usage.update({k: v for k, v in _plain_usage(get(event, "usage")).items() if v})
            self._fields.update(_finish(get(event, "delta", "stop_reason")))

    def fields(self) -> dict[str, Any]:
        return {**self._fields, **usage_fields(self._usage), "tool_calls": self._tool_calls}


def _plain_usage(usage: Any) -> dict[str, Any]:
    names = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
    values: dict[str, Any] = {name: as_int(get(usage, name)) for name in names}
    tier = get(usage, "service_tier")
    if isinstance(tier, str):
        values["service_tier"] = tier
    return values
