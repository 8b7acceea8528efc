"""The GenAI span → CallRecord mapping: current names first, older and vendor names accepted."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from api.tests.test_otlp import attr
from ingest.genai_spans import Skipped, picked, to_record

START = 1_764_000_000_123_456_789  # ns


def span(status: Any = Status.STATUS_CODE_UNSET, trace_id: bytes = b"\x01" * 16) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=b"\x02" * 8,
        start_time_unix_nano=START,
        end_time_unix_nano=START + 2_000_000_000,
        status=Status(code=status),
    )


def mapped(attributes: dict[str, Any], **kwargs: Any) -> dict[str, Any] | Skipped:
    return to_record(span(**kwargs), picked({k: attr(k, v).value.SerializeToString() for k, v in attributes.items()}))


BASE = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}


def test_identity_time_and_latency_come_from_the_span() -> None:
    record = mapped(BASE)
    assert record == {
        "event_id": "01" * 16 + "02" * 8, "trace_id": "01" * 16, "timestamp": START // 1_000_000,
        "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "latency_ms": 2000.0,
    }  # fmt: skip


def test_older_semantic_convention_names_are_accepted() -> None:
    record = mapped({"gen_ai.system": "OpenAI", "gen_ai.response.model": "gpt-4o-2024-08-06",
                     "gen_ai.usage.prompt_tokens": 120, "gen_ai.usage.completion_tokens": 30,
                     "gen_ai.openai.response.service_tier": "flex"})  # fmt: skip
    assert isinstance(record, dict)
    # no request model: the response model names the call
    assert (record["provider"], record["model"]) == ("openai", "gpt-4o-2024-08-06")
    assert record["response_model"] == "gpt-4o-2024-08-06"
    assert (record["input_tokens"], record["output_tokens"], record["service_tier"]) == (120, 30, "flex")


def test_current_names_win_over_older_ones() -> None:
    record = mapped({**BASE, "gen_ai.system": "anthropic", "gen_ai.usage.prompt_tokens": 99,
                     "gen_ai.usage.output_tokens": 5, "gen_ai.usage.completion_tokens": 6})  # fmt: skip
    assert isinstance(record, dict)
    assert (record["provider"], record["input_tokens"], record["output_tokens"]) == ("openai", 10, 5)


def test_openllmetry_and_openlit_variants() -> None:
    openllmetry = mapped({"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
                          "llm.usage.prompt_tokens": 9000, "llm.usage.completion_tokens": 400,
                          "gen_ai.usage.cache_read_input_tokens": 5000,
                          "gen_ai.usage.cache_creation_input_tokens": 2000,
                          "llm.usage.reasoning_tokens": 100, "llm.is_streaming": True,
                          "llm.response.finish_reason": "end_turn", "llm.usage.total_tokens": 9400})  # fmt: skip
    assert isinstance(openllmetry, dict)
    assert {k: openllmetry[k] for k in ("provider", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                                        "output_tokens", "reasoning_tokens", "streamed", "finish_reason")} == {
        "provider": "anthropic", "input_tokens": 9000, "cache_read_tokens": 5000, "cache_write_tokens": 2000,
        "output_tokens": 400, "reasoning_tokens": 100, "streamed": True, "finish_reason": "stop"}  # fmt: skip
    openlit = mapped({**BASE, "gen_ai.usage.prompt_tokens_details.cached_tokens": 4, "gen_ai.usage.cost": 0.0123,
                      "gen_ai.server.time_to_first_token": 0.5})  # fmt: skip
    assert isinstance(openlit, dict)
    # OpenLIT's cost is its own estimate from its own price list: evidence in a tag, never the price
    assert (openlit["cache_read_tokens"], openlit["tags"], "cost_usd" in openlit) == (
        4, {"gen_ai.usage.cost": "0.0123"}, False)  # fmt: skip
    assert openlit["ttft_ms"] == 500.0


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["stop"], "stop"), (["end_turn"], "stop"), (["STOP"], "stop"), (["length"], "length"),
        (["max_tokens"], "length"), (["MAX_TOKENS"], "length"), (["tool_calls"], "tool_calls"),
        (["tool_use"], "tool_calls"), (["tool_call"], "tool_calls"), (["content_filter"], "content_filter"),
        (["SAFETY"], "content_filter"), (["error"], "error"), (["length", "stop"], "length"), (["mystery"], None),
    ],
)  # fmt: skip
def test_finish_reasons_map_to_the_record_values(reasons: list[str], expected: str | None) -> None:
    record = mapped({**BASE, "gen_ai.response.finish_reasons": reasons})
    assert isinstance(record, dict)
    assert record.get("finish_reason") == expected


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("gcp.gemini", "google"), ("gcp.vertex_ai", "google"), ("aws.bedrock", "aws"), ("azure.ai.openai", "azure"),
     ("mistral_ai", "mistral"), ("x_ai", "x-ai"), ("deepseek", "deepseek")],
)  # fmt: skip
def test_provider_names_are_the_catalogue_s(provider: str, expected: str) -> None:
    record = mapped({**BASE, "gen_ai.provider.name": provider})
    assert isinstance(record, dict)
    assert record["provider"] == expected


@pytest.mark.parametrize(
    ("attributes", "status", "expected"),
    [
        ({"error.type": "TimeoutError"}, Status.STATUS_CODE_ERROR, ("timeout", "TimeoutError")),
        ({"error.type": "asyncio.CancelledError"}, Status.STATUS_CODE_UNSET, ("cancelled", "asyncio.CancelledError")),
        ({}, Status.STATUS_CODE_ERROR, ("error", "error")),
        ({"error.type": "429"}, Status.STATUS_CODE_ERROR, ("error", "429")),
    ],
)
def test_status_comes_from_the_span_status_and_error_type(
    attributes: dict[str, Any], status: Any, expected: tuple[str, str]
) -> None:
    record = mapped({**BASE, **attributes}, status=status)
    assert isinstance(record, dict)
    assert (record["status"], record["error_type"]) == expected


def test_a_failed_call_without_usage_is_still_a_call_and_other_spans_are_ignored() -> None:
    no_usage = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"}
    failed = mapped(no_usage, status=Status.STATUS_CODE_ERROR)
    assert isinstance(failed, dict)
    assert (failed["status"], "input_tokens" in failed) == ("error", False)
    assert mapped(no_usage) == Skipped("no GenAI usage", ignored=True)
    assert mapped({"http.request.method": "GET"}, status=Status.STATUS_CODE_ERROR) == Skipped(
        "no GenAI usage", ignored=True
    )


def test_aggregate_spans_are_ignored_so_no_token_counts_twice() -> None:
    agent = mapped({**BASE, "gen_ai.operation.name": "invoke_agent"})
    workflow = mapped({**BASE, "traceloop.span.kind": "workflow"})
    assert isinstance(agent, Skipped)
    assert agent.ignored
    assert isinstance(workflow, Skipped)
    assert workflow.ignored


def test_a_span_that_cannot_be_a_call_says_why() -> None:
    assert mapped({"gen_ai.usage.input_tokens": 5, "gen_ai.request.model": "m"}) == Skipped(
        "no gen_ai.provider.name (or gen_ai.system)"
    )
    bad_id = mapped(BASE, trace_id=b"\x00" * 16)
    assert isinstance(bad_id, Skipped)
    assert not bad_id.ignored
    assert "trace_id" in bad_id.reason


def test_attribution_from_meterline_and_common_attributes() -> None:
    record = mapped({**BASE, "service.name": "unknown_service:python", "user.id": "u", "session.id": "s",
                     "deployment.environment": "old-env", "meterline.route_version": "v7", "meterline.route": "mini",
                     "meterline.traffic": "shadow", "meterline.attempt": 2, "meterline.tags.team": "search",
                     "meterline.nonsense": "x", "meterline.event_id": "not-this",
                     "gen_ai.input.messages": "secret"})  # fmt: skip
    assert isinstance(record, dict)
    assert "feature" not in record  # the SDK's default service name says nothing
    assert {k: record[k] for k in ("user_id", "session_id", "environment", "route_version", "route", "traffic",
                                   "attempt", "tags")} == {
        "user_id": "u", "session_id": "s", "environment": "old-env", "route_version": "v7", "route": "mini",
        "traffic": "shadow", "attempt": 2, "tags": {"team": "search"}}  # fmt: skip
    assert record["event_id"] == "01" * 16 + "02" * 8
    assert "secret" not in repr(record)  # content is never read


def test_ttft_is_seconds_and_marks_a_stream_and_integral_doubles_are_counts() -> None:
    record = mapped({**BASE, "gen_ai.usage.input_tokens": 10.0, "gen_ai.response.time_to_first_chunk": 0.125})
    assert isinstance(record, dict)
    assert (record["input_tokens"], record["ttft_ms"], record["streamed"]) == (10, 125.0, True)
    assert isinstance(record["input_tokens"], int)
