"""The provider's rate-limit headers, read by the OpenAI and Anthropic integrations through the real
client libraries from the local stand-in provider's answers; a 429 is recorded as ``rate_limit``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anthropic
import openai
import pytest
from meterline.fields import RecordError, build
from meterline.integrations import anthropic as meter_anthropic
from meterline.integrations import openai as meter_openai
from meterline.integrations.ratelimits import OPENAI_HEADERS, limit_fields
from provider_standin import Provider
from sdk_testkit import Recorded

USER: Any = [{"role": "user", "content": "Say hello"}]
OPENAI_LIMITS = {"ratelimit_limit_tokens": 30_000_000, "ratelimit_limit_requests": 10_000}
ANTHROPIC_LIMITS = {
    "ratelimit_limit_requests": 10_000, "ratelimit_limit_tokens": 2_400_000,
    "ratelimit_limit_input_tokens": 2_000_000, "ratelimit_limit_output_tokens": 400_000,
}  # fmt: skip


@pytest.fixture
def rec() -> Recorded:
    return Recorded()


def oa(provider: Provider, rec: Recorded, retries: int = 0) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=retries)
    return meter_openai.instrument(client, recorder=rec.client.record)


def claude(provider: Provider, rec: Recorded, retries: int = 0) -> Any:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=retries)
    return meter_anthropic.instrument(client, recorder=rec.client.record)


def limits(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k.startswith("ratelimit_")}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_records_the_rate_limit_headers(provider: Provider, rec: Recorded, stream: bool) -> None:
    result = oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER, stream=stream)
    if stream:
        list(result)
    oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER)
    first, second = rec.calls()
    assert limits(first) == {**OPENAI_LIMITS, "ratelimit_remaining_requests": 9_999,
                             "ratelimit_remaining_tokens": 30_000_000 - 2306}  # fmt: skip
    assert limits(second)["ratelimit_remaining_requests"] == 9_998
    assert first["status"] == "ok"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses_record_the_rate_limit_headers(provider: Provider, rec: Recorded, stream: bool) -> None:
    provider.limit_tokens = 150_000_000
    result = oa(provider, rec).responses.create(model="o3", input="hi", stream=stream)
    if stream:
        list(result)
    assert limits(rec.calls()[0])["ratelimit_limit_tokens"] == 150_000_000


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_records_its_rate_limit_headers(provider: Provider, rec: Recorded, stream: bool) -> None:
    client = claude(provider, rec)
    result = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER, stream=stream)
    if stream:
        list(result)
    assert limits(rec.calls()[0]) == {**ANTHROPIC_LIMITS, "ratelimit_remaining_requests": 9_999,
                                      "ratelimit_remaining_tokens": 2_400_000 - 2306}  # fmt: skip


def test_the_anthropic_stream_helper_records_the_rate_limit_headers(provider: Provider, rec: Recorded) -> None:
    with claude(provider, rec).messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=USER) as stream:
        stream.until_done()
    assert {k: limits(rec.calls()[0])[k] for k in ANTHROPIC_LIMITS} == ANTHROPIC_LIMITS


def test_a_429_is_recorded_as_rate_limit_with_the_headers_of_the_refusal(provider: Provider, rec: Recorded) -> None:
    provider.rate_limited = 2
    with pytest.raises(openai.RateLimitError):
        oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(anthropic.RateLimitError):
        claude(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    refused_openai, refused_anthropic = rec.calls()
    for call in (refused_openai, refused_anthropic):
        assert (call["status"], call["error_type"]) == ("error", "rate_limit")
        assert call["ratelimit_remaining_requests"] == 0
        assert call["ratelimit_limit_requests"] == 10_000


def test_a_429_retried_by_the_client_records_the_answer_that_came_last(provider: Provider, rec: Recorded) -> None:
    provider.rate_limited = 1
    oa(provider, rec, retries=2).chat.completions.create(model="gpt-4o", messages=USER)
    [call] = rec.calls()
    assert call["status"] == "ok"
    assert call["ratelimit_remaining_requests"] == 10_000 - 2  # the success after the refusal, not the 429
    assert len(provider.requests) == 2


def test_another_error_is_not_a_rate_limit(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 500
    with pytest.raises(openai.InternalServerError):
        oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER)
    assert rec.calls()[0]["error_type"] == "InternalServerError"


def test_async_clients_record_the_headers_of_their_own_call(provider: Provider, rec: Recorded) -> None:
    client = meter_openai.instrument(
        openai.AsyncOpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0),
        recorder=rec.client.record,
    )
    aclaude = meter_anthropic.instrument(
        anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0),
        recorder=rec.client.record,
    )

    async def both() -> None:
        await asyncio.gather(
            client.chat.completions.create(model="gpt-4o", messages=USER),
            aclaude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER),
        )

    asyncio.run(both())
    by_provider = {call["provider"]: limits(call) for call in rec.calls()}
    assert "ratelimit_limit_input_tokens" in by_provider["anthropic"]
    assert "ratelimit_limit_input_tokens" not in by_provider["openai"]
    assert by_provider["openai"]["ratelimit_limit_tokens"] == 30_000_000


def test_threads_sharing_a_client_each_record_their_own_answer(provider: Provider, rec: Recorded) -> None:
    client = oa(provider, rec)
    threads = [
        threading.Thread(target=lambda: client.chat.completions.create(model="gpt-4o", messages=USER)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    remaining = sorted(call["ratelimit_remaining_requests"] for call in rec.calls())
    assert len(remaining) == 6
    assert len(set(remaining)) == 6  # each call kept the headers of its own answer


def test_a_copied_client_is_hooked_once_and_still_records(provider: Provider, rec: Recorded) -> None:
    client = oa(provider, rec)
    copy = client.with_options(timeout=5)
    copy.chat.completions.create(model="gpt-4o", messages=USER)
    assert sum(getattr(h, "__meterline__", False) for h in copy._client.event_hooks["response"]) == 1
    assert limits(rec.calls()[0])["ratelimit_limit_requests"] == 10_000


def test_odd_header_values_are_left_out() -> None:
    headers = {"x-ratelimit-limit-tokens": "30000000", "x-ratelimit-limit-requests": "1.5",
               "x-ratelimit-remaining-tokens": "-3", "x-ratelimit-remaining-requests": str(10**13)}  # fmt: skip
    assert limit_fields(headers, OPENAI_HEADERS) == {"ratelimit_limit_tokens": 30_000_000}


def test_the_sdk_checks_the_rate_limit_fields() -> None:
    with pytest.raises(RecordError, match="ratelimit_limit_tokens"):
        build({}, {"provider": "p", "model": "m", "ratelimit_limit_tokens": -1}, 1_763_640_000_000_000_000)
