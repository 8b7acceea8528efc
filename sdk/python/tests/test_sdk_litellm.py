"""The LiteLLM callback, called as LiteLLM calls a ``CustomLogger``: (kwargs, response_obj, start, end).

These tests hand the callback kwargs and response objects in LiteLLM's documented shapes, to cover
shapes other releases and providers answer with; test_sdk_litellm_real.py runs the callback inside
the pinned LiteLLM itself (completion and acompletion, streamed or not). The shapes here:
``model_call_details`` kwargs with ``litellm_params`` / ``standard_logging_object``, and a
``ModelResponse`` whose ``usage`` is OpenAI-shaped (the prompt total including cache reads), with
Anthropic's cache fields added for Claude models.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import meterline
import pytest
from meterline import Client
from meterline.integrations.litellm import MeterlineCallback
from sdk_testkit import ScriptedTransport

START = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> Any:
    """An OpenAI-style LiteLLM usage: ``prompt_tokens`` is the total, cache reads included."""
    return SimpleNamespace(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=SimpleNamespace(cached_tokens=cached, audio_tokens=None),
        completion_tokens_details=SimpleNamespace(reasoning_tokens=reasoning),
    )


def anthropic_usage(prompt: int, read: int, write: int, text: int | None = None) -> Any:
    """LiteLLM's usage for a Claude call: OpenAI fields plus Anthropic's cache fields."""
    found = usage(prompt, 100, cached=read)
    found.cache_read_input_tokens = read
    found.cache_creation_input_tokens = write
    if text is not None:  # newer releases: the uncached input, and the writes in the details too
        found.prompt_tokens_details.text_tokens = text
        found.prompt_tokens_details.cache_creation_tokens = write
    return found


def kwargs_for(model: str, provider: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    metadata = extra.pop("metadata", {})
    return {
        "model": model,
        "messages": [{"role": "user", "content": "a prompt that must never be shipped"}],
        "optional_params": {"max_tokens": 100},
        "litellm_params": {"metadata": metadata, "custom_llm_provider": provider, "api_base": "https://api.example"},
        "custom_llm_provider": provider,
        "stream": stream,
        "litellm_call_id": "call-1",
        "start_time": START,
        "response_cost": 0.00123,
        "standard_logging_object": {"model": model, "custom_llm_provider": provider, "status": "success"},
        **extra,
    }


def rig() -> tuple[MeterlineCallback, ScriptedTransport]:
    transport = ScriptedTransport()
    client = Client("k", sync=True, transport=transport)
    return MeterlineCallback(recorder=client.record), transport


def test_success_with_cached_tokens_and_reasoning() -> None:
    callback, transport = rig()
    response = SimpleNamespace(
        id="chatcmpl-9", model="gpt-4o-2024-08-06", usage=usage(2006, 300, cached=1920, reasoning=0)
    )
    callback.log_success_event(kwargs_for("gpt-4o", "openai"), response, START, START + timedelta(milliseconds=850))
    [call] = transport.delivered()
    assert (call["provider"], call["model"], call["response_model"]) == ("openai", "gpt-4o", "gpt-4o-2024-08-06")
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"]) == (2006, 1920, 300)
    assert (call["latency_ms"], call["status"], call["streamed"]) == (850.0, "ok", False)
    assert "cost_usd" not in call  # Meterline prices tokens itself
    assert "prompt" not in str(call)


# Claude's call: 50 uncached input tokens, 5000 read from the cache, 2000 written to it.
ANTHROPIC_SHAPES = {
    # LiteLLM's documented shape: prompt_tokens = cache misses + cache hits, the writes apart.
    "prompt_tokens_without_writes": anthropic_usage(5050, 5000, 2000),
    # Newer releases fold the writes into prompt_tokens and give the uncached part as text_tokens.
    "prompt_tokens_with_writes_and_text_tokens": anthropic_usage(7050, 5000, 2000, text=50),
    # Anthropic's own usage (litellm.anthropic.messages): input_tokens excludes the cache.
    "anthropic_messages": SimpleNamespace(
        input_tokens=50, cache_read_input_tokens=5000, cache_creation_input_tokens=2000, output_tokens=100
    ),
}


@pytest.mark.parametrize("shape", sorted(ANTHROPIC_SHAPES))
@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_anthropic_through_litellm_records_the_total_input(shape: str, provider: str) -> None:
    callback, transport = rig()
    response = SimpleNamespace(id="msg_1", model="claude-haiku-4-5-20251001", usage=ANTHROPIC_SHAPES[shape])
    callback.log_success_event(kwargs_for("claude-haiku-4-5", provider), response, START, START + timedelta(seconds=2))
    [call] = transport.delivered()
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"]) == (7050, 5000, 2000)
    assert call["output_tokens"] == 100


def test_anthropic_without_cache_fields_is_still_the_total() -> None:
    callback, transport = rig()
    response = SimpleNamespace(id="msg_1", model="claude-haiku-4-5-20251001", usage=usage(50, 100))
    callback.log_success_event(kwargs_for("claude-haiku-4-5", "anthropic"), response, START, START)
    [call] = transport.delivered()
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"]) == (50, 0, 0)


@pytest.mark.parametrize(
    ("provider", "found", "expected"),
    [
        ("openai", usage(2006, 300, cached=1920), (2006, 1920)),
        # xAI's text_tokens include the cached ones: an OpenAI-style total is taken as it is.
        ("xai", usage(125, 48, cached=98), (125, 98)),
        ("openai", SimpleNamespace(input_tokens=2048, input_tokens_details=SimpleNamespace(cached_tokens=1536),
                                   output_tokens=900), (2048, 1536)),  # litellm.responses()
    ],
)  # fmt: skip
def test_openai_style_prompt_tokens_are_the_total(provider: str, found: Any, expected: tuple[int, int]) -> None:
    if provider == "xai":
        found.prompt_tokens_details.text_tokens = 125
    callback, transport = rig()
    callback.log_success_event(kwargs_for("m", provider), SimpleNamespace(id="c", model="m", usage=found), START, START)
    [call] = transport.delivered()
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"]) == (*expected, 0)


def test_a_streamed_call_gets_ttft_from_completion_start_time() -> None:
    callback, transport = rig()
    kwargs = kwargs_for("openai/gpt-4o-mini", "openai", stream=True,
                        completion_start_time=START + timedelta(milliseconds=120))  # fmt: skip
    response = SimpleNamespace(id="c", model="gpt-4o-mini", usage=usage(10, 5))
    callback.log_success_event(kwargs, response, START, START + timedelta(milliseconds=400))
    [call] = transport.delivered()
    assert call["model"] == "gpt-4o-mini"  # the provider prefix is dropped
    assert (call["ttft_ms"], call["latency_ms"], call["streamed"]) == (120.0, 400.0, True)


def test_failures_are_recorded_with_their_type() -> None:
    callback, transport = rig()

    class Timeout(Exception):
        pass

    class BadRequestError(Exception):
        pass

    callback.log_failure_event(kwargs_for("gpt-4o", "openai", exception=Timeout("t")), None, START, START)
    asyncio.run(
        callback.async_log_failure_event(
            kwargs_for("gpt-4o", "openai", exception=BadRequestError("x")), None, START, START
        )
    )
    first, second = transport.delivered()
    assert (first["status"], first["error_type"]) == ("timeout", "Timeout")
    assert (second["status"], second["error_type"]) == ("error", "BadRequestError")


def test_attribution_from_metadata_over_the_callers_context() -> None:
    callback, transport = rig()

    async def call() -> None:
        with meterline.attribute(customer_id="acme", feature="default-feature"):
            await callback.async_log_success_event(
                kwargs_for("gpt-4o", "openai", metadata={"meterline": {"feature": "search", "not_a_field": 1}}),
                SimpleNamespace(id="c", model="gpt-4o", usage=usage(1, 1)),
                START,
                START,
            )

    asyncio.run(call())
    [call_record] = transport.delivered()
    assert (call_record["feature"], call_record["customer_id"]) == ("search", "acme")


def test_a_bad_shape_never_raises_into_litellm(caplog: pytest.LogCaptureFixture) -> None:
    callback, transport = rig()
    callback.log_success_event({"model": None}, object(), "start", None)  # recorded as what it is: unknown
    callback.log_success_event(None, None, None, None)  # type: ignore[arg-type]  # unreadable: logged, not raised
    [call] = transport.delivered()
    assert (call["provider"], call["model"], call["status"]) == ("unknown", "unknown", "ok")
    assert "could not record a LiteLLM call" in caplog.text
