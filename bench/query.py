"""Query benchmark: 10 million calls over 90 days, rolled up, and the dashboards' queries through
the query module beside the same answers computed from the raw table.

    .venv/bin/python bench/query.py [--calls 10000000] [--days 90] [--runs 20] [--raw-runs 20]
    .venv/bin/python bench/query.py --sizes 1000000,10000000,100000000 [--runs 20] [--raw-runs 5]

With ``--sizes``, each size is built (generated and rolled up) in a process of its own and then
queried by a fresh process, as a server would be after a restart, so that the peak RSS printed is
the query ("serve") process's alone; the sizes are printed side by side with the growth from one
to the next (issue 16: flat queries as the ledger grows). Sizes of 100 M calls and more are spread
over 365 days, smaller ones over 90 (``--days`` sets one span for all).

The traffic is shaped like an application's: 8 features, each routing between its own full and
mini model; 2,000 customers on a long tail, each with up to 10 users; 5 % errors, 8 % eval/shadow.

Prints the full rollup's time (rows/s), p50/p95 of each query over the runs (ours and raw) with the
ratio, and the ingest-to-visible lag through the embedded runner. Uses a fresh chDB directory and a
fresh SQLite file under a temporary directory; nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's packages, not bench/ingest.py, answer "import ingest"

# METERLINE_BENCH_DIR: a directory the caller owns (the --sizes runs share one between their two phases)
WORKDIR = os.environ.get("METERLINE_BENCH_DIR") or tempfile.mkdtemp(prefix="meterline-bench-query-")
os.environ.update(
    DJANGO_SETTINGS_MODULE="config.settings",
    METERLINE_VAR_DIR=WORKDIR,
    DATABASE_URL=f"sqlite:///{WORKDIR}/bench.sqlite3",
    CLICKHOUSE_URL=f"chdb://{WORKDIR}/clickhouse",
    LOG_LEVEL="WARNING",
    ALLOWED_HOSTS="testserver",  # the benchmarks drive Django's test client
)
os.environ.pop("CELERY_BROKER_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from ledger.added_fields import ADDED_DEFAULTS  # noqa: E402
from ledger.clickhouse.client import get_clickhouse  # noqa: E402
from ledger.clickhouse.migrate import migrate  # noqa: E402
from ledger.queries import UsageQuery, usage  # noqa: E402
from ledger.rollups import mark_range_dirty, rollup_dirty  # noqa: E402
from tenancy.models import ApiKey, Organization, Project  # noqa: E402

GENERATE = """
INSERT INTO llm_calls
SELECT
    {project:UInt64} AS project_id,
    concat('bench-', toString(number)) AS event_id,
    fromUnixTimestamp64Milli(toInt64({end_ms:Int64} - (cityHash64(number, 1) % {span_ms:UInt64}))) AS timestamp,
    timestamp AS received_at,
    generateUUIDv4(number) AS batch_id,
    ['openai', 'openai', 'openai', 'anthropic', 'anthropic', 'google', 'google', 'selfhost'][m + 1] AS provider,
    ['gpt-4o', 'gpt-4o-mini', 'o3', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'gemini-2.5-pro',
     'gemini-2.5-flash', 'llama-3.1-8b-ft'][m + 1] AS model,
    '' AS response_model,
    ['chat-assistant', 'support-triage', 'doc-extract', 'code-review', 'search-rerank', 'smart-compose',
     'agent-planner', 'email-draft'][f + 1] AS feature,
    concat('customer-', toString(toUInt32(pow(cityHash64(number, 4) % 1000000 / 1000000.0, 3) * 2000))) AS customer_id,
    concat(customer_id, '/user-', toString(cityHash64(number, 5) % 10)) AS user_id,
    if(cityHash64(number, 6) % 100 < 45, 'v2', 'v1') AS route_version,
    if(m IN (1, 4, 6), 'mini', 'full') AS route,
    if(cityHash64(number, 7) % 100 < 5, 'staging', 'production') AS environment,
    toUInt64(200 + cityHash64(number, 8) % 8000) AS input_tokens,
    toUInt64(input_tokens * (cityHash64(number, 9) % 60) / 100) AS cache_read_tokens,
    toUInt64(0) AS cache_write_tokens,
    toUInt64(20 + cityHash64(number, 10) % 1500) AS output_tokens,
    if(m = 2, toUInt64(output_tokens * 0.6), 0) AS reasoning_tokens,
    if(cityHash64(number, 11) % 3 = 0, NULL, toFloat64(100 + cityHash64(number, 12) % 1500)) AS ttft_ms,
    toFloat64(400 + cityHash64(number, 13) % 12000) AS latency_ms,
    CAST(multiIf(s < 95, 'ok', s < 98, 'error', s < 99, 'timeout', 'cancelled'), 'Enum8(\\'ok\\' = 1, \\'error\\' = 2, \\'timeout\\' = 3, \\'cancelled\\' = 4)') AS status,
    if(s >= 95, 'rate_limit', '') AS error_type,
    toUInt16(if(cityHash64(number, 14) % 100 < 4, 2, 1)) AS attempt,
    CAST(multiIf(t < 92, 'live', t < 97, 'eval', 'shadow'), 'Enum8(\\'live\\' = 1, \\'eval\\' = 2, \\'shadow\\' = 3)') AS traffic,
    cityHash64(number, 15) % 100 < 6 AS cache_hit,
    CAST(if(cityHash64(number, 16) % 100 < 10, 'batch', 'default'), 'Enum8(\\'default\\' = 1, \\'batch\\' = 2, \\'flex\\' = 3, \\'priority\\' = 4)') AS service_tier,
    m IN (0, 2, 3) AS streamed,
    toUInt32(cityHash64(number, 17) % 3) AS tool_calls,
    toUInt32(4096) AS max_tokens,
    concat('trace-', toString(number)) AS trace_id, '' AS session_id, concat('req-', toString(number)) AS request_id,
    map('team', if(m < 3, 'growth', 'platform')) AS tags,
    toInt64((input_tokens - cache_read_tokens) * [2500000, 150000, 2000000, 3000000, 1000000, 1250000, 300000, 0][m + 1]) AS cost_input_pusd,
    toInt64(cache_read_tokens * [1250000, 75000, 500000, 300000, 100000, 125000, 30000, 0][m + 1]) AS cost_cache_read_pusd,
    toInt64(0) AS cost_cache_write_pusd,
    toInt64((output_tokens - reasoning_tokens) * [10000000, 600000, 8000000, 15000000, 5000000, 10000000, 2500000, 0][m + 1]) AS cost_output_pusd,
    toInt64(reasoning_tokens * [10000000, 600000, 8000000, 15000000, 5000000, 10000000, 2500000, 0][m + 1]) AS cost_reasoning_pusd,
    if(cache_hit, 0, cost_input_pusd + cost_cache_read_pusd + cost_output_pusd + cost_reasoning_pusd) AS cost_pusd,
    if(cache_hit, cost_input_pusd + cost_cache_read_pusd + cost_output_pusd + cost_reasoning_pusd, 0) AS cache_saving_pusd,
    CAST(if(m = 7, 'unpriced', 'catalogue'), 'Enum8(\\'catalogue\\' = 1, \\'override\\' = 2, \\'reported\\' = 3, \\'unpriced\\' = 4)') AS cost_source,
    if(m = 7, '', 'bench') AS price_ref,
    toUInt64(1) AS version
FROM (
    -- each feature routes between its own full and mini model (as a router does), users belong to a customer
    SELECT number, toUInt8(cityHash64(number, 3) % 8) AS f,
           if(cityHash64(number, 2) % 100 < 45, [1, 4, 6, 1, 6, 7, 1, 4][f + 1], [0, 3, 5, 2, 6, 7, 0, 3][f + 1]) AS m,
           cityHash64(number, 18) % 100 AS s,
           cityHash64(number, 19) % 100 AS t
    FROM numbers({offset:UInt64}, {count:UInt64})
)
"""


def generate_sql(ch: Any) -> str:
    """GENERATE naming the columns it fills, in the table's order: call fields added by later migrations
    (not generated) take their defaults."""
    names = [
        name
        for (name,) in ch.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'llm_calls'"
            " ORDER BY position"
        ).result_rows
        if name not in ADDED_DEFAULTS
    ]
    head = "INSERT INTO llm_calls\n"
    return GENERATE.replace(head, f"INSERT INTO llm_calls ({', '.join(names)})\n", 1)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    samples, answer = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)], answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=None, help="the span the calls are spread over (default 90)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--raw-runs", type=int, default=None, help="runs of each raw query (default: --runs)")
    parser.add_argument("--sizes", default="", help="comma-separated call counts, each built and queried apart")
    parser.add_argument("--phase", choices=("all", "build", "query"), default="all", help=argparse.SUPPRESS)
    parser.add_argument("--json", default="", help=argparse.SUPPRESS)  # where the query phase writes its figures
    args = parser.parse_args()
    raw_runs = args.raw_runs or args.runs
    if args.sizes:
        try:
            sizes([int(n) for n in args.sizes.split(",")], args.days, args.runs, raw_runs)
        finally:
            shutil.rmtree(WORKDIR, ignore_errors=True)
        return
    days = args.days or default_days(args.calls)
    try:
        if args.phase in ("all", "build"):
            build(args.calls, days)
        if args.phase in ("all", "query"):
            figures = measure(args.runs, raw_runs)
            if args.json:
                Path(args.json).write_text(json.dumps(figures))
    finally:
        if not os.environ.get("METERLINE_BENCH_DIR"):
            shutil.rmtree(WORKDIR, ignore_errors=True)


def default_days(calls: int) -> int:
    return 365 if calls >= 100_000_000 else 90


def build(calls: int, days: int) -> None:
    """Generate ``calls`` over ``days`` inside ClickHouse and roll them up; the meta file tells ``measure``."""
    call_command("migrate", verbosity=0)
    ch = get_clickhouse()
    migrate(ch)
    project = Project.objects.create(organization=Organization.objects.create(name="bench"), name="bench")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    end_ms = int(now.timestamp() * 1000)
    span_ms = days * 86_400_000

    t0 = time.perf_counter()
    step = 2_000_000
    generate = generate_sql(ch)
    for offset in range(0, calls, step):
        ch.command(
            generate,
            parameters={"project": project.pk, "end_ms": end_ms, "span_ms": span_ms, "offset": offset,
                        "count": min(step, calls - offset)},
        )  # fmt: skip
    generated = time.perf_counter() - t0
    print(f"generated {calls:,} calls over {days} days in {generated:.1f}s (inside ClickHouse)")

    t0 = time.perf_counter()
    hours = mark_range_dirty(now - timedelta(days=days + 1), now + timedelta(hours=1), project.pk)
    while rollup_dirty().has_more:
        pass
    rollup_s = time.perf_counter() - t0
    print(f"full rollup: {hours} dirty hours, {calls:,} calls in {rollup_s:.1f}s = {calls / rollup_s:,.0f} rows/s"
          f"  (target <= 60 s)\n", flush=True)  # fmt: skip
    meta = {"project": project.pk, "now": now.isoformat(), "calls": calls, "days": days, "generate_s": generated,
            "rollup_s": rollup_s}  # fmt: skip
    Path(WORKDIR, "meta.json").write_text(json.dumps(meta))


def disk_bytes() -> dict[str, int]:
    """Bytes on disk of the raw table and of every rollup tier (active parts, as merged so far)."""
    rows = (
        get_clickhouse()
        .query(
            "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase()"
            " GROUP BY table"
        )
        .result_rows
    )
    sizes = {str(t): int(b) for t, b in rows}
    return {"raw": sizes.get("llm_calls", 0), "rollups": sum(b for t, b in sizes.items() if t.startswith("rollup_"))}


def measure(runs: int, raw_runs: int) -> dict[str, Any]:
    """Time the dashboards' queries (ours and raw) on the data ``build`` left; print and return the figures."""
    meta = json.loads(Path(WORKDIR, "meta.json").read_text())
    ch = get_clickhouse()
    project = Project.objects.get(pk=meta["project"])
    now = datetime.fromisoformat(meta["now"])
    today = now.replace(hour=0)
    month_start = today.replace(day=1)
    top_customer = usage(
        UsageQuery(project.pk, today - timedelta(days=90), today + timedelta(days=1), None, ("customer_id",), limit=1)
    ).rows[0]["customer_id"]
    p = {"p": project.pk}
    queries: list[tuple[str, UsageQuery, str, dict[str, object]]] = [
        (
            "spend by day stacked by feature, 30 days",
            UsageQuery(project.pk, today - timedelta(days=30), today + timedelta(days=1), "day", ("feature",),
                       metrics=("cost", "calls")),
            "SELECT toStartOfDay(timestamp) b, feature, sum(cost_pusd), count() FROM llm_calls FINAL"
            " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)}"
            " GROUP BY b, feature ORDER BY b, feature",
            {**p, "s": today - timedelta(days=30), "e": today + timedelta(days=1)},
        ),
        (
            "top 20 customers this month",
            UsageQuery(project.pk, month_start, today + timedelta(days=1), None, ("customer_id",),
                       metrics=("cost", "calls", "cost_per_call"), limit=20),
            "SELECT customer_id, sum(cost_pusd) c, count() FROM llm_calls FINAL"
            " WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)}"
            " GROUP BY customer_id ORDER BY c DESC LIMIT 20",
            {**p, "s": month_start, "e": today + timedelta(days=1)},
        ),
        (
            "p95 latency by model x route version, 7 days hourly",
            UsageQuery(project.pk, now - timedelta(days=7), now + timedelta(hours=1), "hour", ("model", "route_version"),
                       metrics=("latency_p95", "calls"), limit=100),
            "SELECT toStartOfHour(timestamp) b, model, route_version, quantile(0.95)(latency_ms), count()"
            " FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)}"
            " AND timestamp < {e:DateTime64(3)} GROUP BY b, model, route_version",
            {**p, "s": now - timedelta(days=7), "e": now + timedelta(hours=1)},
        ),
        (
            "latency+TTFT p95 by model, 30 days daily, top 6+rest",
            UsageQuery(project.pk, today - timedelta(days=30), today + timedelta(days=1), "day", ("model",),
                       metrics=("ttft_p95", "latency_p95"), order_by="calls", limit=6, other="(other)"),
            "SELECT toStartOfDay(timestamp) b, model, quantile(0.95)(ttft_ms), quantile(0.95)(latency_ms), count()"
            " FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND timestamp >= {s:DateTime64(3)}"
            " AND timestamp < {e:DateTime64(3)} GROUP BY b, model",
            {**p, "s": today - timedelta(days=30), "e": today + timedelta(days=1)},
        ),
        (
            "latency p50/95/99 by route version, 7 days hourly",
            UsageQuery(project.pk, now - timedelta(days=7), now + timedelta(hours=1), "hour", ("route_version",),
                       metrics=("latency_p50", "latency_p95", "latency_p99", "ttft_p50", "ttft_p95"),
                       order_by="calls", limit=6, other="(other)"),
            "SELECT toStartOfHour(timestamp) b, route_version, quantiles(0.5, 0.95, 0.99)(latency_ms),"
            " quantiles(0.5, 0.95)(ttft_ms), count() FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
            " AND timestamp >= {s:DateTime64(3)} AND timestamp < {e:DateTime64(3)} GROUP BY b, route_version",
            {**p, "s": now - timedelta(days=7), "e": now + timedelta(hours=1)},
        ),
        (
            "one customer's spend by feature, 90 days",
            UsageQuery(project.pk, today - timedelta(days=90), today + timedelta(days=1), "day", ("feature",),
                       filters={"customer_id": (top_customer,)}, metrics=("cost", "calls")),
            "SELECT toStartOfDay(timestamp) b, feature, sum(cost_pusd), count() FROM llm_calls FINAL"
            " WHERE project_id = {p:UInt64} AND customer_id = {c:String} AND timestamp >= {s:DateTime64(3)}"
            " AND timestamp < {e:DateTime64(3)} GROUP BY b, feature",
            {**p, "c": top_customer, "s": today - timedelta(days=90), "e": today + timedelta(days=1)},
        ),
    ]  # fmt: skip
    figures: dict[str, Any] = {**meta, "queries": {}}
    print(f"{'query':<52} {'source':<26} {'ours p50':>9} {'ours p95':>9} {'raw p50':>9} {'raw p95':>9} {'raw/ours':>9}")
    for name, q, raw_sql, params in queries:
        ours50, ours95, result = timed(partial(usage, q), runs)
        raw50, raw95, _ = timed(partial(ch.query, raw_sql, parameters=params), raw_runs)
        source = result.source  # type: ignore[attr-defined]
        figures["queries"][name] = {"source": source, "ours_p50": ours50, "ours_p95": ours95, "raw_p50": raw50,
                                    "raw_p95": raw95}  # fmt: skip
        print(f"{name:<52} {source:<26} {ours50:>7.1f}ms {ours95:>7.1f}ms {raw50:>7.1f}ms {raw95:>7.1f}ms"
              f" {raw50 / ours50:>8.1f}x")  # fmt: skip
    print("targets: every query p95 < 150 ms; rollup path >= 20x faster than raw\n")
    disk = disk_bytes()
    figures.update(raw_bytes=disk["raw"], rollup_bytes=disk["rollups"])
    print(f"disk per call: raw {disk['raw'] / meta['calls']:.0f} B, rollups {disk['rollups'] / meta['calls']:.0f} B")
    figures["lag_s"] = lag(project)
    print(f"ingest-to-visible lag (embedded runner): {figures['lag_s']:.2f}s  (target <= 10 s)")
    figures["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(f"peak RSS of this process (queries, then the lag probe): {figures['peak_rss'] / 2**30:.2f} GiB")
    return figures


def sizes(counts: list[int], days: int | None, runs: int, raw_runs: int) -> None:
    """Build and query each size in processes of their own, then print the sizes side by side."""
    results = []
    for calls in counts:
        workdir = tempfile.mkdtemp(prefix=f"meterline-bench-query-{calls}-")
        env = {**os.environ, "METERLINE_BENCH_DIR": workdir}
        span = str(days or default_days(calls))
        me = [sys.executable, str(Path(__file__).resolve())]
        try:
            print(f"== {calls:,} calls over {span} days", flush=True)
            subprocess.run([*me, "--calls", str(calls), "--days", span, "--phase", "build"], env=env, check=True)
            out = Path(workdir, "figures.json")
            subprocess.run(
                [*me, "--phase", "query", "--runs", str(runs), "--raw-runs", str(raw_runs), "--json", str(out)],
                env=env, check=True,
            )  # fmt: skip
            results.append(json.loads(out.read_text()))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(flush=True)
    print_sizes(results)


def _size(calls: int) -> str:
    return f"{calls / 1_000_000:g} M"


def print_sizes(results: list[dict[str, Any]]) -> None:
    """The sizes side by side: each query's p95 (ours, raw, ratio), then rollup time, disk per call, RSS;
    the growth of our p95 from each size to the next, and the issue's targets checked at the largest."""
    heads = [f"{_size(r['calls'])} / {r['days']} d" for r in results]
    width = 26
    print(f"{'p95 ours / raw, raw p50 / ours p50':<52}" + "".join(f"{h:>{width}}" for h in heads))
    print("-" * (52 + width * len(heads)))
    largest, previous = results[-1], results[-2] if len(results) > 1 else None
    verdicts = []
    for name in results[0]["queries"]:
        cells = []
        for r in results:
            q = r["queries"][name]
            cells.append(f"{q['ours_p95']:.1f} / {q['raw_p95']:.0f} ms {q['raw_p50'] / q['ours_p50']:.0f}x")
        print(f"{name:<52}" + "".join(f"{c:>{width}}" for c in cells))
        big = largest["queries"][name]
        if big["source"] == "llm_calls":
            continue  # not on the rollup path
        growth = big["ours_p95"] / previous["queries"][name]["ours_p95"] if previous else 1.0
        verdicts.append(
            (name, growth, big["ours_p95"] < 150 and growth <= 1.5 and big["raw_p50"] / big["ours_p50"] >= 20)
        )
    rows = [
        ("rollup", [f"{r['rollup_s']:.1f} s ({r['calls'] / r['rollup_s']:,.0f}/s)" for r in results]),
        ("disk per call, raw / rollups", [f"{r['raw_bytes'] / r['calls']:.0f} / {r['rollup_bytes'] / r['calls']:.0f} B"
                                          for r in results]),
        ("serve process peak RSS", [f"{r['peak_rss'] / 2**30:.2f} GiB" for r in results]),
        ("ingest-to-visible lag", [f"{r['lag_s']:.2f} s" for r in results]),
    ]  # fmt: skip
    for label, cells in rows:
        print(f"{label:<52}" + "".join(f"{c:>{width}}" for c in cells))
    print()
    if previous is not None:
        print(f"targets at {_size(largest['calls'])}: rollup-path p95 < 150 ms, within 1.5x of {_size(previous['calls'])},"
              " >= 20x raw (p50); serve RSS <= 4 GiB")  # fmt: skip
        for name, growth, met in verdicts:
            print(f"  {name:<52} growth {growth:.2f}x  {'yes' if met else 'NO'}")
        print(f"  {'serve process peak RSS':<52} {'yes' if largest['peak_rss'] <= 4 * 2**30 else 'NO'}")


def lag(project: Project) -> float:
    """Accept one batch through the API and poll /v1/usage until it shows; the embedded runner drains."""
    from rest_framework.test import APIClient

    from ops.embedded import EmbeddedRunner

    key = ApiKey.issue(project, ["ingest", "read"])[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    runner = EmbeddedRunner()
    runner.start()
    try:
        now = datetime.now(UTC)
        query = {"from": (now - timedelta(minutes=5)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat(),
                 "granularity": "total", "metrics": "calls", "model": "lag-probe"}  # fmt: skip
        record = {"provider": "acme", "model": "lag-probe", "input_tokens": 1, "output_tokens": 1}
        t0 = time.perf_counter()
        assert client.post("/v1/calls", {"calls": [record] * 1}, format="json").status_code == 202
        deadline = t0 + 30
        while time.perf_counter() < deadline:
            if client.get("/v1/usage", query).json()["data"] == [{"calls": 1}]:
                return time.perf_counter() - t0
            time.sleep(0.05)
        return float("inf")
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
