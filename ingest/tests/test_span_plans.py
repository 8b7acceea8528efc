"""The planned span mapping (``ingest.span_plans``, the pure-Python path) equals the reference one
(``genai_spans.to_record``), and ``validate_fields`` (records as Python values) equals ``validate`` (the
same records as JSON). ``test_span_wire`` holds the compiled path equal to the planned one.

Hypothesis draws requests as ``test_mapping_equality`` does (span and resource attributes that mix the
names the mapping reads with others, values of every ``AnyValue`` kind); each span must map to the same
record, fields in the same order (the order a rejected record's errors are told in), tags too.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from ingest import span_plans
from ingest.genai_spans import MEMBER_FIELDS, Skipped, merged, picked, to_record
from ingest.otlp import PROTOBUF, Decoded, decode_request, planned_spans
from ingest.records import FIELDS, Window, encode_records, validate, validate_fields
from ingest.span_attributes import attribute_maps
from ingest.tests.test_mapping_equality import CALL, EXAMPLES, MEMBERS, OTHERS, READ, build, requests, values

NOW_MS = 1_764_000_000_000
WINDOW = Window(now_ms=NOW_MS, oldest_ms=NOW_MS - 30 * 86_400_000, newest_ms=NOW_MS + 86_400_000, retention_days=30)


def reference(decoded: Decoded) -> list[dict[str, Any] | Skipped]:
    """Each span as ``genai_spans`` maps it, one span at a time (what ``ingest.otlp`` did before plans)."""
    out: list[dict[str, Any] | Skipped] = []
    for resource_spans, (resource_attributes, span_attributes) in zip(
        decoded.request.resource_spans, attribute_maps(decoded.wire), strict=True
    ):
        resource = picked(resource_attributes)
        spans = (span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans)
        pairs = zip(spans, span_attributes, strict=True)
        out.extend(to_record(span, merged(resource, picked(attrs))) for span, attrs in pairs)
    return out


def ordered(mapped: dict[str, Any] | Skipped) -> Any:
    if isinstance(mapped, Skipped):
        return mapped
    return [(name, list(value.items()) if name == "tags" else value) for name, value in mapped.items()]


def same_in_order(new: list[dict[str, Any] | Skipped], old: list[dict[str, Any] | Skipped]) -> None:
    assert [ordered(m) for m in new] == [ordered(m) for m in old]
    for a, b in zip(new, old, strict=True):  # 1 == 1.0 == True: the types must agree too
        if isinstance(a, dict) and isinstance(b, dict):
            assert [type(v) for v in a.values()] == [type(v) for v in b.values()]


@EXAMPLES
@given(requests)
def test_planned_spans_map_as_the_reference_does(drawn: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    decoded = decode_request(build(drawn).SerializeToString(), PROTOBUF)
    same_in_order([mapped for _, mapped in planned_spans(decoded)], reference(decoded))


overlapping = st.lists(st.sampled_from(READ + MEMBERS + OTHERS + ["meterline.tags.a", "meterline.tags.b"]), unique=True)


@st.composite
def keys_and_rows(draw: st.DrawFn) -> tuple[list[str], list[str], list[list[Any]]]:
    """Resource keys, span keys and 2 to 5 rows of values: a span zips the keys with its row (80 at
    most), the resource its keys with the first row from position 40 on (up to 40). Only the values
    some key takes are drawn (drawing 80 a row was most of the run's time); a gap no key reads is None."""
    resource_keys, keys = draw(overlapping), draw(overlapping)
    width = min(len(keys), 80)
    rows = draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=2, max_size=5))
    if resource_keys:
        gap = max(0, 40 - width)
        rows[0] += [None] * gap
        more = 40 + min(len(resource_keys), 40) - len(rows[0])
        rows[0] += draw(st.lists(values, min_size=max(0, more), max_size=max(0, more)))
    return resource_keys, keys, rows


@EXAMPLES
@given(keys_and_rows())
def test_one_plan_serves_spans_with_other_values(drawn: tuple[list[str], list[str], list[list[Any]]]) -> None:
    resource_keys, keys, rows = drawn
    # One instrumentation's spans under one resource, the two sharing keys: the span's value wins,
    # fields several names can fill take the first present that is not None, each span its own.
    resource = dict(zip(resource_keys, rows[0][40:], strict=False))
    drawn_spans = [
        {"attributes": {**CALL, **dict(zip(keys, row, strict=False))}, "status": status,
         "trace_id": b"\x01" * 16, "start": 1_764_000_000_123_456_789, "ms": 1500}
        for row, status in zip(rows, itertools.cycle([Status.STATUS_CODE_UNSET, Status.STATUS_CODE_ERROR]))
    ]  # fmt: skip
    decoded = decode_request(build([(resource, drawn_spans)]).SerializeToString(), PROTOBUF)
    same_in_order([mapped for _, mapped in planned_spans(decoded)], reference(decoded))


def test_plans_stay_bounded_and_right_when_every_span_differs() -> None:
    drawn_spans = [
        {"attributes": {**CALL, f"x.{n}": n, "meterline.tags.n": n}, "status": Status.STATUS_CODE_UNSET,
         "trace_id": b"\x01" * 16, "start": 1_764_000_000_123_456_789, "ms": 1500}
        for n in range(span_plans._MAX_PLANS + 50)
    ]  # fmt: skip
    decoded = decode_request(build([({"service.name": "app"}, drawn_spans)]).SerializeToString(), PROTOBUF)
    same_in_order([mapped for _, mapped in planned_spans(decoded)], reference(decoded))
    assert sum(len(resource.spans) for resource in span_plans._resources.values()) <= span_plans._MAX_PLANS


# --- validate_fields: records as Python values, validated as their JSON would be ----------------

NAMES = sorted(MEMBER_FIELDS | {"event_id", "timestamp", "trace_id"})
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2_000),
    st.sampled_from([1, 5, 100, 10**9, 10**9 + 1, 2**32, NOW_MS, NOW_MS + 2 * 86_400_000, 1_700_000_000]),
    st.floats(width=64),  # NaN and the infinities too: JSON writes them as null
    st.sampled_from([0.0, 0.5, 12.5, 1e300, -1.0, float("nan"), float("inf")]),
    st.text(max_size=8),
    st.sampled_from(["ok", "error", "live", "eval", "stop", "length", "default", "flex", "0.0012", "1e3", "NaN"]),
    st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-20T10:00:00", "x" * 201]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(0, 3), max_size=3),
)
records = st.lists(
    st.builds(
        lambda base, extra: {**base, **extra},
        st.fixed_dictionaries({}, optional={"provider": st.sampled_from(["openai", ""]), "model": st.just("gpt-4o")}),
        st.dictionaries(st.sampled_from(NAMES), field_values, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def counter() -> Any:
    numbers = itertools.count()
    return lambda: f"id-{next(numbers)}"


@EXAMPLES
@given(records)
def test_validate_fields_decides_as_validate_of_the_json(drawn: list[dict[str, Any]]) -> None:
    encode = msgspec.json.Encoder().encode
    new = validate_fields(drawn, WINDOW, counter())
    old = validate([msgspec.Raw(encode(record)) for record in drawn], WINDOW, counter())
    assert new.rejected == old.rejected
    assert len(new.accepted) == len(old.accepted)
    if old.accepted:  # the outbox bytes: the same values of the same types (5 is not 5.0)
        assert encode_records(new.accepted) == encode_records(old.accepted)


def test_validate_fields_takes_a_non_finite_cost_or_timestamp_as_json_does() -> None:
    base = {"provider": "openai", "model": "gpt-4o", "timestamp": NOW_MS}
    for extra in ({"cost_usd": math.nan}, {"cost_usd": -math.inf}, {"timestamp": math.inf}, {"cost_usd": 0.25}):
        new = validate_fields([{**base, **extra}], WINDOW, counter())
        assert not new.rejected
        reported = new.accepted[0][FIELDS.index("reported_pusd")]
        assert reported == (250_000_000_000 if extra.get("cost_usd") == 0.25 else None)  # pico-USD
