"""On a cluster every query and insert names the Distributed tables, never a per-shard ``_local`` one.

The cluster DDL keeps each table's name for its Distributed table (``ledger/clickhouse/cluster.py``),
so the code's SQL is the same on one node and on a cluster. This test runs each path that touches
ClickHouse (ingest and drain, feedback, the rollups, every rollup tier and the raw table through
/v1/usage, what-if, advice, the dashboards' pages and drill-downs, outliers, repricing, readiness)
with ``CLICKHOUSE_CLUSTER`` set, records every statement sent, has the engine parse each one
(``EXPLAIN AST``, with its bound parameters) and checks that every table it names is a table the
cluster DDL creates as a Distributed table. With the setting the statements also carry the
Distributed settings, so the engine checks that those are accepted everywhere too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.clickhouse.client import ClickHouse
from ledger.clickhouse.cluster import ClusterDDL
from ledger.clickhouse.migrate import plan
from ledger.explore import OutlierQuery, token_outliers
from ledger.feedback import sync_feedback
from ledger.queries import UsageQuery, usage
from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from tenancy.models import ApiKey, Membership, Project

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
SYSTEM_TABLES = re.compile(r"^system\.")


def distributed_tables() -> set[str]:
    """The names the cluster DDL gives to Distributed tables (those a later migration dropped left out)."""
    found = set()
    for _, statements in plan(ClusterDDL("meterline", "meterline")):
        for sql in statements:
            match = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER \S+\nAS \w+\nENGINE = Distributed\(", sql)
            if match:
                found.add(match[1])
            dropped = re.match(r"DROP TABLE IF EXISTS (\w+) ON CLUSTER ", sql)
            if dropped:  # a later migration dropped it
                found.discard(dropped[1])
    return found


def tables_named(ch: ClickHouse, sql: str, parameters: dict[str, Any] | None) -> set[str]:
    """The tables ``sql`` reads or writes, from the engine's own parse tree (common table expressions,
    which the tree does not tell from tables, left out)."""
    lines = [row[0] for row in ch.query(f"EXPLAIN AST {sql}", parameters=parameters).result_rows]
    names = {line.split()[1] for line in lines if line.strip().startswith("TableIdentifier ")}
    if lines and lines[0].startswith("InsertQuery"):
        names.add(lines[1].split()[1])  # the target: the first child of the insert
    ctes = set(re.findall(r"(\w+)\s+AS\s*\(\s*SELECT\b", sql, re.IGNORECASE))  # WITH name AS (SELECT …)
    return names - ctes


@pytest.fixture
def sent(ch: ClickHouse) -> Iterator[list[tuple[str, str, Any]]]:
    """Every statement the shared client sends during the test: (kind, SQL or insert table, parameters)."""
    seen: list[tuple[str, str, Any]] = []
    timed = ch._timed

    def record(kind: str, caller: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "")
        seen.append(("insert" if name == "insert" else "sql", str(args[0]), kwargs.get("parameters")))
        return timed(kind, caller, fn, *args, **kwargs)

    ch._timed = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del ch._timed


def call(n: int, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"cq-{n}",
        "timestamp": (DAY + timedelta(hours=hour)).isoformat(),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "feature": "chat",
        "customer_id": "acme",
        "user_id": "u1",
        "route_version": "v1",
        "input_tokens": 1000,
        "output_tokens": 200,
        "latency_ms": 900.0,
        "ttft_ms": 200.0,
        **fields,
    }


def exercise(project: Project, api: APIClient) -> None:
    """Every path that reaches ClickHouse, once."""
    calls = [
        call(1, 9),
        call(2, 10, model="gpt-4o", customer_id="globex", route_version="v2", finish_reason="length", max_tokens=200),
        call(3, 11, status="error", error_type="rate_limit", output_tokens=0, trace_id="t1"),
        call(4, 11, attempt=2, trace_id="t1", prompt_prefix_hash="p1", prompt_prefix_tokens=800),
        call(5, 12, input_tokens=90_000, tags={"team": "a"}),
    ]
    assert post_calls(api, calls).status_code == 202
    drain()
    assert api.post("/v1/feedback", {"event_id": "cq-1", "score": 1.0}, format="json").status_code in (200, 201, 202)
    sync_feedback()
    rollup_dirty()

    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    start, end = DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()
    window = {"from": start, "to": end}
    for params in [
        {"granularity": "minute", "from": (DAY + timedelta(hours=9)).isoformat()},
        {"granularity": "hour", "group_by": "model,route_version", "metrics": "cost,latency_p95"},
        {"granularity": "hour", "group_by": "feature,environment"},
        {"granularity": "day", "group_by": "feature,model"},
        {"granularity": "day", "group_by": "feature,status"},
        {"granularity": "day", "group_by": "customer_id"},
        {"granularity": "day", "group_by": "customer_id,model"},
        {"granularity": "day", "group_by": "user_id"},
        {"granularity": "day", "group_by": "customer_id", "metrics": "latency_p95"},  # raw: no sketches there
    ]:
        answer = reader.get("/v1/usage", {**window, **params})
        assert answer.status_code == 200, (params, answer.content)
    assert reader.get("/v1/whatif", {**window, "to_model": "gpt-4o"}).status_code == 200
    assert reader.get("/v1/advice", window).status_code == 200

    user = get_user_model().objects.create_user(f"cq-{project.pk}")
    Membership.objects.create(user=user, organization=project.organization, role="admin")
    browser = Client()
    browser.force_login(user)
    page_range = {"from": DAY.date().isoformat(), "to": DAY.date().isoformat()}
    for path in ("", "engineering/", "customers/", "customers/acme/", "savings/", "calls/", "calls/cq-2/"):
        assert browser.get(f"/p/{project.pk}/{path}", page_range).status_code == 200, path
    compare = {**page_range, "dim": "route_version", "a": "v1", "b": "v2"}
    assert browser.get(f"/p/{project.pk}/compare/", compare).status_code == 200
    assert browser.get(f"/p/{project.pk}/calls/", {**page_range, "order": "latency"}).status_code == 200

    usage(UsageQuery(project.pk, DAY, DAY + timedelta(days=1), tags={"team": ("a",)}))  # raw: tags
    token_outliers(OutlierQuery(project.pk, DAY, DAY + timedelta(days=1), Decimal(3), min_calls=1))
    reprice(project.pk, DAY, DAY + timedelta(days=1))
    rollup_dirty()
    assert Client().get("/readyz").status_code in (200, 503)


@override_settings(CLICKHOUSE_CLUSTER="meterline")
def test_every_query_path_names_the_distributed_tables(
    ch: ClickHouse, project: Project, api: APIClient, sent: list[tuple[str, str, Any]]
) -> None:
    exercise(project, api)
    distributed = distributed_tables()
    assert {"llm_calls", "feedback", "rollup_minute", "rollup_hour", "rollup_day"} <= distributed
    used: set[str] = set()
    for kind, text, parameters in list(sent):  # a copy: the EXPLAINs below are recorded too
        names = {text} if kind == "insert" else tables_named(ch, text, parameters)
        names = {n for n in names if not SYSTEM_TABLES.match(n)}
        assert names <= distributed, f"{sorted(names - distributed)} in: {text[:200]}"
        assert not any(n.endswith("_local") for n in names), text[:200]
        used |= names
    # each query path ran: every Distributed table was read or written at least once
    assert used == distributed, f"no path here touches {sorted(distributed - used)}: add its reader to exercise()"
