"""Advisor benchmark: /v1/whatif and /v1/advice over 30 days of the 10 M-call data set, beside per-call pricing.

    .venv/bin/python bench/advisor.py [--calls 10000000] [--runs 10]

Uses the query benchmark's data set (bench/query.py: 8 features, full/mini models, 2,000 customers,
90 days), rolled up. Times, over the last 30 days, the what-if "every call at openai/gpt-4o-mini",
by feature and day, and the advice, each through the API (Django's test client, a read key) and
as a direct call of ledger.whatif.whatif / ledger.advice.advice.

The reference prices calls one by one with genai_prices.calc_price, as ledger/tests/test_whatif.py
does. Its sample is every call of a short window (about --sample calls) inside the 30 days: the
timestamps are hashed, so the window's calls are a random draw of features, models, tiers and
customers, and the what-if and the advice can be asked over exactly those calls. The sample is
read from llm_calls FINAL and priced, timed, and the time per call extrapolated to the 30 days'
call count. Exactness: whatif over the window, by feature, equals the calc_price sums to the
pico-dollar; the advice's batch recommendations over the window equal the per-feature savings
(actual - calc_price at the batch tier) of the calls it may move. The advice's reference is that
batch kind alone (one of its seven kinds), so its ratio is a lower bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_query", HERE / "query.py")
assert spec is not None
assert spec.loader is not None
qbench = importlib.util.module_from_spec(spec)
sys.modules["bench_query"] = qbench
spec.loader.exec_module(qbench)  # sets up Django on a fresh chDB + SQLite under a temp dir

import genai_prices  # noqa: E402
import pandas  # noqa: E402
from django.core.management import call_command  # noqa: E402
from genai_prices import Usage  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from ledger.advice import KIND_FUNCTIONS, advice  # noqa: E402
from ledger.advice.context import Context, total  # noqa: E402
from ledger.clickhouse.client import get_clickhouse  # noqa: E402
from ledger.clickhouse.migrate import migrate  # noqa: E402
from ledger.pricebook import load_price_book  # noqa: E402
from ledger.pricing import usd_to_pusd  # noqa: E402
from ledger.queries import UsageQuery  # noqa: E402
from ledger.rollups import mark_range_dirty, rollup_dirty  # noqa: E402
from ledger.whatif import Target, whatif  # noqa: E402
from tenancy.models import ApiKey, Organization, Project  # noqa: E402

TARGET_WHATIF_P95_MS = 500.0
TARGET_ADVICE_P95_MS = 2000.0
TO_PROVIDER, TO_MODEL = "openai", "gpt-4o-mini"
_CONTEXT = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}
_SAMPLE_SQL = (
    "SELECT toString(feature), toString(provider), toString(model), toString(service_tier), toString(traffic),"
    " streamed, timestamp, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, cache_hit, cost_pusd"
    " FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
    " AND timestamp >= {s:DateTime64(3, 'UTC')} AND timestamp < {e:DateTime64(3, 'UTC')}"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sample", type=int, default=2_000, help="about how many calls the reference prices")
    args = parser.parse_args()
    try:
        run(args.calls, args.runs, args.sample)
    finally:
        shutil.rmtree(qbench.WORKDIR, ignore_errors=True)


def seed(calls: int) -> tuple[Project, datetime]:
    Path(qbench.WORKDIR, "static").mkdir(exist_ok=True)  # whitenoise's root, empty: nothing is served
    call_command("migrate", verbosity=0)
    ch = get_clickhouse()
    migrate(ch)
    project = Project.objects.create(organization=Organization.objects.create(name="bench"), name="bench")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    end_ms, span_ms = int(now.timestamp() * 1000), 90 * 86_400_000
    generate = qbench.generate_sql(ch)
    t0 = time.perf_counter()
    step = 2_000_000
    for offset in range(0, calls, step):
        ch.command(
            generate,
            parameters={"project": project.pk, "end_ms": end_ms, "span_ms": span_ms, "offset": offset,
                        "count": min(step, calls - offset)},
        )  # fmt: skip
    mark_range_dirty(now - timedelta(days=91), now + timedelta(hours=1), project.pk)
    while rollup_dirty().has_more:
        pass
    print(f"generated and rolled up {calls:,} calls over 90 days in {time.perf_counter() - t0:.1f}s")
    return project, now


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """(p50 ms, p95 ms, last answer) over ``runs`` calls, after one untimed warm-up."""
    answer = fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))], answer


def reference_pusd(provider: str, model: str, tier: str, when: datetime, row: tuple[Any, ...]) -> int | None:
    """One call at (provider, model, tier) by the catalogue's own calculator; None when it has no price."""
    inp, cr, cw, out, hit = row
    if hit:
        return 0
    usage = Usage(input_tokens=inp, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=out)
    try:
        plain = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when).total_price
    except LookupError:
        return None
    if tier == "default":
        return usd_to_pusd(plain)
    priced = genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=when, price_context=_CONTEXT[tier]
    ).total_price
    return usd_to_pusd(priced) if priced != plain else usd_to_pusd(plain / 2 if tier in ("batch", "flex") else plain)


def reference(project: Project, start: datetime, end: datetime) -> tuple[float, int, dict[str, int], dict[str, int]]:
    """Read and price every call in [start, end) call by call.

    Returns (seconds, calls, what-if pusd per feature at the target, batch saving pusd per feature
    over the calls the advice may move; a feature with an unpriced call is left out of the latter).
    """
    t0 = time.perf_counter()
    rows = get_clickhouse().query(_SAMPLE_SQL, parameters={"p": project.pk, "s": start, "e": end}).result_rows
    whatif_by: dict[str, int] = {}
    batch_by: dict[str, int] = {}
    unpriced: set[str] = set()
    for feature, provider, model, tier, traffic, streamed, when, *tokens, actual in rows:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        cost = reference_pusd(TO_PROVIDER, TO_MODEL, tier, when, tuple(tokens))
        assert cost is not None
        whatif_by[feature] = whatif_by.get(feature, 0) + cost
        if traffic in ("eval", "shadow") and not streamed and tier == "default":
            at_batch = reference_pusd(provider, model, "batch", when, tuple(tokens))
            if at_batch is None:
                unpriced.add(feature)
                continue
            batch_by[feature] = batch_by.get(feature, 0) + actual - at_batch
    seconds = time.perf_counter() - t0
    return seconds, len(rows), whatif_by, {f: s for f, s in batch_by.items() if f not in unpriced and s > 0}


def count(project: Project, start: datetime, end: datetime, extra: str = "") -> int:
    sql = (
        "SELECT count() FROM llm_calls FINAL WHERE project_id = {p:UInt64}"  # noqa: S608 - a constant condition
        f" AND timestamp >= {{s:DateTime64(3, 'UTC')}} AND timestamp < {{e:DateTime64(3, 'UTC')}}{extra}"
    )
    return int(get_clickhouse().query(sql, parameters={"p": project.pk, "s": start, "e": end}).result_rows[0][0])


# The advice's main grouping: per feature, route version, route and model, the calls, cost, errors and
# feedback (count, mean score) that routing compares, plus the p99 output per feature that output_length
# compares max_tokens with. Ours: ClickHouse groups (the rollups hold the feedback join) and takes the
# quantile. The alternative the issue names: raw calls and feedback through query_df into pandas.
_SLICE = ("feature", "route_version", "route", "provider", "model")
_P99_SQL = (
    "SELECT toString(feature), quantileExact(0.99)(output_tokens) FROM llm_calls FINAL"
    " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3, 'UTC')} AND timestamp < {e:DateTime64(3, 'UTC')}"
    " AND isNotNull(max_tokens) AND status = 'ok' GROUP BY feature"
)
_DF_CALLS_SQL = (
    "SELECT toString(feature) AS feature, toString(route_version) AS route_version, toString(route) AS route,"
    " toString(provider) AS provider, toString(model) AS model, event_id, cost_pusd, status != 'ok' AS failed,"
    " status = 'ok' AND isNotNull(max_tokens) AS capped, output_tokens FROM llm_calls FINAL"
    " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3, 'UTC')} AND timestamp < {e:DateTime64(3, 'UTC')}"
)
_DF_FEEDBACK_SQL = (
    "SELECT event_id, argMax(score, created_at) AS score FROM feedback WHERE project_id = {p:UInt64} GROUP BY event_id"
)


def grouping_current(q: UsageQuery) -> tuple[dict[tuple[str, ...], tuple[int, int, int, int]], dict[str, int]]:
    metrics = ("cost", "calls", "errors", "feedback_count", "feedback_score")
    rows = total(q, _SLICE, metrics, "cost")
    table = {
        tuple(r[d] for d in _SLICE): (usd_to_pusd(r["cost"]), r["calls"], r["errors"], r["feedback_count"])
        for r in rows
        if r["calls"]
    }
    p99 = get_clickhouse().query(_P99_SQL, parameters={"p": q.project_id, "s": q.start, "e": q.end}).result_rows
    return table, {f: int(v) for f, v in p99}


def grouping_pandas(q: UsageQuery) -> tuple[dict[tuple[str, ...], tuple[int, int, int, int]], dict[str, int]]:
    client = get_clickhouse().client
    params = {"p": q.project_id, "s": q.start, "e": q.end}
    calls = client.query_df(_DF_CALLS_SQL, parameters=params)
    feedback = client.query_df(_DF_FEEDBACK_SQL, parameters={"p": q.project_id})
    if feedback.empty:  # no rows come back without their columns
        feedback = pandas.DataFrame({"event_id": pandas.Series(dtype=str), "score": pandas.Series(dtype=float)})
    joined = calls.merge(feedback, on="event_id", how="left")
    grouped = joined.groupby(list(_SLICE), sort=False).agg(
        cost=("cost_pusd", "sum"),
        calls=("cost_pusd", "size"),
        errors=("failed", "sum"),
        feedback_count=("score", "count"),
        feedback_score=("score", "mean"),
    )
    table = {
        tuple(key): (int(r.cost), int(r.calls), int(r.errors), int(r.feedback_count))
        for key, r in zip(grouped.index, grouped.itertuples(index=False), strict=True)
    }
    capped = joined[joined["capped"].astype(bool)]
    # quantileExact takes the element at floor(0.99 * n) of the sorted values: pandas' "lower" is floor((n-1)*q)
    p99 = capped.groupby("feature")["output_tokens"].quantile(0.99, interpolation="higher")
    return table, {str(f): int(v) for f, v in p99.items()}


def run(calls: int, runs: int, sample: int) -> None:
    project, now = seed(calls)
    key = ApiKey.issue(project, ["read"])[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    start, end = now - timedelta(days=30), now + timedelta(hours=1)
    span = {"from": start.isoformat(), "to": end.isoformat()}
    target = Target(TO_PROVIDER, TO_MODEL)
    wq = UsageQuery(project.pk, start, end, "day", ("feature",))
    aq = UsageQuery(project.pk, start, end, None, ())

    def api(path: str, params: dict[str, str]) -> Callable[[], object]:
        def call() -> object:
            answer = client.get(path, params)
            assert answer.status_code == 200, answer.content[:300]
            return answer

        return call

    wparams = {**span, "to_provider": TO_PROVIDER, "to_model": TO_MODEL, "granularity": "day", "group_by": "feature"}
    w_api = timed(api("/v1/whatif", wparams), runs)
    w_fn = timed(lambda: whatif(wq, target), runs)
    a_api = timed(api("/v1/advice", span), runs)
    a_fn = timed(lambda: advice(aq), runs)
    method = w_fn[2].method  # type: ignore[attr-defined]
    book = load_price_book(project.pk)
    kinds = {
        kind: timed(lambda fn=fn: fn(Context(aq, book)), 3)[0]  # type: ignore[misc]
        for kind, fn in KIND_FUNCTIONS.items()
    }

    # The sample: every call of a window of about ``sample`` calls, ten days before the end.
    minutes = max(1, -(-sample * 90 * 1440 // calls))
    w_start = (now - timedelta(days=10)).replace(minute=0)
    w_end = w_start + timedelta(minutes=minutes)
    ref_s, ref_n, ref_whatif, ref_batch = reference(project, w_start, w_end)
    got = whatif(UsageQuery(project.pk, w_start, w_end, None, ("feature",)), target)
    ours_whatif = {r["feature"]: usd_to_pusd(r["whatif_cost"]) for r in got.rows}
    whatif_exact = ours_whatif == ref_whatif and got.total.calls == ref_n
    recs = advice(UsageQuery(project.pk, w_start, w_end, None, ())).recommendations
    ours_batch = {r.scope["feature"]: r.savings_pusd for r in recs if r.kind == "batch"}
    advice_exact = ours_batch == ref_batch and bool(ref_batch)

    n_all = count(project, start, end)
    n_batch = count(project, start, end, " AND traffic IN ('eval', 'shadow')")
    per_call_ms = ref_s * 1000 / max(ref_n, 1)
    ref_whatif_ms = per_call_ms * n_all
    ref_advice_ms = per_call_ms * n_batch  # the batch kind alone, read and priced call by call
    print(f"30 days: {n_all:,} calls ({n_batch:,} eval/shadow); what-if target {TO_PROVIDER}/{TO_MODEL}"
          f" by feature x day, method={method}; {runs} runs each after a warm-up")  # fmt: skip
    print(f"reference sample: {ref_n:,} calls in [{w_start:%Y-%m-%d %H:%M}, {w_end:%H:%M}) UTC read and priced by"
          f" calc_price in {ref_s * 1000:.0f} ms = {per_call_ms:.3f} ms/call")  # fmt: skip
    print(f"exact on the sample: whatif by feature {'yes' if whatif_exact else 'NO'} ({len(ref_whatif)} features);"
          f" advice batch savings {'yes' if advice_exact else 'NO'} ({len(ref_batch)} features)")  # fmt: skip
    print("advice() by kind, p50 of 3: " + ", ".join(f"{k} {ms:.0f}ms" for k, ms in kinds.items()) + "\n")

    header = (
        f"{'figure':<34} {'ours p50':>10} {'ours p95':>10} {'reference':>11} {'ratio':>8} {'target':>10} {'met':>4}"
    )
    print(header)
    print("-" * len(header))
    rows = [
        ("/v1/whatif (API), 30 days", w_api, ref_whatif_ms, TARGET_WHATIF_P95_MS, whatif_exact),
        ("whatif() direct, 30 days", w_fn, ref_whatif_ms, TARGET_WHATIF_P95_MS, whatif_exact),
        ("/v1/advice (API), 30 days", a_api, ref_advice_ms, TARGET_ADVICE_P95_MS, advice_exact),
        ("advice() direct, 30 days", a_fn, ref_advice_ms, TARGET_ADVICE_P95_MS, advice_exact),
    ]
    for name, (p50, p95, _), ref_ms, target_ms, exact in rows:
        met = "yes" if p95 <= target_ms and exact else "NO"
        print(f"{name:<34} {p50:>8.1f}ms {p95:>8.1f}ms {ref_ms:>9.0f}ms {ref_ms / p50:>7.1f}x"
              f" {'<=' + format(target_ms, '.0f') + 'ms':>10} {met:>4}")  # fmt: skip
    # The pandas question (issue 13): the advice's grouping, feedback join and quantile in ClickHouse (ours)
    # or through query_df into pandas, over the same 30 days.
    g_ours = timed(lambda: grouping_current(aq), runs)
    pandas_runs = max(1, runs // 5)  # seconds each at 10 M calls, and memory for millions of rows
    g_pandas = timed(lambda: grouping_pandas(aq), pandas_runs)
    ours_table, ours_p99 = grouping_current(aq)
    pandas_table, pandas_p99 = grouping_pandas(aq)
    same_table = ours_table == pandas_table
    same_p99 = ours_p99 == pandas_p99
    print(f"{'advice grouping + p99 (ClickHouse)':<34} {g_ours[0]:>8.1f}ms {g_ours[1]:>8.1f}ms {g_pandas[0]:>9.0f}ms"
          f" {g_pandas[0] / g_ours[0]:>7.1f}x {'-':>10} {'yes' if same_table and same_p99 else 'NO':>4}")  # fmt: skip
    print(f"  reference = query_df (raw calls, feedback) + pandas merge/groupby/quantile, p50 of {pandas_runs}"
          f" runs (p95 {g_pandas[1]:.0f}ms); met = the same {len(ours_table)} groups (calls, cost, errors,"
          f" feedback) {'yes' if same_table else 'NO'} and p99 per feature {'yes' if same_p99 else 'NO'}")  # fmt: skip
    print("\nreference = per-call time on the sample x the 30 days' calls (whatif: all; advice: eval/shadow, the batch"
          " kind only); ratio = reference / ours p50; met = p95 within target and exact on the sample")  # fmt: skip


if __name__ == "__main__":
    main()
