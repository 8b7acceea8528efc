"""The LiteLLM callback inside the real LiteLLM: ``litellm.completion`` and ``acompletion``, streamed
or not, for the OpenAI and Anthropic shapes, against the local stand-in provider.

LiteLLM is pinned (requirements-dev.in / requirements.lock: 1.110.2, released 2026-11-20, a month
after the compromised 1.107.0, whose wheel had been pulled; its RECORD lists no ``.pth`` file). It
is imported with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (set in conftest.py, before any import), so it
reads its bundled price map instead of fetching one: nothing here reaches the internet.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from meterline import Client
from meterline.integrations.litellm import MeterlineCallback
from provider_standin import CHAT_MODEL, CLAUDE_MODEL, Provider
from sdk_testkit import ScriptedTransport

PROMPT = "a prompt that must never be shipped"
MESSAGES = [{"role": "user", "content": PROMPT}]
# (model for LiteLLM, api_base suffix, the record's provider and model, its tokens: input, read, write, output)
SHAPES = {
    "openai": ("openai/gpt-4o", "/v1", "openai", "gpt-4o", (2006, 1920, 0, 300)),
    # Anthropic's input_tokens (50) exclude the cache: the record's input is the total 50 + 5000 + 2000
    "anthropic": ("anthropic/claude-haiku-4-5", "", "anthropic", "claude-haiku-4-5", (7050, 5000, 2000, 100)),
}


class Recorded:
    def __init__(self) -> None:
        self.transport = ScriptedTransport()
        self.client = Client("k", sync=True, transport=self.transport)

    def calls(self, expected: int = 1, within: float = 15.0) -> list[dict[str, Any]]:
        """The records delivered once ``expected`` have arrived (LiteLLM calls back from its own
        worker thread or task, after the answer), waiting at most ``within`` seconds."""
        deadline = time.monotonic() + within
        while len(self.transport.delivered()) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        delivered: list[dict[str, Any]] = self.transport.delivered()
        return delivered


class Forwarder:
    """The one callback LiteLLM keeps: it files its callbacks away on first use (and keeps them
    across ``litellm.callbacks`` reassignments), so each test points this one at its own recorder."""

    def __init__(self) -> None:
        self.target: Recorded | None = None
        self.callback = MeterlineCallback(recorder=self.record)

    def record(self, **fields: Any) -> None:
        if self.target is not None:
            self.target.client.record(**fields)


FORWARDER = Forwarder()


@pytest.fixture
def rec() -> Iterator[Recorded]:
    recorded = Recorded()
    FORWARDER.target = recorded
    if FORWARDER.callback not in litellm.callbacks:
        litellm.callbacks = [*litellm.callbacks, FORWARDER.callback]
    try:
        yield recorded
    finally:
        FORWARDER.target = None


def arguments(provider: Provider, shape: str, stream: bool) -> dict[str, Any]:
    model, suffix, *_ = SHAPES[shape]
    extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    return {"model": model, "messages": MESSAGES, "api_base": provider.url + suffix, "api_key": "sk-test",
            "max_tokens": 64, "num_retries": 0, **extra}  # fmt: skip


def call_sync(provider: Provider, shape: str, stream: bool, rec: Recorded) -> None:
    answer: Any = litellm.completion(**arguments(provider, shape, stream))
    if stream:
        for _ in answer:
            pass


def call_async(provider: Provider, shape: str, stream: bool, rec: Recorded) -> None:
    async def run() -> None:
        answer: Any = await litellm.acompletion(**arguments(provider, shape, stream))
        if stream:
            async for _ in answer:
                pass
        # The async success callback runs on LiteLLM's logging worker in this loop: yield to it until it has.
        deadline = time.monotonic() + 15
        while not rec.transport.delivered() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(run())


def test_litellm_is_the_pinned_release_and_reads_its_local_price_map() -> None:
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    from importlib.metadata import version

    assert version("litellm") == "1.110.2"
    assert "gpt-4o" in litellm.model_cost  # the bundled map, read without a download


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("mode", ["completion", "acompletion"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_callback_records_what_litellm_answered(
    provider: Provider, rec: Recorded, shape: str, mode: str, stream: bool
) -> None:
    provider.cached = True
    # when
    (call_sync if mode == "completion" else call_async)(provider, shape, stream, rec)
    # then: one record, its tokens with the cache parts, the finish reason, no cost and no prompt
    [call] = rec.calls()
    _, _, record_provider, record_model, tokens = SHAPES[shape]
    assert (call["provider"], call["model"]) == (record_provider, record_model)
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"], call["output_tokens"]) == (
        tokens
    )
    assert call["reasoning_tokens"] == 0
    assert call["response_model"] in {record_model, CHAT_MODEL if shape == "openai" else CLAUDE_MODEL}
    assert call["finish_reason"] == "stop"
    assert call["status"] == "ok"
    assert call["streamed"] is stream
    assert call["latency_ms"] >= 0
    if stream:
        assert 0 <= call["ttft_ms"] <= call["latency_ms"]
    else:
        assert "ttft_ms" not in call
    assert "cost_usd" not in call  # Meterline prices the tokens itself
    assert PROMPT not in str(call)
    [sent] = provider.requests  # LiteLLM really called the stand-in, once
    assert sent["messages"][-1]["content"] in (PROMPT, [{"type": "text", "text": PROMPT}])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_call_the_provider_refuses_is_recorded_as_an_error(provider: Provider, rec: Recorded, shape: str) -> None:
    provider.fail_status = 400
    with pytest.raises(litellm.BadRequestError):
        call_sync(provider, shape, False, rec)
    [call] = rec.calls()
    assert (call["provider"], call["status"], call["finish_reason"]) == (SHAPES[shape][2], "error", "error")
    assert call["error_type"] == "BadRequestError"
    assert "input_tokens" not in call
