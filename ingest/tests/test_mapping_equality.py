"""The fast span mapping equals the one before it (``mapping_before``) on varied spans and values.

Hypothesis draws requests of spans whose attributes mix the names the mapping reads (current, older
and vendor ones, ``meterline.<field>``, ``meterline.tags.*``), names it does not, and values of every
``AnyValue`` kind and encoding width; resource attributes too. Each request goes through the real
decoding (protobuf, and OTLP/JSON with hex ids and int64 strings), and each span must map to the same
record (tags as a mapping) or be skipped for the same reason.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.genai_spans import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    ENVIRONMENT,
    FEATURE,
    FINISH_REASONS,
    INPUT_TOKENS,
    MEMBER_FIELDS,
    MODEL,
    OPENLIT_COST,
    OUTPUT_TOKENS,
    PROVIDER,
    REASONING_TOKENS,
    SERVICE_TIER,
    SESSION_ID,
    STREAMED,
    TTFT_SECONDS,
    USER_ID,
    Skipped,
    picked,
)
from ingest.otlp import JSON, PROTOBUF, Decoded, decode_request, mapped_spans
from ingest.span_attributes import any_value, attribute_maps
from ingest.tests import mapping_before

EXAMPLES = settings(max_examples=150, deadline=None, database=None, derandomize=True)
READ = [
    *INPUT_TOKENS, *OUTPUT_TOKENS, *CACHE_READ_TOKENS, *CACHE_WRITE_TOKENS, *REASONING_TOKENS, *PROVIDER, *MODEL,
    *FINISH_REASONS, *SERVICE_TIER, *STREAMED, *TTFT_SECONDS, *USER_ID, *SESSION_ID, *ENVIRONMENT, *FEATURE,
    OPENLIT_COST, "gen_ai.request.max_tokens", "error.type", "gen_ai.operation.name", "traceloop.span.kind",
]  # fmt: skip
MEMBERS = sorted(f"meterline.{name}" for name in MEMBER_FIELDS)
OTHERS = [
    "server.address", "gen_ai.response.id", "meterline.unknown", "meterline.tags", "meterline.tags.",
    "meterline.tags.team", "meterline.tags.a.b", "meterline.tags.ünï", "meterline.tags.x\x00y", "x\x00meterline.tags.y",
    "meterline.event_id", "meterline.timestamp", "meterline.trace_id",
]  # fmt: skip
WORDS = [
    "openai", "OpenAI", "gcp.gemini", "aws.bedrock", "gpt-4o", "claude-sonnet-4", "stop", "end_turn", "length",
    "tool_use", "default", "priority", "flex", "Batch", "chat", "invoke_agent", "workflow", "timeout", "Cancelled",
    "unknown_service:python", "checkout", "user-1", "live", "eval", "0.0012", "",
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.text(min_size=120, max_size=300),  # a length that takes a two-byte varint
    st.integers(0, 127),
    st.integers(128, 2**21),  # two and three varint bytes
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, width=64),
    st.sampled_from([0.0, 1.0, 42.0, 0.35, -3.0, 1e300]),
    st.booleans(),
)
values = st.recursive(
    scalars | st.sampled_from(["<empty>", "<kvlist>", "<bytes>"]),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=6,
)


def any_of(value: Any) -> AnyValue:
    if value == "<empty>":
        return AnyValue()
    if value == "<kvlist>":
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(string_value="v"))]))
    if value == "<bytes>":
        return AnyValue(bytes_value=b"\x00\x01")
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_of(v) for v in value]))
    return AnyValue(string_value=value)


tags = st.dictionaries(st.text("abz.é", max_size=4).map(lambda name: f"meterline.tags.{name}"), values, max_size=4)
CALL = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}
attributes = st.builds(
    lambda call, named, tagged: {**(CALL if call else {}), **named, **tagged},  # half of them model calls
    st.booleans(),
    st.dictionaries(st.sampled_from(READ + MEMBERS + OTHERS), values, max_size=14),
    tags,
)
spans = st.fixed_dictionaries(
    {
        "attributes": attributes,
        "status": st.sampled_from([Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR]),
        "trace_id": st.sampled_from([b"\x01" * 16, bytes(16), b"\x01" * 8, b"\xab" * 16]),
        "start": st.sampled_from([0, 1_764_000_000_123_456_789]),
        "ms": st.sampled_from([0, 1500, -5]),
    }
)
requests = st.lists(st.tuples(attributes, st.lists(spans, min_size=1, max_size=6)), min_size=1, max_size=3)


def build(drawn: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    n = 0
    for resource_attributes, drawn_spans in drawn:
        resource_spans = request.resource_spans.add()
        for key, value in resource_attributes.items():
            resource_spans.resource.attributes.append(KeyValue(key=key, value=any_of(value)))
        scope = resource_spans.scope_spans.add()
        for drawn_span in drawn_spans:
            n += 1
            start = drawn_span["start"]
            scope.spans.append(
                Span(
                    trace_id=drawn_span["trace_id"],
                    span_id=n.to_bytes(8, "big"),
                    start_time_unix_nano=start,
                    end_time_unix_nano=max(0, start + drawn_span["ms"] * 1_000_000),
                    status=Status(code=drawn_span["status"]),
                    attributes=[KeyValue(key=k, value=any_of(v)) for k, v in drawn_span["attributes"].items()],
                )
            )
    return request


CRASHED = Skipped("the mapping before failed on this span")


def before(decoded: Decoded) -> list[dict[str, Any] | Skipped]:
    """What the mapping made of each span before the fast path (its loop in ``ingest.otlp.export``).

    It failed (TypeError: the whole request a 500) on a span whose ``gen_ai.operation.name`` or
    ``traceloop.span.kind`` is an array; such a span is ``CRASHED`` here, and mapped now."""
    out: list[dict[str, Any] | Skipped] = []
    for resource_spans, (resource_attributes, span_attributes) in zip(
        decoded.request.resource_spans, attribute_maps(decoded.wire), strict=True
    ):
        resource = mapping_before.picked(resource_attributes)
        spans = (span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans)
        for span, attrs in zip(spans, span_attributes, strict=True):
            try:
                old = mapping_before.to_record(span, mapping_before.merged(resource, mapping_before.picked(attrs)))
            except TypeError:
                out.append(CRASHED)
                continue
            out.append(Skipped(old.reason, old.ignored) if isinstance(old, mapping_before.Skipped) else old)
    return out


def same(new: list[dict[str, Any] | Skipped], old: list[dict[str, Any] | Skipped]) -> None:
    assert len(new) == len(old)
    assert [a for a, b in zip(new, old, strict=True) if b is not CRASHED] == [b for b in old if b is not CRASHED]
    for a, b in zip(new, old, strict=True):
        if isinstance(a, dict) and isinstance(b, dict):
            # Tags are a mapping (CallRecord.tags, a ClickHouse Map): the same pairs, in any order. The
            # mapping before gave them in its protobuf map's hash order, seeded per process; the
            # compiled reader gives them in wire order.
            assert a.get("tags", {}) == b.get("tags", {})


def as_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as an exporter writes it: hex ids, int64 as strings (the protobuf JSON mapping's)."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


@EXAMPLES
@given(requests)
def test_the_fast_mapping_maps_every_span_as_before(drawn: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    request = build(drawn)
    decoded = decode_request(request.SerializeToString(), PROTOBUF)
    new = [mapped for _, mapped in mapped_spans(decoded)]
    same(new, before(decoded))
    # The OTLP/JSON door decodes to the same request, so to the same records.
    from_json = decode_request(as_json(request), JSON)
    same([mapped for _, mapped in mapped_spans(from_json)], new)


def official(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [official(v) for v in value.array_value.values]
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None


def equal(a: Any, b: Any) -> bool:
    """Values equal, and of the same type (True is not 1 here)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


@EXAMPLES
@given(st.lists(values, min_size=1, max_size=3))
def test_a_value_decodes_as_the_official_message_decodes_it(drawn: list[Any]) -> None:
    # Several serialized values in a row are one message to protobuf (the later fields merge or win):
    # the inline decoding must see that too, and leave such bytes to the official message.
    raw = b"".join(any_of(v).SerializeToString() for v in drawn)
    expected = official(AnyValue.FromString(raw))
    assert equal(any_value(raw), expected)
    assert equal(mapping_before.any_value(raw), expected)


@EXAMPLES
@given(attributes)
def test_picked_alone_needs_no_decoding_cache(drawn: dict[str, Any]) -> None:
    serialized = {key: any_of(value).SerializeToString() for key, value in drawn.items()}
    wanted, members, tags = picked(serialized)
    old_wanted, old_other = mapping_before.picked(serialized)
    assert wanted == old_wanted
    assert members == {key[10:]: v for key, v in old_other.items() if key[10:] in MEMBER_FIELDS}
    old_tags = [(key[15:], str(v)) for key, v in old_other.items() if key.startswith("meterline.tags.")]
    assert list(tags.items()) == old_tags  # in the same order


@st.composite
def keys_and_rows(draw: st.DrawFn) -> tuple[list[str], list[list[Any]]]:
    """Keys, and 2 to 6 rows of values for them: as many as the (first 40) keys, since the spans zip
    keys with rows, and values no key takes were drawn (most of the run's time) for nothing."""
    keys = draw(
        st.lists(st.sampled_from(READ + MEMBERS + OTHERS + ["meterline.tags.a", "meterline.tags.b"]), unique=True)
    )
    width = min(len(keys), 40)
    return keys, draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=2, max_size=6))


@EXAMPLES
@given(keys_and_rows())
def test_spans_with_the_same_keys_and_other_values_map_as_before(drawn: tuple[list[str], list[list[Any]]]) -> None:
    keys, rows = drawn
    # One instrumentation's spans: the same keys in the same order (one Layout for all), other values.
    drawn_spans = [
        {"attributes": {**CALL, **dict(zip(keys, row, strict=False))}, "status": Status.STATUS_CODE_UNSET,
         "trace_id": b"\x01" * 16, "start": 1_764_000_000_123_456_789, "ms": 1500}
        for row in rows
    ]  # fmt: skip
    decoded = decode_request(build([({}, drawn_spans)]).SerializeToString(), PROTOBUF)
    same([mapped for _, mapped in mapped_spans(decoded)], before(decoded))
