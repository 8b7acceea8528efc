"""Dashboard benchmark: each page's server time and ClickHouse query count on 10 million calls.

    .venv/bin/python bench/dashboards.py [--calls 10000000] [--loads 20]

Uses the query benchmark's data set (bench/query.py: 8 features, full/mini models, 2,000
customers, 90 days), rolls it up, signs in an admin and loads every page through Django's test
client in this process: the time is the server's (view, queries, template), not the browser's.
The first load of each page is reported apart (it fills the filter-choices cache); p50/p95 are over
the following loads. The reference is the raw-table query behind the overview's main chart
(spend per day by feature over 30 days, from llm_calls FINAL), timed in the same run.

Targets (issue 12): every page p95 < 150 ms and at most 0.3x the reference's p95; the overview in
at most 6 ClickHouse queries; the calls log's first page < 100 ms p95 at any range.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
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
from django.test import Client, override_settings  # noqa: E402

from alerts.models import Budget  # noqa: E402
from ledger.clickhouse.client import ClickHouse, get_clickhouse  # noqa: E402
from ledger.clickhouse.migrate import migrate  # noqa: E402
from ledger.queries import UsageQuery, usage  # noqa: E402
from ledger.rollups import mark_range_dirty, rollup_dirty  # noqa: E402
from tenancy.models import Organization, Project  # noqa: E402

TARGET_P95_MS = 150.0
TARGET_RATIO = 0.3  # page p95 / reference p95
TARGET_LOG_P95_MS = 100.0  # the calls log's first page
TARGET_OVERVIEW_QUERIES = 6
_queries = 0
_original_timed = ClickHouse._timed


def _counting_timed(self: ClickHouse, *args: Any, **kwargs: Any) -> Any:
    """Every statement the client sends (query, command, insert: all pass through ``_timed``)."""
    global _queries
    _queries += 1
    return _original_timed(self, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--pages", default="", help="only the pages whose name contains one of these (comma-separated)")
    parser.add_argument(
        "--merged-too", action="store_true",
        help="time each page again with the precomputed percentiles off (every percentile merges the digests)",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        run(args.calls, args.loads, [p for p in args.pages.split(",") if p], args.merged_too)
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
    generate = qbench.generate_sql(ch)  # the generator naming its columns: later call fields take defaults
    for offset in range(0, calls, step):
        ch.command(
            generate,
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


def reference_ms(sql: str, parameters: dict[str, Any], loads: int) -> tuple[float, float]:
    """(p50, p95) of a reference query over ``loads`` runs."""
    samples = []
    for _ in range(loads):
        t0 = time.perf_counter()
        get_clickhouse().query(sql, parameters=parameters)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


def run(calls: int, loads: int, only: list[str] | None = None, merged_too: bool = False) -> None:
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
    ClickHouse._timed = _counting_timed  # type: ignore[method-assign]  # count, then call through

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
    year = f"from={(today - timedelta(days=364)).date()}&to={today.date()}"
    # The second page of the log: the cursor its first page links to.
    older_link = re.search(r'href="\?([^"]+)" rel="next"', client.get(f"{base}/calls/").content.decode())
    older = older_link[1].replace("&amp;", "&") if older_link else ""
    trace = f"trace-{top_call.removeprefix('bench-')}"  # the generator gives each call its own trace
    pages = [
        ("overview, 30 days (stack by feature)", f"{base}/"),
        ("overview, 30 days, stack by customer", f"{base}/?stack=customer_id"),
        ("overview, 7 days, filtered to one feature", f"{base}/?{week}&feature=code-review"),
        ("engineering, 30 days (by model)", f"{base}/engineering/"),
        ("engineering, 7 days hourly, by route version", f"{base}/engineering/?{week}&split=route_version"),
        ("compare route versions v1 vs v2, 30 days", f"{base}/compare/?dim=route_version&a=v1&b=v2"),
        ("customers, 30 days", f"{base}/customers/"),
        ("one customer, 30 days", f"{base}/customers/{top_customer}/"),
        ("calls log: first page, 30 days", f"{base}/calls/"),
        ("calls log: first page, 365 days", f"{base}/calls/?{year}"),
        ("calls log: second page (cursor), 30 days", f"{base}/calls/?{older}"),
        ("calls log: one feature and errors, 30 days", f"{base}/calls/?feature=code-review&status=error"),
        ("calls log: search one customer, 30 days", f"{base}/calls/?q={top_customer}"),
        ("calls log: search one trace id, 30 days", f"{base}/calls/?q={trace}"),
        ("calls: 50 most expensive, 30 days", f"{base}/calls/?order=cost"),
        ("calls: 50 slowest, 7 days", f"{base}/calls/?{week}&order=latency"),
        ("one trace", f"{base}/traces/{trace}/"),
        ("savings, 30 days (advice)", f"{base}/savings/"),
        ("one call, every field", f"{base}/calls/{top_call}/"),
        ("CSV export: top customers", f"{base}/?export=customers"),
        ("budgets (10 budgets, burn and history)", f"{base}/budgets/"),
    ]

    if only:
        pages = [(name, url) for name, url in pages if any(o in name for o in only)]
    if merged_too:
        pages = [row for name, url in pages for row in ((name, url), (f"{name} [merged digests]", url))]

    raw_sql = (
        "SELECT toStartOfDay(timestamp) b, feature, sum(cost_pusd), count() FROM llm_calls FINAL"
        " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)}"
        " GROUP BY b, feature ORDER BY b, feature"
    )
    raw_params = {"p": project.pk, "s": today - timedelta(days=29), "e": today + timedelta(days=1)}
    raw_p50, raw_p95 = reference_ms(raw_sql, raw_params, loads)
    # What the calls log's first page would cost read the plain way: FINAL over the range, sorted.
    log_sql = (
        "SELECT event_id, timestamp, model, feature, customer_id, cost_pusd FROM llm_calls FINAL"
        " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)}"
        " ORDER BY timestamp DESC, event_id DESC LIMIT 51"
    )
    final_p50, _ = reference_ms(log_sql, raw_params, loads)

    print(f"{calls:,} calls; {loads} loads per page after a first load; server time through Django's test client")
    print(
        f"reference: the overview's main chart from the raw table (llm_calls FINAL, 30 days): p50 {raw_p50:.0f} ms,"
        f" p95 {raw_p95:.0f} ms"
    )
    print(f"reference for the calls log: its first page read with FINAL (newest 51, 30 days): p50 {final_p50:.0f} ms")
    print(
        f"targets: p95 < {TARGET_P95_MS:.0f} ms and p95 <= {TARGET_RATIO}x the reference's p95"
        f" (= {TARGET_RATIO * raw_p95:.0f} ms); calls log first page p95 < {TARGET_LOG_P95_MS:.0f} ms;"
        f" overview <= {TARGET_OVERVIEW_QUERIES} ClickHouse queries\n"
    )
    header = f"{'page':66} {'first':>8} {'p50':>8} {'p95':>8} {'CH queries':>10} {'p95/ref':>8}  {'met':>4}"
    print(header)
    print("-" * len(header))
    worst, failed = 0.0, []
    for name, url in pages:
        with override_settings(LEDGER_PRECOMPUTED_QUANTILES=not name.endswith("[merged digests]")):
            first, p50, p95, queries, status = measure(client, url, loads)
        worst = max(worst, p95)
        ratio = p95 / raw_p95
        met = status == 200 and p95 < TARGET_P95_MS and ratio <= TARGET_RATIO
        if name.startswith("calls log: first page"):
            met = met and p95 < TARGET_LOG_P95_MS
        if name.startswith("overview"):
            met = met and queries <= TARGET_OVERVIEW_QUERIES
        if not met:
            failed.append(name)
        ok = "yes" if met else f"NO ({status})" if status != 200 else "NO"
        print(f"{name:66} {first:7.0f}ms {p50:7.0f}ms {p95:7.0f}ms {queries:10d} {ratio:7.2f}x  {ok:>4}")
    print(f"\nworst page p95: {worst:.0f} ms; {len(pages) - len(failed)} of {len(pages)} pages meet every target")


if __name__ == "__main__":
    main()
