"""A LiteLLM custom callback (the ``CustomLogger`` interface).

    import litellm
    from meterline.integrations.litellm import MeterlineCallback
    litellm.callbacks = [MeterlineCallback()]

LiteLLM reports usage in OpenAI's shape, with the prompt total including cached tokens and the
cache parts in ``prompt_tokens_details.cached_tokens`` / ``cache_read_input_tokens`` and
``cache_creation_input_tokens``. Attribution comes from ``metadata={"meterline": {...}}`` on the
call, over the ``attribute()`` defaults (async callbacks run in the caller's context; LiteLLM runs
sync callbacks on its own threads, where only the metadata is seen). The cost LiteLLM computed is
not sent: Meterline prices the tokens from its own catalogue.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from meterline.fields import FIELD_NAMES
from meterline.integrations._call import Recorder, as_int, default_recorder, get

log = logging.getLogger("meterline")

try:  # subclass the real base when LiteLLM is installed, so isinstance checks in LiteLLM pass
    from litellm.integrations.custom_logger import CustomLogger as _Base  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on what is installed
    _Base = object


class MeterlineCallback(_Base):  # type: ignore[misc,valid-type]
    """Records each LiteLLM completion (success or failure) as a CallRecord."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        if _Base is not object:
            super().__init__()
        self._record = recorder

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
            fields = record_fields(kwargs, response, start, end, failed)
            (self._record or default_recorder())(**fields)
        except Exception as exc:  # a callback must never break LiteLLM's call
            log.warning("meterline: could not record a LiteLLM call (%s)", type(exc).__name__)


def record_fields(kwargs: dict[str, Any], response: Any, start: Any, end: Any, failed: bool) -> dict[str, Any]:
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
    else:
        fields["status"] = "ok"
        fields.update(_usage(get(response, "usage")))
        response_model = get(response, "model")
        if isinstance(response_model, str):
            fields["response_model"] = response_model[:200]
        request_id = get(response, "id")
        if isinstance(request_id, str):
            fields["request_id"] = request_id[:128]
    if kwargs.get("cache_hit") or standard.get("cache_hit"):
        fields["cache_hit"] = True  # LiteLLM's own cache answered: no provider cost
    metadata = params.get("metadata") or kwargs.get("metadata") or {}
    extra = metadata.get("meterline") if isinstance(metadata, dict) else None
    if isinstance(extra, dict):
        fields.update({k: v for k, v in extra.items() if k in FIELD_NAMES})
    return {k: v for k, v in fields.items() if v is not None}


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    total_in = as_int(get(usage, "prompt_tokens"))
    cache_read = as_int(get(usage, "prompt_tokens_details", "cached_tokens")) or as_int(
        get(usage, "cache_read_input_tokens")
    )
    cache_write = as_int(get(usage, "cache_creation_input_tokens"))
    return {
        # LiteLLM's prompt total already includes cache parts; never let them exceed it.
        "input_tokens": max(total_in, cache_read + cache_write),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": as_int(get(usage, "completion_tokens")),
        "reasoning_tokens": as_int(get(usage, "completion_tokens_details", "reasoning_tokens")),
    }


def _millis(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, round((end - start).total_seconds() * 1000, 3))
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(0.0, round((end - start) * 1000, 3))
    return None
