"""The real OpenTelemetry GenAI producers against a live Meterline: the calls arrive priced exactly.

The ``openai`` client, instrumented by ``opentelemetry-instrumentation-openai-v2`` (the OpenTelemetry
project's own) or by OpenLLMetry's ``opentelemetry-instrumentation-openai``, talks to the local
stand-in provider the SDK tests use; the SDK's ``BatchSpanProcessor`` hands the spans to the real
``OTLPSpanExporter`` (protobuf, plain and gzip), which posts them to pytest-django's live server
(real PostgreSQL outbox); the drain writes them to chDB. Nothing is mocked.

The Python SDK has no OTLP/JSON exporter, so the JSON run encodes the very same spans with the
exporter's own encoder (``encode_spans``) and ``google.protobuf.json_format``, writes the ids in hex
as OTLP/JSON requires, and posts that.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import genai_prices
import openai
import pytest
from genai_prices import Usage
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ingest.models import Batch
from ingest.tests.helpers import drain, raw_rows
from ledger.pricing import PriceBook, cost_parts, usd_to_pusd
from tenancy.models import ApiKey, Project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk" / "python" / "tests"))
from provider_standin import CHAT_MODEL, RESPONSES_MODEL, Provider

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread must see the project

COLUMNS = (
    "event_id, timestamp, provider, model, response_model, feature, customer_id, environment, input_tokens, "
    "cache_read_tokens, output_tokens, reasoning_tokens, streamed, status, error_type, finish_reason, max_tokens, "
    "service_tier, latency_ms, cost_pusd, cost_source"
)


class OtlpJsonExporter(SpanExporter):
    """OTLP/JSON over HTTP, from the spans the SDK hands over (see the module docstring)."""

    def __init__(self, endpoint: str, headers: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.headers = {**headers, "Content-Type": "application/json"}
        self.answers: list[dict[str, Any]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        document = json_format.MessageToDict(encode_spans(spans))
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:  # the protobuf JSON mapping writes bytes in base64, OTLP/JSON in hex
                            span[key] = base64.b64decode(span[key]).hex()
        parts = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        try:
            conn.request("POST", parts.path, body=json.dumps(document).encode(), headers=self.headers)
            answer = conn.getresponse()
            self.answers.append(json.loads(answer.read()))
        finally:
            conn.close()
        return SpanExportResult.SUCCESS if answer.status == 200 else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


Exporters = Callable[[str, dict[str, str]], SpanExporter]
EXPORTERS: dict[str, Exporters] = {
    "protobuf": lambda url, headers: OTLPSpanExporter(endpoint=url, headers=headers),
    "protobuf-gzip": lambda url, headers: OTLPSpanExporter(endpoint=url, headers=headers, compression=Compression.Gzip),
    "json": OtlpJsonExporter,
}


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.close()


def tracer_provider(live_server: Any, key: str, encoding: str) -> tuple[TracerProvider, SpanExporter]:
    # The app's own resource: Meterline reads its attribution from resource attributes as well as spans.
    resource = Resource.create(
        {"service.name": "checkout", "deployment.environment.name": "staging", "meterline.customer_id": "acme"}
    )
    exporter = EXPORTERS[encoding](f"{live_server.url}/v1/otlp/v1/traces", {"Authorization": f"Bearer {key}"})
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    return traces, exporter


def run_calls(client: openai.OpenAI, provider: Provider, responses: bool) -> None:
    """What an app does: a chat call, a streamed one, (a Responses call,) and one the provider refuses."""
    messages: Any = [{"role": "user", "content": "Say hello"}]
    client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=50)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Hello!"
    if responses:
        client.responses.create(model="o3", input="Say hello", service_tier="flex")
    provider.fail_status = 429
    with pytest.raises(openai.RateLimitError):
        client.with_options(max_retries=0).chat.completions.create(model="gpt-4o", messages=messages)
    provider.fail_status = None


def catalogue_pusd(row: dict[str, Any], cache_read: int, reasoning: int = 0) -> int:
    """The catalogue's own calculator (genai_prices.calc_price) for the tokens the provider answered."""
    usage = Usage(input_tokens=row["input_tokens"], cache_read_tokens=cache_read, output_tokens=row["output_tokens"])
    when = row["timestamp"].replace(tzinfo=UTC) if row["timestamp"].tzinfo is None else row["timestamp"]
    price = genai_prices.calc_price(usage, row["model"], provider_id=row["provider"], genai_request_timestamp=when)
    return usd_to_pusd(Decimal(price.total_price))


def ledger_pusd(row: dict[str, Any]) -> int:
    """The ledger's price book (tier multipliers included) for a row's tokens at its own time."""
    ts_ms = int(row["timestamp"].replace(tzinfo=UTC).timestamp() * 1000)
    price = PriceBook().price(row["provider"], row["model"], row["service_tier"], ts_ms)
    parts = cost_parts(
        price, row["input_tokens"], row["cache_read_tokens"], 0, row["output_tokens"], row["reasoning_tokens"]
    )
    return parts[5]


def export_and_drain(traces: TracerProvider, project: Project, expected: int) -> list[dict[str, Any]]:
    assert traces.force_flush(30_000)
    traces.shutdown()
    assert sum(b.record_count for b in Batch.objects.filter(project=project)) == expected
    drain()
    return raw_rows(project, COLUMNS)  # in time order: the order the app made its calls


@pytest.mark.parametrize("encoding", ["protobuf", "protobuf-gzip", "json"])
def test_opentelemetry_openai_v2_calls_arrive_priced_exactly(
    live_server: Any, project: Project, ingest_key: str, provider: Provider, encoding: str
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    # given an app whose openai client is instrumented by the OpenTelemetry project's instrumentation
    traces, exporter = tracer_provider(live_server, ingest_key, encoding)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=traces)
    try:
        provider.cached = True
        client = openai.OpenAI(api_key="sk-standin", base_url=f"{provider.url}/v1", max_retries=0)
        # when it makes its calls and the spans are exported
        run_calls(client, provider, responses=False)
    finally:
        instrumentor.uninstrument()
    rows = export_and_drain(traces, project, expected=3)
    assert len(rows) == 3
    # then each call is one row, attributed from the resource and priced as the catalogue prices it
    plain, streamed, failed = rows
    for row in (plain, streamed):
        assert (row["provider"], row["model"], row["response_model"]) == ("openai", "gpt-4o", CHAT_MODEL)
        assert (row["feature"], row["customer_id"], row["environment"]) == ("checkout", "acme", "staging")
        assert (row["input_tokens"], row["output_tokens"], row["status"]) == (2006, 300, "ok")
        # this instrumentation does not report the cached part of a chat call's input: all of it is uncached
        assert row["cost_pusd"] == catalogue_pusd(row, cache_read=0) == 2006 * 2_500_000 + 300 * 10_000_000
        assert row["cost_source"] == "catalogue"
        assert row["latency_ms"] > 0
    assert (plain["finish_reason"], plain["max_tokens"], plain["service_tier"]) == ("stop", 50, "default")
    assert (failed["status"], failed["input_tokens"], failed["cost_pusd"]) == ("error", 0, 0)
    assert "RateLimitError" in failed["error_type"]
    if isinstance(exporter, OtlpJsonExporter):
        assert exporter.answers == [{}]  # every span was a model call: no partial_success


def test_openllmetry_calls_arrive_priced_exactly_cache_reads_and_reasoning_included(
    live_server: Any, project: Project, ingest_key: str, provider: Provider
) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    # given the same app instrumented by OpenLLMetry (which reports cache reads and reasoning tokens),
    # exporting every span twice: in protobuf to one project, in OTLP/JSON to another. (One run, as
    # this instrumentation leaves its Responses wrapper in place when uninstrumented.)
    other = Project.objects.create(organization=project.organization, name=f"{project.name}-json")
    traces, _ = tracer_provider(live_server, ingest_key, "protobuf")
    json_exporter = OtlpJsonExporter(f"{live_server.url}/v1/otlp/v1/traces",
                                      {"Authorization": f"Bearer {ApiKey.issue(other, ['ingest'])[1]}"})  # fmt: skip
    traces.add_span_processor(BatchSpanProcessor(json_exporter, schedule_delay_millis=60_000))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=traces)
    try:
        provider.cached = True
        client = openai.OpenAI(api_key="sk-standin", base_url=f"{provider.url}/v1", max_retries=0)
        with traces.get_tracer("app").start_as_current_span("handle request"):  # a parent span: not a model call
            run_calls(client, provider, responses=True)
    finally:
        instrumentor.uninstrument()
    rows = export_and_drain(traces, project, expected=4)
    # then both doors hold the same calls, each priced exactly
    assert raw_rows(other, COLUMNS) == rows
    plain, streamed, reasoning, failed = rows
    assert streamed["streamed"] is True
    assert plain["streamed"] is False
    for row in (plain, streamed):
        assert (row["model"], row["response_model"], row["input_tokens"], row["output_tokens"]) == (
            "gpt-4o", CHAT_MODEL, 2006, 300)  # fmt: skip
        # 2006 input of which 1920 cache reads (never counted twice) + 300 output
        assert row["cache_read_tokens"] == 1920
        expected = 86 * 2_500_000 + 1920 * 1_250_000 + 300 * 10_000_000
        assert row["cost_pusd"] == catalogue_pusd(row, cache_read=1920) == expected
        assert row["finish_reason"] == "stop"
    # the Responses call: reasoning inside output, the flex tier priced as the ledger prices it
    assert (reasoning["model"], reasoning["response_model"]) == ("o3", RESPONSES_MODEL)
    assert (reasoning["input_tokens"], reasoning["cache_read_tokens"]) == (2048, 1536)
    assert (reasoning["output_tokens"], reasoning["reasoning_tokens"]) == (900, 640)
    assert (reasoning["service_tier"], reasoning["finish_reason"]) == ("flex", "tool_calls")
    assert reasoning["cost_pusd"] == ledger_pusd(reasoning) > 0
    assert reasoning["cost_pusd"] < catalogue_pusd(reasoning, cache_read=1536)  # flex is cheaper than default
    assert (failed["status"], failed["error_type"], failed["cost_pusd"]) == ("error", "RateLimitError", 0)
    [answer] = json_exporter.answers
    assert answer["partialSuccess"] == {"rejectedSpans": "1", "errorMessage": "1 span without GenAI usage ignored"}
