"""Dashboard benchmark: each page's server time and ClickHouse query count on 10 million calls.

    .venv/bin/python bench/dashboards.py [--calls 10000000] [--loads 20]

Uses the query benchmark's data set (bench/query.py: 8 features, full/mini models, 2,000
customers, 90 days), rolls it up, signs in an admin and loads every page through Django's test
client in this process: the time is the server's (view, queries, template), not the browser's.
The first load of each page is reported apart (it fills the filter-choices cache); p50/p95 are over
the following loads. The reference is the raw-table query behind the overview's main chart
(spend per day by feature over 30 days, from llm_calls FINAL), timed in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_query", HERE / "query.py")
assert spec is not None
assert spec.loader is not None
qbench = importlib.util.module_from_spec(spec)
sys.modules["bench_query"] = qbench
spec.loader.exec_module(qbench)  # sets up Django on a fresh chDB + SQLite under a temp dir

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from alerts.models import Budget  # noqa: E402
from ledger.clickhouse.client import ClickHouse, get_clickhouse  # noqa: E402
from ledger.clickhouse.migrate import migrate  # noqa: E402
from ledger.queries import UsageQuery, usage  # noqa: E402
from ledger.rollups import mark_range_dirty, rollup_dirty  # noqa: E402
from tenancy.models import Organization, Project  # noqa: E402

TARGET_P95_MS = 300.0
_queries = 0
_original_query = ClickHouse.query


def _counting_query(self: ClickHouse, *args: Any, **kwargs: Any) -> Any:
    global _queries
    _queries += 1
    return _original_query(self, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    try:
        run(args.calls, args.loads)
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
    t0 = time.perf_counter()
    step = 2_000_000
    for offset in range(0, calls, step):
        ch.command(
            qbench.generate_sql(ch),
            parameters={"project": project.pk, "end_ms": end_ms, "span_ms": span_ms, "offset": offset,
                        "count": min(step, calls - offset)},
        )  # fmt: skip
    mark_range_dirty(now - timedelta(days=91), now + timedelta(hours=1), project.pk)
    while rollup_dirty().has_more:
        pass
    print(f"generated and rolled up {calls:,} calls over 90 days in {time.perf_counter() - t0:.1f}s\n")
    return project, now


def measure(client: Client, url: str, loads: int) -> tuple[float, float, float, int, int]:
    """(first load ms, p50 ms, p95 ms, ClickHouse queries per load, status) of a page."""
    global _queries
    _queries = 0
    t0 = time.perf_counter()
    status = client.get(url).status_code
    first = (time.perf_counter() - t0) * 1000
    samples, counts = [], []
    for _ in range(loads):
        _queries = 0
        t0 = time.perf_counter()
        answer = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        counts.append(_queries)
        status = max(status, answer.status_code)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return first, statistics.median(samples), p95, max(counts), status


def run(calls: int, loads: int) -> None:
    project, now = seed(calls)
    admin = get_user_model().objects.create_superuser("bench-admin", password="x")  # noqa: S106 (a throwaway bench user)
    for i, (period, scope) in enumerate(
        [("month", {}), ("week", {}), ("day", {}), ("quarter", {})]
        + [("month", {"feature": [f]}) for f in ("chat-assistant", "support-triage", "doc-extract", "code-review")]
        + [("month", {"customer_id": ["customer-1"]}), ("month", {"model": ["gpt-4o"]})]
    ):
        Budget.objects.create(project=project, name=f"budget {i}", amount=Decimal(1000 + i), period=period, scope=scope)
    client = Client()
    client.force_login(admin)
    ClickHouse.query = _counting_query  # type: ignore[method-assign]  # count, then call through

    today = now.replace(hour=0)
    top_customer = usage(
        UsageQuery(project.pk, today - timedelta(days=30), today + timedelta(days=1), None, ("customer_id",), limit=1)
    ).rows[0]["customer_id"]
    top_call = (
        get_clickhouse()
        .query(
            "SELECT event_id FROM llm_calls WHERE project_id = {p:UInt64} ORDER BY cost_pusd DESC LIMIT 1",
            parameters={"p": project.pk},
        )
        .result_rows[0][0]
    )
    base = f"/p/{project.pk}"
    week = f"from={(today - timedelta(days=6)).date()}&to={today.date()}"
    pages = [
        ("overview, 30 days (stack by feature)", f"{base}/"),
        ("overview, 30 days, stack by customer", f"{base}/?stack=customer_id"),
        ("overview, 7 days, filtered to one feature", f"{base}/?{week}&feature=code-review"),
        ("engineering, 30 days (by model)", f"{base}/engineering/"),
        ("engineering, 7 days hourly, by route version", f"{base}/engineering/?{week}&split=route_version"),
        ("compare route versions v1 vs v2, 30 days", f"{base}/compare/?dim=route_version&a=v1&b=v2"),
        ("customers, 30 days", f"{base}/customers/"),
        ("one customer, 30 days", f"{base}/customers/{top_customer}/"),
        ("calls: 50 most expensive, 30 days", f"{base}/calls/"),
        ("calls: 50 slowest, 7 days", f"{base}/calls/?{week}&order=latency"),
        ("one call, every field", f"{base}/calls/{top_call}/"),
        ("CSV export: top customers", f"{base}/?export=customers"),
        ("budgets (10 budgets, burn and history)", f"{base}/budgets/"),
    ]

    raw_sql = (
        "SELECT toStartOfDay(timestamp) b, feature, sum(cost_pusd), count() FROM llm_calls FINAL"
        " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)}"
        " GROUP BY b, feature ORDER BY b, feature"
    )
    raw_params = {"p": project.pk, "s": today - timedelta(days=29), "e": today + timedelta(days=1)}
    raw = []
    for _ in range(loads):
        t0 = time.perf_counter()
        get_clickhouse().query(raw_sql, parameters=raw_params)
        raw.append((time.perf_counter() - t0) * 1000)
    raw_p50 = statistics.median(raw)

    print(f"{calls:,} calls; {loads} loads per page after a first load; server time through Django's test client")
    print(f"reference: the overview's main chart from the raw table (llm_calls FINAL, 30 days): p50 {raw_p50:.0f} ms\n")
    header = f"{'page':48} {'first':>8} {'p50':>8} {'p95':>8} {'CH queries':>10}  {'p95 < 300 ms':>12}  p50 vs raw"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, url in pages:
        first, p50, p95, queries, status = measure(client, url, loads)
        worst = max(worst, p95)
        ok = "yes" if p95 < TARGET_P95_MS and status == 200 else f"NO ({status})" if status != 200 else "NO"
        print(f"{name:48} {first:7.0f}ms {p50:7.0f}ms {p95:7.0f}ms {queries:10d}  {ok:>12}  {p50 / raw_p50:5.2f}x")
    print(f"\nworst page p95: {worst:.0f} ms (target < {TARGET_P95_MS:.0f} ms)")


if __name__ == "__main__":
    main()
