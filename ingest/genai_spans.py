"""OpenTelemetry GenAI spans as CallRecords: which span attribute fills which field (docs/otlp.md).

The GenAI semantic conventions' current names come first in every list, the older and vendor names
after them; the first one present wins. A span is a model call when it carries token usage (or it
failed before any usage came back), names a model and is not an aggregate (an agent or workflow
span that sums its children's usage would count every token twice). The mapping only picks
attributes it knows: message content (prompts, answers) is never read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.records import CallRecord
from ingest.span_attributes import any_value

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
# meterline.<field> attribute → the CallRecord field it sets (the attribution names above are read as those).
_MEMBER_KEYS = {f"meterline.{name}": name for name in sorted(MEMBER_FIELDS) if f"meterline.{name}" not in _WANTED}
_MAX_LAYOUTS = 256  # distinct attribute key lists remembered per request
# (wanted attributes by name, meterline.<field> values by field, meterline.tags.* as text by tag): values
Facts = tuple[dict[str, Any], dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class Skipped:
    """A span that is not a model call (``ignored``) or cannot be one (``reason`` says why)."""

    reason: str
    ignored: bool = False


class Layout:
    """What the mapping reads from a span with a given list of attribute keys: the wanted keys, the
    ``meterline.<field>`` keys with their field, the ``meterline.tags.*`` keys with their tag (both in
    the keys' order), and getters that fetch each group's serialized values in one C-level call."""

    __slots__ = ("fields", "member_values", "tags", "wanted", "wanted_values")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.wanted = tuple(_WANTED.intersection(keys))
        members = tuple(key for key in keys if key in _MEMBER_KEYS)
        self.fields = tuple(_MEMBER_KEYS[key] for key in members)
        self.wanted_values = _getter(self.wanted)
        self.member_values = _getter(members)
        self.tags = tuple((key, key[len(TAG_PREFIX) :]) for key in keys if key.startswith(TAG_PREFIX))


def _getter(keys: tuple[str, ...]) -> Callable[[Mapping[str, bytes]], tuple[bytes, ...]]:
    """``mapping → (mapping[key] for key in keys)`` as a tuple, fetched in C (``itemgetter``)."""
    if len(keys) > 1:
        return itemgetter(*keys)
    if keys:
        key = keys[0]
        return lambda mapping: (mapping[key],)
    return lambda mapping: ()


class Values(dict[bytes, Any]):
    """One request's decoding caches. Serialized ``AnyValue`` → its Python value, decoded once: the
    spans of one request repeat most values (provider, model, feature, tier, small counts), so each
    is decoded the first time only (``any_value`` is a pure function of the bytes, so this changes no
    value). And a span's attribute keys → their ``Layout``, worked out once: the spans of one
    instrumentation carry the same keys."""

    def __init__(self) -> None:
        super().__init__()
        self.layouts: dict[tuple[str, ...], Layout] = {}

    def __missing__(self, raw: bytes) -> Any:
        value = self[raw] = any_value(raw)
        return value

    def layout(self, keys: tuple[str, ...]) -> Layout:
        layout = self.layouts.get(keys)
        if layout is None:
            if len(self.layouts) >= _MAX_LAYOUTS:  # a producer whose every span differs: bounded memory
                self.layouts.clear()
            layout = self.layouts[keys] = Layout(keys)
        return layout


def picked(attributes: Mapping[str, bytes], values: Values | None = None) -> Facts:
    """The attributes the mapping reads, as Python values, from a key → serialized ``AnyValue`` map
    (``ingest.span_attributes``): the GenAI and common ones, the ``meterline.<field>`` ones (by field)
    and the ``meterline.tags.*`` ones (as text, by tag). ``values`` holds the request's caches.

    This runs for every attribute of every span: the keys' ``Layout`` looked up (one per distinct key
    list), the values fetched by key (in C) and looked up in ``values`` (a C-level dict hit for all but
    the first span that carries one), no step per key the mapping does not read."""
    if values is None:
        values = Values()
    # Keys only first (a protobuf map makes a Python object per entry it hands out).
    layout = values.layout(tuple(attributes))
    decoded = values.__getitem__
    wanted = dict(zip(layout.wanted, map(decoded, layout.wanted_values(attributes)), strict=True))
    members = dict(zip(layout.fields, map(decoded, layout.member_values(attributes)), strict=True))
    tags = {name: str(values[attributes[key]]) for key, name in layout.tags} if layout.tags else {}
    return wanted, members, tags


def merged(resource: Facts, span: Facts) -> Facts:
    """A span's attributes over its resource's (``picked`` of each)."""
    resource_wanted, resource_members, resource_tags = resource
    if not resource_wanted and not resource_members and not resource_tags:
        return span
    wanted, members, tags = span
    return (
        {**resource_wanted, **wanted} if resource_wanted else wanted,
        {**resource_members, **members} if resource_members else members,
        {**resource_tags, **tags} if resource_tags else tags,
    )


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT]


def to_record(span: Span, facts: Facts) -> dict[str, Any] | Skipped:
    """The CallRecord (as JSON-shaped fields) of one span, given its ``merged`` facts."""
    attrs, members, span_tags = facts
    if not _FALLBACKS.isdisjoint(attrs):
        attrs = _normalized(attrs)
    get = attrs.get
    error_type = get("error.type")
    failed = error_type is not None or span.status.code == Status.STATUS_CODE_ERROR
    inputs, outputs = get(INPUT_TOKENS[0]), get(OUTPUT_TOKENS[0])
    has_usage = inputs is not None or outputs is not None or "input_tokens" in members or "output_tokens" in members
    operation = get("gen_ai.operation.name")
    kind = get("traceloop.span.kind")
    # (an array where a name belongs is no name: it used to fail the whole request here)
    if (type(operation) is str and operation in AGGREGATE_OPERATIONS) or (
        type(kind) is str and kind in AGGREGATE_KINDS
    ):
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
    if members:
        record.update(members)
    if (cost := get(OPENLIT_COST)) is not None:
        record["tags"] = {OPENLIT_COST: str(cost), **span_tags}
    elif span_tags:
        record["tags"] = span_tags
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
