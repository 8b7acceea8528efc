"""The OpenAI integration through the real ``openai`` client against the local stand-in provider."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pydantic
import pytest
from meterline import Client
from meterline.integrations.openai import instrument
from provider_standin import CHAT_MODEL, RESPONSES_MODEL, Provider
from sdk_testkit import ScriptedTransport

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]  # the SDKs' TypedDict params


class Recorded:
    """A sync-mode client on a scripted transport: every record is checked as the server would."""

    def __init__(self) -> None:
        self.transport = ScriptedTransport()
        self.client = Client("k", sync=True, transport=self.transport)

    def calls(self) -> list[dict[str, Any]]:
        delivered: list[dict[str, Any]] = self.transport.delivered()
        return delivered

    def one(self) -> dict[str, Any]:
        [call] = self.calls()
        return call


@pytest.fixture
def rec() -> Recorded:
    return Recorded()


# The helpers return Any: the tests pass plain dicts where openai types TypedDicts, and its
# overloads type create() as a union of result and stream.
def sync_client(provider: Provider, rec: Recorded, **options: Any) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0, **options)
    return instrument(client, recorder=rec.client.record)


def async_client(provider: Provider, rec: Recorded) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0)
    return instrument(client, recorder=rec.client.record)


@pytest.mark.parametrize("cached", [False, True])
def test_chat_completion_records_all_token_kinds(provider: Provider, rec: Recorded, cached: bool) -> None:
    provider.cached = cached
    client = sync_client(provider, rec)
    result = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=512)
    assert result.choices[0].message.content == "Hello!"  # the app's result is untouched
    call = rec.one()
    assert (call["provider"], call["model"], call["response_model"]) == ("openai", "gpt-4o", CHAT_MODEL)
    assert call["input_tokens"] == 2006  # the prompt total, cached tokens included
    assert call["cache_read_tokens"] == (1920 if cached else 0)
    assert (call["output_tokens"], call["reasoning_tokens"]) == (300, 0)
    assert (call["status"], call["streamed"], call["max_tokens"]) == ("ok", False, 512)
    assert call["request_id"] == "req_standin_1"
    assert call["latency_ms"] > 0
    assert "ttft_ms" not in call


def test_chat_tool_calls_are_counted(provider: Provider, rec: Recorded) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    sync_client(provider, rec).chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    assert rec.one()["tool_calls"] == 2


@pytest.mark.parametrize("cached", [False, True])
def test_streamed_chat_asks_for_usage_and_records_it(provider: Provider, rec: Recorded, cached: bool) -> None:
    provider.cached = cached
    stream = sync_client(provider, rec).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen = []
    for chunk in stream:  # the common idiom: every chunk the app sees has a choice
        seen.append(chunk)
        _ = chunk.choices[0].delta
    assert "".join(chunk.choices[0].delta.content or "" for chunk in seen) == "Hello!"
    assert provider.requests[-1]["stream_options"] == {"include_usage": True}
    # Exactly the content chunks (role, two deltas, finish): the usage chunk the wrapper asked for is kept back.
    assert [chunk.choices[0].finish_reason for chunk in seen] == [None, None, None, "stop"]
    assert all(chunk.usage is None for chunk in seen)
    call = rec.one()
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"]) == (
        2006, 1920 if cached else 0, 300)  # fmt: skip
    assert call["streamed"] is True
    assert call["status"] == "ok"
    assert 0 <= call["ttft_ms"] <= call["latency_ms"]


def test_a_caller_can_opt_out_of_streamed_usage(provider: Provider, rec: Recorded) -> None:
    client = sync_client(provider, rec)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    )
    for _ in stream:
        pass
    assert provider.requests[-1]["stream_options"] == {"include_usage": False}
    assert "input_tokens" not in rec.one()  # what the opt-out costs: no usage to record


def test_instrumenting_without_include_usage_leaves_the_request_alone(provider: Provider, rec: Recorded) -> None:
    client = instrument(
        openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0),
        recorder=rec.client.record,
        include_usage=False,
    )
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "stream_options" not in provider.requests[-1]
    assert len(chunks) == 4
    assert (rec.one()["status"], "input_tokens" in rec.one()) == ("ok", False)


def test_a_caller_who_asked_for_usage_gets_every_chunk(provider: Provider, rec: Recorded) -> None:
    client = sync_client(provider, rec)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 5
    assert (chunks[-1].choices, chunks[-1].usage.prompt_tokens) == ([], 2006)  # theirs to read, as asked
    assert rec.one()["input_tokens"] == 2006


def test_driving_the_stream_with_next_skips_the_usage_chunk(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    stream = sync_client(provider, rec).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    finishes = [next(stream).choices[0].finish_reason for _ in range(4)]
    assert finishes == [None, None, None, "stop"]
    assert rec.calls() == []  # not ended yet: the usage chunk is still to come
    with pytest.raises(StopIteration):
        next(stream)  # reads (and keeps back) the usage chunk, then the end
    call = rec.one()
    assert (call["status"], call["input_tokens"], call["cache_read_tokens"]) == ("ok", 2006, 1920)


def test_a_stream_used_as_a_context_manager_and_closed_early_is_cancelled(provider: Provider, rec: Recorded) -> None:
    client = sync_client(provider, rec)
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    assert rec.one()["status"] == "cancelled"


@pytest.mark.parametrize("cached", [False, True])
def test_responses_api_records_cached_and_reasoning_tokens(provider: Provider, rec: Recorded, cached: bool) -> None:
    provider.cached = cached
    result = sync_client(provider, rec).responses.create(model="o3", input="Say hi", max_output_tokens=2000)
    assert result.output_text == "Hi"
    call = rec.one()
    assert (call["model"], call["response_model"]) == ("o3", RESPONSES_MODEL)
    assert call["input_tokens"] == 2048
    assert call["cache_read_tokens"] == (1536 if cached else 0)
    assert (call["output_tokens"], call["reasoning_tokens"]) == (900, 640)
    assert (call["tool_calls"], call["service_tier"], call["max_tokens"]) == (1, "flex", 2000)


def test_streamed_responses_record_usage_and_ttft(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    stream = sync_client(provider, rec).responses.create(model="o3", input="Say hi", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "stream_options" not in provider.requests[-1]  # the Responses API always reports usage
    call = rec.one()
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"], call["reasoning_tokens"]) == (
        2048, 1536, 900, 640)  # fmt: skip
    assert call["streamed"] is True
    assert 0 <= call["ttft_ms"] <= call["latency_ms"]


def test_async_client_plain_and_streamed(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = async_client(provider, rec)

    async def main() -> str:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
        await client.responses.create(model="o3", input="hi")
        assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]  # no usage chunk
        return "".join(c.choices[0].delta.content or "" for c in chunks)

    assert asyncio.run(main()) == "Hello!"
    plain, streamed, response = rec.calls()
    assert (plain["input_tokens"], plain["cache_read_tokens"], plain["streamed"]) == (2006, 1920, False)
    assert (streamed["input_tokens"], streamed["cache_read_tokens"], streamed["streamed"]) == (2006, 1920, True)
    assert streamed["ttft_ms"] <= streamed["latency_ms"]
    assert (response["input_tokens"], response["reasoning_tokens"]) == (2048, 640)


def test_an_error_is_recorded_and_reraised_unchanged(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 400
    client = sync_client(provider, rec)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 400
    call = rec.one()
    assert (call["status"], call["error_type"]) == ("error", "BadRequestError")
    assert "input_tokens" not in call


def test_an_async_error_is_recorded_and_reraised(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 500
    client = async_client(provider, rec)
    with pytest.raises(openai.InternalServerError):
        asyncio.run(client.responses.create(model="o3", input="hi"))
    assert (rec.one()["status"], rec.one()["error_type"]) == ("error", "InternalServerError")


def test_a_timeout_is_recorded_as_timeout(provider: Provider, rec: Recorded) -> None:
    provider.delay = 1.0
    client = sync_client(provider, rec, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert (rec.one()["status"], rec.one()["error_type"]) == ("timeout", "APITimeoutError")


def test_instrumenting_twice_records_once(provider: Provider, rec: Recorded) -> None:
    client = instrument(sync_client(provider, rec), recorder=rec.client.record)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(rec.calls()) == 1


def test_the_stream_helpers_go_through_the_wrap(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = sync_client(provider, rec)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    with client.responses.stream(model="o3", input="hi") as events:
        response = events.get_final_response()
    assert (final.choices[0].message.content, response.output_text) == ("Hello!", "Hi")
    chat, responses = rec.calls()
    assert (chat["input_tokens"], chat["cache_read_tokens"], chat["streamed"]) == (2006, 1920, True)
    assert (responses["input_tokens"], responses["reasoning_tokens"], responses["streamed"]) == (2048, 640, True)


def test_the_async_stream_driven_with_anext_skips_the_usage_chunk(provider: Provider, rec: Recorded) -> None:
    client = async_client(provider, rec)

    async def main() -> list[Any]:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        seen = [(await stream.__anext__()).choices[0] for _ in range(4)]
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        return seen

    assert [choice.finish_reason for choice in asyncio.run(main())] == [None, None, None, "stop"]
    assert (rec.one()["status"], rec.one()["input_tokens"]) == ("ok", 2006)


def test_the_chat_stream_helper_sees_no_usage_chunk_it_did_not_ask_for(provider: Provider, rec: Recorded) -> None:
    client = sync_client(provider, rec)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert kinds.count("chunk") == 4  # the helper's raw chunks: the content ones only
    assert final.usage is None  # as unwrapped: the app did not ask for usage
    assert rec.one()["input_tokens"] == 2006


class Greeting(pydantic.BaseModel):
    greeting: str


def test_structured_outputs_parse_is_recorded_like_create(provider: Provider, rec: Recorded) -> None:
    provider.cached = True
    client = sync_client(provider, rec)
    result = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Greeting)
    assert result.choices[0].message.parsed == Greeting(greeting="Hello!")  # the app's result is untouched
    assert provider.requests[-1]["response_format"]["type"] == "json_schema"
    response = client.responses.parse(model="o3", input="Say hi", max_output_tokens=2000)
    assert response.output_text == "Hi"
    chat, responses = rec.calls()
    assert (chat["model"], chat["input_tokens"], chat["cache_read_tokens"], chat["output_tokens"]) == (
        "gpt-4o", 2006, 1920, 300)  # fmt: skip
    assert (chat["status"], chat["streamed"], chat["request_id"]) == ("ok", False, "req_standin_1")
    assert (responses["input_tokens"], responses["reasoning_tokens"], responses["max_tokens"]) == (2048, 640, 2000)


def test_async_parse_is_recorded(provider: Provider, rec: Recorded) -> None:
    client = async_client(provider, rec)
    result = asyncio.run(client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Greeting))
    assert result.choices[0].message.parsed == Greeting(greeting="Hello!")
    assert (rec.one()["status"], rec.one()["input_tokens"]) == ("ok", 2006)


def test_clients_derived_with_options_or_copy_are_recorded(provider: Provider, rec: Recorded) -> None:
    client = sync_client(provider, rec)
    derived = [client.with_options(timeout=30), client.copy(max_retries=0), client.with_options(timeout=5).copy()]
    for other in derived:
        assert other is not client
        other.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = other.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert [chunk.choices[0].finish_reason for chunk in stream][-1] == "stop"  # same settings: usage chunk hidden
        other.responses.create(model="o3", input="hi")
    calls = rec.calls()
    assert len(calls) == 9
    assert [call["input_tokens"] for call in calls] == [2006, 2006, 2048] * 3
    assert [call["streamed"] for call in calls] == [False, True, False] * 3
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(rec.calls()) == 10  # the original is still recorded, once


def test_derived_clients_keep_the_instrument_settings(provider: Provider, rec: Recorded) -> None:
    client = instrument(
        openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0),
        recorder=rec.client.record,
        provider="azure",
        include_usage=False,
    )
    list(client.with_options(timeout=30).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "stream_options" not in provider.requests[-1]
    assert rec.one()["provider"] == "azure"


def test_an_async_client_with_options_is_recorded(provider: Provider, rec: Recorded) -> None:
    client = async_client(provider, rec)

    async def main() -> None:
        await client.with_options(timeout=30).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.copy().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert [c.choices[0].finish_reason async for c in stream][-1] == "stop"

    asyncio.run(main())
    assert [(c["input_tokens"], c["streamed"]) for c in rec.calls()] == [(2006, False), (2006, True)]
