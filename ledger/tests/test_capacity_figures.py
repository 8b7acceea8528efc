"""The capacity figures (rollup_capacity_figures, migrations 0008 and 0012) against the raw table:
whatever the traffic (late arrivals, re-sends, a reprice), pools and filters, /v1/capacity's answer
from the figures and the minute tier equals the one from llm_calls; the migration's backfill writes
the figures the rollup writes; a day holding more of the range's top minutes than its list keeps
sends the p99 to the minutes; and the route mix keeps only the calls the filters keep."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.accept import accept
from ingest.drain import drain_until_empty
from ledger.capacity import CapacityQuery, capacity, capacity_from_raw
from ledger.capacity_minutes import route_mix
from ledger.capacity_sql import FIGURES_TABLE
from ledger.clickhouse.client import get_clickhouse
from ledger.clickhouse.migrate import discover
from ledger.measures import CAPACITY_TOP_MINUTES
from ledger.models import PriceOverride, RateLimit
from ledger.reprice import reprice
from ledger.rollups import mark_range_dirty, rollup_dirty
from ledger.tests.test_capacity import T0, call, ingest
from ledger.tests.test_rollup_exactness import END, START, record, to_call
from tenancy.models import Organization, Project

_projects = itertools.count()

capacity_record = st.tuples(
    record,
    st.sampled_from(["", "", "rate_limit", "server_error"]),
    st.one_of(st.none(), st.integers(1000, 90_000)),  # the provider's token limit header
    st.one_of(st.none(), st.integers(10, 900)),  # its request limit header
)


def as_record(r: tuple[dict[str, Any], str, int | None, int | None]) -> dict[str, Any]:
    base, error_type, limit_tokens, limit_requests = r
    extra: dict[str, Any] = {}
    if error_type:
        extra.update(status="error", error_type=error_type)
    if limit_tokens is not None:
        extra["ratelimit_limit_tokens"] = limit_tokens
    if limit_requests is not None:
        extra["ratelimit_limit_requests"] = limit_requests
    return {**base, "_extra": extra}


def send_calls(project: Project, records: list[dict[str, Any]]) -> None:
    # as test_rollup_exactness.send: the same event_id is the same call, re-sent as it was
    by_id = {r["event_id"]: r for r in records}
    if by_id:
        body = {"calls": [{**to_call(r), **r["_extra"]} for r in by_id.values()]}
        assert accept(project, json.dumps(body).encode(), None).body["rejected"] == []
    drain_until_empty()
    while rollup_dirty().has_more:
        pass


RANGES = [
    (START, END),  # three whole days
    (START + timedelta(hours=13, minutes=7), END - timedelta(minutes=50)),  # partial edge days around a whole one
    (START + timedelta(days=1), START + timedelta(days=2)),  # one whole day
    (START + timedelta(hours=23, minutes=30), START + timedelta(days=1, minutes=45)),  # across midnight
    (START + timedelta(hours=5), END - timedelta(hours=3)),  # whole edge hours around whole days: no minutes
    (START + timedelta(hours=13), START + timedelta(hours=20)),  # whole hours, no whole day
    (START + timedelta(hours=22), START + timedelta(days=1, hours=3, minutes=1)),  # across midnight, one partial
]
FILTERS: list[dict[str, tuple[str, ...]]] = [
    {},
    {"model": ("gpt-4o-mini", "mystery")},
    {"provider": ("openai",)},
    {"feature": ("chat", "search")},
    {"traffic": ("live",), "route_version": ("v2",)},
]


def raw_route_mix(project: Project, provider: str, models: list[str], minute: datetime, filters: dict[str, Any]) -> Any:
    where = "".join(f" AND toString({d}) IN {{f_{d}:Array(String)}}" for d in filters)
    rows = (
        get_clickhouse()
        .query(
            "SELECT toString(feature), toString(route_version), count(), sum(input_tokens) + sum(output_tokens)"
            " FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND toStartOfMinute(timestamp) = {m:DateTime('UTC')}"
            f" AND provider = {{pr:String}} AND toString(model) IN {{ms:Array(String)}}{where}"
            " GROUP BY 1, 2 ORDER BY 4 DESC, 1, 2",
            parameters={"p": project.pk, "m": minute, "pr": provider, "ms": models}
            | {f"f_{d}": list(v) for d, v in filters.items()},
        )
        .result_rows
    )
    return [{"feature": f, "route_version": rv, "calls": int(c), "tokens": int(t)} for f, rv, c, t in rows]


def check(project: Project) -> None:
    for (start, end), filters in itertools.product(RANGES, FILTERS):
        query = CapacityQuery(project.pk, start, end, filters)
        ours, raw = capacity(query), capacity_from_raw(query)
        diff = [
            (a["model"], k, a[k], b[k])
            for a, b in zip((r.as_json() for r in ours), (r.as_json() for r in raw), strict=False)
            for k in a
            if a[k] != b[k]
        ]
        assert [r.as_json() for r in ours] == [r.as_json() for r in raw], (start, end, filters, diff)
        assert [(r.minutes, r.p99, r.daily) for r in ours] == [(r.minutes, r.p99, r.daily) for r in raw]
        for row in ours:
            expected = raw_route_mix(project, row.provider, row.models, row.peak_minute, filters)
            assert route_mix(project.pk, row.provider, row.models, row.peak_minute, filters) == expected


@pytest.mark.django_db
# no shrinking: each example asks 20 questions of two stores, a shrink would take many minutes
@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    first=st.lists(capacity_record, min_size=1, max_size=40),
    late=st.lists(capacity_record, max_size=15),
    pooled=st.booleans(),
    do_reprice=st.booleans(),
)
def test_capacity_from_the_figures_equals_raw(
    ch: object, first: list[Any], late: list[Any], pooled: bool, do_reprice: bool
) -> None:
    org = Organization.objects.create(name=f"cap-org-{next(_projects)}")
    project = Project.objects.create(organization=org, name=f"cap-{next(_projects)}")
    if pooled:
        RateLimit.objects.create(
            project=project, provider="openai", model="4o pool", pool_models=["gpt-4o", "gpt-4o-mini"], tpm=50_000
        )
    records = [as_record(r) for r in first]
    # given traffic that was rolled up
    send_calls(project, records)
    # then late arrivals and client re-sends into days already rolled up
    send_calls(project, records[: len(records) // 2] + [as_record(r) for r in late])
    # and perhaps a price correction, then a reprice (recomputes the days, tokens unchanged)
    if do_reprice:
        PriceOverride.objects.create(
            project=project, provider="openai", model="gpt-4o", effective_from=START + timedelta(days=1),
            input_per_mtok=Decimal("1.1"), output_per_mtok=Decimal("3.3"),
        )  # fmt: skip
        reprice(project.pk, START, END)
        send_calls(project, [])
    check(project)


def test_the_backfill_writes_the_figures_the_rollup_writes(project: Project) -> None:
    records = [
        as_record(({**r, "event_id": f"b{i}"}, "rate_limit" if i % 7 == 0 else "", 5000 + i if i % 3 else None, None))
        for i, r in enumerate(
            {"minute": m, "model": ("openai", "gpt-4o") if m % 2 else ("anthropic", "claude-haiku-4-5"),
             "feature": "chat", "customer_id": "", "user_id": "u1", "route_version": "v1", "status": "ok",
             "traffic": "live", "attempt": 1, "cache_hit": False, "service_tier": "default",
             "input_tokens": 100 + 37 * m % 900, "cached_share": 0.25, "output_tokens": 10 + m % 50,
             "latency_ms": None}
            for m in [*range(0, 200, 3), *range(1430, 1450), 2000, 2001, 2001]
        )
    ]  # fmt: skip
    send_calls(project, records)
    ch = get_clickhouse()
    # the days' figures as 0008 wrote them from the minutes (0012 copies them), the hours' as 0012 does
    for version, table, grain, count in ((8, "rollup_capacity_day_figures", "day", 4), (12, FIGURES_TABLE, "hour", 14)):
        backfill = next(m for m in discover() if m.version == version).written()
        insert = next(s for s in backfill if s.startswith(f"INSERT INTO {table}") and "AS m FINAL" in s)
        select = "SELECT " + insert.split("\nSELECT ", 1)[1].replace(
            "FINAL\n", "FINAL WHERE m.project_id = {p:UInt64}\n", 1
        )  # this project's rows only
        rolled = ch.query(
            f"SELECT * EXCEPT (pooled, grain, members, version) FROM {FIGURES_TABLE} FINAL"
            " WHERE project_id = {p:UInt64} AND calls > 0 AND pooled = 0 AND grain = {g:String}"
            " ORDER BY provider, model, bucket",
            parameters={"p": project.pk, "g": grain},
        ).result_rows
        backfilled = [
            (*row[:4], *row[7 if version == 12 else 4 : -1])  # all but pooled, grain, members and the version
            for row in ch.query(f"SELECT * FROM ({select}) ORDER BY 3, 4, 2", parameters={"p": project.pk}).result_rows
        ]
        assert len(rolled) == count  # two models on two days, in 7 hours
        assert backfilled == rolled


def test_a_day_holding_more_of_the_top_minutes_than_its_list_sends_the_p99_to_the_minutes(project: Project) -> None:
    # eight whole days with a call every minute: 11,520 minutes, the p99 is the 116th largest
    day0 = START - timedelta(days=5)
    ch = get_clickhouse()
    ch.command(
        "INSERT INTO llm_calls (project_id, event_id, timestamp, received_at, provider, model, feature,"
        " input_tokens, output_tokens, status, traffic, version)"
        " SELECT {p:UInt64}, concat('m', toString(number)), {d0:DateTime('UTC')} + toIntervalMinute(number),"
        " {d0:DateTime('UTC')} + toIntervalMinute(number), 'openai', 'gpt-4o', 'chat',"
        # day 2 holds 200 busy minutes (1,000 tokens and more): more than the 100 its figures keep
        " if(intDiv(number, 1440) = 2 AND number % 1440 < 200, 1000 + number % 1440, 10), 0, 'ok', 'live', 1"
        " FROM numbers(11520)",
        parameters={"p": project.pk, "d0": day0},
    )
    mark_range_dirty(day0, day0 + timedelta(days=8), project.pk)
    while rollup_dirty().has_more:
        pass
    query = CapacityQuery(project.pk, day0, day0 + timedelta(days=8))
    (row,) = capacity(query)
    assert row.minutes == 11_520
    rank = 11_520 - 11_405 + 1  # n − ⌈0.99·n⌉ + 1
    assert rank > CAPACITY_TOP_MINUTES
    # the 116th largest minute is day 2's: 1,000 + (200 − 116)
    assert row.p99["tpm"] == row.p99["itpm"] == 1000 + 200 - rank
    assert row.p99["rpm"] == 1
    assert [r.as_json() for r in capacity_from_raw(query)] == [row.as_json()]


@pytest.mark.django_db
def test_the_route_mix_keeps_the_calls_the_filters_keep(api: Any, project: Project) -> None:
    ingest(
        api,
        [
            call(T0, feature="chat", route_version="v1", input_tokens=3000),
            call(T0, feature="chat", route_version="v2", input_tokens=1000, traffic="eval"),
            call(T0, feature="search", route_version="v1", input_tokens=500, environment="staging", route="mini"),
        ],
    )
    mix = {
        (f, rv): (c, t)
        for f, rv, c, t in (
            (m["feature"], m["route_version"], m["calls"], m["tokens"])
            for m in route_mix(project.pk, "openai", ["gpt-4o"], T0, {"traffic": ["live"]})
        )
    }
    assert mix == {("chat", "v1"): (1, 3100), ("search", "v1"): (1, 600)}
    assert route_mix(project.pk, "openai", ["gpt-4o"], T0, {"environment": ["staging"]}) == [
        {"feature": "search", "route_version": "v1", "calls": 1, "tokens": 600}
    ]
    assert route_mix(project.pk, "openai", ["gpt-4o"], T0, {"route": ["mini"], "feature": ["chat"]}) == []
    assert route_mix(project.pk, "openai", ["gpt-4o"], T0, {"route_version": ["v2"]}) == [
        {"feature": "chat", "route_version": "v2", "calls": 1, "tokens": 1100}
    ]
    # a pool's member filtered out leaves the others
    assert route_mix(project.pk, "openai", ["gpt-4o", "gpt-4o-mini"], T0, {"model": ["gpt-4o-mini"]}) == []


def pool_rows(project: Project) -> list[tuple[str, list[str], int]]:
    return [
        (str(model), list(members), int(calls))
        for model, members, calls in get_clickhouse()
        .query(
            f"SELECT model, members, sum(calls) FROM {FIGURES_TABLE} FINAL WHERE project_id = {{p:UInt64}}"
            " AND pooled = 1 AND grain = 'day' AND calls > 0 GROUP BY model, members ORDER BY model",
            parameters={"p": project.pk},
        )
        .result_rows
    ]


@pytest.mark.django_db
def test_a_pool_made_or_changed_after_its_traffic_is_summed_for_its_history(api: Any, project: Project) -> None:
    day0 = T0.replace(hour=0) - timedelta(days=3)
    ingest(
        api,
        [
            call(day0 + timedelta(hours=5), "a", input_tokens=900),
            call(day0 + timedelta(hours=5, seconds=30), "b", input_tokens=700),
            call(day0 + timedelta(days=1, hours=7), "b", input_tokens=1900),
            call(day0 + timedelta(days=1, hours=7), "c", input_tokens=400),
        ],
    )
    query = CapacityQuery(project.pk, day0, day0 + timedelta(days=3))  # whole days: the pool tier answers
    # a pool made after its models' traffic was rolled up gets its history at once
    pool = RateLimit.objects.create(project=project, provider="openai", model="ab", pool_models=["a", "b"], tpm=10)
    assert pool_rows(project) == [("ab", ["a", "b"], 3)]
    rows = {r.model: r for r in capacity(query)}
    assert (rows["ab"].peaks["tpm"], rows["ab"].peaks["rpm"], rows["ab"].minutes) == (2000, 2, 2)
    assert [r.as_json() for r in capacity(query)] == [r.as_json() for r in capacity_from_raw(query)]
    # a change of its models rewrites it; until then (rows of other models) the minutes answer
    pool.pool_models = ["b", "c"]
    pool.save()
    assert pool_rows(project) == [("ab", ["b", "c"], 3)]
    rows = {r.model: r for r in capacity(query)}
    assert (rows["ab"].peaks["tpm"], rows["a"].peaks["tpm"]) == (2500, 1000)
    assert [r.as_json() for r in capacity(query)] == [r.as_json() for r in capacity_from_raw(query)]
    # a row summed for other models than the pool's is never used
    ch = get_clickhouse()
    ch.command(
        f"INSERT INTO {FIGURES_TABLE} (project_id, bucket, provider, model, pooled, grain, members, calls,"
        " active_minutes, peak_tpm, version)"
        " VALUES ({p:UInt64}, {d:DateTime('UTC')}, 'openai', 'ab', 1, 'day', ['x'], 1, 1, 999999, {v:UInt64})",
        parameters={"p": project.pk, "d": day0 + timedelta(days=2), "v": 1},
    )
    assert [r.as_json() for r in capacity(query)] == [r.as_json() for r in capacity_from_raw(query)]
    # and a pool deleted leaves no rows behind
    pool.delete()
    assert pool_rows(project) == []


@pytest.mark.django_db
def test_whole_hours_at_the_edges_come_from_the_hour_figures_and_a_pool_lacking_them_from_the_minutes(
    api: Any, project: Project
) -> None:
    day0 = T0.replace(hour=0) - timedelta(days=3)
    ingest(
        api,
        [
            call(day0 + timedelta(hours=5, minutes=10), "a", input_tokens=900),
            call(day0 + timedelta(hours=5, minutes=10, seconds=30), "b", input_tokens=700),
            call(day0 + timedelta(hours=6, minutes=1), "a", input_tokens=300),
            call(day0 + timedelta(days=1, hours=7), "b", input_tokens=1900),
            call(day0 + timedelta(days=2, hours=2, minutes=59), "a", input_tokens=2500),
            call(day0 + timedelta(days=2, hours=2, minutes=59), "c", input_tokens=400),
        ],
    )
    RateLimit.objects.create(project=project, provider="openai", model="ab", pool_models=["a", "b"], tpm=10)
    # from 05:00 on day 0 to 03:00 on day 2: the edge hours, one whole day
    query = CapacityQuery(project.pk, day0 + timedelta(hours=5), day0 + timedelta(days=2, hours=3))
    expected = [r.as_json() for r in capacity_from_raw(query)]
    assert {r["model"]: r["peak_tpm"] for r in expected} == {"ab": 2600, "c": 500}
    ch = get_clickhouse()
    # the minutes are not read: without them the answer is the same
    ch.command(
        "ALTER TABLE rollup_capacity_minute DELETE WHERE project_id = {p:UInt64} SETTINGS mutations_sync = 1",
        parameters={"p": project.pk},
    )
    assert [r.as_json() for r in capacity(query)] == expected
    # but a pool's edge hours missing from the figures send its models to the minutes
    ingest(api, [call(day0 + timedelta(hours=6, minutes=30), "b", input_tokens=50)])
    mark_range_dirty(day0, day0 + timedelta(days=3), project.pk)  # the minutes again
    while rollup_dirty().has_more:
        pass
    expected = [r.as_json() for r in capacity_from_raw(query)]
    assert [r.as_json() for r in capacity(query)] == expected
    ch.command(
        f"ALTER TABLE {FIGURES_TABLE} DELETE WHERE project_id = {{p:UInt64}} AND pooled = 1 AND grain = 'hour'"
        " SETTINGS mutations_sync = 1",
        parameters={"p": project.pk},
    )
    assert [r.as_json() for r in capacity(query)] == expected
