"""A fuzz run of POST /v1/calls finds no 500, and what it accepts reaches ClickHouse.

Three generators: schemathesis from the app's own OpenAPI schema (valid and schema-violating
requests, responses checked against the schema); hand-written strategies for what a schema
cannot say (any JSON per field, any bytes, odd headers, gzip); and valid records over their whole
range, which must all be accepted and drained. Runs stay bounded (well under a minute).
"""

from __future__ import annotations

import gzip
import json
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode

from api.tests.fuzzing import CHECKS, FUZZ, api_schema
from ingest.records import CallRecord
from ingest.tests.helpers import drain, raw_rows
from tenancy.models import Project

URL = "/v1/calls"
FIELDS = [f.name for f in msgspec.structs.fields(CallRecord)]


def calls_operation() -> Any:
    """POST /v1/calls from the schema the app serves at /v1/schema/, driven through real WSGI."""
    return api_schema()[URL]["POST"]


def post_raw(api: APIClient, body: bytes, content_type: str = "application/json", headers: Any = None) -> Any:
    # The stubs type data as str; Django sends bytes as they are, which is the point here.
    return api.generic("POST", URL, body, content_type=content_type, headers=headers)  # type: ignore[arg-type]


def assert_consistent_answer(status: int, answer: Any, sent: int | None = None) -> None:
    """A 202 accounts for every record; anything else explains itself in ``detail``."""
    if status != 202:
        assert isinstance(answer.get("detail"), str), answer
        assert answer["detail"]
        return
    assert set(answer) == {"batch_id", "accepted", "rejected"}
    indexes = [r["index"] for r in answer["rejected"]]
    assert indexes == sorted(set(indexes))
    for rejection in answer["rejected"]:
        assert rejection["errors"], rejection
        for field, messages in rejection["errors"].items():
            assert isinstance(field, str)
            assert messages
            assert all(isinstance(m, str) and m for m in messages)
    if sent is not None:
        assert answer["accepted"] + len(indexes) == sent
        assert all(0 <= i < sent for i in indexes)


# --- schemathesis against /v1/schema/ ---------------------------------------------------------------


@pytest.mark.django_db
def test_schemathesis_valid_requests_are_accepted_and_conform(ingest_key: str, wsgi_in_test_transaction: None) -> None:
    auth = {"Authorization": f"Bearer {ingest_key}"}
    used_keys: set[str] = set()

    @FUZZ
    @given(case=calls_operation().as_strategy(generation_mode=GenerationMode.POSITIVE))
    def fuzz(case: Any) -> None:
        response = case.call(headers=auth)
        case.validate_response(response, checks=CHECKS, headers=auth)
        key = (case.headers or {}).get("Idempotency-Key")
        if response.status_code == 422:  # a reused key refuses another body before looking at it
            assert key in used_keys
        elif not isinstance(case.body, dict):  # the schema does not mark the body as required
            assert response.status_code == 415
        elif set(case.body) != {"calls"}:
            # The served CallBatch schema does not forbid other top-level keys (api/schema.py), but
            # the envelope does, as records do: the request is refused, naming the key.
            assert response.status_code == 400
            assert "unknown field" in response.json()["detail"]
        else:
            assert response.status_code == 202, response.content
            assert_consistent_answer(202, response.json(), len(case.body["calls"]))
        if key is not None:
            used_keys.add(key)

    fuzz()


@pytest.mark.django_db
def test_schemathesis_invalid_requests_never_get_a_server_error(
    ingest_key: str, wsgi_in_test_transaction: None
) -> None:
    # A schema-violating record is answered 202 with the record in `rejected` (by design, so the
    # rest of its batch is kept): so no negative_data_rejection check here.
    auth = {"Authorization": f"Bearer {ingest_key}"}

    @FUZZ
    @given(case=calls_operation().as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def fuzz(case: Any) -> None:
        response = case.call(headers=auth)
        case.validate_response(response, checks=CHECKS, headers=auth)
        # Negative generation also breaks the declared Bearer scheme: then 401 is the right answer.
        sent_auth = response.request.headers.get("Authorization")
        allowed = {202, 400, 413, 415, 422} | ({401} if sent_auth != auth["Authorization"] else set())
        assert response.status_code in allowed, response.content
        assert_consistent_answer(response.status_code, response.json())

    fuzz()


# --- hand-written: any JSON per field, any bytes, odd headers ------------------------------------------

# Finite floats only: json.dumps would write NaN as invalid JSON; raw_tokens sends such bytes on purpose.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_values = (
    json_values
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.sampled_from(["", "ok", "live", "batch", "2026-01-15T10:00:00Z", "2026-01-15T10:00:00", "1e400", "NaN"])
    | st.text(min_size=60, max_size=300)
)
records = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), field_values, max_size=10).map(
    lambda noise: {"provider": "openai", "model": "gpt-4o-mini", **noise}
)
# JSON that Python's json module cannot write: numbers out of range, NUL, broken UTF-8, deep nesting.
raw_tokens = (
    st.sampled_from([
        b"1e999", b"-1e999", b"1" + b"0" * 400, b"-0", b"1E-400", b'"\\u0000"', b'"a\\u0000b"', b'"\xff\xfe"',
        b'"\\ud800"', b'"\xed\xa0\x80"', b'"\xc3"', b"NaN", b"Infinity", b"01", b"tru", b'"\\x"',
    ])
    | st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    | st.binary(max_size=12)
)  # fmt: skip
raw_keys = st.sampled_from([b'"\\u0000"', b'"\xff"', b'"provider\\u0000"', b'"\\ud800"']) | st.sampled_from(FIELDS).map(
    lambda name: json.dumps(name).encode()
)


@st.composite
def spliced_calls(draw: st.DrawFn) -> list[bytes]:
    """Records with raw tokens spliced in as a field's value or name, beside plain ones."""
    calls = [json.dumps(r).encode() for r in draw(st.lists(records, max_size=3))]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        prefix = json.dumps(draw(records)).encode()[:-1]
        if draw(st.booleans()):
            spliced = prefix + b", " + draw(raw_keys) + b": " + draw(raw_tokens) + b"}"
        else:
            spliced = prefix + b", " + draw(raw_keys) + b": 1}"
        calls.insert(draw(st.integers(min_value=0, max_value=len(calls))), spliced)
    return calls


content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "", "application/json;"]
) | st.text(max_size=30)
encodings = st.sampled_from(["", "identity", "gzip", "x-gzip", "br", "gzip, gzip"]) | st.text(max_size=10)
idempotency_keys = st.none() | st.text(st.characters(max_codepoint=255), max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, int | None, dict[str, str], str]:
    """A body (with how many records it holds, if known), headers and content type."""
    kind = draw(st.sampled_from(["records", "spliced", "any-json", "raw-calls", "bytes", "truncated"]))
    sent: int | None = None
    if kind == "records":
        calls = draw(st.lists(records | json_values, min_size=1, max_size=6))
        sent = len(calls)
        body = json.dumps({"calls": calls}).encode()
    elif kind == "spliced":
        spliced = draw(spliced_calls())
        sent = len(spliced)
        body = b'{"calls": [' + b", ".join(spliced) + b"]}"
    elif kind == "any-json":
        body = json.dumps(draw(json_values | st.fixed_dictionaries({"calls": json_values}))).encode()
    elif kind == "raw-calls":
        body = b'{"calls": ' + draw(raw_tokens) + b"}"
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    else:
        whole = json.dumps({"calls": draw(st.lists(records, min_size=1, max_size=3))}).encode()
        body = whole[: draw(st.integers(min_value=0, max_value=len(whole) - 1))]
    # Mostly well-formed headers, so most bodies reach validation.
    headers: dict[str, str] = {}
    framing = draw(st.sampled_from(["plain", "plain", "gzip", "odd"]))
    if framing == "gzip":
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
        if draw(st.booleans()):
            body = body[: draw(st.integers(min_value=0, max_value=len(body)))]
    elif framing == "odd":
        headers["Content-Encoding"] = draw(encodings)
    key = draw(idempotency_keys)
    if key is not None:
        headers["Idempotency-Key"] = key
    content_type = draw(content_types) if framing == "odd" else "application/json"
    return body, sent, headers, content_type


@pytest.mark.django_db
def test_arbitrary_bodies_and_headers_never_get_a_server_error(api: APIClient) -> None:
    @settings(FUZZ, max_examples=200)
    @given(request=requests())
    def fuzz(request: tuple[bytes, int | None, dict[str, str], str]) -> None:
        body, sent, headers, content_type = request
        response = post_raw(api, body, content_type, headers)
        assert response.status_code in {202, 400, 413, 415, 422}, response.content
        assert response["Content-Type"] == "application/json"
        assert_consistent_answer(response.status_code, response.json(), sent if response.status_code == 202 else None)

    fuzz()


# --- valid records over their whole range are accepted and land -------------------------------------------


@st.composite
def timestamps(draw: st.DrawFn, now: datetime) -> Any:
    """Inside the accepted window, in every accepted form; ``now`` is fixed so replays draw alike."""
    oldest = now - timedelta(days=django_settings.CLICKHOUSE_RAW_TTL_DAYS - 3)
    moment = draw(st.datetimes(min_value=oldest.replace(tzinfo=None), max_value=now.replace(tzinfo=None)))
    as_utc = moment.replace(tzinfo=UTC)
    form = draw(st.sampled_from(["iso", "offset", "ms", "float-ms", "none"]))
    if form == "iso":
        return as_utc.isoformat().replace("+00:00", "Z")
    if form == "offset":
        offset = timezone(timedelta(minutes=draw(st.integers(min_value=-14 * 60, max_value=14 * 60))))
        return as_utc.astimezone(offset).isoformat()
    if form == "ms":
        return int(as_utc.timestamp() * 1000)
    if form == "float-ms":
        return as_utc.timestamp() * 1000
    return None


def upper_bound(field: str) -> int:
    """The ``le`` of a CallRecord field, so the strategy follows the validation it tests."""
    field_type = next(f.type for f in msgspec.structs.fields(CallRecord) if f.name == field)
    meta = typing.get_args(field_type)[1]
    return int(meta.le)


@st.composite
def valid_records(draw: st.DrawFn, now: datetime) -> dict[str, Any]:
    tokens = st.integers(min_value=0, max_value=upper_bound("input_tokens"))
    names = st.text(min_size=1, max_size=100)
    provider, model = draw(
        st.sampled_from([("openai", "gpt-4o"), ("openai", "o1-pro"), ("anthropic", "claude-3-5-sonnet-20241022")])
        | st.tuples(names, names)
    )
    input_tokens = draw(tokens)
    cache_read = draw(st.integers(min_value=0, max_value=input_tokens))
    cache_write = draw(st.integers(min_value=0, max_value=input_tokens - cache_read))
    output_tokens = draw(tokens)
    latency = draw(st.none() | st.floats(min_value=0, max_value=86_400_000))
    ttft = draw(st.none() | st.floats(min_value=0, max_value=latency if latency is not None else 86_400_000))
    record: dict[str, Any] = {
        "event_id": f"fz-{uuid.uuid4()}",
        "timestamp": draw(timestamps(now)),
        "provider": provider,
        "model": model,
        "input_tokens": input_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": output_tokens,
        "reasoning_tokens": draw(st.integers(min_value=0, max_value=output_tokens)),
        "ttft_ms": ttft,
        "latency_ms": latency,
        "status": draw(st.sampled_from(["ok", "error", "timeout", "cancelled"])),
        "traffic": draw(st.sampled_from(["live", "eval", "shadow"])),
        "service_tier": draw(st.sampled_from(["default", "batch", "flex", "priority"])),
        "cache_hit": draw(st.booleans()),
        "streamed": draw(st.booleans()),
        "attempt": draw(st.integers(min_value=1, max_value=1000)),
        "tool_calls": draw(st.integers(min_value=0, max_value=100_000)),
        "max_tokens": draw(st.none() | st.integers(min_value=1, max_value=2**32 - 1)),
        "tags": draw(st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=256), max_size=32)),
    }
    for field in ("feature", "customer_id", "route_version", "environment", "error_type"):
        record[field] = draw(st.text(max_size=200))
    for field in ("trace_id", "request_id"):
        record[field] = draw(st.text(max_size=128))
    cost = draw(st.none() | st.decimals(min_value=0, max_value=1_000_000, places=12))
    if cost is not None:
        record["cost_usd"] = draw(st.sampled_from([str(cost), float(cost)]))
    return record


@pytest.mark.django_db
def test_valid_records_over_their_whole_range_are_accepted_and_reach_clickhouse(
    api: APIClient, project: Project
) -> None:
    now = datetime.now(UTC)

    @settings(FUZZ, max_examples=40)
    @given(batch=st.lists(valid_records(now), min_size=1, max_size=5), bad=st.lists(records, max_size=2))
    def fuzz(batch: list[dict[str, Any]], bad: list[dict[str, Any]]) -> None:
        # records that might be invalid go first, so the valid ones keep their offset
        body = json.dumps({"calls": bad + batch}).encode()
        response = post_raw(api, body)
        assert response.status_code == 202, response.content
        answer = response.json()
        rejected_valid = [r for r in answer["rejected"] if r["index"] >= len(bad)]
        assert rejected_valid == [], rejected_valid
        result = drain()
        assert result.failed == 0
        stored = {r["event_id"]: r for r in raw_rows(project, "event_id, input_tokens, output_tokens, cost_pusd")}
        for sent in batch:
            row = stored[sent["event_id"]]
            assert (row["input_tokens"], row["output_tokens"]) == (sent["input_tokens"], sent["output_tokens"])
            if "cost_usd" in sent and not sent["cache_hit"]:
                reported = Decimal(str(sent["cost_usd"]))
                assert abs(Decimal(row["cost_pusd"]) - reported * 10**12) <= 1

    fuzz()
