"""POST /v1/calls refuses bad input with its documented status and an error that names the field.

Request-level problems (body, size, media type, key, rate, outbox) answer 4xx/5xx with ``detail``;
record-level problems answer 202 with the record under ``rejected`` and the rest still accepted.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.test import override_settings
from rest_framework.test import APIClient

from ingest.models import Batch
from ingest.tests.helpers import drain, post_calls, raw_rows
from tenancy.models import ApiKey, Project

URL = "/v1/calls"


def record(**fields: Any) -> dict[str, Any]:
    """A valid CallRecord, with ``fields`` replacing or adding to it."""
    base: dict[str, Any] = {
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10,
        "timestamp": "2026-01-15T10:00:00Z",
    }  # fmt: skip
    base.update(fields)
    return base


def post_raw(api: APIClient, body: bytes, content_type: str = "application/json", **headers: str) -> Any:
    # The stubs type data as str; Django sends bytes as they are, which is the point here.
    return api.generic("POST", URL, body, content_type=content_type, headers=headers or None)  # type: ignore[arg-type]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def only_rejection(response: Any) -> dict[str, list[str]]:
    """The errors of the single rejected record of a one-record batch."""
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 0
    assert len(body["rejected"]) == 1
    assert body["rejected"][0]["index"] == 0
    errors: dict[str, list[str]] = body["rejected"][0]["errors"]
    assert all(isinstance(m, str) and m for messages in errors.values() for m in messages)
    return errors


# --- the envelope: the whole request is refused ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (b'{"calls": [', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"calls=1", "not valid JSON"),
        (b'{"calls": [{"provider": "openai",}]}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_malformed_json_is_400(api: APIClient, body: bytes, hint: str) -> None:
    response = post_raw(api, body)
    assert response.status_code == 400
    assert hint in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ([record()], "JSON object"),
        ("calls", "JSON object"),
        (None, "JSON object"),
        ({}, "calls"),
        ({"records": [record()]}, "calls"),
        ({"calls": record()}, "calls"),
        ({"calls": "x"}, "calls"),
        ({"calls": None}, "calls"),
        ({"calls": []}, "calls is empty"),
        ({"calls": [record()], "extra": 1}, "extra"),
    ],
)
def test_body_that_is_not_an_object_with_a_calls_list_is_400(api: APIClient, body: Any, hint: str) -> None:
    response = post_raw(api, json.dumps(body).encode())
    assert response.status_code == 400
    assert hint in response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_json_nested_too_deeply_is_400_not_a_crash(api: APIClient) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = post_raw(api, b'{"calls": ' + deep + b"}")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


# --- one record: 202, the record in `rejected`, errors keyed by field ------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider", 5),
        ("provider", ""),
        ("provider", None),
        ("model", ["gpt-4o"]),
        ("event_id", 123),
        ("event_id", "e" * 65),
        ("timestamp", True),
        ("timestamp", "yesterday"),
        ("timestamp", "2026-01-15"),
        ("timestamp", {"ms": 1}),
        ("feature", 1.5),
        ("feature", "f" * 201),
        ("customer_id", {"id": 1}),
        ("trace_id", "t" * 129),
        ("input_tokens", "100"),
        ("input_tokens", 100.5),
        ("input_tokens", 1e3),
        ("input_tokens", True),
        ("input_tokens", 10**9 + 1),
        ("output_tokens", None),
        ("ttft_ms", "fast"),
        ("latency_ms", True),
        ("latency_ms", 86_400_001),
        ("status", "failed"),
        ("status", "OK"),
        ("traffic", "canary"),
        ("service_tier", "premium"),
        ("cache_hit", "yes"),
        ("cache_hit", 1),
        ("streamed", "true"),
        ("attempt", 0),
        ("attempt", "2"),
        ("tool_calls", -1),
        ("max_tokens", 0),
        ("max_tokens", 2**32),
        ("cost_usd", "a lot"),
        ("cost_usd", True),
        ("tags", ["a", "b"]),
        ("tags", {"team": 1}),
        ("tags", "team=ml"),
    ],
)
def test_a_wrong_type_rejects_the_record_naming_the_field(api: APIClient, field: str, value: Any) -> None:
    errors = only_rejection(post_calls(api, [record(**{field: value})]))
    assert list(errors) == [field]


@pytest.mark.django_db
def test_every_bad_field_of_a_record_is_reported_at_once(api: APIClient) -> None:
    body = {"model": 1, "input_tokens": -1, "status": "nope", "colour": "red"}
    errors = only_rejection(post_calls(api, [body]))
    assert set(errors) == {"provider", "model", "input_tokens", "status", "colour"}
    assert errors["provider"] == ["is required"]
    assert "nope" in errors["status"][0]
    assert "expected one of: ok, error, timeout, cancelled" in errors["status"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["provider", "model"])
def test_missing_required_field_is_named(api: APIClient, field: str) -> None:
    body = record()
    del body[field]
    assert only_rejection(post_calls(api, [body])) == {field: ["is required"]}


@pytest.mark.django_db
@pytest.mark.parametrize("value", [5, "call", None, [], [record()], True])
def test_a_record_that_is_not_an_object_is_rejected(api: APIClient, value: Any) -> None:
    assert only_rejection(post_calls(api, [value])) == {"record": ["must be a JSON object"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field",
    ["input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "ttft_ms",
     "latency_ms", "tool_calls", "cost_usd"],
)  # fmt: skip
def test_negative_counts_are_rejected(api: APIClient, field: str) -> None:
    errors = only_rejection(post_calls(api, [record(**{field: -1})]))
    assert list(errors) == [field]
    assert ">= 0" in errors[field][0]


@pytest.mark.django_db
def test_cache_parts_may_not_exceed_input_tokens(api: APIClient) -> None:
    body = record(input_tokens=100, cache_read_tokens=60, cache_write_tokens=41)
    errors = only_rejection(post_calls(api, [body]))
    assert list(errors) == ["cache_read_tokens"]
    assert "cache_write_tokens" in errors["cache_read_tokens"][0]
    assert "input_tokens" in errors["cache_read_tokens"][0]


@pytest.mark.django_db
def test_reasoning_may_not_exceed_output(api: APIClient) -> None:
    errors = only_rejection(post_calls(api, [record(output_tokens=10, reasoning_tokens=11)]))
    assert list(errors) == ["reasoning_tokens"]
    assert "output_tokens" in errors["reasoning_tokens"][0]


@pytest.mark.django_db
def test_ttft_may_not_exceed_latency(api: APIClient) -> None:
    errors = only_rejection(post_calls(api, [record(ttft_ms=900.5, latency_ms=900.0)]))
    assert errors == {"ttft_ms": ["may not exceed latency_ms"]}


@pytest.mark.django_db
def test_the_boundaries_of_the_cross_field_rules_are_accepted(api: APIClient) -> None:
    body = record(
        input_tokens=100, cache_read_tokens=60, cache_write_tokens=40, output_tokens=10, reasoning_tokens=10,
        ttft_ms=900.0, latency_ms=900.0,
    )  # fmt: skip
    response = post_calls(api, [body])
    assert response.status_code == 202
    assert response.json()["accepted"] == 1


@pytest.mark.django_db
def test_timestamp_more_than_a_day_ahead_is_rejected(api: APIClient) -> None:
    now = datetime.now(UTC)
    response = post_calls(
        api,
        [record(timestamp=iso(now + timedelta(days=1, minutes=5))), record(timestamp=iso(now + timedelta(hours=23)))],
    )
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 0, "errors": {"timestamp": [
        "is too far in the future (more than 1 day ahead of the server clock)"]}}]  # fmt: skip


@pytest.mark.django_db
def test_timestamp_in_epoch_ms_far_ahead_is_rejected(api: APIClient) -> None:
    future_ms = int((datetime.now(UTC) + timedelta(days=3)).timestamp() * 1000)
    errors = only_rejection(post_calls(api, [record(timestamp=future_ms)]))
    assert list(errors) == ["timestamp"]
    assert "future" in errors["timestamp"][0]


@pytest.mark.django_db
def test_timestamp_older_than_raw_retention_is_rejected(api: APIClient) -> None:
    from django.conf import settings

    old = datetime.now(UTC) - timedelta(days=settings.CLICKHOUSE_RAW_TTL_DAYS + 1)
    errors = only_rejection(post_calls(api, [record(timestamp=iso(old))]))
    assert list(errors) == ["timestamp"]
    assert "older than the raw retention" in errors["timestamp"][0]


@pytest.mark.django_db
@override_settings(CLICKHOUSE_RAW_TTL_DAYS=30)
def test_retention_follows_the_configured_ttl(api: APIClient) -> None:
    now = datetime.now(UTC)
    response = post_calls(
        api, [record(timestamp=iso(now - timedelta(days=31))), record(timestamp=iso(now - timedelta(days=20)))]
    )
    body = response.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0]
    assert "29 days" in body["rejected"][0]["errors"]["timestamp"][0]


@pytest.mark.django_db
def test_naive_timestamp_without_offset_is_rejected(api: APIClient) -> None:
    errors = only_rejection(post_calls(api, [record(timestamp="2026-01-15T10:00:00")]))
    assert list(errors) == ["timestamp"]
    assert "UTC offset" in errors["timestamp"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("seconds", [1_768_471_200, 1_768_471_200.5])
def test_epoch_seconds_instead_of_milliseconds_is_rejected(api: APIClient, seconds: float) -> None:
    errors = only_rejection(post_calls(api, [record(timestamp=seconds)]))
    assert list(errors) == ["timestamp"]
    assert "milliseconds" in errors["timestamp"][0]
    assert "seconds" in errors["timestamp"][0]


@pytest.mark.django_db
def test_negative_epoch_ms_is_too_old_not_seconds(api: APIClient) -> None:
    errors = only_rejection(post_calls(api, [record(timestamp=-1_768_471_200_000)]))
    assert list(errors) == ["timestamp"]
    assert "older than the raw retention" in errors["timestamp"][0]


@pytest.mark.django_db
def test_epoch_ms_and_offsets_are_stored_as_utc(api: APIClient, project: Project) -> None:
    ms = 1_768_471_200_000  # 2026-01-15T10:00:00Z
    response = post_calls(
        api, [record(event_id="ms", timestamp=ms), record(event_id="offset", timestamp="2026-01-15T12:00:00+02:00")]
    )
    assert response.json() == {"batch_id": response.json()["batch_id"], "accepted": 2, "rejected": []}
    drain()
    stamps = {r["event_id"]: r["timestamp"] for r in raw_rows(project, "event_id, timestamp")}
    assert stamps["ms"] == stamps["offset"]
    assert stamps["ms"].replace(tzinfo=UTC) == datetime(2026, 1, 15, 10, tzinfo=UTC)


@pytest.mark.django_db
def test_unknown_fields_are_rejected_by_name(api: APIClient) -> None:
    errors = only_rejection(post_calls(api, [record(prompt_tokens=5, completion_tokens=3)]))
    assert set(errors) == {"prompt_tokens", "completion_tokens"}
    assert "unknown field" in errors["prompt_tokens"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(33)},
        {"k" * 65: "v"},
        {"": "v"},
        {"team": "v" * 257},
    ],
    ids=["too-many", "key-too-long", "empty-key", "value-too-long"],
)
def test_oversized_tags_are_rejected(api: APIClient, tags: dict[str, str]) -> None:
    errors = only_rejection(post_calls(api, [record(tags=tags)]))
    assert list(errors) == ["tags"]


@pytest.mark.django_db
def test_tags_at_their_limits_are_accepted(api: APIClient) -> None:
    tags = {f"{i:02d}" + "k" * 62: "v" * 256 for i in range(32)}
    response = post_calls(api, [record(tags=tags)])
    assert response.json()["accepted"] == 1


@pytest.mark.django_db
def test_control_characters_in_a_rejected_record_are_answered_and_replayable(api: APIClient) -> None:
    # PostgreSQL's jsonb cannot hold U+0000, and the answer is stored for Idempotency-Key replays.
    body = [record(status="\u0000bad", **{"\u0000": 1}), record()]
    first = post_calls(api, body, **{"Idempotency-Key": "nul"})
    again = post_calls(api, body, **{"Idempotency-Key": "nul"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.json()["accepted"] == 1
    errors = first.json()["rejected"][0]["errors"]
    assert "status" in errors
    assert len(errors) == 2


@pytest.mark.django_db
def test_invalid_utf8_inside_a_record_rejects_only_that_record(api: APIClient) -> None:
    good = json.dumps(record()).encode()
    bad = b'{"provider": "open\xffai", "model": "m"}'
    response = post_raw(api, b'{"calls": [' + good + b"," + bad + b"]}")
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1
    assert "provider" in body["rejected"][0]["errors"]


@pytest.mark.django_db
def test_a_number_out_of_range_is_reported_on_its_field(api: APIClient) -> None:
    body = b'{"calls": [{"provider": "openai", "model": "m", "timestamp": 1e999, "latency_ms": -1e999}]}'
    errors = only_rejection(post_raw(api, body))
    assert set(errors) == {"timestamp", "latency_ms"}


# --- valid records in a bad batch are kept ---------------------------------------------------------


@pytest.mark.django_db
def test_valid_records_beside_invalid_ones_are_accepted_and_stored(api: APIClient, project: Project) -> None:
    # given a batch that mixes good records with every kind of bad one
    body: list[Any] = [
        record(event_id="good-0"),
        record(event_id="bad-0", input_tokens="many"),
        record(event_id="good-1", cache_read_tokens=50),
        record(event_id="bad-1", reasoning_tokens=11),
        "not a record",
        record(event_id="bad-2", timestamp="2026-01-15T10:00:00"),
        record(event_id="good-2", tags={"team": "search"}),
        record(event_id="bad-3", surprise=True),
    ]
    # when it is sent
    response = post_calls(api, body)
    # then the good ones are accepted, the bad ones listed by index
    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] == 3
    assert [r["index"] for r in answer["rejected"]] == [1, 3, 4, 5, 7]
    assert [list(r["errors"]) for r in answer["rejected"]] == [
        ["input_tokens"], ["reasoning_tokens"], ["record"], ["timestamp"], ["surprise"]
    ]  # fmt: skip
    batch = Batch.objects.get(project=project)
    assert (batch.record_count, batch.rejected_count) == (3, 5)
    # and reach ClickHouse
    drain()
    rows = raw_rows(project, "event_id, cache_read_tokens, tags")
    assert sorted(r["event_id"] for r in rows) == ["good-0", "good-1", "good-2"]
    assert {r["event_id"]: r["cache_read_tokens"] for r in rows}["good-1"] == 50


@pytest.mark.django_db
def test_a_batch_with_only_rejected_records_stores_nothing_to_drain(api: APIClient, project: Project) -> None:
    response = post_calls(api, [record(input_tokens=-5), record(model="")])
    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    assert len(response.json()["rejected"]) == 2
    drain()
    assert raw_rows(project) == []


@pytest.mark.django_db
def test_records_at_every_upper_bound_reach_clickhouse(api: APIClient, project: Project) -> None:
    # The largest values validation lets through must also fit the ClickHouse columns and the
    # cost arithmetic; otherwise an accepted batch would dead-letter in the drain.
    big = 10**9
    body = [
        record(
            event_id="e" * 64, provider="p" * 100, model="gpt-4o", response_model="r" * 200, feature="f" * 200,
            input_tokens=big, cache_read_tokens=big // 2, cache_write_tokens=big // 2, output_tokens=big,
            reasoning_tokens=big, ttft_ms=86_400_000, latency_ms=86_400_000, attempt=1000, tool_calls=100_000,
            max_tokens=2**32 - 1, trace_id="t" * 128, tags={"k" * 64: "v" * 256},
        ),
        record(event_id="reported", input_tokens=big, output_tokens=big, cost_usd="1000000"),
        record(event_id="o1-pro", model="o1-pro", input_tokens=big, output_tokens=big, reasoning_tokens=big),
    ]  # fmt: skip
    response = post_calls(api, body)
    assert response.json()["accepted"] == 3, response.json()
    result = drain()
    assert result.failed == 0
    assert len(raw_rows(project, "event_id")) == 3


# --- size limits -----------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(INGEST_MAX_BYTES=2048)
def test_body_over_max_bytes_is_413(api: APIClient) -> None:
    body = json.dumps({"calls": [record(feature="f" * 150, event_id=str(i)) for i in range(20)]}).encode()
    assert len(body) > 2048
    response = post_raw(api, body)
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_body_refused_by_django_before_reading_is_413(api: APIClient) -> None:
    body = json.dumps({"calls": [record(feature="f" * 150, event_id=str(i)) for i in range(20)]}).encode()
    response = post_raw(api, body)
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


@pytest.mark.django_db
@override_settings(INGEST_MAX_RECORDS=3)
def test_too_many_records_is_413(api: APIClient) -> None:
    assert post_calls(api, [record(event_id=str(i)) for i in range(3)]).status_code == 202
    response = post_calls(api, [record(event_id=str(i)) for i in range(4)])
    assert response.status_code == 413
    assert "4 records" in response.json()["detail"]
    assert "limit is 3" in response.json()["detail"]


# --- gzip --------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP"])
def test_valid_gzip_is_accepted(api: APIClient, project: Project, encoding: str) -> None:
    body = gzip.compress(json.dumps({"calls": [record(event_id="gz-0"), record(event_id="gz-1")]}).encode())
    response = post_raw(api, body, **{"Content-Encoding": encoding})
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    drain()
    assert [r["event_id"] for r in raw_rows(project, "event_id")] == ["gz-0", "gz-1"]


@pytest.mark.django_db
def test_gzip_of_several_members_is_decoded_whole(api: APIClient, project: Project) -> None:
    # RFC 1952: a gzip body may be members back to back; a decoder that stops at the first drops records.
    payload = json.dumps({"calls": [record(event_id=f"m-{i}") for i in range(4)]}).encode()
    middle = len(payload) // 2
    response = post_raw(
        api, gzip.compress(payload[:middle]) + gzip.compress(payload[middle:]), **{"Content-Encoding": "gzip"}
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == 4
    drain()
    assert [r["event_id"] for r in raw_rows(project, "event_id")] == ["m-0", "m-1", "m-2", "m-3"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b'{"calls": []}',
        gzip.compress(b'{"calls": [{"provider": "a", "model": "b"}]}') + b"trailing junk",
        b"\x1f\x8b\x08\x00garbage",
        gzip.compress(b'{"calls": [{"provider": "a", "model": "b"}]}')[:-12],
        b"",
    ],
    ids=["not-gzip", "trailing-junk", "corrupt", "truncated", "empty"],
)
def test_bad_gzip_is_400(api: APIClient, body: bytes) -> None:
    response = post_raw(api, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in response.json()["detail"]


@pytest.mark.django_db
@override_settings(INGEST_MAX_BYTES=4096)
def test_gzip_bomb_over_the_limit_is_413(api: APIClient) -> None:
    bomb = gzip.compress(b'{"calls": [' + b" " * 50_000_000 + b"]}", compresslevel=9)
    assert len(bomb) < 4096 * 20
    response = post_raw(api, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]


@pytest.mark.django_db
@override_settings(INGEST_MAX_BYTES=4096)
def test_gzip_just_over_the_limit_is_413_and_at_the_limit_is_accepted(api: APIClient) -> None:
    payload = json.dumps({"calls": [record()]}).encode()
    at_limit = payload[:-1] + b" " * (4096 - len(payload)) + b"}"
    assert len(at_limit) == 4096
    accepted = post_raw(api, gzip.compress(at_limit), **{"Content-Encoding": "gzip"})
    assert accepted.status_code == 202
    over = post_raw(api, gzip.compress(at_limit + b" "), **{"Content-Encoding": "gzip"})
    assert over.status_code == 413


# --- media types -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_wrong_content_type_is_415(api: APIClient, content_type: str) -> None:
    response = post_raw(api, json.dumps({"calls": [record()]}).encode(), content_type=content_type)
    assert response.status_code == 415
    assert "Content-Type" in response.json()["detail"]


@pytest.mark.django_db
def test_json_with_a_charset_parameter_is_accepted(api: APIClient) -> None:
    body = json.dumps({"calls": [record()]}).encode()
    response = post_raw(api, body, content_type="application/json; charset=utf-8")
    assert response.status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, gzip", "compress"])
def test_unsupported_content_encoding_is_415(api: APIClient, encoding: str) -> None:
    body = json.dumps({"calls": [record()]}).encode()
    response = post_raw(api, body, **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["detail"]


# --- keys ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ml_not-a-real-key", "Bearer a b", "Basic dXNlcjpwYXNz", "Bearer ml_\u00e9t\u00e9"],
)
def test_missing_or_wrong_key_is_401(project: Project, authorization: str | None) -> None:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = post_calls(client, [record()])
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_revoked_key_is_401(api: APIClient, ingest_key: str) -> None:
    assert post_calls(api, [record()]).status_code == 202
    ApiKey.objects.get(prefix=ingest_key[:10]).revoke()
    response = post_calls(api, [record()])
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.django_db
def test_key_without_ingest_scope_is_403(project: Project) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    response = post_calls(client, [record()])
    assert response.status_code == 403
    assert "'ingest' scope" in response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_admin_key_may_ingest(project: Project) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['admin'])[1]}")
    assert post_calls(client, [record()]).status_code == 202


# --- Idempotency-Key -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_idempotency_key_longer_than_255_is_400(api: APIClient) -> None:
    response = post_calls(api, [record()], **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert "255" in response.json()["detail"]
    assert post_calls(api, [record()], **{"Idempotency-Key": "k" * 255}).status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "with\u0000nul", "line\nbreak"])
def test_idempotency_key_that_is_empty_or_has_control_characters_is_400(api: APIClient, key: str) -> None:
    response = post_calls(api, [record()], **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


# --- rate limit and outbox outage -------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(INGEST_RATE_LIMIT="2/min")
def test_rate_limit_is_429_with_retry_after(api: APIClient, ingest_key: str, project: Project) -> None:
    key = ApiKey.objects.get(prefix=ingest_key[:10])
    cache.delete(f"throttle:ingest:{key.pk}")  # the test Redis outlives test databases
    try:
        assert post_calls(api, [record()]).status_code == 202
        assert post_calls(api, [record()]).status_code == 202
        response = post_calls(api, [record()])
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 60
        assert "throttled" in response.json()["detail"].lower()
        assert Batch.objects.filter(project=project).count() == 2
        # the limit is per key: another key of the same project is not throttled
        other = APIClient()
        other_key = ApiKey.issue(project, ["ingest"])
        other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key[1]}")
        cache.delete(f"throttle:ingest:{other_key[0].pk}")
        assert post_calls(other, [record()]).status_code == 202
    finally:
        cache.delete(f"throttle:ingest:{key.pk}")


@pytest.mark.django_db
def test_outbox_unavailable_is_503_with_retry_after(
    api: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection to server lost")

    monkeypatch.setattr(Batch, "save", database_down)
    response = post_calls(api, [record()])
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "outbox" in response.json()["detail"]
    assert "connection to server" not in response.json()["detail"]  # no internals leak to the client
    monkeypatch.undo()
    assert not Batch.objects.filter(project=project).exists()
    assert post_calls(api, [record()]).status_code == 202
