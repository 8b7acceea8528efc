"""Capacity: exact per-minute peaks and p99 from the rollup (equal to the raw table's), pools, cache
reads left out of uncached ITPM, limit precedence, 429s, and the forecast of the daily peaks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.capacity import (
    Capacity,
    CapacityError,
    CapacityQuery,
    capacity,
    capacity_from_raw,
)
from ledger.capacity_growth import fit_growth, reach_date
from ledger.capacity_minutes import route_mix
from ledger.models import RateLimit
from ledger.rollups import rollup_dirty
from tenancy.models import Project

T0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
_n = iter(range(10**9))


def call(at: datetime, model: str = "gpt-4o", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"c-{next(_n)}", "timestamp": at.isoformat().replace("+00:00", "Z"), "provider": "openai",
        "model": model, "input_tokens": 1000, "output_tokens": 100, "feature": "chat", **fields,
    }  # fmt: skip


def ingest(api: APIClient, calls: list[dict[str, Any]]) -> None:
    for i in range(0, len(calls), 1000):
        answer = post_calls(api, calls[i : i + 1000])
        assert answer.json()["accepted"] == len(calls[i : i + 1000]), answer.content
    drain()
    rollup_dirty()


def answer(
    project: Project, start: datetime = T0 - timedelta(hours=1), hours: int = 3, **filters: Any
) -> dict[str, Capacity]:
    query = CapacityQuery(project.pk, start, start + timedelta(hours=hours), {k: tuple(v) for k, v in filters.items()})
    rows = capacity(query)
    reference = capacity_from_raw(query)
    # the rollup's answer is the raw table's, exactly
    assert [r.as_json() for r in rows] == [r.as_json() for r in reference]
    return {r.model: r for r in rows}


@pytest.mark.django_db
def test_peaks_are_exact_per_utc_minute_across_boundaries(api: APIClient, project: Project) -> None:
    ms = timedelta(milliseconds=1)
    calls = [
        # minute 10:00: two calls, the last a millisecond before the boundary
        call(T0, input_tokens=3000, output_tokens=500),
        call(T0 + timedelta(seconds=60) - ms, input_tokens=2000, output_tokens=400),
        # minute 10:01 starts exactly at the boundary: three calls, fewer tokens
        call(T0 + timedelta(seconds=60), input_tokens=1000, output_tokens=100),
        call(T0 + timedelta(seconds=61), input_tokens=1000, output_tokens=100),
        call(T0 + timedelta(seconds=119), input_tokens=1000, output_tokens=100),
        # a long call that started in 10:05 counts there, whatever its latency
        call(T0 + timedelta(minutes=5, seconds=59), input_tokens=500, output_tokens=50, latency_ms=90_000),
    ]
    ingest(api, calls)
    row = answer(project)["gpt-4o"]
    assert (row.peaks["tpm"], row.peaks["itpm"], row.peaks["otpm"], row.peaks["rpm"]) == (5900, 5000, 900, 3)
    assert row.peak_minute == T0
    assert row.minutes == 3
    # nearest-rank p99 of three minutes (550, 3300, 5900) is the largest
    assert (row.p99["tpm"], row.p99["rpm"]) == (5900, 3)
    body = row.as_json()
    assert body["peak_minute"] == T0.isoformat().replace("+00:00", "Z")
    assert (body["limit_source"], body["headroom"], body["limit_tpm"]) == (None, None, None)


@pytest.mark.django_db
def test_p99_is_the_nearest_rank_over_minutes_with_traffic(api: APIClient, project: Project) -> None:
    # 200 minutes with 1..200 calls of 10 tokens each (idle minutes between them do not count)
    calls = [
        call(T0 + timedelta(minutes=2 * m), input_tokens=5, output_tokens=5) for m in range(200) for _ in range(m + 1)
    ]
    ingest(api, calls)
    row = answer(project, start=T0, hours=7)["gpt-4o"]
    assert row.minutes == 200
    assert (row.peaks["rpm"], row.p99["rpm"]) == (200, 198)  # ⌈0.99·200⌉ = 198th smallest
    assert (row.peaks["tpm"], row.p99["tpm"]) == (2000, 1980)


@pytest.mark.django_db
def test_models_sharing_a_pool_are_summed_minute_by_minute(api: APIClient, project: Project) -> None:
    RateLimit.objects.create(
        project=project, provider="openai", model="4.1 family", pool_models=["gpt-4.1", "gpt-4.1-mini"], tpm=10_000
    )
    calls = [
        # 10:00: 4,400 tokens of gpt-4.1 and 2,200 of mini → the pool's peak 6,600 though neither alone is
        call(T0, "gpt-4.1", input_tokens=4000, output_tokens=400),
        call(T0 + timedelta(seconds=30), "gpt-4.1-mini", input_tokens=2000, output_tokens=200),
        # 10:01: 5,500 of gpt-4.1 alone: the larger single-model minute, a smaller pool minute
        call(T0 + timedelta(minutes=1), "gpt-4.1", input_tokens=5000, output_tokens=500),
        # another provider's model of the same name is not in the pool
        call(T0, "gpt-4.1", provider="azure", input_tokens=9000, output_tokens=0),
        call(T0, "gpt-4o"),
    ]
    ingest(api, calls)
    rows = answer(project)
    pool = rows["4.1 family"]
    assert (pool.provider, pool.models) == ("openai", ["gpt-4.1", "gpt-4.1-mini"])
    assert (pool.peaks["tpm"], pool.peaks["rpm"], pool.peak_minute) == (6600, 2, T0)
    assert (pool.limits["tpm"], pool.limit_source, pool.headroom) == (10_000, "configured", Decimal("0.34"))
    assert rows["gpt-4.1"].provider == "azure"
    assert rows["gpt-4.1"].peaks["tpm"] == 9000
    assert rows["gpt-4o"].limit_source is None
    # a filter on one member counts that member only
    assert answer(project, model=["gpt-4.1-mini"])["4.1 family"].peaks["tpm"] == 2200


@pytest.mark.django_db
def test_cache_reads_are_left_out_of_uncached_itpm(api: APIClient, project: Project) -> None:
    claude = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    RateLimit.objects.create(project=project, provider="anthropic", model="claude-sonnet-4-5", itpm=10_000)
    calls = [
        # 10:00: 30,000 input of which 27,000 cache reads and 1,000 cache writes
        call(T0, input_tokens=20_000, cache_read_tokens=18_000, cache_write_tokens=1000, output_tokens=10, **claude),
        call(T0, input_tokens=10_000, cache_read_tokens=9_000, output_tokens=10, **claude),
        # 10:01: 8,000 input, none cached: the uncached peak
        call(T0 + timedelta(minutes=1), input_tokens=8000, output_tokens=10, **claude),
    ]
    ingest(api, calls)
    row = answer(project)["claude-sonnet-4-5"]
    assert (row.peaks["itpm"], row.peaks["uncached_itpm"]) == (30_000, 8000)
    assert row.as_json()["peak_uncached_itpm"] == 8000
    # Anthropic does not count cache reads toward ITPM: the headroom is judged on uncached input
    assert row.headroom == Decimal("0.2")
    assert row.as_json()["headroom"] == "0.200000"


@pytest.mark.django_db
def test_limit_source_configured_over_observed_over_none(api: APIClient, project: Project) -> None:
    limits = {"ratelimit_limit_tokens": 30_000, "ratelimit_limit_requests": 500}
    calls = [
        call(T0, "observed", **limits),
        # the latest answer's limits win (a tier upgrade), whatever order they arrive in
        call(T0 + timedelta(minutes=3), "observed", ratelimit_limit_tokens=40_000, ratelimit_limit_requests=600),
        call(T0 + timedelta(minutes=1), "observed", ratelimit_limit_tokens=35_000),
        call(T0 + timedelta(minutes=4), "observed"),  # no headers: says nothing
        call(T0, "configured", **limits),
        call(T0, "none"),
    ]
    ingest(api, calls)
    RateLimit.objects.create(project=project, provider="openai", model="configured", tpm=2200)
    rows = answer(project)
    observed, configured, none = rows["observed"], rows["configured"], rows["none"]
    assert (observed.limit_source, observed.limits["tpm"], observed.limits["rpm"]) == ("observed", 40_000, 600)
    assert observed.headroom == Decimal(1) - Decimal(1100) / 40_000
    # configured wins where set; the observed limit still stands where none is configured
    assert (configured.limit_source, configured.limits["tpm"], configured.limits["rpm"]) == ("configured", 2200, 500)
    assert configured.headroom == Decimal("0.5")  # 1100 of 2,200 TPM is tighter than 1 of 500 RPM
    assert (none.limit_source, none.limits, none.headroom) == (None, dict.fromkeys(none.limits), None)


@pytest.mark.django_db
def test_429s_are_counted_and_a_peak_over_the_limit_has_negative_headroom(api: APIClient, project: Project) -> None:
    refused: dict[str, Any] = {"status": "error", "error_type": "rate_limit", "input_tokens": 0, "output_tokens": 0}
    calls = [
        call(T0, input_tokens=4000, output_tokens=1000),
        call(T0, **refused),
        call(T0 + timedelta(minutes=1), **refused),
    ]
    calls.append(call(T0, status="error", error_type="server_error"))  # not a rate limit
    ingest(api, calls)
    RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=4000)
    row = answer(project)["gpt-4o"]
    assert row.rate_limited_calls == 2
    assert row.headroom == Decimal("-0.525")  # 6,100 tokens against 4,000


@pytest.mark.django_db
def test_filters_use_the_detail_tier_and_the_route_mix_of_the_peak(api: APIClient, project: Project) -> None:
    calls = [
        call(T0, feature="chat", route_version="v1", input_tokens=3000),
        call(T0, feature="chat", route_version="v2", input_tokens=1000),
        call(T0, feature="search", route_version="v1", input_tokens=500, environment="staging"),
        call(T0 + timedelta(minutes=1), feature="search", input_tokens=4000, traffic="shadow"),
    ]
    ingest(api, calls)
    assert answer(project)["gpt-4o"].peaks["tpm"] == 3100 + 1100 + 600
    assert answer(project, feature=["search"])["gpt-4o"].peaks["tpm"] == 4100
    assert answer(project, traffic=["live"])["gpt-4o"].peaks["tpm"] == 4800
    assert answer(project, route_version=["v2"])["gpt-4o"].peaks["tpm"] == 1100
    assert answer(project, environment=["staging"], route_version=["v1"])["gpt-4o"].peaks["tpm"] == 600
    assert route_mix(project.pk, "openai", ["gpt-4o"], T0) == [
        {"feature": "chat", "route_version": "v1", "calls": 1, "tokens": 3100},
        {"feature": "chat", "route_version": "v2", "calls": 1, "tokens": 1100},
        {"feature": "search", "route_version": "v1", "calls": 1, "tokens": 600},
    ]


@pytest.mark.django_db
def test_late_and_duplicate_calls_keep_the_rollup_exact(api: APIClient, project: Project) -> None:
    first = [call(T0, event_id="dup", input_tokens=1000), call(T0 + timedelta(minutes=1), input_tokens=5000)]
    ingest(api, first)
    ingest(api, [first[0], call(T0, input_tokens=7000)])  # a re-sent call and a late one
    row = answer(project)["gpt-4o"]
    assert (row.peaks["tpm"], row.peaks["rpm"], row.peak_minute) == (8200, 2, T0)


@pytest.mark.django_db
def test_one_project_never_sees_another(api: APIClient, project: Project) -> None:
    ingest(api, [call(T0)])
    other = Project.objects.create(organization=project.organization, name="other")
    query = CapacityQuery(other.pk, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert capacity(query) == []


def test_a_question_that_cannot_be_asked_is_refused() -> None:
    with pytest.raises(CapacityError, match="customer_id"):
        capacity(CapacityQuery(1, T0, T0 + timedelta(hours=1), {"customer_id": ("acme",)}))
    with pytest.raises(CapacityError, match="after from"):
        capacity(CapacityQuery(1, T0, T0))
    with pytest.raises(CapacityError, match="whole minute"):
        capacity(CapacityQuery(1, T0 + timedelta(seconds=5), T0 + timedelta(hours=1)))


# --- the forecast of the daily peaks --------------------------------------------------------

LAST = date(2026, 11, 29)  # a Sunday


def days(values: Sequence[float]) -> dict[date, int]:
    """Daily peaks ending on LAST."""
    return {LAST - timedelta(days=len(values) - 1 - i): round(v) for i, v in enumerate(values)}


def test_flat_peaks_do_not_grow_and_never_reach_a_limit_above_them() -> None:
    growth = fit_growth(days([10_000] * 28), LAST)
    assert growth is not None
    assert growth.slope == 0
    assert reach_date(10_000, 20_000, growth, LAST) is None
    # already at the limit: the next day reaches it
    assert reach_date(20_000, 20_000, growth, LAST) == LAST + timedelta(days=1)


def test_growing_peaks_give_the_weekly_growth_and_the_day_the_limit_is_reached() -> None:
    weekly = 0.10
    peaks = [10_000 * (1 + weekly) ** (i / 7) for i in range(28)]
    growth = fit_growth(days(peaks), LAST)
    assert growth is not None
    assert math.exp(7 * growth.slope) - 1 == pytest.approx(weekly, abs=1e-3)
    # from a p99 of 10,000 at +10 %/week, 20,000 is ln 2 / ln 1.1 weeks away: 50.9 days → day 51
    assert reach_date(10_000, 20_000, growth, LAST) == LAST + timedelta(days=51)


def test_a_few_outlier_days_do_not_move_the_growth() -> None:
    peaks = [10_000.0] * 28
    peaks[5], peaks[20], peaks[26] = 90_000, 80_000, 100  # an incident, a load test, an outage
    growth = fit_growth(days(peaks), LAST)
    assert growth is not None
    assert growth.slope == pytest.approx(0, abs=1e-9)


def test_weekday_seasonal_peaks_are_not_growth_and_the_limit_falls_on_a_busy_weekday() -> None:
    # weekdays at 10,000, weekends at 3,000: flat
    season = [3000 if (LAST - timedelta(days=27 - i)).weekday() >= 5 else 10_000 for i in range(28)]
    flat = fit_growth(days(season), LAST)
    assert flat is not None
    assert flat.slope == pytest.approx(0, abs=1e-9)
    assert flat.index[0] > 1 > flat.index[6]
    # the same season growing 10 %/week
    grown = [v * 1.1 ** (i / 7) for i, v in enumerate(season)]
    growth = fit_growth(days(grown), LAST)
    assert growth is not None
    assert math.exp(7 * growth.slope) - 1 == pytest.approx(0.10, abs=1e-3)
    reached = reach_date(10_000, 20_000, growth, LAST)
    assert reached is not None
    assert reached.weekday() < 5  # the p99 minute is a weekday's: a weekend never reaches it first
    assert (reached - LAST).days in range(51, 54)


def test_too_few_days_give_no_forecast() -> None:
    assert fit_growth(days([10_000] * 6), LAST) is None
    assert reach_date(10_000, 20_000, None, LAST) is None


@pytest.mark.django_db
def test_the_answer_carries_the_forecast(api: APIClient, project: Project) -> None:
    start = T0.replace(hour=0) - timedelta(days=20)
    # one busy minute a day, growing 20 % a week
    calls = [
        call(start + timedelta(days=d, hours=12), input_tokens=round(10_000 * 1.2 ** (d / 7)), output_tokens=0)
        for d in range(21)
    ]
    ingest(api, calls)
    RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=40_000)
    row = answer(project, start=start, hours=21 * 24)["gpt-4o"]
    assert row.forecast.weekly_growth == Decimal("0.2000")
    assert row.forecast.limit_reached_on is not None
    assert row.as_json()["forecast"] == {
        "weekly_growth": "0.2000",
        "limit_reached_on": row.forecast.limit_reached_on.isoformat(),
    }


@pytest.mark.django_db
def test_the_latest_limit_in_the_range_is_found_across_whole_and_partial_days(api: APIClient, project: Project) -> None:
    d0 = T0.replace(hour=0) - timedelta(days=3)
    seen = [(d0 + timedelta(hours=11), 1), (d0 + timedelta(hours=13), 2), (d0 + timedelta(days=1, hours=10), 3),
            (d0 + timedelta(days=3, hours=11), 4), (d0 + timedelta(days=3, hours=13), 5)]  # fmt: skip
    calls = [call(at, ratelimit_limit_tokens=value) for at, value in seen]
    calls.append(call(d0 + timedelta(days=1, hours=9), ratelimit_limit_requests=77))  # a whole day inside
    ingest(api, calls)
    row = answer(project, start=d0 + timedelta(hours=12), hours=72)["gpt-4o"]  # [d0 12:00, d3 12:00)
    assert (row.limits["tpm"], row.limits["rpm"], row.limit_source) == (4, 77, "observed")
    assert answer(project, start=d0 + timedelta(hours=12), hours=24)["gpt-4o"].limits["tpm"] == 3
    assert answer(project, start=d0, hours=12)["gpt-4o"].limits["tpm"] == 1


@pytest.mark.django_db
def test_whole_days_pools_and_ties_read_from_the_day_tier_equal_raw(api: APIClient, project: Project) -> None:
    RateLimit.objects.create(project=project, provider="openai", model="pool", pool_models=["a", "b"], rpm=100)
    d0 = T0.replace(hour=0) - timedelta(days=4)
    calls = [
        call(d0 + timedelta(hours=5), "a", input_tokens=900), call(d0 + timedelta(hours=5), "b", input_tokens=900),
        call(d0 + timedelta(days=1, hours=7), "a", input_tokens=1900),  # alone: below the pooled 2,000
        call(d0 + timedelta(days=1, hours=3), "solo", input_tokens=5000),  # a tie with the day after: the first wins
        call(d0 + timedelta(days=2, hours=1), "solo", input_tokens=5000),
        call(d0 + timedelta(days=2, hours=23, minutes=59), "solo", input_tokens=100),  # the last whole day's end
    ]  # fmt: skip
    ingest(api, calls)
    rows = answer(project, start=d0, hours=72)  # three whole days
    assert (rows["pool"].peaks["tpm"], rows["pool"].peaks["rpm"], rows["pool"].minutes) == (2000, 2, 2)
    assert rows["pool"].peak_minute == d0 + timedelta(hours=5)
    solo = rows["solo"]
    assert (solo.peaks["tpm"], solo.peak_minute, solo.minutes) == (5100, d0 + timedelta(days=1, hours=3), 3)
    # from the middle of a day: partial edge days and whole days together
    assert answer(project, start=d0 + timedelta(hours=6), hours=60)["solo"].peaks["tpm"] == 5100
