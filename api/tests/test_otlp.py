"""POST /v1/otlp/v1/traces: OTLP/HTTP in both encodings, gzip, partial success, idempotency, refusals.

Requests are built with the official opentelemetry-proto messages (the producers' own tests are in
tests/test_otlp_producers.py); every accepted span goes through the real outbox, the drain and chDB.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.test import override_settings
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatus
from rest_framework.test import APIClient

from api.tests.test_outage import unreachable_database
from ingest.models import Batch
from ingest.tests.helpers import drain, raw_count, raw_rows
from tenancy.models import ApiKey, Project

URL = "/v1/otlp/v1/traces"
PROTOBUF = "application/x-protobuf"
HOUR_NS = 3600 * 10**9
# gpt-4o: $2.50 input, $1.25 cache read, $10 output per Mtok, in pico-USD per token
GPT4O = {"input": 2_500_000, "cache_read": 1_250_000, "output": 10_000_000}


def attr(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list | tuple):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[attr("", v).value for v in value])))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(n: int, attributes: dict[str, Any], *, start_ns: int | None = None, ms: int = 1500, **fields: Any) -> Span:
    start = start_ns if start_ns is not None else time.time_ns() - HOUR_NS
    return Span(
        trace_id=bytes.fromhex(f"{n:032x}"),
        span_id=bytes.fromhex(f"{n + 0xA000:016x}"),
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + ms * 10**6,
        attributes=[attr(k, v) for k, v in attributes.items()],
        **{"name": "chat gpt-4o", **fields},
    )


def chat(**extra: Any) -> dict[str, Any]:
    """The attributes opentelemetry-instrumentation-openai-v2 puts on a chat span (current names)."""
    return {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200, "gen_ai.response.finish_reasons": ["stop"], **extra,
    }  # fmt: skip


def export_request(spans: list[Span], resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.append(attr(key, value))
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def post(api: APIClient, body: bytes, content_type: str = PROTOBUF, **headers: str) -> Any:
    return api.generic("POST", URL, body, content_type=content_type, headers=headers or None)  # type: ignore[arg-type]


def answer_of(response: Any) -> ExportTraceServiceResponse:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response["Content-Type"] == PROTOBUF
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer


def status_of(response: Any) -> Status:
    assert response["Content-Type"] == PROTOBUF
    status = Status()
    status.ParseFromString(response.content)
    return status


def hexid(n: int) -> str:
    return f"{n:032x}" + f"{n + 0xA000:016x}"


@pytest.mark.django_db
def test_genai_spans_land_mapped_and_priced_exactly_and_other_spans_are_counted(
    api: APIClient, project: Project
) -> None:
    # given a batch: two model calls (one streamed, one cut at max_tokens) and an HTTP span beside them
    start = (time.time_ns() - HOUR_NS) // 10**6 * 10**6
    calls = [
        span(1, chat(**{"gen_ai.usage.cache_read.input_tokens": 400, "gen_ai.request.stream": True,
                        "gen_ai.response.time_to_first_chunk": 0.25, "openai.response.service_tier": "default",
                        "meterline.feature": "search", "user.id": "u-1", "session.id": "s-1"}), start_ns=start),
        span(2, chat(**{"gen_ai.response.finish_reasons": ["length"], "gen_ai.request.max_tokens": 200,
                        "error.type": "timeout"}), start_ns=start + 10**6, ms=900,
             status=SpanStatus(code=SpanStatus.STATUS_CODE_ERROR)),
        span(3, {"http.request.method": "GET", "url.full": "https://example.com/"}),
    ]  # fmt: skip
    resource = {"service.name": "shop", "deployment.environment.name": "prod", "meterline.customer_id": "acme"}
    body = export_request(calls, resource).SerializeToString()
    # when it is exported
    answer = answer_of(post(api, body))
    # then the HTTP span is counted as ignored, the model calls are durable
    assert answer.partial_success.rejected_spans == 1
    assert "1 span without GenAI usage ignored" in answer.partial_success.error_message
    assert Batch.objects.get(project=project).record_count == 2
    drain()
    columns = (
        "event_id, timestamp, provider, model, response_model, feature, customer_id, user_id, session_id, "
        "environment, trace_id, input_tokens, cache_read_tokens, output_tokens, ttft_ms, latency_ms, status, "
        "error_type, streamed, max_tokens, finish_reason, service_tier, cost_pusd"
    )
    first, second = raw_rows(project, columns)
    assert first["event_id"] == hexid(1)
    assert first["trace_id"] == f"{1:032x}"
    assert int(first["timestamp"].timestamp() * 1000) == start // 10**6
    assert (first["provider"], first["model"], first["response_model"]) == ("openai", "gpt-4o", "gpt-4o-2024-08-06")
    # span attributes win over the resource's; service.name is only the default feature
    assert (first["feature"], first["customer_id"], first["user_id"], first["session_id"], first["environment"]) == (
        "search", "acme", "u-1", "s-1", "prod")  # fmt: skip
    assert (first["input_tokens"], first["cache_read_tokens"], first["output_tokens"]) == (1000, 400, 200)
    assert (first["ttft_ms"], first["latency_ms"], first["streamed"], first["finish_reason"]) == (
        250.0, 1500.0, True, "stop")  # fmt: skip
    # input_tokens is the total, cache reads a part of it: 600 uncached + 400 cache reads + 200 output
    assert first["cost_pusd"] == 600 * GPT4O["input"] + 400 * GPT4O["cache_read"] + 200 * GPT4O["output"]
    assert (second["feature"], second["status"], second["error_type"], second["latency_ms"]) == (
        "shop", "timeout", "timeout", 900.0)  # fmt: skip
    assert (second["finish_reason"], second["max_tokens"], second["streamed"]) == ("length", 200, False)
    assert second["cost_pusd"] == 1000 * GPT4O["input"] + 200 * GPT4O["output"]


@pytest.mark.django_db
def test_a_gzip_body_is_accepted(api: APIClient, project: Project) -> None:
    body = gzip.compress(export_request([span(7, chat())]).SerializeToString())
    answer = answer_of(post(api, body, **{"Content-Encoding": "gzip"}))
    assert not answer.HasField("partial_success")  # everything was taken: the spec leaves it unset
    drain()
    assert [r["event_id"] for r in raw_rows(project, "event_id")] == [hexid(7)]


def otlp_json(spans: list[Span]) -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: hex ids, 64-bit integers as strings (the protobuf JSON mapping)."""
    document: dict[str, Any] = json_format.MessageToDict(export_request(spans))
    for item, sent in zip(document["resourceSpans"][0]["scopeSpans"][0]["spans"], spans, strict=True):
        item["traceId"], item["spanId"] = sent.trace_id.hex(), sent.span_id.hex()  # base64 in the plain mapping
    return document


@pytest.mark.django_db
def test_otlp_json_with_hex_ids_and_int64_as_strings_or_numbers(api: APIClient, project: Project) -> None:
    # given OTLP/JSON: one span's integers as strings (the protobuf JSON mapping), the other's as numbers
    spans = [span(11, chat(), name="a"), span(12, chat(**{"gen_ai.usage.input_tokens": 2006}), name="b")]
    document = otlp_json(spans)
    as_numbers = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert isinstance(as_numbers["startTimeUnixNano"], str)  # as json_format writes them
    as_numbers["startTimeUnixNano"] = int(as_numbers["startTimeUnixNano"])
    as_numbers["endTimeUnixNano"] = int(as_numbers["endTimeUnixNano"])
    for kv in as_numbers["attributes"]:
        if "intValue" in kv["value"]:
            kv["value"]["intValue"] = int(kv["value"]["intValue"])
    document["resourceSpans"][0]["scopeSpans"][0]["spans"].append({"name": "plain", "traceId": "ab" * 16,
                                                                   "spanId": "cd" * 8, "unknownField": 1})  # fmt: skip
    # when it is posted as application/json
    response = post(api, json.dumps(document).encode(), content_type="application/json")
    # then the answer is OTLP/JSON too, and the ids are the hex the client sent
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "partialSuccess": {"rejectedSpans": "1", "errorMessage": "1 span without GenAI usage ignored"}
    }
    drain()
    rows = raw_rows(project, "event_id, input_tokens, output_tokens, latency_ms")
    assert [(r["event_id"], r["input_tokens"], r["output_tokens"], r["latency_ms"]) for r in rows] == [
        (hexid(11), 1000, 200, 1500.0), (hexid(12), 2006, 200, 1500.0)]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b'{"resourceSpans": [', "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"resourceSpans": "x"}', "application/json", "not an OTLP/JSON ExportTraceServiceRequest"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not-hex!", "spanId": "00"}]}]}]}',
            "application/json",
            "resourceSpans[0].scopeSpans[0].spans[0].traceId must be a hex string",
        ),
    ],
    ids=["protobuf-garbage", "truncated-json", "json-array", "wrong-shape", "bad-hex-id"],
)
def test_a_bad_body_is_400_with_a_clear_message(api: APIClient, body: bytes, content_type: str, message: str) -> None:
    response = post(api, body, content_type=content_type)
    assert response.status_code == 400
    if content_type == PROTOBUF:
        status = status_of(response)
        assert (status.code, message in status.message) == (3, True), status.message  # INVALID_ARGUMENT
    else:
        assert response["Content-Type"] == "application/json"
        assert message in response.json()["message"], response.json()
        assert response.json()["detail"] == response.json()["message"]


@pytest.mark.django_db
def test_partial_success_counts_ignored_and_rejected_spans_with_why(api: APIClient, project: Project) -> None:
    spans = [
        span(21, chat()),
        span(22, {"db.system.name": "postgresql"}),  # not a model call
        span(23, chat(**{"gen_ai.operation.name": "invoke_agent"})),  # sums its children: would count twice
        span(24, {k: v for k, v in chat().items() if k != "gen_ai.request.model" and k != "gen_ai.response.model"}),
        span(25, chat(**{"gen_ai.usage.cache_read.input_tokens": 5000})),  # more cached than the total
        span(26, chat(**{"gen_ai.usage.output_tokens": "many"})),
    ]
    answer = answer_of(post(api, export_request(spans).SerializeToString()))
    assert answer.partial_success.rejected_spans == 5
    message = answer.partial_success.error_message
    assert message.startswith("2 spans without GenAI usage ignored; 3 spans rejected; ")
    assert f"span {f'{24:032x}'}/{f'{24 + 0xA000:016x}'}: no gen_ai.request.model" in message
    assert "cache_read_tokens: cache_read_tokens + cache_write_tokens may not exceed input_tokens" in message
    assert "output_tokens: Expected `int`, got `str`" in message
    batch = Batch.objects.get(project=project)
    assert (batch.record_count, batch.rejected_count) == (1, 2)  # the outbox counts what validation refused
    drain()
    assert [r["event_id"] for r in raw_rows(project, "event_id")] == [hexid(21)]


@pytest.mark.django_db
def test_a_resent_export_is_counted_once(api: APIClient, project: Project) -> None:
    # given an exporter that retries a batch whose answer it never saw
    body = export_request([span(31, chat()), span(32, chat())]).SerializeToString()
    answer_of(post(api, body))
    drain()
    answer_of(post(api, body))
    drain()
    # then event_id = trace id + span id collapsed the second copy
    assert Batch.objects.filter(project=project).count() == 2
    assert raw_count(project, final=True) == 2
    assert sorted(r["event_id"] for r in raw_rows(project, "event_id")) == [hexid(31), hexid(32)]


@pytest.mark.django_db
def test_outbox_down_is_503_with_retry_after_in_the_request_encoding(
    api: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection to server lost")

    monkeypatch.setattr(Batch, "save", database_down)
    body = export_request([span(41, chat())]).SerializeToString()
    response = post(api, body)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    status = status_of(response)
    assert status.code == 14
    assert "outbox" in status.message
    assert "connection to server" not in status.message
    monkeypatch.undo()
    assert not Batch.objects.filter(project=project).exists()
    answer_of(post(api, body))


@pytest.mark.django_db(transaction=True)
def test_database_down_at_the_key_look_up_is_503_in_the_request_encoding(project: Project) -> None:
    key = ApiKey.issue(project, ["ingest"])[1]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    with unreachable_database():
        response = post(api, json.dumps({"resourceSpans": []}).encode(), content_type="application/json")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == 14
    assert "unavailable" in response.json()["detail"]


@pytest.mark.django_db
def test_refusals_answer_a_status_in_the_request_encoding(api: APIClient, project: Project) -> None:
    body = export_request([span(51, chat())]).SerializeToString()
    anonymous = post(APIClient(), body)
    assert anonymous.status_code == 401
    assert status_of(anonymous).code == 16
    assert anonymous["WWW-Authenticate"] == "Bearer"
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    forbidden = post(reader, body)
    assert forbidden.status_code == 403
    assert "'ingest' scope" in status_of(forbidden).message
    wrong_type = post(api, body, content_type="text/plain")
    assert wrong_type.status_code == 415
    assert "application/x-protobuf or application/json" in wrong_type.json()["detail"]
    brotli = post(api, body, **{"Content-Encoding": "br"})
    assert brotli.status_code == 415
    assert "Content-Encoding" in status_of(brotli).message
    assert not Batch.objects.filter(project=project).exists()


@pytest.mark.django_db
@override_settings(INGEST_MAX_RECORDS=3)
def test_more_model_calls_than_the_record_limit_is_413(api: APIClient, project: Project) -> None:
    body = export_request([span(60 + i, chat()) for i in range(4)]).SerializeToString()
    response = post(api, body)
    assert response.status_code == 413
    assert "the limit is 3" in status_of(response).message
    assert answer_of(post(api, export_request([span(70 + i, chat()) for i in range(3)]).SerializeToString()))


@pytest.mark.django_db
@override_settings(INGEST_RATE_LIMIT="1/min")
def test_rate_limit_is_429_with_retry_after(api: APIClient, ingest_key: str, project: Project) -> None:
    key = ApiKey.objects.get(prefix=ingest_key[:10])
    cache.delete(f"throttle:ingest:{key.pk}")  # the test Redis outlives test databases
    try:
        body = export_request([span(81, chat())]).SerializeToString()
        answer_of(post(api, body))
        throttled = post(api, body)
        assert throttled.status_code == 429
        assert 0 < int(throttled["Retry-After"]) <= 60
        assert status_of(throttled).code == 8  # RESOURCE_EXHAUSTED
    finally:
        cache.delete(f"throttle:ingest:{key.pk}")
