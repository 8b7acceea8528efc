"""Realistic demo traffic: 30 days of an LLM product's calls, priced by the ledger's raw writer.

Several features with their own token shapes and models, a long tail of customers, a business-hours
rhythm, route version v2 rolling out over v1 (routing more traffic to small models), provider
prompt caching, an app-side semantic cache, errors with retries, eval and shadow traffic, nightly
Batch-API jobs and one self-hosted model the catalogue cannot price.
"""

from __future__ import annotations

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
    input_mu: float  # lognormal parameters of input tokens
    output_mu: float
    cached_share: float  # share of input served from the provider's prompt cache
    streamed: bool


OPENAI_FULL, OPENAI_MINI = ("openai", "gpt-4o"), ("openai", "gpt-4o-mini")
CLAUDE_FULL, CLAUDE_MINI = ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5")
GEMINI_FULL, GEMINI_MINI = ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash")
SELF_HOSTED = ("selfhost", "llama-3.1-8b-ft")  # not in any catalogue: shows up as unpriced
FEATURES = (
    Feature("chat-assistant", 0.34, OPENAI_FULL, OPENAI_MINI, 7.6, 5.6, 0.45, True),
    Feature("support-triage", 0.20, CLAUDE_FULL, CLAUDE_MINI, 7.0, 4.8, 0.55, False),
    Feature("doc-extract", 0.14, GEMINI_FULL, GEMINI_MINI, 9.0, 6.2, 0.10, False),
    Feature("code-review", 0.12, ("openai", "o3"), OPENAI_MINI, 8.4, 6.6, 0.30, True),
    Feature("search-rerank", 0.14, GEMINI_MINI, GEMINI_MINI, 6.8, 3.2, 0.0, False),
    Feature("smart-compose", 0.06, SELF_HOSTED, SELF_HOSTED, 5.8, 4.0, 0.0, True),
)  # fmt: skip
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


def generate(total: int, end_ms: int, days: int = 30, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """Yield ``total`` records over ``days`` before ``end_ms``, values in ``ledger.raw.CALL_FIELDS`` order
    (the outbox's ``ingest.records.FIELDS`` order too; ``timestamp`` in epoch ms)."""
    rng = random.Random(seed)  # noqa: S311 (reproducible demo traffic, not a secret)
    start_ms = end_ms - days * DAY_MS
    hours = days * 24
    start_hour = start_ms // 3_600_000
    weights = [_hour_weight((start_hour + h) % 24, ((start_hour + h) // 24 + 3) % 7) for h in range(hours)]
    hour_of = rng.choices(range(hours), weights=weights, k=total)
    customer_weights = [1 / (i + 1) ** 1.1 for i in range(len(CUSTOMERS))]
    feature_weights = [f.weight for f in FEATURES]
    n = 0
    for h in sorted(hour_of):
        ts = start_ms + h * 3_600_000 + rng.randrange(3_600_000)
        if ts > end_ms:
            ts = end_ms - rng.randrange(60_000)
        progress = (ts - start_ms) / (days * DAY_MS)
        feature = rng.choices(FEATURES, weights=feature_weights)[0]
        customer = rng.choices(CUSTOMERS, weights=customer_weights)[0]
        # v2 of the routing config rolls out from 40 % of the month on and sends more to "mini".
        v2 = progress > 0.4 and rng.random() < min(1.0, (progress - 0.4) * 2.5)
        route = "mini" if rng.random() < (0.65 if v2 else 0.3) else "full"
        provider, model = feature.mini if route == "mini" else feature.full
        input_tokens = max(20, int(rng.lognormvariate(feature.input_mu, 0.6)))
        output_tokens = max(1, int(rng.lognormvariate(feature.output_mu, 0.7)))
        reasoning = int(output_tokens * rng.uniform(0.5, 0.85)) if model == "o3" else 0
        output_tokens += reasoning
        cache_read = int(input_tokens * feature.cached_share * rng.uniform(0.6, 1.0)) if rng.random() < 0.7 else 0
        cache_write = int((input_tokens - cache_read) * 0.3) if provider == "anthropic" and rng.random() < 0.15 else 0
        traffic = "live"
        roll = rng.random()
        if roll < 0.05:
            traffic = "eval"
        elif roll < 0.08:
            traffic = "shadow"
        tier = "batch" if feature.name == "doc-extract" and rng.random() < 0.5 else "default"
        cache_hit = feature.name == "support-triage" and rng.random() < 0.12
        ttft = rng.lognormvariate(math.log(TTFT_MS[model]), 0.35)
        latency = ttft + output_tokens / TOKENS_PER_S[model] * 1000 * rng.uniform(0.8, 1.3)
        status, error_type = "ok", ""
        roll = rng.random()
        if roll < 0.025:
            status, error_type, output_tokens, reasoning = "error", rng.choice(["rate_limit", "server_error"]), 0, 0
        elif roll < 0.032:
            status, error_type, output_tokens, reasoning = "timeout", "timeout", 0, 0
            latency = 30_000.0
        if cache_hit:
            ttft, latency = 15.0, 40.0
        request_id = f"req-{seed}-{n}"
        attempts = 2 if status != "ok" and rng.random() < 0.7 else 1
        environment = "staging" if rng.random() < 0.05 else "production"
        for attempt in range(1, attempts + 1):
            final = attempt == attempts
            yield (
                f"demo-{seed}-{n}-{attempt}", ts + (attempt - 1) * 2_000, provider, model, "",
                feature.name, customer, f"user-{rng.randrange(400)}", "v2" if v2 else "v1", route, environment,
                input_tokens, cache_read, cache_write,
                output_tokens if final or attempts == 1 else 0, reasoning if final or attempts == 1 else 0,
                round(ttft, 1) if feature.streamed and status == "ok" else None,
                round(latency, 1),
                status if not final or attempts == 1 else "ok", error_type if not final or attempts == 1 else "",
                attempt, traffic, cache_hit, tier, feature.streamed, 0, 4096, f"trace-{seed}-{n}", "",
                request_id, {"team": "growth" if feature.name in ("chat-assistant", "smart-compose") else "platform"},
                None,
            )  # fmt: skip
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
