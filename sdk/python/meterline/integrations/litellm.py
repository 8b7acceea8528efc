"""A LiteLLM custom callback (the ``CustomLogger`` interface).

    import litellm
    from meterline.integrations.litellm import MeterlineCallback
    litellm.callbacks = [MeterlineCallback()]

LiteLLM reports usage in OpenAI's shape, plus Anthropic's cache fields for Anthropic models; how
that becomes the record's token fields (``input_tokens`` being the TOTAL input) is in
:func:`usage_fields`. Attribution comes from ``metadata={"meterline": {...}}`` on the
call, over the ``attribute()`` defaults (async callbacks run in the caller's context; LiteLLM runs
sync callbacks on its own threads, where only the metadata is seen). The cost LiteLLM computed is
not sent: Meterline prices the tokens from its own catalogue.

``finish_reason`` is the first choice's (LiteLLM answers in OpenAI's vocabulary; Anthropic's
``stop_reason`` values are mapped too), ``error`` for a failed call. The prompt prefix
(:mod:`meterline.integrations.prefix`) is the leading system messages and the ``tools``; its size is
estimated unless ``count_prefix_tokens`` is given or the metadata carries ``prompt_prefix_tokens``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from meterline.fields import FIELD_NAMES
from meterline.integrations._call import Recorder, as_int, default_recorder, get
from meterline.integrations.prefix import PrefixCounter, fit, leading_system, prefix_fields

log = logging.getLogger("meterline")

_Base: type
try:  # subclass the real base when LiteLLM is installed, so isinstance checks in LiteLLM pass
    from litellm.integrations.custom_logger import CustomLogger

    _Base = CustomLogger
except ImportError:  # pragma: no cover - depends on what is installed
    _Base = object

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
           "content_filter": "content_filter", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "refusal": "content_filter"}  # fmt: skip


class MeterlineCallback(_Base):
    """Records each LiteLLM completion (success or failure) as a CallRecord."""

    def __init__(self, recorder: Recorder | None = None, count_prefix_tokens: PrefixCounter | None = None) -> None:
        if _Base is not object:
            super().__init__()
        self._record = recorder
        self._count = count_prefix_tokens

    # The four entry points of LiteLLM's CustomLogger that this callback needs.
    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=True)

    def _handle(self, kwargs: dict[str, Any], response: Any, start: Any, end: Any, failed: bool) -> None:
        try:
            fields = record_fields(kwargs, response, start, end, failed, self._count)
            (self._record or default_recorder())(**fields)
        except Exception as exc:  # noqa: BLE001 (a callback must never break LiteLLM's call)
            log.warning("meterline: could not record a LiteLLM call (%s)", type(exc).__name__)


def record_fields(
    kwargs: dict[str, Any], response: Any, start: Any, end: Any, failed: bool, count: PrefixCounter | None = None
) -> dict[str, Any]:
    """The CallRecord fields of one LiteLLM call."""
    params = kwargs.get("litellm_params") or {}
    standard = kwargs.get("standard_logging_object") or {}
    model = kwargs.get("model") or standard.get("model") or "unknown"
    provider = (
        kwargs.get("custom_llm_provider")
        or params.get("custom_llm_provider")
        or standard.get("custom_llm_provider")
        or (model.split("/", 1)[0] if "/" in model else "unknown")
    )
    if isinstance(model, str) and model.startswith(f"{provider}/"):
        model = model[len(provider) + 1 :]
    fields: dict[str, Any] = {"provider": provider, "model": model, "streamed": bool(kwargs.get("stream"))}
    latency = _millis(start, end)
    fields["latency_ms"] = latency
    first = kwargs.get("completion_start_time")
    if fields["streamed"] and first is not None and latency is not None:
        ttft = _millis(start, first)
        fields["ttft_ms"] = min(ttft, latency) if ttft is not None else None
    if failed:
        exception = kwargs.get("exception")
        fields["status"] = "timeout" if "Timeout" in type(exception).__name__ else "error"
        fields["error_type"] = type(exception).__name__ if exception is not None else "error"
        if fields["status"] == "error":
            fields["finish_reason"] = "error"
    else:
        fields["status"] = "ok"
        fields.update(usage_fields(get(response, "usage"), provider))
        response_model = get(response, "model")
        if isinstance(response_model, str):
            fields["response_model"] = response_model[:200]
        request_id = get(response, "id")
        if isinstance(request_id, str):
            fields["request_id"] = request_id[:128]
        choices = get(response, "choices")
        if isinstance(choices, list) and choices:
            fields["finish_reason"] = _FINISH.get(get(choices[0], "finish_reason") or "")
    if kwargs.get("cache_hit") or standard.get("cache_hit"):
        fields["cache_hit"] = True  # LiteLLM's own cache answered: no provider cost
    metadata = params.get("metadata") or kwargs.get("metadata") or {}
    extra = metadata.get("meterline") if isinstance(metadata, dict) else None
    tools = kwargs.get("tools") or (kwargs.get("optional_params") or {}).get("tools")
    fields.update(prefix_fields(leading_system(kwargs.get("messages")), tools, count))
    if isinstance(extra, dict):
        fields.update({k: v for k, v in extra.items() if k in FIELD_NAMES})
        if "prompt_prefix_tokens" in extra and "prompt_prefix_tokens_estimated" not in extra:
            fields["prompt_prefix_tokens_estimated"] = False  # the app's own count
    return fit({k: v for k, v in fields.items() if v is not None})


def usage_fields(usage: Any, provider: str = "") -> dict[str, Any]:
    """LiteLLM usage → CallRecord token fields; the record's ``input_tokens`` is the TOTAL input.

    Two shapes, told apart explicitly:

    - OpenAI-style (OpenAI, Azure, Gemini, DeepSeek, …): ``prompt_tokens`` is the total and
      includes the cache reads, which are ``prompt_tokens_details.cached_tokens``. The record's
      input is ``prompt_tokens``.
    - Anthropic-style (the provider is ``anthropic``, or the usage carries Anthropic's
      ``cache_creation_input_tokens`` / ``cache_read_input_tokens``, as LiteLLM adds for Claude on
      Anthropic, Bedrock and Vertex): the record's input is ``uncached + cache_read + cache_write``.
      The uncached part is ``prompt_tokens_details.text_tokens`` when LiteLLM gives it (releases
      that fold the cache writes into ``prompt_tokens`` do); otherwise ``prompt_tokens`` minus the
      reads, LiteLLM's documented shape being ``prompt_tokens`` = cache misses + cache hits, the
      writes apart (``prompt_tokens`` below the reads means it holds the misses alone). A LiteLLM
      release that folded the writes into ``prompt_tokens`` without ``text_tokens`` is counted
      ``cache_write`` too high; there the numbers cannot tell the two apart.
    - Anthropic's own usage (``input_tokens`` and no ``prompt_tokens``, as from
      ``litellm.anthropic.messages``): ``input_tokens + cache_read + cache_write``; without the
      Anthropic fields that shape is OpenAI Responses', whose ``input_tokens`` is the total.
    """
    if usage is None:
        return {}
    details = get(usage, "prompt_tokens_details")
    cache_read = as_int(get(details, "cached_tokens")) or as_int(get(usage, "cache_read_input_tokens"))
    cache_write = as_int(get(usage, "cache_creation_input_tokens")) or as_int(get(details, "cache_creation_tokens"))
    prompt = get(usage, "prompt_tokens")
    output = get(usage, "completion_tokens")
    anthropic = (
        provider == "anthropic" or _has(usage, "cache_creation_input_tokens") or _has(usage, "cache_read_input_tokens")
    )
    if prompt is None and get(usage, "input_tokens") is not None:  # Messages or Responses shape
        output = get(usage, "output_tokens")
        if anthropic:  # Anthropic's own: input_tokens excludes the cache
            total_in = as_int(get(usage, "input_tokens")) + cache_read + cache_write
        else:  # OpenAI Responses: input_tokens is the total, reads inside
            total_in = as_int(get(usage, "input_tokens"))
            cache_read = as_int(get(usage, "input_tokens_details", "cached_tokens"))
    elif anthropic:
        prompt_total = as_int(prompt)
        text = get(details, "text_tokens")
        if isinstance(text, int) and not isinstance(text, bool) and 0 <= text and text + cache_read <= prompt_total:
            uncached = text
        elif prompt_total >= cache_read:
            uncached = prompt_total - cache_read
        else:
            uncached = prompt_total
        total_in = uncached + cache_read + cache_write
    else:
        total_in = as_int(prompt)
    return {
        "input_tokens": total_in,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": as_int(output),
        "reasoning_tokens": as_int(get(usage, "completion_tokens_details", "reasoning_tokens")),
    }


def _has(usage: Any, name: str) -> bool:
    return get(usage, name) is not None


def _millis(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, round((end - start).total_seconds() * 1000, 3))
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(0.0, round((end - start) * 1000, 3))
    return None
