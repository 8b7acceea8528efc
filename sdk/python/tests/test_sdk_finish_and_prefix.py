"""finish_reason and the prompt prefix (hash, tokens, estimated), filled by the OpenAI and Anthropic
integrations through the real client libraries against the local stand-in provider, and by LiteLLM."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from typing import Any

import anthropic
import openai
import pytest
from meterline import Client
from meterline.fields import RecordError, build
from meterline.integrations import anthropic as meter_anthropic
from meterline.integrations import openai as meter_openai
from meterline.integrations.litellm import MeterlineCallback
from meterline.integrations.prefix import canonical, prefix_fields
from provider_standin import Provider
from sdk_testkit import ScriptedTransport

SYSTEM = "You are a terse assistant. " * 40
TOOLS: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
CLAUDE_TOOLS: Any = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
USER: Any = [{"role": "user", "content": "Say hello"}]
CHAT: Any = [{"role": "system", "content": SYSTEM}, *USER]


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


def oa(provider: Provider, rec: Recorded, **options: Any) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0)
    return meter_openai.instrument(client, recorder=rec.client.record, **options)


def claude(provider: Provider, rec: Recorded, **options: Any) -> Any:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0)
    return meter_anthropic.instrument(client, recorder=rec.client.record, **options)


def digest(system: Any, tools: Any) -> str:
    """The documented hash: SHA-256 of the sorted, compact JSON of the parts given."""
    prefix = {k: v for k, v in (("system", system), ("tools", tools)) if v}
    data = json.dumps(prefix, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


# --- finish_reason ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "expected"),
    [(None, "stop"), ("length", "length"), ("content_filter", "content_filter"), ("function_call", "tool_calls")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_finish_reasons(
    provider: Provider, rec: Recorded, answered: str | None, expected: str, stream: bool
) -> None:
    provider.finish = answered
    result = oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER, stream=stream)
    if stream:
        assert len(list(result)) == 4  # the app's chunks, the usage chunk kept from it
    [call] = rec.calls()
    assert call["finish_reason"] == expected


def test_chat_tool_calls_finish_as_tool_calls(provider: Provider, rec: Recorded) -> None:
    oa(provider, rec).chat.completions.create(model="gpt-4o", messages=USER, tools=TOOLS)
    assert rec.calls()[0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("incomplete", "expected"),
    [(None, "tool_calls"), ("max_output_tokens", "length"), ("content_filter", "content_filter")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_responses_finish_from_status_and_incomplete_details(
    provider: Provider, rec: Recorded, incomplete: str | None, expected: str, stream: bool
) -> None:
    # the stand-in's output holds a function call: a completed response finishes as tool_calls
    provider.incomplete = incomplete
    result = oa(provider, rec).responses.create(model="o3", input="hi", stream=stream)
    if stream:
        list(result)
    assert rec.calls()[0]["finish_reason"] == expected


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("refusal", "content_filter"), ("pause_turn", None)],
)  # fmt: skip
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_stop_reasons(
    provider: Provider, rec: Recorded, stop_reason: str, expected: str | None, stream: bool
) -> None:
    provider.finish = stop_reason
    result = claude(provider, rec).messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=USER, stream=stream
    )
    if stream:
        list(result)
    [call] = rec.calls()
    assert call.get("finish_reason") == expected


def test_the_anthropic_stream_helper_records_the_stop_reason(provider: Provider, rec: Recorded) -> None:
    provider.finish = "max_tokens"
    with claude(provider, rec).messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=USER) as stream:
        stream.until_done()
    assert rec.calls()[0]["finish_reason"] == "length"


def test_a_failed_call_finishes_as_error_and_a_timeout_not(provider: Provider, rec: Recorded) -> None:
    provider.fail_status = 500
    with pytest.raises(openai.InternalServerError):
        oa(provider, rec).chat.completions.create(model="gpt-4o", messages=CHAT)
    with pytest.raises(anthropic.InternalServerError):
        claude(provider, rec).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    provider.fail_status, provider.delay = None, 1.0
    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        meter_openai.instrument(client, recorder=rec.client.record).chat.completions.create(model="m", messages=USER)
    first, second, timed_out = rec.calls()
    assert (first["finish_reason"], second["finish_reason"]) == ("error", "error")
    assert "finish_reason" not in timed_out
    # no usage came back: the prefix is kept, its size capped at the input (0)
    assert (first["prompt_prefix_hash"], first["prompt_prefix_tokens"]) == (digest([CHAT[0]], None), 0)


# --- the prompt prefix ------------------------------------------------------------------------


def test_chat_prefix_is_the_hash_of_system_messages_and_tools_with_an_estimated_size(
    provider: Provider, rec: Recorded
) -> None:
    client = oa(provider, rec)
    client.chat.completions.create(model="gpt-4o", messages=CHAT, tools=TOOLS)
    client.chat.completions.create(model="gpt-4o", messages=[*CHAT, {"role": "user", "content": "other"}], tools=TOOLS)
    client.chat.completions.create(model="gpt-4o", messages=CHAT)
    client.chat.completions.create(model="gpt-4o", messages=USER)
    first, longer, no_tools, bare = rec.calls()
    size = len(canonical([CHAT[0]], TOOLS))
    assert first["prompt_prefix_hash"] == digest([CHAT[0]], TOOLS)
    assert (first["prompt_prefix_tokens"], first["prompt_prefix_tokens_estimated"]) == (math.ceil(size / 4), True)
    assert longer["prompt_prefix_hash"] == first["prompt_prefix_hash"]  # later messages are not the prefix
    assert no_tools["prompt_prefix_hash"] not in ("", first["prompt_prefix_hash"])
    assert not {"prompt_prefix_hash", "prompt_prefix_tokens", "prompt_prefix_tokens_estimated"} & set(bare)
    # no prompt content is recorded: only the hash and the count
    assert SYSTEM not in json.dumps(rec.calls())
    # and the request itself is unchanged
    assert provider.requests[0]["messages"] == CHAT


def test_the_estimate_is_capped_at_the_input_tokens(provider: Provider, rec: Recorded) -> None:
    # Anthropic's uncached answer has 50 input tokens: the prefix estimate (~300) may not exceed them
    claude(provider, rec).messages.create(
        model="claude-haiku-4-5", max_tokens=10, system=SYSTEM, tools=CLAUDE_TOOLS, messages=USER
    )
    [call] = rec.calls()
    assert call["prompt_prefix_hash"] == digest(SYSTEM, CLAUDE_TOOLS)
    assert (call["input_tokens"], call["prompt_prefix_tokens"], call["prompt_prefix_tokens_estimated"]) == (
        50,
        50,
        True,
    )


def test_the_apps_own_counter_sets_the_size(provider: Provider, rec: Recorded) -> None:
    seen: list[tuple[Any, Any]] = []

    def count(system: Any, tools: Any) -> int:
        seen.append((system, tools))
        return 1200

    provider.cached = True  # 7,050 input tokens
    client = claude(provider, rec, count_prefix_tokens=count)
    client.with_options(timeout=5).messages.create(
        model="claude-haiku-4-5", max_tokens=10, system=SYSTEM, messages=USER
    )
    [call] = rec.calls()
    assert seen == [(SYSTEM, None)]
    assert (call["prompt_prefix_tokens"], call["prompt_prefix_tokens_estimated"]) == (1200, False)


def test_responses_prefix_is_instructions_system_input_and_tools(provider: Provider, rec: Recorded) -> None:
    items: Any = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    asyncio.run(
        meter_openai.instrument(
            openai.AsyncOpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0),
            recorder=rec.client.record,
        ).responses.create(model="o3", instructions=SYSTEM, input=items, tools=tools)
    )
    [call] = rec.calls()
    assert call["prompt_prefix_hash"] == digest([SYSTEM, items[0]], tools)
    assert call["prompt_prefix_tokens_estimated"] is True


def test_a_failing_counter_falls_back_to_the_estimate() -> None:
    def broken(system: Any, tools: Any) -> int:
        raise RuntimeError("no tokenizer")

    fields = prefix_fields("sys", None, broken)
    assert (fields["prompt_prefix_tokens"], fields["prompt_prefix_tokens_estimated"]) == (math.ceil(16 / 4), True)
    assert canonical("sys", None) == b'{"system":"sys"}'


# --- LiteLLM ----------------------------------------------------------------------------------


def test_litellm_fills_finish_reason_and_prefix() -> None:
    transport = ScriptedTransport()
    callback = MeterlineCallback(recorder=Client("k", sync=True, transport=transport).record)
    usage = {"prompt_tokens": 2000, "completion_tokens": 10}
    kwargs: dict[str, Any] = {"model": "gpt-4o", "custom_llm_provider": "openai", "messages": CHAT,
                              "optional_params": {"tools": TOOLS}}  # fmt: skip
    response = {"id": "x", "model": "gpt-4o", "usage": usage, "choices": [{"finish_reason": "length"}]}
    callback.log_success_event(kwargs, response, 0.0, 1.0)
    own = {**kwargs, "metadata": {"meterline": {"prompt_prefix_tokens": 900}}}
    callback.log_success_event(own, {**response, "choices": [{"finish_reason": "end_turn"}]}, 0.0, 1.0)
    callback.log_failure_event({**kwargs, "exception": ValueError("boom")}, None, 0.0, 1.0)
    estimated, counted, failed = transport.delivered()
    assert estimated["finish_reason"] == "length"
    assert estimated["prompt_prefix_hash"] == digest([CHAT[0]], TOOLS)
    assert estimated["prompt_prefix_tokens_estimated"] is True
    assert (counted["finish_reason"], counted["prompt_prefix_tokens"], counted["prompt_prefix_tokens_estimated"]) == (
        "stop", 900, False
    )  # fmt: skip
    assert (failed["finish_reason"], failed["prompt_prefix_tokens"]) == ("error", 0)


# --- the fields as the SDK checks them ------------------------------------------------------


def test_the_added_fields_are_checked_like_the_server_does() -> None:
    base = {"provider": "p", "model": "m", "input_tokens": 100}
    ok = build({}, {**base, "finish_reason": "length", "prompt_prefix_hash": "a" * 64, "prompt_prefix_tokens": 100,
                    "prompt_prefix_tokens_estimated": True}, 0)  # fmt: skip
    assert (ok["finish_reason"], ok["prompt_prefix_tokens"], ok["prompt_prefix_tokens_estimated"]) == (
        "length",
        100,
        True,
    )
    with pytest.raises(RecordError, match="finish_reason must be one of stop, length"):
        build({}, {**base, "finish_reason": "end_turn"}, 0)
    with pytest.raises(RecordError, match="prompt_prefix_tokens may not exceed input_tokens"):
        build({}, {**base, "prompt_prefix_tokens": 101}, 0)
    with pytest.raises(RecordError, match="prompt_prefix_hash must be 0 to 64"):
        build({}, {**base, "prompt_prefix_hash": "a" * 65}, 0)
    with pytest.raises(RecordError, match="prompt_prefix_tokens_estimated must be a bool"):
        build({}, {**base, "prompt_prefix_tokens_estimated": 1}, 0)
