"""The advice kinds against real ClickHouse data, with exact expected dollars."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.added_fields import ADDED_DEFAULTS
from ledger.advice import Advice, advice
from ledger.clickhouse.client import ClickHouse
from ledger.feedback import sync_feedback
from ledger.models import Feedback, TierMultiplier
from ledger.pricebook import load_price_book
from ledger.queries import UsageQuery
from ledger.raw import CALL_FIELDS, CallColumns, CallGroup, write_calls
from ledger.rollups import rollup_dirty
from tenancy.models import Project

DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
_events = itertools.count()
# gpt-4o-mini: $0.15/M input, $0.075/M cache read, $0.60/M output; 1000 in + 100 out = $0.00021 = 210_000_000 pusd
MINI = 210_000_000


def write(project: Project, calls: list[dict[str, Any]], version: int = 1) -> None:
    defaults: dict[str, Any] = {name: "" for name in CALL_FIELDS}
    defaults.update(
        provider="openai", model="gpt-4o-mini", feature="chat", input_tokens=1000, cache_read_tokens=0,
        cache_write_tokens=0, output_tokens=100, reasoning_tokens=0, ttft_ms=None, latency_ms=None, status="ok",
        attempt=1, traffic="live", cache_hit=False, service_tier="default", streamed=False, tool_calls=0,
        max_tokens=None, tags={}, reported_pusd=None, **ADDED_DEFAULTS,
    )  # fmt: skip
    records = []
    for c in calls:
        row = {**defaults, "event_id": f"adv{next(_events)}", **c}
        row["timestamp"] = int((DAY + timedelta(minutes=row.pop("minute", 0))).timestamp() * 1000)
        records.append(tuple(row[name] for name in CALL_FIELDS))
    group = CallGroup(
        project.pk, uuid.uuid4(), int(datetime.now(UTC).timestamp() * 1000), CallColumns.from_records(records)
    )
    write_calls([group], {project.pk: load_price_book(project.pk)}, version, f"advice-{uuid.uuid4()}")
    rollup_dirty()


def run(project: Project, days: int = 1, **filters: tuple[str, ...]) -> Advice:
    return advice(UsageQuery(project_id=project.pk, start=DAY, end=DAY + timedelta(days=days), filters=filters))


def of(answer: Advice, kind: str) -> list[dict[str, Any]]:
    return [r for r in answer.as_rows() if r["kind"] == kind]


def usd(pusd: int) -> Decimal:
    return Decimal(pusd).scaleb(-12)


@pytest.mark.django_db
def test_retries_errors_and_eval_shadow_are_their_spend_by_scope(project: Project) -> None:
    write(project, [
        {"attempt": 2}, {"attempt": 3, "output_tokens": 200},  # retries of chat: 210_000_000 + 270_000_000
        {"status": "error", "error_type": "rate_limit", "feature": "search"},
        {"status": "error", "error_type": "rate_limit", "feature": "search"},
        {"status": "timeout", "error_type": "timeout", "feature": "search", "output_tokens": 0},  # $0.00015
        {"traffic": "eval", "feature": "grader"}, {"traffic": "shadow", "feature": "grader", "streamed": True},
        {},
    ])  # fmt: skip
    answer = run(project, days=2)
    retries = of(answer, "retries")
    assert [(r["scope"], r["savings_usd"]) for r in retries] == [
        ({"feature": "chat", "model": "gpt-4o-mini"}, usd(480_000_000))
    ]
    assert retries[0]["monthly_savings_usd"] == usd(480_000_000 * 15)  # 2 days → 30
    assert retries[0]["evidence"]["retries"] == 2
    assert [
        (r["scope"]["error_type"], r["savings_usd"], r["evidence"]["failed_calls"]) for r in of(answer, "errors")
    ] == [
        ("rate_limit", usd(2 * MINI), 2),
        ("timeout", usd(150_000_000), 1),
    ]
    shadow = of(answer, "eval_shadow")
    assert sorted((r["scope"]["traffic"], r["savings_usd"]) for r in shadow) == [
        ("eval", usd(MINI)),
        ("shadow", usd(MINI)),
    ]
    assert "30 days / 2 days" in shadow[0]["evidence"]["monthly_method"]
    assert shadow[0]["evidence"]["whatif"].startswith("/v1/whatif?from=")
    savings = [r["savings_usd"] for r in answer.as_rows()]
    assert savings == sorted(savings, reverse=True)
    # The filters narrow every kind.
    assert of(run(project, days=2, feature=("search",)), "retries") == []


@pytest.mark.django_db
def test_batch_reprices_eval_and_shadow_at_the_batch_tier_never_streamed_calls(project: Project) -> None:
    write(project, [
        {"traffic": "eval", "feature": "grader"}, {"traffic": "eval", "feature": "grader", "output_tokens": 300},
        {"traffic": "shadow", "feature": "grader", "streamed": True},  # never: streamed
        {"traffic": "eval", "feature": "grader", "service_tier": "flex"},  # never: not at the default tier
        {"traffic": "live", "feature": "grader"},  # live: not batch-eligible
    ])  # fmt: skip
    (rec,) = of(run(project), "batch")
    # gpt-4o-mini batch is half: (210_000_000 + 330_000_000) / 2 saved
    assert rec["scope"] == {"feature": "grader", "traffic": "eval,shadow"}
    assert rec["savings_usd"] == usd(270_000_000)
    assert rec["monthly_savings_usd"] == usd(270_000_000 * 30)
    assert rec["evidence"]["calls"] == 2
    assert rec["evidence"]["excluded_calls"] == 2
    assert "to_tier=batch" in rec["evidence"]["whatif"]


@pytest.mark.django_db
def test_batch_counts_the_live_traffic_of_features_the_project_marks_batch_eligible(project: Project) -> None:
    project.batch_eligible_features = ["nightly-report"]
    project.save()
    write(project, [
        {"feature": "nightly-report"}, {"feature": "nightly-report", "output_tokens": 300},  # live: counted
        {"feature": "nightly-report", "traffic": "eval"},  # eval: counted as always
        {"feature": "nightly-report", "streamed": True},  # never: streamed
        {"feature": "nightly-report", "service_tier": "priority"},  # never: not at the default tier
        {"feature": "chat"}, {"feature": "chat", "output_tokens": 300},  # live, not batch-eligible
    ])  # fmt: skip
    (rec,) = of(run(project), "batch")
    assert rec["scope"] == {"feature": "nightly-report", "traffic": "live,eval,shadow"}
    assert rec["savings_usd"] == usd((MINI + 330_000_000 + MINI) // 2)
    ev = rec["evidence"]
    assert (ev["calls"], ev["live_calls"], ev["excluded_calls"], ev["batch_eligible"]) == (3, 2, 2, True)
    assert "traffic=live%2Ceval%2Cshadow" in ev["whatif"]
    # the query's own filters still hold: live traffic only, or another feature
    (live,) = of(run(project, traffic=("live",)), "batch")
    assert (live["scope"]["traffic"], live["savings_usd"]) == ("live", usd((MINI + 330_000_000) // 2))
    assert of(run(project, feature=("chat",)), "batch") == []


@pytest.mark.django_db
def test_output_length_is_cut_calls_plus_the_retries_after_them_in_the_trace(project: Project) -> None:
    write(project, [
        {"trace_id": "t1", "minute": 2, "attempt": 2},  # a retry before the cut: not caused by it
        {"trace_id": "t1", "minute": 5, "finish_reason": "length"},  # 210_000_000
        {"trace_id": "t1", "minute": 6, "attempt": 2, "output_tokens": 200},  # 270_000_000
        {"trace_id": "t2", "minute": 6, "attempt": 2},  # another trace, no cut
        {"feature": "summary", "max_tokens": 4096}, {"feature": "summary", "max_tokens": 4096, "output_tokens": 90},
        {"feature": "tight", "max_tokens": 300},  # 3x its output: not far above
    ])  # fmt: skip
    rows = of(run(project), "output_length")
    cut = next(r for r in rows if r["scope"] == {"feature": "chat", "model": "gpt-4o-mini"})
    assert cut["savings_usd"] == usd(480_000_000)
    assert (cut["evidence"]["cut_calls"], cut["evidence"]["retries_after_cut"]) == (1, 1)
    slack = [r for r in rows if r is not cut]
    assert [(r["scope"], r["savings_usd"], r["evidence"]["p99_output_tokens"]) for r in slack] == [
        ({"feature": "summary"}, usd(0), 100)
    ]


@pytest.mark.django_db
def test_output_length_reads_no_retries_when_no_answer_was_cut(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: retries in a trace, but no answer cut at max_tokens
    write(project, [{"trace_id": "t1", "minute": 1}, {"trace_id": "t1", "minute": 2, "attempt": 2}])
    callers: list[str] = []
    real = ClickHouse.query

    def spy(self: ClickHouse, *args: Any, **kwargs: Any) -> Any:
        callers.append(kwargs.get("caller") or "")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ClickHouse, "query", spy)
    # when
    rows = of(run(project), "output_length")
    # then: nothing to recommend, and the raw scan for retries after a cut was never run
    assert rows == []
    assert "ledger.advice.output_length.cut" in callers
    assert "ledger.advice.output_length.retries" not in callers


@pytest.mark.django_db
def test_prompt_cache_saves_the_prefix_repeats_would_have_read_minus_the_write_premium(project: Project) -> None:
    prefix = {"prompt_prefix_hash": "h1", "prompt_prefix_tokens": 2000, "input_tokens": 3000}
    write(project, [
        # gpt-4o-mini: repeats at 2 and 4 minutes read 2000 tokens at $0.075/M instead of $0.15/M; no write premium
        {**prefix, "minute": 0}, {**prefix, "minute": 2},
        {**prefix, "minute": 4, "prompt_prefix_tokens_estimated": True},
        {**prefix, "minute": 20},  # past the cache lifetime: a new window, never repeated
        {**prefix, "feature": "short", "prompt_prefix_tokens": 1000}, {**prefix, "feature": "short", "minute": 1,
                                                                       "prompt_prefix_tokens": 1000},  # too short
        # claude-sonnet-4: $3/M input, $0.30/M read, $3.75/M write: one repeat, one write
        *[{**prefix, "feature": "agent", "provider": "anthropic", "model": "claude-sonnet-4", "minute": m}
          for m in (0, 1)],
        # already cached: reads near the prefix
        *[{**prefix, "feature": "cached", "minute": m, "cache_read_tokens": 1900} for m in (0, 1)],
    ])  # fmt: skip
    rows = {r["scope"]["feature"]: r for r in of(run(project), "prompt_cache")}
    assert set(rows) == {"chat", "agent"}
    assert rows["chat"]["savings_usd"] == usd(2 * 2000 * 75_000)
    assert rows["chat"]["evidence"]["repeats_within_ttl"] == 2
    assert rows["chat"]["evidence"]["prefix_tokens_estimated"] is True
    assert "estimated" in rows["chat"]["evidence"]["method"]
    assert rows["agent"]["savings_usd"] == usd(2000 * (3_000_000 - 300_000) - 2000 * (3_750_000 - 3_000_000))
    assert rows["agent"]["evidence"]["prefix_tokens_estimated"] is False


def scored(project: Project, feature: str, model: str, score: float, n: int = 2, **fields: Any) -> list[dict[str, Any]]:
    ids = [f"fb-{feature}-{model}-{next(_events)}" for _ in range(n)]
    Feedback.objects.bulk_create([Feedback(project=project, event_id=i, score=score) for i in ids])
    return [{"event_id": i, "feature": feature, "model": model, **fields} for i in ids]


@pytest.mark.django_db
def test_routing_moves_a_feature_to_the_cheapest_model_proven_no_worse(project: Project) -> None:
    write(project, [
        *scored(project, "chat", "gpt-4o", 0.9), *scored(project, "chat", "gpt-4o-mini", 0.9),
        *scored(project, "chat", "gpt-4.1-nano", 0.5),  # cheaper still, but scored lower
        *scored(project, "search", "gpt-4o", 0.9), {"feature": "search"},  # mini on search has no feedback
    ])  # fmt: skip
    sync_feedback()
    rollup_dirty()
    answer = run(project)
    (rec,) = of(answer, "routing")
    # gpt-4o: 1000 x $2.50/M + 100 x $10/M = $0.0035 a call; gpt-4o-mini $0.00021
    assert rec["scope"] == {"feature": "chat", "provider": "openai", "model": "gpt-4o"}
    assert rec["savings_usd"] == usd(2 * (3_500_000_000 - MINI))
    assert rec["evidence"]["to_model"] == "gpt-4o-mini"
    assert rec["evidence"]["candidate"]["feedback_count"] == 2
    assert rec["evidence"]["current"]["feedback_score"] == pytest.approx(0.9)
    assert "to_model=gpt-4o-mini" in rec["evidence"]["whatif"]
    assert any("search on gpt-4o not compared: no feedback on gpt-4o-mini" in n for n in answer.notes)


@pytest.mark.django_db
def test_routing_compares_models_within_the_same_route_version_and_route(project: Project) -> None:
    v1_full: dict[str, Any] = {"route_version": "v1", "route": "full"}
    v2_full: dict[str, Any] = {"route_version": "v2", "route": "full"}
    write(project, [
        *scored(project, "chat", "gpt-4o", 0.9, 2, **v1_full),
        *scored(project, "chat", "gpt-4o-mini", 0.9, 2, **v1_full),
        # v2's full route: the mini scores lower there, and v1's score of it does not count for v2
        *scored(project, "chat", "gpt-4o", 0.9, 3, **v2_full),
        *scored(project, "chat", "gpt-4o-mini", 0.5, 2, **v2_full),
        # a router that sends each route to one model: its models are compared across the routes of a version
        *scored(project, "triage", "gpt-4o", 0.8, n=3, route_version="v3", route="full"),
        *scored(project, "triage", "gpt-4o-mini", 0.8, route_version="v3", route="mini"),
    ])  # fmt: skip
    sync_feedback()
    rollup_dirty()
    answer = run(project)
    recs = {r["scope"]["feature"]: r for r in of(answer, "routing")}
    assert len(of(answer, "routing")) == 2
    chat = recs["chat"]
    assert chat["scope"] == {
        "feature": "chat", "route_version": "v1", "route": "full", "provider": "openai", "model": "gpt-4o"
    }  # fmt: skip
    assert chat["savings_usd"] == usd(2 * (3_500_000_000 - MINI))  # v1's full calls only, not v2's three
    assert chat["evidence"]["compared_within"] == ["feature", "route_version", "route"]
    assert (chat["evidence"]["calls"], chat["evidence"]["current"]["feedback_count"]) == (2, 2)
    assert "route_version=v1" in chat["evidence"]["whatif"]
    assert "route=full" in chat["evidence"]["whatif"]
    triage = recs["triage"]
    assert triage["scope"] == {"feature": "triage", "route_version": "v3", "provider": "openai", "model": "gpt-4o"}
    assert triage["savings_usd"] == usd(3 * (3_500_000_000 - MINI))
    assert triage["evidence"]["compared_within"] == ["feature", "route_version"]
    assert "routing: chat route_version=v2 route=full on gpt-4o not compared: no cheaper model scores as well" in (
        answer.notes
    )


@pytest.mark.django_db
def test_batch_needs_a_batch_price_from_the_catalogue_or_the_projects_multiplier(project: Project) -> None:
    # claude-sonnet-4 has no batch price in the catalogue: the project's multiplier of 1 says batch costs the same
    TierMultiplier.objects.create(project=project, service_tier="batch", multiplier=Decimal(1))
    write(project, [
        {"traffic": "eval", "feature": "judge", "provider": "anthropic", "model": "claude-sonnet-4"},
        {"traffic": "eval", "feature": "mystery", "provider": "nowhere", "model": "a-model-no-one-prices"},
        {"traffic": "eval", "feature": "grader"},  # gpt-4o-mini: the catalogue's own batch price, half
    ])  # fmt: skip
    answer = run(project)
    assert [(r["scope"]["feature"], r["savings_usd"]) for r in of(answer, "batch")] == [("grader", usd(MINI // 2))]
    assert "batch: mystery: 1 calls have no batch price; not compared" in answer.notes


@pytest.mark.django_db
def test_the_price_tier_and_the_raw_table_give_the_same_advice_through_re_sent_versions(project: Project) -> None:
    calls = [
        {"event_id": "x1", "trace_id": "t1", "minute": 5, "finish_reason": "length"},
        {"event_id": "x2", "trace_id": "t1", "minute": 6, "attempt": 2, "output_tokens": 300},
        {"event_id": "x3", "status": "error", "error_type": "rate_limit", "minute": 7},
        {"event_id": "x4", "status": "error", "error_type": "timeout", "minute": 70, "feature": "search"},
        {"event_id": "x5", "traffic": "eval", "minute": 80, "model": "gpt-4o"},
        {"event_id": "x6", "traffic": "eval", "minute": 81, "model": "gpt-4o", "streamed": True},
        *({"event_id": f"p{i}", "minute": 200 + i, "prompt_prefix_hash": "h", "prompt_prefix_tokens": 2000,
           "input_tokens": 3000, "model": "gpt-4o"} for i in range(4)),
    ]  # fmt: skip
    write(project, calls)
    write(project, calls[:2] + calls[6:8], version=2)  # the same calls stored again, newer: one each counts

    def comparable(answer: Advice) -> list[tuple[Any, ...]]:
        rows = []
        for r in answer.as_rows():
            evidence = {k: v for k, v in r["evidence"].items() if k not in ("whatif", "dashboard", "monthly_method")}
            rows.append((r["kind"], r["scope"], r["savings_usd"], evidence))
        return rows

    end = DAY + timedelta(days=1)
    tier = advice(UsageQuery(project_id=project.pk, start=DAY, end=end))
    raw = advice(UsageQuery(project_id=project.pk, start=DAY, end=end + timedelta(milliseconds=1)))  # not whole hours
    assert comparable(tier) == comparable(raw)
    kinds = {r[0] for r in comparable(tier)}
    assert {"output_length", "errors", "batch", "prompt_cache"} <= kinds
    cut = next(r for r in of(tier, "output_length") if r["scope"] == {"feature": "chat", "model": "gpt-4o-mini"})
    assert (cut["evidence"]["cut_calls"], cut["evidence"]["retries_after_cut"]) == (1, 1)
    assert cut["savings_usd"] == usd(MINI + 330_000_000)  # 1000 in + 300 out on gpt-4o-mini: $0.00033
