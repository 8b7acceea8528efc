"""Realistic demo traffic: 30 days of an LLM product's calls, priced by the ledger's raw writer.

Several features with their own token shapes and models, a long tail of customers, a business-hours
rhythm, route version v2 rolling out over v1 (routing more traffic to small models), provider
prompt caching of stable prompt prefixes, an agent loop, an app-side semantic cache, errors with
retries, answers cut at max_tokens and asked again, eval and shadow traffic, nightly Batch-API jobs, the
users' thumbs on two features and one self-hosted model the catalogue cannot price. Every record fills
``finish_reason`` and the prompt prefix fields, and every lever of the savings advisor (ledger.advice)
has traffic to find.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Feature:
    name: str
    weight: float
    full: tuple[str, str]  # (provider, model) when the router picks "full"
    mini: tuple[str, str]  # ... and "mini"
    input_mu: float  # lognormal parameters of the input after the prefix, and of the output
    output_mu: float
    streamed: bool
    prefix_tokens: int  # the stable prompt prefix (system instructions + tool definitions) every call sends
    cache_rate: float  # share of calls that read that prefix from the provider's prompt cache
    max_tokens: int
    steps: int = 1  # model calls per request at most: an agent loop re-sends the prefix at every step
    prefix_estimated: bool = False  # the SDK estimated the prefix size (no tokenizer in that app)


OPENAI_FULL, OPENAI_MINI = ("openai", "gpt-4o"), ("openai", "gpt-4o-mini")
CLAUDE_FULL, CLAUDE_MINI = ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5")
GEMINI_FULL, GEMINI_MINI = ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash")
SELF_HOSTED = ("selfhost", "llama-3.1-8b-ft")  # not in any catalogue: shows up as unpriced
# Every lever of the savings advisor applies somewhere: chat-assistant's gpt-4o-mini scores as well as
# gpt-4o (routing); support-triage's agent loop re-sends a 1,600-token prefix every step, never cached
# (prompt_cache); eval traffic runs at the default tier (batch); doc-extract's answers hit their
# max_tokens and are retried (output_length).
FEATURES = (
    Feature("chat-assistant", 0.34, OPENAI_FULL, OPENAI_MINI, 7.3, 5.6, True, 1_400, 0.8, 4096),
    Feature("support-triage", 0.20, CLAUDE_FULL, CLAUDE_MINI, 6.4, 4.8, False, 1_600, 0.0, 4096, steps=3),
    Feature("doc-extract", 0.14, GEMINI_FULL, GEMINI_MINI, 8.8, 6.2, False, 2_200, 0.7, 1500, prefix_estimated=True),
    Feature("code-review", 0.12, ("openai", "o3"), OPENAI_MINI, 8.3, 6.6, True, 900, 0.5, 16384),
    Feature("search-rerank", 0.14, GEMINI_MINI, GEMINI_MINI, 6.7, 3.2, False, 400, 0.0, 256),
    Feature("smart-compose", 0.06, SELF_HOSTED, SELF_HOSTED, 5.7, 4.0, True, 200, 0.0, 512),
)  # fmt: skip
ROUTING_LEVER = "chat-assistant"
# Users' thumbs (1.0 up, 0.0 down) per feature: (downs per 10 on the full model, downs per 10 on the mini).
# Laid out so a count of any size keeps the order: the full model's downs come first in each ten, the
# mini's last (equal), or first (worse).
FEEDBACK = {"chat-assistant": (1, 1), "support-triage": (1, 3)}
FEEDBACK_SHARE = 0.3  # of live answers get a thumb
CUSTOMERS = [
    "acme-corp", "globex", "initech", "umbrella", "hooli", "stark-industries", "wayne-enterprises", "wonka",
    "cyberdyne", "tyrell", "soylent", "massive-dynamic", "aperture", "black-mesa", "oscorp", "gringotts",
    "monsters-inc", "pied-piper", "dunder-mifflin", "vandelay", "bluth-company", "prestige-worldwide",
    "nakatomi", "weyland-yutani", "duff", "krusty-krab", "los-pollos", "sterling-cooper", "genco", "ollivanders",
]  # fmt: skip
TTFT_MS = {"gpt-4o": 450, "gpt-4o-mini": 300, "o3": 2500, "claude-sonnet-4-5": 600, "claude-haiku-4-5": 350,
           "gemini-2.5-pro": 900, "gemini-2.5-flash": 320, "llama-3.1-8b-ft": 120}  # fmt: skip
TOKENS_PER_S = {"gpt-4o": 90, "gpt-4o-mini": 140, "o3": 60, "claude-sonnet-4-5": 70, "claude-haiku-4-5": 150,
                "gemini-2.5-pro": 80, "gemini-2.5-flash": 200, "llama-3.1-8b-ft": 250}  # fmt: skip


def _hour_weight(hour_utc: int, weekday: int) -> float:
    """Traffic rhythm: a US/EU business-day hump, quieter weekends."""
    day = 0.35 + math.exp(-((hour_utc - 15) ** 2) / 18)
    return day * (0.45 if weekday >= 5 else 1.0)


def _thumb(k: int, downs: int, first: bool) -> float:
    """The k-th thumb of a model: ``downs`` of every ten are down, at the start of the ten or at its end."""
    position = k % 10
    return 0.0 if (position < downs if first else position >= 10 - downs) else 1.0


@functools.cache
def prefix_hash(feature: str, route_version: str) -> str:
    """The prefix identity the SDK sends (a SHA-256 hex): each route version has its own prompt."""
    return hashlib.sha256(f"demo/{feature}/{route_version}".encode()).hexdigest()


def generate(
    total: int, end_ms: int, days: int = 30, seed: int = 7, feedback: list[tuple[str, float]] | None = None
) -> Iterator[tuple[Any, ...]]:
    """Yield about ``total`` records over ``days`` before ``end_ms``, values in ``ledger.raw.CALL_FIELDS``
    order (the outbox's ``ingest.records.FIELDS`` order too; ``timestamp`` in epoch ms). Agent steps and
    retries come on top of ``total``. When ``feedback`` is a list, (event_id, score) pairs of the users'
    thumbs are appended to it as their calls are yielded."""
    rng = random.Random(seed)  # noqa: S311 (reproducible demo traffic, not a secret)
    start_ms = end_ms - days * DAY_MS
    hours = days * 24
    start_hour = start_ms // 3_600_000
    weights = [_hour_weight((start_hour + h) % 24, ((start_hour + h) // 24 + 3) % 7) for h in range(hours)]
    hour_of = rng.choices(range(hours), weights=weights, k=total)
    customer_weights = [1 / (i + 1) ** 1.1 for i in range(len(CUSTOMERS))]
    feature_weights = [f.weight for f in FEATURES]
    counters: dict[tuple[str, str, str, str], int] = {}  # per (what, feature, route version, model)

    def count(what: str, feature: Feature, version: str, model: str) -> int:
        key = (what, feature.name, version, model)
        counters[key] = counters.get(key, 0) + 1
        return counters[key] - 1

    n = 0
    for h in sorted(hour_of):
        ts = start_ms + h * 3_600_000 + rng.randrange(3_600_000)
        if ts > end_ms - 600_000:  # agent steps and retries follow: all of them before the end
            ts = end_ms - 600_000 - rng.randrange(60_000)
        progress = (ts - start_ms) / (days * DAY_MS)
        feature = rng.choices(FEATURES, weights=feature_weights)[0]
        customer = rng.choices(CUSTOMERS, weights=customer_weights)[0]
        # v2 of the routing config rolls out from 40 % of the month on and sends more to "mini".
        v2 = progress > 0.4 and rng.random() < min(1.0, (progress - 0.4) * 2.5)
        version = "v2" if v2 else "v1"
        route = "mini" if rng.random() < (0.65 if v2 else 0.3) else "full"
        provider, model = feature.mini if route == "mini" else feature.full
        traffic = "live"
        roll = rng.random()
        if roll < 0.05:
            traffic = "eval"
        elif roll < 0.08:
            traffic = "shadow"
        streamed = feature.streamed and traffic == "live"  # evaluation scripts do not stream
        tier = "batch" if feature.name == "doc-extract" and rng.random() < 0.5 else "default"
        cache_hit = feature.name == "support-triage" and rng.random() < 0.12
        environment = "staging" if rng.random() < 0.05 else "production"
        user = f"user-{rng.randrange(400)}"
        tags = {"team": "growth" if feature.name in ("chat-assistant", "smart-compose") else "platform"}
        steps = 1 if cache_hit else min(feature.steps, 1 + (rng.random() < 0.6) + (rng.random() < 0.35))
        at = ts
        for step in range(1, steps + 1):
            last_step = step == steps
            input_tokens = feature.prefix_tokens + max(20, int(rng.lognormvariate(feature.input_mu, 0.6)))
            output_tokens = max(1, int(rng.lognormvariate(feature.output_mu, 0.7)))
            reasoning = int(output_tokens * rng.uniform(0.5, 0.85)) if model == "o3" else 0
            output_tokens += reasoning
            cached = feature.prefix_tokens >= 1024 and rng.random() < feature.cache_rate
            cache_read = feature.prefix_tokens // 128 * 128 if cached else 0
            ttft = rng.lognormvariate(math.log(TTFT_MS[model]), 0.35)
            status, error_type = "ok", ""
            if feature.name == ROUTING_LEVER:  # the mini fails half as often, so no 31-day window of the demo
                # can show it failing more than the dear model (at equal rates a window's rounding could)
                fails = count("fail", feature, version, model)
                failed = fails % 40 == 0 if route == "full" else fails % 80 == 79
            else:
                failed = rng.random() < 0.032
            if failed and not cache_hit:
                status, error_type = rng.choice(
                    [("error", "rate_limit"), ("error", "server_error"), ("timeout", "timeout")]
                )
            tries = 1 if status == "ok" else (2 if feature.name == ROUTING_LEVER or rng.random() < 0.7 else 1)
            cap = feature.max_tokens
            attempt = 1
            while True:
                final_try = attempt == tries
                ok = status == "ok" or (final_try and tries > 1)
                out, rs = (min(output_tokens, cap), min(reasoning, cap)) if ok else (0, 0)
                cut = ok and output_tokens > cap
                latency = ttft + out / TOKENS_PER_S[model] * 1000 * rng.uniform(0.8, 1.3)
                if not ok and status == "timeout":
                    latency = 30_000.0
                finish = ("length" if cut else "tool_calls" if not last_step else "stop") if ok else (
                    "error" if status == "error" else "")  # fmt: skip
                if cache_hit:
                    ttft, latency = 15.0, 40.0
                event_id = f"demo-{seed}-{n}-{step}-{attempt}"
                yield (
                    event_id, at, provider, model, "", feature.name, customer, user, version, route, environment,
                    input_tokens, cache_read, 0, out, rs,
                    round(ttft, 1) if streamed and ok else None, round(latency, 1),
                    "ok" if ok else status, "" if ok else error_type,
                    attempt, traffic, cache_hit, tier, streamed, 0 if last_step else 1 + rng.randrange(3), cap,
                    f"trace-{seed}-{n}", "", f"req-{seed}-{n}", tags, None,
                    finish, prefix_hash(feature.name, version), feature.prefix_tokens, feature.prefix_estimated,
                )  # fmt: skip
                at += int(latency) + 500 + rng.randrange(1_500)
                thumbs = FEEDBACK.get(feature.name)
                # the draw is made whether or not thumbs are collected: the calls stay the same either way
                if thumbs and ok and not cut and last_step and traffic == "live" and rng.random() < FEEDBACK_SHARE:
                    if feedback is not None:
                        downs = thumbs[0] if route == "full" else thumbs[1]
                        # equal scores: the dear model's downs first (it never looks better than the mini)
                        first = (route == "full") == (thumbs[0] == thumbs[1])
                        feedback.append((event_id, _thumb(count("thumb", feature, version, model), downs, first)))
                if cut and attempt < 3:  # the app asks again with more room
                    attempt, tries, cap = attempt + 1, attempt + 1, cap * 2
                    continue
                if attempt >= tries:
                    break
                attempt += 1
        n += 1


# --- capacity (issue 14): daily peak minutes, the providers' rate-limit headers, 429s at the peak ---

PEAK_SHARE = 0.25  # of the calls of a weekday's 14:00-17:00 UTC, crowded into that day's peak minutes
PEAK_MINUTES = 3
# Each model's limits as its provider reports them (x-ratelimit-* / anthropic-ratelimit-* headers):
# (tokens, requests, input tokens, output tokens) per minute. Google and the self-hosted model send none.
DEMO_LIMITS: dict[str, tuple[int | None, int, int | None, int | None]] = {
    "gpt-4o": (150_000, 500, None, None),
    "gpt-4o-mini": (2_000_000, 5_000, None, None),
    "o3": (120_000, 100, None, None),  # the demo's tight one: its peaks run near the limit
    "claude-sonnet-4-5": (None, 50, 30_000, 8_000),
    "claude-haiku-4-5": (None, 50, 50_000, 10_000),
}
_RATELIMIT_FIELDS = (
    "ratelimit_limit_tokens", "ratelimit_remaining_tokens", "ratelimit_limit_requests",
    "ratelimit_remaining_requests", "ratelimit_limit_input_tokens", "ratelimit_limit_output_tokens",
)  # fmt: skip


def with_capacity(records: Iterator[tuple[Any, ...]], seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """The demo records with daily peaks, the providers' rate-limit fields and 429s at the peaks.

    On weekdays a share of the afternoon's requests is crowded into a few minutes (a daily digest
    job); each record is padded to every ``ledger.raw.CALL_FIELDS`` field by name and, for OpenAI
    and Anthropic models, carries the limits its provider reports; at a peak a few calls are 429s."""
    from ledger.added_fields import ADDED_DEFAULTS
    from ledger.raw import CALL_FIELDS

    index = {name: i for i, name in enumerate(CALL_FIELDS)}
    for record in records:
        values = list(record) + [ADDED_DEFAULTS[name] for name in CALL_FIELDS[len(record) :]]
        ts, request_id = values[index["timestamp"]], values[index["request_id"]]
        rng = random.Random(f"{seed}/{request_id}")  # noqa: S311 (both attempts of a request move together)
        day_ms = ts - ts % DAY_MS
        hour = (ts - day_ms) // 3_600_000
        weekday = (ts // DAY_MS + 3) % 7
        peaked = weekday < 5 and 14 <= hour < 17 and rng.random() < PEAK_SHARE
        if peaked:
            minute = 15 * 60 + (day_ms // DAY_MS) % 40  # 15:00-15:39 UTC, another minute each day
            offset = (values[index["attempt"]] - 1) * 2_000
            values[index["timestamp"]] = day_ms + minute * 60_000 + rng.randrange(PEAK_MINUTES * 60_000) + offset
            if values[index["status"]] == "ok" and rng.random() < 0.03:
                values[index["status"]], values[index["error_type"]] = "error", "rate_limit"
                values[index["output_tokens"]] = values[index["reasoning_tokens"]] = 0
        limits = DEMO_LIMITS.get(values[index["model"]])
        if limits is not None:
            tokens, requests, input_tokens, output_tokens = limits
            used = values[index["input_tokens"]] + values[index["output_tokens"]]
            rate_limited = values[index["error_type"]] == "rate_limit"
            remaining = {
                "ratelimit_limit_tokens": tokens,
                "ratelimit_remaining_tokens": None if tokens is None else 0 if rate_limited else max(0, tokens - used),
                "ratelimit_limit_requests": requests,
                "ratelimit_remaining_requests": 0 if rate_limited else requests - 1 - rng.randrange(requests // 4),
                "ratelimit_limit_input_tokens": input_tokens,
                "ratelimit_limit_output_tokens": output_tokens,
            }
            for name in _RATELIMIT_FIELDS:
                values[index[name]] = remaining[name]
        yield tuple(values)
