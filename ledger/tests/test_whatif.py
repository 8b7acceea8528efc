"""The what-if re-pricing against genai_prices.calc_price, call by call, on real ClickHouse."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.added_fields import ADDED_DEFAULTS
from ledger.clickhouse.migrate import discover
from ledger.models import PriceOverride, TierMultiplier
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, pusd_to_usd, usd_to_pusd
from ledger.queries import QueryError, UsageQuery
from ledger.raw import CALL_FIELDS, CallColumns, CallGroup, insert_rows, price_calls
from ledger.rollups import recompute
from ledger.whatif import Target, tier_thresholds, whatif
from tenancy.models import Project

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
_events = itertools.count()
_projects = itertools.count(10**15)  # hypothesis examples: project ids no Django project has
_CONTEXT = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}


@dataclass
class Call:
    when: datetime
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    input: int = 1000
    cache_read: int = 0
    cache_write: int = 0
    output: int = 100
    tier: str = "default"
    cache_hit: bool = False
    feature: str = "chat"


def write(project_id: int, calls: list[Call], *, rollup: bool = True) -> None:
    defaults: dict[str, Any] = {name: "" for name in CALL_FIELDS}
    defaults.update(
        reasoning_tokens=0, ttft_ms=None, latency_ms=None, status="ok", attempt=1, traffic="live", streamed=False,
        tool_calls=0, max_tokens=None, tags={}, reported_pusd=None, **ADDED_DEFAULTS,
    )  # fmt: skip
    records = [
        tuple(
            {
                **defaults,
                "event_id": f"e{next(_events)}",
                "timestamp": int(c.when.timestamp() * 1000),
                "provider": c.provider,
                "model": c.model,
                "feature": c.feature,
                "input_tokens": c.input,
                "cache_read_tokens": c.cache_read,
                "cache_write_tokens": c.cache_write,
                "output_tokens": c.output,
                "cache_hit": c.cache_hit,
                "service_tier": c.tier,
            }[name]
            for name in CALL_FIELDS
        )
        for c in calls
    ]
    group = CallGroup(project_id, uuid.uuid4(), int(END.timestamp() * 1000), CallColumns.from_records(records))
    # Straight into the raw table, then the rollups of those hours: the project id need not be a Django project's.
    insert_rows(price_calls([group], {project_id: load_price_book(project_id)}, 1), f"whatif-{uuid.uuid4()}")
    if rollup:
        recompute(project_id, [c.when for c in calls])


def reference_pusd(c: Call, provider: str, model: str, tier: str) -> int:
    """One call at the target, by the catalogue's own calculator (tier multiplier where it has no variant)."""
    if c.cache_hit:
        return 0
    usage = Usage(
        input_tokens=c.input, cache_read_tokens=c.cache_read, cache_write_tokens=c.cache_write, output_tokens=c.output
    )
    plain = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=c.when).total_price
    if tier == "default":
        return usd_to_pusd(plain)
    context = _CONTEXT[tier]
    priced = genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=c.when, price_context=context
    ).total_price
    return usd_to_pusd(priced) if priced != plain else usd_to_pusd(plain / 2 if tier in ("batch", "flex") else plain)


def run(project_id: int, target: Target, **query: Any) -> Any:
    """The what-if (the price tier where it serves), checked equal to the same sums over the raw table."""
    q = UsageQuery(project_id=project_id, start=START, end=END, granularity=query.pop("granularity", None), **query)
    answer, raw = whatif(q, target), whatif(q, target, rollup=False)
    assert (answer.total, answer.rows, answer.method) == (raw.total, raw.rows, raw.method)
    return answer


@pytest.mark.django_db
def test_across_a_price_change_each_call_pays_the_price_of_its_own_day(project: Project) -> None:
    # mistral-large-4: $0.68/$2.09 until 2026-10-20, $1.36/$4.18 until 10-29, then $0.70/$2.10
    calls = [Call(datetime(2026, 10, d, 12, tzinfo=UTC), input=10_000 + d, output=500 + d) for d in (15, 25, 31)]
    write(project.pk, calls)
    answer = run(project.pk, Target(model="mistral-large-4", provider="mistral"))
    expected = [reference_pusd(c, "mistral", "mistral-large-4", "default") for c in calls]
    assert len(set(expected)) == 3
    assert answer.total.whatif_pusd == sum(expected)
    assert answer.total.calls == 3
    assert answer.total.unpriced_calls == 0
    assert answer.method == "aggregate"


@pytest.mark.django_db
def test_a_long_context_call_pays_the_tier_and_cache_writes_without_a_price_pay_input(project: Project) -> None:
    day = datetime(2026, 11, 5, 9, tzinfo=UTC)
    calls = [
        Call(day, input=250_000, cache_read=10_000, output=2_000),  # over gemini-2.5-pro's 200k threshold
        Call(day, input=200_000, output=2_000),  # exactly at it: base price
        Call(day, input=5_000, cache_write=3_000, output=100),
    ]
    write(project.pk, calls)
    for provider, model in (("google", "gemini-2.5-pro"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5")):
        answer = run(project.pk, Target(provider=provider, model=model))
        assert answer.total.whatif_pusd == sum(reference_pusd(c, provider, model, "default") for c in calls), model
    # gpt-4o has no cache-write price: those tokens cost the uncached input price
    gpt = run(project.pk, Target(provider="openai", model="gpt-4o"), filters={"feature": ("chat",)})
    assert 200_000 in tier_thresholds()
    assert gpt.total.whatif_pusd == sum(reference_pusd(c, "openai", "gpt-4o", "default") for c in calls)


@pytest.mark.django_db
def test_batch_tier_cache_hits_and_actual_cost(project: Project) -> None:
    day = datetime(2026, 11, 5, 9, tzinfo=UTC)
    calls = [
        Call(day, model="gpt-4o"),
        Call(day, model="gpt-4o", input=7_000),
        Call(day, model="gpt-4o", cache_hit=True),
    ]
    write(project.pk, calls)
    answer = run(project.pk, Target(tier="batch"))
    expected = [reference_pusd(c, "openai", "gpt-4o", "batch") for c in calls]
    assert expected[2] == 0
    assert expected[0] * 2 == reference_pusd(calls[0], "openai", "gpt-4o", "default")
    assert answer.total.whatif_pusd == sum(expected)
    assert answer.total.actual_pusd == sum(reference_pusd(c, "openai", "gpt-4o", "default") for c in calls)
    row = answer.total.as_row()
    assert row["delta"] == row["whatif_cost"] - row["actual_cost"] < 0
    assert answer.total.calls == 3


@pytest.mark.django_db
def test_unknown_target_is_counted_unpriced(project: Project) -> None:
    write(
        project.pk, [Call(datetime(2026, 11, 5, tzinfo=UTC)), Call(datetime(2026, 11, 5, tzinfo=UTC), cache_hit=True)]
    )
    answer = run(project.pk, Target(model="no-such-model-anywhere"))
    assert answer.total.unpriced_calls == 1  # the cache hit costs 0 at any price
    assert answer.total.whatif_pusd == 0
    assert answer.total.calls == 2


@pytest.mark.django_db
def test_overrides_and_multipliers_apply_to_the_target(project: Project) -> None:
    when = datetime(2026, 11, 5, 12, tzinfo=UTC)
    PriceOverride.objects.create(
        project=project, provider="openai", model="gpt-4o", effective_from=when,
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"),
    )  # fmt: skip
    TierMultiplier.objects.create(project=project, service_tier="flex", multiplier=Decimal("0.25"))
    before, after = Call(when - timedelta(minutes=1)), Call(when + timedelta(minutes=1), input=4000)
    write(project.pk, [before, after])
    answer = run(project.pk, Target(provider="openai", model="gpt-4o"))
    assert answer.total.whatif_pusd == reference_pusd(before, "openai", "gpt-4o", "default") + (4000 + 200) * 10**6
    flex = run(project.pk, Target(provider="openai", model="gpt-4o", tier="flex"))
    # no flex price for gpt-4o in the catalogue: the project's multiplier, on the catalogue and the override alike
    assert (
        reference_pusd(before, "openai", "gpt-4o", "flex") == reference_pusd(before, "openai", "gpt-4o", "default") // 2
    )
    assert (
        flex.total.whatif_pusd == reference_pusd(before, "openai", "gpt-4o", "default") // 4 + (4000 + 200) * 10**6 // 4
    )


@pytest.mark.django_db
def test_a_model_priced_by_time_of_day_is_priced_per_minute(project: Project) -> None:
    # deepseek-chat: $0.27/$1.10 from 00:30 to 16:30 UTC, $0.135/$0.55 otherwise (two prices in one day)
    night, noon = datetime(2026, 11, 5, 20, tzinfo=UTC), datetime(2026, 11, 5, 12, tzinfo=UTC)
    calls = [
        Call(night, provider="deepseek", model="deepseek-chat"),
        Call(noon, provider="deepseek", model="deepseek-chat"),
    ]
    write(project.pk, calls)
    expected = [reference_pusd(c, "deepseek", "deepseek-chat", "default") for c in calls]
    assert expected[0] != expected[1]
    assert run(project.pk, Target(provider="deepseek", model="deepseek-chat")).total.whatif_pusd == sum(expected)
    assert run(project.pk, Target(tier="default")).total.whatif_pusd == sum(expected)  # each call's own model


@pytest.mark.django_db
def test_group_by_and_day_buckets(project: Project) -> None:
    d1, d2 = datetime(2026, 11, 5, 3, tzinfo=UTC), datetime(2026, 11, 6, 3, tzinfo=UTC)
    calls = [Call(d1), Call(d2, feature="search", input=9_000), Call(d2, feature="search")]
    write(project.pk, calls)
    q = UsageQuery(
        project_id=project.pk, start=datetime(2026, 11, 5, tzinfo=UTC), end=datetime(2026, 11, 7, tzinfo=UTC),
        granularity="day", group_by=("feature",),
    )  # fmt: skip
    answer = whatif(q, Target(provider="openai", model="gpt-4o"))
    ref = [reference_pusd(c, "openai", "gpt-4o", "default") for c in calls]
    assert [(r["bucket"].day, r["feature"], r["calls"], r["whatif_cost"]) for r in answer.rows] == [
        (5, "search", 0, pusd_to_usd(0)),
        (6, "search", 2, pusd_to_usd(ref[1] + ref[2])),
        (5, "chat", 1, pusd_to_usd(ref[0])),
        (6, "chat", 0, pusd_to_usd(0)),
    ]


@pytest.mark.django_db
def test_another_projects_calls_never_count(project: Project) -> None:
    other = Project.objects.create(organization=project.organization, name=f"{project.name}-other")
    write(other.pk, [Call(datetime(2026, 11, 5, tzinfo=UTC))])
    answer = run(project.pk, Target(tier="batch"))
    assert answer.total.calls == 0
    assert answer.rows == [answer.total.as_row()]


def test_a_target_is_required() -> None:
    q = UsageQuery(project_id=1, start=START, end=END)
    for target, message in [
        (Target(), "to_model and/or to_tier"),
        (Target(provider="openai", tier="batch"), "to_provider needs to_model"),
        (Target(tier="cheap"), "to_tier must be one of"),
    ]:
        with pytest.raises(QueryError, match=message):
            whatif(q, target, book=PriceBook())


def test_fractional_rates_are_priced_per_call(ch: Any, db: Any) -> None:
    pid = next(_projects)
    calls = [Call(datetime(2026, 11, 5, tzinfo=UTC), input=1001, output=3), Call(datetime(2026, 11, 5, tzinfo=UTC))]
    write(pid, calls)
    book = PriceBook(multipliers={"flex": Fraction(1, 3)})
    q = UsageQuery(project_id=pid, start=START, end=END, granularity=None)
    answer = whatif(q, Target(provider="openai", model="gpt-4o", tier="flex"), book=book)
    assert answer.method == "per_call"
    # gpt-4o has no flex price in the catalogue: a third of the default price, rounded per part
    expected = sum(round(Fraction(reference_pusd(c, "openai", "gpt-4o", "default")) / 3) for c in calls)
    assert abs(answer.total.whatif_pusd - expected) <= 2 * len(calls)


_MODELS = [("openai", "gpt-4o"), ("google", "gemini-2.5-pro"), ("anthropic", "claude-sonnet-4-5"),
           ("mistral", "mistral-large-4"), ("openai", "gpt-4o-mini"), ("deepseek", "deepseek-chat")]  # fmt: skip
_call = st.builds(
    Call,
    when=st.datetimes(datetime(2026, 10, 2), datetime(2026, 11, 28), timezones=st.just(UTC)),  # noqa: DTZ001
    model=st.sampled_from(["gpt-4o-mini", "gpt-4o", "gemini-2.5-flash"]),
    input=st.integers(0, 400_000),
    cache_read=st.integers(0, 50_000),
    cache_write=st.integers(0, 50_000),
    output=st.integers(0, 20_000),
    tier=st.sampled_from(["default", "batch"]),
    cache_hit=st.booleans(),
    feature=st.sampled_from(["a", "b"]),
).filter(lambda c: c.cache_read + c.cache_write <= c.input)


@pytest.mark.django_db
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(_call, min_size=1, max_size=12), target=st.sampled_from(_MODELS),
       tier=st.sampled_from(["", "batch", "priority"]))  # fmt: skip
def test_whatif_equals_calc_price_call_by_call(ch: Any, calls: list[Call], target: tuple[str, str], tier: str) -> None:
    pid = next(_projects)
    write(pid, calls)
    provider, model = target
    q = UsageQuery(project_id=pid, start=START, end=END, granularity="day", group_by=("feature",))
    fast = whatif(q, Target(provider=provider, model=model, tier=tier), book=PriceBook())
    raw = whatif(q, Target(provider=provider, model=model, tier=tier), book=PriceBook(), rollup=False)
    slow = whatif(q, Target(provider=provider, model=model, tier=tier), book=PriceBook(), per_call=True)
    expected = sum(reference_pusd(c, provider, model, tier or c.tier) for c in calls)
    assert fast.total.whatif_pusd == raw.total.whatif_pusd == slow.total.whatif_pusd == expected
    assert fast.rows == raw.rows == slow.rows
    assert fast.total.calls == len(calls)


def _calls(ch: Any, sql: str, pid: int) -> list[tuple[Any, ...]]:
    return sorted(ch.query(sql, parameters={"project": pid}).result_rows)


@pytest.mark.django_db
def test_whole_hours_come_from_the_price_tier_and_the_partial_hours_at_the_edges_from_raw(project: Project) -> None:
    hour = datetime(2026, 11, 5, 10, tzinfo=UTC)
    calls = [Call(hour + timedelta(minutes=m)) for m in (15, 90, 165)]  # 10:15, 11:30, 12:45
    write(project.pk, calls, rollup=False)  # raw only: the price tier does not know these hours yet
    q = UsageQuery(project_id=project.pk, start=hour + timedelta(minutes=30), end=hour + timedelta(minutes=170))
    target = Target(provider="openai", model="gpt-4o")
    assert whatif(q, target, rollup=False).total.calls == 2
    assert whatif(q, target).total.calls == 1  # 11:30 is in a whole hour: read from the (empty) tier
    recompute(project.pk, [c.when for c in calls])
    fast, raw = whatif(q, target), whatif(q, target, rollup=False)
    assert fast.total == raw.total
    assert fast.total.whatif_pusd == sum(reference_pusd(c, "openai", "gpt-4o", "default") for c in calls[1:])


@pytest.mark.django_db
def test_what_the_price_tier_cannot_answer_exactly_is_read_from_raw(project: Project) -> None:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)  # minutes kept
    write(project.pk, [Call(day + timedelta(hours=h, minutes=20), input=1000 + h) for h in (2, 9, 14)], rollup=False)
    target = Target(provider="openai", model="gpt-4o")
    cases = [
        {"filters": {"customer_id": ("",)}},  # customers are not in the tier
        {"group_by": ("user_id",)},
        {"granularity": "minute"},
        {"granularity": "day", "tz": "Asia/Kolkata"},  # UTC+5:30: hours straddle its days
    ]
    for extra in cases:
        q = UsageQuery(project_id=project.pk, start=day, end=day + timedelta(days=1), **extra)  # type: ignore[arg-type]
        assert whatif(q, target).total.calls == 3, extra
    q = UsageQuery(project_id=project.pk, start=day, end=day + timedelta(days=1))
    assert whatif(q, target).total.calls == 0  # whole hours, not rolled up: the tier answers
    # a price whose long-context threshold is not one of the tier's bands
    write(project.pk, [Call(day + timedelta(hours=3), input=150_000)])  # rolled up: hour 3 only
    odd = PriceBook()
    original = odd.price

    def price(*args: Any) -> Any:
        found = original(*args)
        return replace(found, tiers=((150_001, found.rates),)) if found else found

    odd.price = price  # type: ignore[method-assign,assignment]
    mini = Target(provider="openai", model="gpt-4o-mini")
    assert whatif(q, mini, book=PriceBook()).total.calls == 1
    assert whatif(q, mini, book=odd).total.calls == 4
    # an override taking effect within an hour: the whole range from raw
    PriceOverride.objects.create(
        project=project, provider="openai", model="gpt-4o", effective_from=day + timedelta(hours=9, minutes=30),
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"),
    )  # fmt: skip
    assert whatif(q, target).total.calls == 4


def test_the_migrations_backfill_equals_the_recompute(ch: Any, db: Any) -> None:
    pid = next(_projects)
    day = datetime(2026, 11, 5, tzinfo=UTC)
    write(pid, [Call(day + timedelta(minutes=m * 37), input=m * 9_000, cache_hit=m % 5 == 0,
                     tier=("default", "batch")[m % 2], model=("gpt-4o", "gpt-4o-mini")[m % 3 == 0])
                for m in range(40)], rollup=False)  # fmt: skip
    columns = (
        "bucket, feature, model, provider, service_tier, streamed, finish_reason, error_type, price_band, calls,"
        " cache_hits, cost_pusd, priced_uncached_input_tokens, priced_cache_read_tokens, priced_cache_write_tokens,"
        " priced_output_tokens, priced_reasoning_tokens, max_cost_pusd, max_latency_ms, max_ttft_ms, max_tokens"
    )
    sql = f"SELECT {columns} FROM rollup_price_hour FINAL WHERE project_id = {{project:UInt64}} AND calls > 0"
    # the latest backfill of the tier (0011, which added the maxima), run on a table with every column
    (migration,) = [m for m in discover() if m.name == "rollup_price_hour_extremes"]
    backfill = migration.statements()[-1]
    assert backfill.startswith("INSERT INTO rollup_price_hour")
    ch.command(backfill.replace("FROM llm_calls FINAL", "FROM llm_calls FINAL WHERE project_id = {project:UInt64}"),
               parameters={"project": pid})  # fmt: skip
    filled = _calls(ch, sql, pid)
    assert len(filled) > 5
    recompute(pid, [day + timedelta(hours=h) for h in range(25)])
    assert _calls(ch, sql, pid) == filled
