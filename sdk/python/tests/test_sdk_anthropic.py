"""The Anthropic integration through the real ``anthropic`` client against the local stand-in provider."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from meterline import Client
from meterline.integrations.anthropic import instrument
from provider_standin import CLAUDE_MODEL, Provider
from sdk_testkit import ScriptedTransport

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]  # the SDKs' TypedDict params


class Recorded:
    def __init__(self) -> None:
        self.transport = ScriptedTransport()
        self.client = Client("k", sync=True, transport=self.transport)

    def calls(self) -> list[dict[str, Any]]:
        delivered: list[dict[str, Any]] = self.transport.delivered()
        return delivered


@pytest.fixture
def rec() -> Recorded:
    return Recorded()


# Any, as in test_sdk_openai: plain dicts for TypedDict params, and create() typed as a union.
def sync_client(provider: Provider, rec: Recorded) -> Any:
    return instrument(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0), recorder=rec.client.record
    )


def async_client(provider: Provider, rec: Recorded) -> Any:
    return instrument(
        anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0),
        recorder=rec.client.record,
    )


def tokens(call: dict[str, Any]) -> tuple[int, int, int, int]:
    return call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"], call["output_tokens"]


# Anthropic's input_tokens (50) EXCLUDES the cache: the record's input is the total, 50 + 5000 + 2000.
CACHED = (7050, 5000, 2000, 100)
UNCACHED = (50, 0, 0, 100)


@pytest.mark.parametrize(("cached", "expected"), [(False, UNCACHED), (True, CACHED)])
def test_message_records_input_as_the_total_with_cache_parts(
    provider: Provider, rec: Recorded, cached: bool, expected: tuple[int, int, int, int]
) -> None:
    provider.cached = cached
    message = sync_client(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES)
    assert message.content[0].text == "Hi"
    [call] = rec.calls()
    assert tokens(call) == expected
    assert (call["provider"], call["model"], call["response_model"]) == ("anthropic", "claude-haiku-4-5", CLAUDE_MODEL)
    assert (call["max_tokens"], call["service_tier"], call["status"], call["streamed"]) == (
        1024,
        "default",
        "ok",
        False,
    )
    assert call["request_id"] == "req_standin_1"


def test_tool_use_blocks_are_counted(provider: Provider, rec: Recorded) -> None:
    tools = [{"name": "lookup", "description": "look up", "input_schema": {"type": "object"}}]
    sync_client(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, tools=tools)
    assert rec.calls()[0]["tool_calls"] == 1


@pytest.mark.parametrize(("cached", "expected"), [(False, UNCACHED), (True, CACHED)])
def test_streamed_message_records_usage_from_start_and_delta(
    provider: Provider, rec: Recorded, cached: bool, expected: tuple[int, int, int, int]
) -> None:
    provider.cached = cached
    stream = sync_client(provider, rec).messages.create(
        model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES, stream=True
    )
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == "Hello"
    [call] = rec.calls()
    assert tokens(call) == expected  # output from message_delta (100), not message_start's 1
    assert call["streamed"] is True
    assert 0 <= call["ttft_ms"] <= call["latency_ms"]


def test_async_plain_and_streamed(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = async_client(provider, rec)

    async def main() -> None:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, stream=True)
        async with stream:
            async for _ in stream:
                pass

    asyncio.run(main())
    plain, streamed = rec.calls()
    assert tokens(plain) == CACHED
    assert tokens(streamed) == CACHED
    assert (plain["streamed"], streamed["streamed"], streamed["status"]) == (False, True, "ok")


def test_an_error_is_recorded_and_reraised_unchanged(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 400
    with pytest.raises(anthropic.BadRequestError) as caught:
        sync_client(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    assert caught.value.status_code == 400
    [call] = rec.calls()
    assert (call["status"], call["error_type"]) == ("error", "BadRequestError")


def test_an_async_overload_is_recorded_and_reraised(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 529
    with pytest.raises(anthropic.APIStatusError):
        asyncio.run(
            async_client(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
        )
    assert rec.calls()[0]["status"] == "error"


def test_the_stream_helper_is_recorded_too(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = sync_client(provider, rec)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello"
    assert final.usage.output_tokens == 100
    [call] = rec.calls()
    assert tokens(call) == CACHED
    assert (call["streamed"], call["status"], call["max_tokens"]) == (True, "ok", 1024)
    assert 0 <= call["ttft_ms"] <= call["latency_ms"]


def test_the_async_stream_helper_left_early_is_cancelled(provider: Provider, rec: Recorded) -> None:
    client = async_client(provider, rec)

    async def main() -> None:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES) as stream:
            async for _ in stream:
                break

    asyncio.run(main())
    [call] = rec.calls()
    assert (call["status"], call["streamed"]) == ("cancelled", True)


def test_clients_derived_with_options_or_copy_are_recorded(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = sync_client(provider, rec)
    for other in (client.with_options(timeout=30), client.copy(max_retries=0), client.with_options().copy()):
        assert other is not client
        other.messages.create(model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES)
        with other.messages.stream(model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES) as stream:
            assert stream.get_final_text() == "Hello"
    assert [(tokens(c), c["streamed"]) for c in rec.calls()] == [(CACHED, False), (CACHED, True)] * 3


def test_derived_clients_keep_the_instrument_settings(provider: Provider, rec: Recorded) -> None:
    client = instrument(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0),
        recorder=rec.client.record,
        provider="bedrock",
    )
    client.with_options(timeout=30).messages.create(model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES)
    [call] = rec.calls()
    assert call["provider"] == "bedrock"


def test_an_async_client_with_options_is_recorded(provider: Provider, rec: Recorded) -> None:
    client = async_client(provider, rec)

    async def main() -> None:
        await client.with_options(timeout=30).messages.create(
            model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES
        )
        stream = await client.copy().messages.create(
            model="claude-haiku-4-5", max_tokens=1024, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass

    asyncio.run(main())
    assert [(tokens(c), c["streamed"]) for c in rec.calls()] == [(UNCACHED, False), (UNCACHED, True)]
