"""OpenTelemetry GenAI spans as CallRecords: which span attribute fills which field (docs/otlp.md).

The GenAI semantic conventions' current names come first in every list, the older and vendor names
after them; the first one present wins. A span is a model call when it carries token usage (or it
failed before any usage came back), names a model and is not an aggregate (an agent or workflow
span that sums its children's usage would count every token twice). The mapping only picks
attributes it knows: message content (prompts, answers) is never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.records import CallRecord

INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry
    "gen_ai.usage.prompt_tokens_details.cached_tokens",  # OpenLIT
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",  # opentelemetry-util-genai
    "gen_ai.usage.cache_creation_input_tokens",  # OpenLLMetry
    "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",  # OpenLIT
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry, OpenLIT
    "llm.usage.reasoning_tokens",  # OpenLLMetry
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",  # OpenLIT
)
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
MODEL = ("gen_ai.request.model", "gen_ai.response.model")
FINISH_REASONS = ("gen_ai.response.finish_reasons", "llm.response.finish_reason", "llm.response.stop_reason")
SERVICE_TIER = ("openai.response.service_tier", "gen_ai.openai.response.service_tier")
STREAMED = ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming")
TTFT_SECONDS = ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token")  # OpenLIT: the latter
USER_ID = ("meterline.user_id", "user.id")
SESSION_ID = ("meterline.session_id", "session.id", "gen_ai.conversation.id")
ENVIRONMENT = ("meterline.environment", "deployment.environment.name", "deployment.environment")
FEATURE = ("meterline.feature", "service.name")
OPENLIT_COST = "gen_ai.usage.cost"  # OpenLIT's own estimate: kept as a tag, never the price (docs/otlp.md)
_USAGE = (*INPUT_TOKENS, *OUTPUT_TOKENS, "meterline.input_tokens", "meterline.output_tokens")
# Spans that sum their children's usage (agents, workflows) or carry none of their own (tools).
AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow", "execute_tool"})
AGGREGATE_KINDS = frozenset({"workflow", "agent", "task", "tool"})  # OpenLLMetry's traceloop.span.kind
# Semantic-convention provider names → the names Meterline (and its price catalogue) uses.
PROVIDER_ALIASES = {
    "gcp.gemini": "google", "gcp.vertex_ai": "google", "gcp.gen_ai": "google", "aws.bedrock": "aws",
    "azure.ai.openai": "azure", "azure.ai.inference": "azure", "mistral_ai": "mistral", "x_ai": "x-ai",
    "ibm.watsonx.ai": "ibm",
}  # fmt: skip
FINISH_REASON_ALIASES = {
    "stop": "stop", "end_turn": "stop", "stop_sequence": "stop", "completed": "stop", "pause_turn": "stop",
    "length": "length", "max_tokens": "length", "max_output_tokens": "length", "model_length": "length",
    "tool_calls": "tool_calls", "tool_call": "tool_calls", "tool_use": "tool_calls", "function_call": "tool_calls",
    "content_filter": "content_filter", "safety": "content_filter", "recitation": "content_filter",
    "refusal": "content_filter", "blocklist": "content_filter", "prohibited_content": "content_filter",
    "spii": "content_filter", "error": "error",
}  # fmt: skip
TIER_ALIASES = {"default": "default", "auto": "default", "standard": "default", "scale": "priority",
                "priority": "priority", "flex": "flex", "batch": "batch"}  # fmt: skip
# meterline.<field> sets that CallRecord field; the span's own identity and start stay the span's.
MEMBER_FIELDS = frozenset(f.name for f in msgspec.structs.fields(CallRecord)) - {"event_id", "timestamp", "tags"}
TAG_PREFIX = "meterline.tags."
_WANTED = frozenset(
    {
        *INPUT_TOKENS, *OUTPUT_TOKENS, *CACHE_READ_TOKENS, *CACHE_WRITE_TOKENS, *REASONING_TOKENS, *PROVIDER, *MODEL,
        *FINISH_REASONS, *SERVICE_TIER, *STREAMED, *TTFT_SECONDS, *USER_ID, *SESSION_ID, *ENVIRONMENT, *FEATURE,
        OPENLIT_COST, "gen_ai.response.model", "gen_ai.request.max_tokens", "gen_ai.operation.name", "error.type",
        "traceloop.span.kind",
    }
)  # fmt: skip
MAX_TEXT = 200
TOKEN_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", INPUT_TOKENS),
    ("output_tokens", OUTPUT_TOKENS),
    ("cache_read_tokens", CACHE_READ_TOKENS),
    ("cache_write_tokens", CACHE_WRITE_TOKENS),
    ("reasoning_tokens", REASONING_TOKENS),
)
ATTRIBUTION_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("user_id", USER_ID),
    ("session_id", SESSION_ID),
    ("environment", ENVIRONMENT),
)


@dataclass(frozen=True)
class Skipped:
    """A span that is not a model call (``ignored``) or cannot be one (``reason`` says why)."""

    reason: str
    ignored: bool = False


def picked(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """The attributes the mapping reads (GenAI, ``meterline.*`` and the common ones), as Python values."""
    found: dict[str, Any] = {}
    for kv in attributes:
        key = kv.key
        if key in _WANTED or key.startswith("meterline."):
            found[key] = _value(kv.value)
    return found


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return None  # kvlist and bytes values carry nothing a CallRecord holds


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            return value
    return None


def _tokens(value: Any) -> Any:
    # An integral double (some exporters send numbers that way) is a count; anything else goes to
    # validation as it came, which names the field.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT]


def to_record(span: Span, attrs: dict[str, Any]) -> dict[str, Any] | Skipped:
    """The CallRecord (as JSON-shaped fields) of one span, given its picked span-over-resource attributes."""
    status_code = span.status.code
    error_type = attrs.get("error.type")
    failed = status_code == Status.STATUS_CODE_ERROR or error_type is not None
    has_usage = any(name in attrs for name in _USAGE)
    operation = attrs.get("gen_ai.operation.name")
    if operation in AGGREGATE_OPERATIONS or attrs.get("traceloop.span.kind") in AGGREGATE_KINDS:
        return Skipped(f"a {operation or attrs.get('traceloop.span.kind')} span sums its children", ignored=True)
    provider = _first(attrs, PROVIDER)
    model = _first(attrs, MODEL)
    if not has_usage and not (failed and provider is not None and model is not None):
        return Skipped("no GenAI usage", ignored=True)
    if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id) or not any(span.span_id):
        return Skipped("trace_id must be 16 bytes and span_id 8 bytes, not all zero")
    if provider is None:
        return Skipped("no gen_ai.provider.name (or gen_ai.system)")
    if model is None:
        return Skipped("no gen_ai.request.model (or gen_ai.response.model)")
    if not span.start_time_unix_nano:
        return Skipped("no start_time_unix_nano")
    trace_id = span.trace_id.hex()
    provider = str(provider).lower()
    record: dict[str, Any] = {
        "event_id": trace_id + span.span_id.hex(),
        "timestamp": span.start_time_unix_nano // 1_000_000,
        "provider": PROVIDER_ALIASES.get(provider, provider),
        "model": model,
        "trace_id": trace_id,
    }
    if span.end_time_unix_nano >= span.start_time_unix_nano:
        record["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    for field, names in TOKEN_FIELDS:
        value = _first(attrs, names)
        if value is not None:
            record[field] = _tokens(value)
    if (response_model := attrs.get("gen_ai.response.model")) is not None:
        record["response_model"] = response_model
    if (max_tokens := attrs.get("gen_ai.request.max_tokens")) is not None and max_tokens != 0:
        record["max_tokens"] = _tokens(max_tokens)
    if (ttft := _first(attrs, TTFT_SECONDS)) is not None and isinstance(ttft, int | float):
        record["ttft_ms"] = ttft * 1000
        if "latency_ms" in record:  # both clocks are the producer's; rounding may put ttft a hair past the end
            record["ttft_ms"] = min(record["ttft_ms"], record["latency_ms"])
    if (streamed := _first(attrs, STREAMED)) is not None:
        record["streamed"] = bool(streamed)
    elif "ttft_ms" in record and "gen_ai.response.time_to_first_chunk" in attrs:
        record["streamed"] = True  # the conventions set time_to_first_chunk on streams only
    if (reason := _finish_reason(_first(attrs, FINISH_REASONS))) is not None:
        record["finish_reason"] = reason
    if (tier := _first(attrs, SERVICE_TIER)) is not None:
        record["service_tier"] = TIER_ALIASES.get(str(tier).lower(), "default")
    if failed:
        kind = _text(error_type if error_type is not None else "error")
        lowered = kind.lower()
        record["status"] = "timeout" if "timeout" in lowered else "cancelled" if "cancel" in lowered else "error"
        record["error_type"] = kind
    for field, names in ATTRIBUTION_FIELDS:
        value = _first(attrs, names)
        if value is not None:
            record[field] = _text(value)
    feature = _first(attrs, FEATURE)
    if feature is not None and not str(feature).startswith("unknown_service"):  # the SDK's "not configured"
        record["feature"] = _text(feature)
    tags: dict[str, str] = {}
    if (cost := attrs.get(OPENLIT_COST)) is not None:
        tags[OPENLIT_COST] = str(cost)
    for key, value in attrs.items():
        if not key.startswith("meterline."):
            continue
        if key.startswith(TAG_PREFIX):
            tags[key[len(TAG_PREFIX) :]] = str(value)
        elif (name := key[len("meterline.") :]) in MEMBER_FIELDS:
            record[name] = value
    if tags:
        record["tags"] = tags
    return record


def _finish_reason(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return FINISH_REASON_ALIASES.get(str(value).lower())
