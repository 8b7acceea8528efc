"""The GenAI span mapping as it was before the fast path (commit 122148c), kept as the reference the
fast ``ingest.genai_spans`` / ``ingest.span_attributes`` must equal (``test_mapping_equality``).

Frozen: do not edit it to match a change of the mapping; a deliberate change of behaviour updates
the test instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.records import CallRecord

_double = struct.Struct("<d").unpack_from


def any_value(raw: bytes) -> Any:
    """The Python value of a serialized ``AnyValue`` (None for an empty one, a kvlist or bytes)."""
    size = len(raw)
    if size >= 2:
        tag = raw[0]
        # The common shapes first: a short string, a small integer (one-byte lengths and varints).
        if tag == 0x0A and raw[1] == size - 2:
            return raw[2:].decode("utf-8", "replace")
        if tag == 0x18 and size == 2:
            return raw[1] if raw[1] < 0x80 else _official_value(raw)
        if tag == 0x0A:  # string_value, length-delimited
            size, at = _varint(raw, 1)
            if at + size == len(raw):
                return raw[at:].decode("utf-8", "replace")
        elif tag == 0x18 or tag == 0x10:  # int_value, bool_value: varints
            number, at = _varint(raw, 1)
            if at == len(raw):
                if tag == 0x10:
                    return number != 0
                return number - (1 << 64) if number >= 1 << 63 else number
        elif tag == 0x21 and len(raw) == 9:  # double_value, fixed 64
            return _double(raw, 1)[0]
    return _official_value(raw)


def _official_value(raw: bytes) -> Any:
    value = AnyValue()  # arrays, odd encodings: the official message
    value.ParseFromString(raw)
    return _official(value)


def _official(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_official(v) for v in value.array_value.values]
    if kind in ("string_value", "int_value", "double_value", "bool_value"):
        return getattr(value, kind)
    return None  # kvlist and bytes values carry nothing a CallRecord holds


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    number = shift = 0
    while at < len(raw):
        byte = raw[at]
        at += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, at
        shift += 7
    return -1, len(raw) + 1  # truncated: the callers' length checks fail, and the official parse decides


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
_OWN = {"event_id", "timestamp", "trace_id", "tags"}
MEMBER_FIELDS = frozenset(f.name for f in msgspec.structs.fields(CallRecord)) - _OWN
TAG_PREFIX = "meterline.tags."
MAX_TEXT = 200
_FIELDS_NAMED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", INPUT_TOKENS), ("output_tokens", OUTPUT_TOKENS), ("cache_read_tokens", CACHE_READ_TOKENS),
    ("cache_write_tokens", CACHE_WRITE_TOKENS), ("reasoning_tokens", REASONING_TOKENS), ("provider", PROVIDER),
    ("model", MODEL), ("finish", FINISH_REASONS), ("tier", SERVICE_TIER), ("streamed", STREAMED),
    ("ttft", TTFT_SECONDS), ("user_id", USER_ID), ("session_id", SESSION_ID), ("environment", ENVIRONMENT),
    ("feature", FEATURE),
)  # fmt: skip
_WANTED = frozenset(
    {name for _, names in _FIELDS_NAMED for name in names}
    | {"gen_ai.request.max_tokens", "error.type", "gen_ai.operation.name", "traceloop.span.kind", OPENLIT_COST}
)
# Names after the first of their field: looked at only when a span carries one of them.
# (Attribution names are not among them: every span carries service.name, say; they are read below.)
_NORMALIZED = _FIELDS_NAMED[:11]
_FALLBACKS = frozenset(name for _, names in _NORMALIZED for name in names[1:])
_TOKEN_FIELDS = tuple((field, names[0]) for field, names in _FIELDS_NAMED[:5])
_ATTRIBUTION_FIELDS = (
    ("user_id", USER_ID),
    ("session_id", SESSION_ID),
    ("environment", ENVIRONMENT),
    ("feature", FEATURE),
)
_METERLINE_USAGE = frozenset({"meterline.input_tokens", "meterline.output_tokens"})
Facts = tuple[dict[str, Any], dict[str, Any]]  # (wanted attributes, other meterline.* attributes): values


@dataclass(frozen=True)
class Skipped:
    """A span that is not a model call (``ignored``) or cannot be one (``reason`` says why)."""

    reason: str
    ignored: bool = False


def picked(attributes: Mapping[str, bytes]) -> Facts:
    """The attributes the mapping reads, as Python values, from a key → serialized ``AnyValue`` map
    (``ingest.span_attributes``): the GenAI and common ones, and the other ``meterline.*`` ones.

    This runs for every attribute of every span: comprehensions, the common value shapes inline."""
    # Keys only first (a protobuf map makes a Python object per entry it hands out): the values
    # the mapping reads are fetched by key, in C, and decoded here.
    keys = list(attributes)
    # A short string (tag 0x0A, one-byte length), the commonest value, is decoded inline.
    wanted = {
        key: raw[2:].decode("utf-8", "replace") if len(raw) > 1 and raw[0] == 0x0A and raw[1] == len(raw) - 2
        else any_value(raw)
        for key in _WANTED.intersection(keys) for raw in (attributes[key],)
    }  # fmt: skip
    other = {
        key: raw[2:].decode("utf-8", "replace") if len(raw) > 1 and raw[0] == 0x0A and raw[1] == len(raw) - 2
        else any_value(raw)
        for key in keys if key[:10] == "meterline." and key not in _WANTED for raw in (attributes[key],)
    }  # fmt: skip
    return wanted, other


def merged(resource: Facts, span: Facts) -> Facts:
    """A span's attributes over its resource's (``picked`` of each)."""
    if not resource[0] and not resource[1]:
        return span
    return {**resource[0], **span[0]}, {**resource[1], **span[1]}


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT]


def to_record(span: Span, facts: Facts) -> dict[str, Any] | Skipped:
    """The CallRecord (as JSON-shaped fields) of one span, given its ``merged`` facts."""
    attrs, other = facts
    if not _FALLBACKS.isdisjoint(attrs):
        attrs = _normalized(attrs)
    get = attrs.get
    error_type = attrs.get("error.type")
    failed = error_type is not None or span.status.code == Status.STATUS_CODE_ERROR
    inputs, outputs = get(INPUT_TOKENS[0]), get(OUTPUT_TOKENS[0])
    has_usage = inputs is not None or outputs is not None or not _METERLINE_USAGE.isdisjoint(other)
    operation = attrs.get("gen_ai.operation.name")
    kind = attrs.get("traceloop.span.kind")
    if operation in AGGREGATE_OPERATIONS or kind in AGGREGATE_KINDS:
        return Skipped(f"a {operation or kind} span sums its children", ignored=True)
    provider = get(PROVIDER[0])
    model = get(MODEL[0])
    if not has_usage and not (failed and provider is not None and model is not None):
        return Skipped("no GenAI usage", ignored=True)
    trace, span_id = span.trace_id, span.span_id
    if len(trace) != 16 or len(span_id) != 8 or not any(trace) or not any(span_id):
        return Skipped("trace_id must be 16 bytes and span_id 8 bytes, not all zero")
    if provider is None:
        return Skipped("no gen_ai.provider.name (or gen_ai.system)")
    if model is None:
        return Skipped("no gen_ai.request.model (or gen_ai.response.model)")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not start:
        return Skipped("no start_time_unix_nano")
    trace_id = trace.hex()
    provider = str(provider).lower()
    record: dict[str, Any] = {
        "event_id": trace_id + span_id.hex(),
        "timestamp": start // 1_000_000,
        "provider": PROVIDER_ALIASES.get(provider, provider),
        "model": model,
        "trace_id": trace_id,
    }
    latency = (end - start) / 1e6 if end >= start else None
    if latency is not None:
        record["latency_ms"] = latency
    for field, name in _TOKEN_FIELDS:
        value = get(name)
        if value is not None:
            # An integral double (some exporters send numbers that way) is a count; anything else goes
            # to validation as it came, which names the field.
            record[field] = int(value) if type(value) is float and value.is_integer() else value
    if (response_model := attrs.get("gen_ai.response.model")) is not None:
        record["response_model"] = response_model
    if (max_tokens := attrs.get("gen_ai.request.max_tokens")) is not None and max_tokens != 0:
        record["max_tokens"] = int(max_tokens) if type(max_tokens) is float and max_tokens.is_integer() else max_tokens
    ttft = get(TTFT_SECONDS[0])
    if isinstance(ttft, int | float) and not isinstance(ttft, bool):
        # both clocks are the producer's; rounding may put ttft a hair past the end
        record["ttft_ms"] = ttft * 1000 if latency is None else min(ttft * 1000, latency)
    if (streamed := get(STREAMED[0])) is not None:
        record["streamed"] = bool(streamed)
    elif "ttft_ms" in record and "gen_ai.response.time_to_first_chunk" in attrs:
        record["streamed"] = True  # the conventions set time_to_first_chunk on streams only
    if (reason := _finish_reason(get(FINISH_REASONS[0]))) is not None:
        record["finish_reason"] = reason
    if (tier := get(SERVICE_TIER[0])) is not None:
        record["service_tier"] = TIER_ALIASES.get(str(tier).lower(), "default")
    if failed:
        error = _text(error_type if error_type is not None else "error")
        lowered = error.lower()
        record["status"] = "timeout" if "timeout" in lowered else "cancelled" if "cancel" in lowered else "error"
        record["error_type"] = error
    for field, names in _ATTRIBUTION_FIELDS:
        for name in names:
            value = get(name)
            if value is not None:
                # service.name is only the default feature, and the SDK's "unknown_service" none at all
                if field != "feature" or name != "service.name" or not str(value).startswith("unknown_service"):
                    record[field] = _text(value)
                break
    tags: dict[str, str] = {}
    if (cost := attrs.get(OPENLIT_COST)) is not None:
        tags[OPENLIT_COST] = str(cost)
    for key, value in other.items():
        if (name := key[10:]) in MEMBER_FIELDS:
            record[name] = value
        elif key.startswith(TAG_PREFIX):
            tags[key[len(TAG_PREFIX) :]] = str(value)
    if tags:
        record["tags"] = tags
    return record


def _normalized(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with each field's value under its first name, taken from the first of its names present
    (a span that carries an older or vendor name)."""
    normal = dict(attrs)
    for _, names in _NORMALIZED:
        if normal.get(names[0]) is None:
            normal[names[0]] = next((v for name in names[1:] if (v := attrs.get(name)) is not None), None)
    return normal


def _finish_reason(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return FINISH_REASON_ALIASES.get(str(value).lower())
