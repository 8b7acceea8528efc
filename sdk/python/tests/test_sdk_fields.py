"""The record contract on the SDK's side: building, checking, defaults, event ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import meterline
import pytest
from meterline.fields import FIELD_NAMES, RecordError, build, encode
from meterline.uuid7 import uuid7

NS = 1_763_640_000_123_456_789  # 2025-11-20T12:00:00.123Z


def test_the_sdk_knows_exactly_the_servers_fields() -> None:
    server = pytest.importorskip("ingest.records")  # present when run inside the repository
    import msgspec

    assert {f.name for f in msgspec.structs.fields(server.CallRecord)} == FIELD_NAMES


def test_timestamp_defaults_to_the_calls_start_and_event_id_to_a_uuid7() -> None:
    record = build({}, {"provider": "openai", "model": "gpt-4o", "latency_ms": 2500.0}, NS)
    assert record["timestamp"] == NS // 1_000_000 - 2500
    assert record["event_id"][14] == "7"
    assert record["event_id"][19] in "89ab"
    assert build({}, {"provider": "p", "model": "m", "event_id": "mine"}, NS)["event_id"] == "mine"


def test_uuid7s_are_unique_and_ordered_by_millisecond() -> None:
    ids = [uuid7(NS + i * 1_000_000) for i in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)


def test_explicit_timestamps_are_epoch_milliseconds() -> None:
    aware = datetime(2025, 11, 20, 10, 0, tzinfo=UTC)  # two hours before NS (a day ahead of it is refused)
    assert build({}, {"provider": "p", "model": "m", "timestamp": aware}, NS)["timestamp"] == 1_763_632_800_000
    with pytest.raises(RecordError, match="needs a timezone"):
        build({}, {"provider": "p", "model": "m", "timestamp": datetime(2026, 11, 20)}, NS)  # noqa: DTZ001
    with pytest.raises(RecordError, match="looks like seconds"):
        build({}, {"provider": "p", "model": "m", "timestamp": 1_763_640_000}, NS)


def test_defaults_sit_under_fields_and_tags_merge() -> None:
    defaults = {"feature": "a", "environment": "prod", "tags": {"team": "x", "tier": "1"}}
    record = build(defaults, {"provider": "p", "model": "m", "feature": "b", "tags": {"tier": "2"}}, NS)
    assert (record["feature"], record["environment"], record["tags"]) == ("b", "prod", {"team": "x", "tier": "2"})


def test_none_means_absent() -> None:
    record = build({}, {"provider": "p", "model": "m", "ttft_ms": None, "max_tokens": None}, NS)
    assert "ttft_ms" not in record
    assert "max_tokens" not in record


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_tokens": -1}, "input_tokens must be between 0"),
        ({"input_tokens": True}, "input_tokens must be an int"),
        ({"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5}, "may not exceed input_tokens"),
        ({"output_tokens": 10, "reasoning_tokens": 11}, "reasoning_tokens may not exceed output_tokens"),
        ({"ttft_ms": 500.0, "latency_ms": 400.0}, "ttft_ms may not exceed latency_ms"),
        ({"latency_ms": float("nan")}, "latency_ms must be between"),
        ({"attempt": 0}, "attempt must be between 1"),
        ({"traffic": "prod"}, "traffic must be one of live, eval, shadow"),
        ({"service_tier": "standard"}, "service_tier must be one of default, batch, flex, priority"),
        ({"cache_hit": 1}, "cache_hit must be a bool"),
        ({"cost_usd": "abc"}, "cost_usd is not a decimal number"),
        ({"cost_usd": Decimal("-1")}, "cost_usd must be a finite decimal"),
        ({"tags": {f"k{i}": "v" for i in range(33)}}, "at most 32 entries"),
        ({"tags": {"k": "v" * 257}}, "at most 256 characters"),
        ({"feature": "f" * 201}, "feature must be 0 to 200 characters long"),
        ({"provider": ""}, "provider must be 1 to 100 characters long"),
    ],
)
def test_every_rule_is_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        build({}, {"provider": "p", "model": "m", **fields}, NS)


def test_exact_money_is_encoded_as_a_decimal_string() -> None:
    record = build({}, {"provider": "p", "model": "m", "cost_usd": Decimal("0.000000000001")}, NS)
    assert b'"cost_usd":"0.000000000001"' in encode(record)


def test_attribute_refuses_per_record_fields_and_unknown_names() -> None:
    with pytest.raises(RecordError, match="event_id belongs to one record"):
        meterline.attribute(event_id="x").__enter__()
    with pytest.raises(TypeError, match="unknown CallRecord field"):
        meterline.attribute(feature_name="x").__enter__()
