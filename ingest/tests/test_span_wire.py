"""The compiled span path (``ingest.span_wire`` over ``meterline_spanwire``) equals the pure-Python one.

Hypothesis draws requests as ``test_mapping_equality`` does (span and resource attributes that mix the
names the mapping reads with others, values of every ``AnyValue`` kind and encoding width); each span
must map to the same record, with values of the same types, or be skipped for the same reason. The
order of the ``meterline.<field>`` members and of the tags is the one thing that may differ (the
pure-Python path gives them in its protobuf map's hash order, which is seeded per process). Requests
encoded in ways the reader leaves to protobuf must come back None from it, and map as before.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from ingest import span_wire
from ingest.genai_spans import Skipped
from ingest.otlp import JSON, PROTOBUF, Decoded, decode_request, mapped_spans, planned_spans
from ingest.span_attributes import AttributesRequest, any_value
from ingest.tests.test_mapping_equality import (
    CALL,
    EXAMPLES,
    any_of,
    as_json,
    build,
    equal,
    requests,
    values,
)
from ingest.tests.test_span_plans import keys_and_rows

pytestmark = pytest.mark.skipif(span_wire.READER is None, reason="meterline_spanwire is not built: run make install")


def compiled(decoded: Decoded) -> list[Any]:
    mapped = span_wire.wire_records(decoded.wire)
    assert mapped is not None, "the reader left a request made by the official messages to protobuf"
    return list(mapped)


def same(new: list[Any], old: list[Any]) -> None:
    """The same spans (ids), each the same record (values of the same types) or skipped alike."""
    assert [ids for ids, _ in new] == [ids for ids, _ in old]
    for (_, a), (_, b) in zip(new, old, strict=True):
        if isinstance(b, Skipped):
            assert a == b
            continue
        assert isinstance(a, dict)
        assert a == b
        assert {name: type(value) for name, value in a.items()} == {name: type(value) for name, value in b.items()}
        assert all(equal(a[name], b[name]) for name in b)  # 1 == 1.0 == True: the types inside lists too


@EXAMPLES
@given(requests)
def test_compiled_spans_map_as_the_planned_ones(drawn: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    request = build(drawn)
    decoded = decode_request(request.SerializeToString(), PROTOBUF)
    same(compiled(decoded), list(planned_spans(decoded)))
    from_json = decode_request(as_json(request), JSON)  # the JSON door hands the reader the same bytes
    same(compiled(from_json), list(planned_spans(decoded)))


@EXAMPLES
@given(keys_and_rows())
def test_one_compiled_plan_serves_spans_with_other_values(drawn: tuple[list[str], list[str], list[list[Any]]]) -> None:
    resource_keys, keys, rows = drawn
    # One instrumentation's spans under one resource, the two sharing keys: the span's value wins
    # (tags too), fields several names can fill take the first present that is not None.
    resource = dict(zip(resource_keys, rows[0][40:], strict=False))
    drawn_spans = [
        {"attributes": {**CALL, **dict(zip(keys, row, strict=False))}, "status": status,
         "trace_id": b"\x01" * 16, "start": 1_764_000_000_123_456_789, "ms": 1500}
        for row, status in zip(rows, itertools.cycle([Status.STATUS_CODE_UNSET, Status.STATUS_CODE_ERROR]))
    ]  # fmt: skip
    decoded = decode_request(build([(resource, drawn_spans)]).SerializeToString(), PROTOBUF)
    same(compiled(decoded), list(planned_spans(decoded)))


@EXAMPLES
@given(st.lists(values, min_size=1, max_size=3), st.sampled_from(["gen_ai.request.model", "meterline.tags.t"]))
def test_the_reader_decodes_a_value_as_any_value(drawn: list[Any], key: str) -> None:
    # Several serialized values in a row are one AnyValue to protobuf (the later fields merge or win).
    raw = b"".join(any_of(v).SerializeToString() for v in drawn)
    view = AttributesRequest()
    view.resource_spans.add().scope_spans.add().spans.add().attributes[key] = raw
    [(_, _, _, spans)] = span_wire.READER.read(view.SerializeToString())
    [(_, _, _, _, _, _, row, tags)] = spans
    decoded = row[0] if key == "gen_ai.request.model" else tags[0][1]
    assert equal(decoded, any_value(raw))


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_fields_the_mapping_does_not_read_are_skipped_in_every_message() -> None:
    span = Span(
        trace_id=b"\x07" * 16, span_id=b"\x08" * 8, trace_state="k=v", parent_span_id=b"\x09" * 8, flags=0x301,
        name="chat gpt-4o", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=1_764_000_000_123_456_789,
        end_time_unix_nano=1_764_000_001_123_456_789, dropped_attributes_count=3, dropped_events_count=1,
        dropped_links_count=2, status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        attributes=[kv(k, str(v)) if isinstance(v, str) else KeyValue(key=k, value=any_of(v)) for k, v in
                    {**CALL, "error.type": "TimeoutError", "meterline.tags.team": "a", "server.port": 443}.items()],
        events=[Span.Event(time_unix_nano=5, name="gen_ai.choice", attributes=[kv("gen_ai.request.model", "no")])],
        links=[Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, attributes=[kv("meterline.tags.team", "no")])],
    )  # fmt: skip
    resource_spans = ResourceSpans(
        resource=Resource(attributes=[kv("service.name", "app"), kv("meterline.tags.team", "r")]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="x", version="1", attributes=[kv("user.id", "no")]),
                                spans=[span], schema_url="https://opentelemetry.io/schemas/1.30.0")],
        schema_url="https://opentelemetry.io/schemas/1.30.0",
    )  # fmt: skip
    request = build([])
    request.resource_spans.append(resource_spans)
    decoded = decode_request(request.SerializeToString(), PROTOBUF)
    [(ids, record)] = compiled(decoded)
    same([(ids, record)], list(planned_spans(decoded)))
    assert isinstance(record, dict)
    assert (record["status"], record["feature"], record["tags"]) == ("timeout", "app", {"team": "a"})


def varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    return bytes([*out, number])


def delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def request_of(span: bytes, resource: bytes = b"") -> bytes:
    return delimited(1, resource + delimited(2, delimited(2, span)))


SPAN = Span(
    trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=1_764_000_000_123_456_789,
    end_time_unix_nano=1_764_000_001_123_456_789, attributes=[kv("gen_ai.provider.name", "openai"),
    kv("gen_ai.request.model", "gpt-4o"), KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=7))],
).SerializeToString()  # fmt: skip
ODD = {
    # protobuf: the last of a singular scalar wins, singular messages merge, a known field of another
    # wire type is an unknown field. The reader leaves each of these to it.
    "trace_id twice": request_of(SPAN + delimited(1, b"\x03" * 16)),
    "status twice": request_of(SPAN + delimited(15, b"\x18\x02") + delimited(15, b"\x12\x01x")),
    "status code twice": request_of(SPAN + delimited(15, b"\x18\x02\x18\x00")),
    "resource twice": request_of(SPAN, delimited(1, delimited(1, b"")) + delimited(1, b"")),
    "a key given twice in one KeyValue": request_of(SPAN + delimited(9, b"\x0a\x01a" + b"\x0a\x01b")),
    "start time as a varint": request_of(SPAN + b"\x38\x01"),
}


@pytest.mark.parametrize("body", ODD.values(), ids=ODD.keys())
def test_a_request_the_reader_leaves_to_protobuf_maps_as_before(body: bytes) -> None:
    decoded = decode_request(body, PROTOBUF)  # every one a valid request
    assert span_wire.READER.read(decoded.wire) is None
    assert span_wire.wire_records(decoded.wire) is None
    assert list(mapped_spans(decoded)) == list(planned_spans(decoded))


def test_the_later_of_two_trace_ids_names_the_span_as_protobuf_says() -> None:
    decoded = decode_request(ODD["trace_id twice"], PROTOBUF)
    [((trace_id, _), record)] = list(mapped_spans(decoded))
    assert trace_id == b"\x03" * 16
    assert isinstance(record, dict)
    assert record["trace_id"] == "03" * 16


def test_a_repeated_attribute_key_takes_its_last_value_as_a_protobuf_map_does() -> None:
    body = request_of(SPAN + delimited(9, kv("gen_ai.request.model", "gpt-4o-mini").SerializeToString())
                      + delimited(9, kv("meterline.tags.t", "1").SerializeToString())
                      + delimited(9, kv("meterline.tags.t", "2").SerializeToString()))  # fmt: skip
    decoded = decode_request(body, PROTOBUF)
    [(_, record)] = compiled(decoded)
    same(compiled(decoded), list(planned_spans(decoded)))
    assert isinstance(record, dict)
    assert (record["model"], record["tags"]) == ("gpt-4o-mini", {"t": "2"})


# --- the compiled record builder: the common spans' records, made as span_plans._record makes them --


def built_and_planned(decoded: Decoded) -> list[tuple[Any, Any]]:
    """Per span: ``meterline_spanwire.build``'s record (None where it leaves the span to ``_record``) and
    the pure-Python assembly's, over the same plan and reader output."""
    out = []
    for resource_mask, resource_row, resource_tags, spans in span_wire.READER.read(decoded.wire):
        resource = span_wire._resource(resource_mask, span_wire._names(resource_mask))
        base = {name: str(value) for name, value in resource_tags} if resource_tags else {}
        for span in spans:
            plan = resource.spans.get(span[5]) or span_wire._plan(resource, span[5], span_wire._names(span[5]))
            built = span_wire.meterline_spanwire.build(plan.layout, span_wire.CONSTANTS, span, resource_row, base)
            out.append((built, span_wire._planned(span, plan, resource_row, base)))
    return out


words = st.sampled_from(
    [
        "openai",
        "OpenAI",
        "gcp.gemini",
        "gpt-4o",
        "stop",
        "END_TURN",
        "length",
        "flex",
        "Batch",
        "scale",
        "x",
        "unknown_service:python",
        "checkout",
        "ünï",
        "chat",
        "invoke_agent",
        "workflow",
    ]
)
text = words | st.text(max_size=4) | st.text(min_size=199, max_size=202)
typed = {
    "gen_ai.provider.name": words, "gen_ai.system": words, "gen_ai.request.model": words,
    "gen_ai.response.model": words, "gen_ai.operation.name": words, "traceloop.span.kind": words,
    "gen_ai.usage.input_tokens": st.integers(0, 10**6), "gen_ai.usage.output_tokens": st.integers(0, 10**6),
    "gen_ai.usage.cache_read.input_tokens": st.integers(0, 10**3), "llm.usage.prompt_tokens": st.integers(0, 9),
    "gen_ai.usage.reasoning.output_tokens": st.integers(0, 10**3), "gen_ai.request.max_tokens": st.integers(0, 9),
    "gen_ai.response.time_to_first_chunk": st.floats(0, 5) | st.just(1e300),
    "gen_ai.server.time_to_first_token": st.floats(0, 5), "gen_ai.request.stream": st.booleans(),
    "gen_ai.response.finish_reasons": st.lists(words, max_size=2), "llm.response.finish_reason": words,
    "openai.response.service_tier": words, "user.id": text, "session.id": text, "gen_ai.conversation.id": text,
    "deployment.environment.name": text, "meterline.feature": text,
    "service.name": st.sampled_from(["unknown_service:python", "unknown_service", "app"]) | text,
    "meterline.customer_id": text, "meterline.attempt": st.integers(1, 3), "meterline.cache_hit": st.booleans(),
    "meterline.route": text, "error.type": words, "gen_ai.usage.cost": st.floats(0, 1),
    "meterline.tags.team": text, "meterline.tags.region": text | st.integers(0, 3),
}  # fmt: skip
# Mostly model calls (a provider, a model, usage), with some of the other names, rarely what fails or skips one.
RARE = {"error.type", "gen_ai.usage.cost", "traceloop.span.kind"}
typed_attributes = st.builds(
    lambda call, present, rare, drawn: {
        **(CALL if call else {}),
        **{k: v for k, v in drawn.items() if k in present or k in rare},
    },
    st.sampled_from([True, True, True, False]),
    st.sets(st.sampled_from(sorted(typed.keys() - RARE))),
    st.sets(st.sampled_from(sorted(RARE)), max_size=1).filter(lambda rare: not rare or len(rare) < 2),
    st.fixed_dictionaries(typed),
)
typed_requests = st.lists(
    st.tuples(typed_attributes, st.lists(
        st.fixed_dictionaries({"attributes": typed_attributes, "status": st.sampled_from([0, 0, 0, 0, 2]),
                               "trace_id": st.sampled_from([b"\x01" * 16, b"\xab" * 16, b"\x01" * 16, bytes(16)]),
                               "start": st.sampled_from([1_764_000_000_123_456_789] * 5 + [0]),
                               "ms": st.sampled_from([1500, 0, -5, 250])}), min_size=1, max_size=5)),
    min_size=1, max_size=2,
)  # fmt: skip


@EXAMPLES
@given(typed_requests)
def test_the_builder_makes_the_records_the_python_assembly_makes(
    drawn: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> None:
    decoded = decode_request(build(drawn).SerializeToString(), PROTOBUF)
    for built, planned in built_and_planned(decoded):
        if built is not None:  # the same fields in the same order, the same values of the same types
            assert isinstance(planned, dict)
            assert list(built.items()) == list(planned.items())
            assert [type(v) for v in built.values()] == [type(v) for v in planned.values()]
    same(compiled(decoded), list(planned_spans(decoded)))


def test_the_builder_makes_the_records_of_an_instrumentation_s_spans() -> None:
    # What opentelemetry-instrumentation-openai-v2 and the app's meterline.* attribution put on a span.
    attributes = {
        **CALL,
        "gen_ai.operation.name": "chat",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.request.max_tokens": 256,
        "gen_ai.response.time_to_first_chunk": 0.25,
        "openai.response.service_tier": "default",
        "server.address": "api.openai.com",
        "meterline.customer_id": "acme",
        "meterline.tags.team": "a",
    }
    drawn_spans = [{"attributes": attributes, "status": Status.STATUS_CODE_UNSET, "trace_id": b"\x01" * 16,
                    "start": 1_764_000_000_123_456_789, "ms": 1500}] * 3  # fmt: skip
    decoded = decode_request(build([({"service.name": "app"}, drawn_spans)]).SerializeToString(), PROTOBUF)
    pairs = built_and_planned(decoded)
    assert all(built is not None for built, _ in pairs)
    assert [built for built, _ in pairs] == [planned for _, planned in pairs]
    assert pairs[0][0] == {
        "event_id": "01" * 16 + "0000000000000001", "timestamp": 1_764_000_000_123, "provider": "openai",
        "model": "gpt-4o", "trace_id": "01" * 16, "latency_ms": 1500.0, "input_tokens": 10, "output_tokens": 20,
        "cache_read_tokens": 4, "response_model": "gpt-4o-2024-08-06", "max_tokens": 256, "ttft_ms": 250.0,
        "streamed": True, "finish_reason": "stop", "service_tier": "default", "feature": "app",
        "customer_id": "acme", "tags": {"team": "a"},
    }  # fmt: skip
