"""ledger.raw: the llm_calls layout, pricing calls into cost columns, and the insert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.clickhouse.client import ClickHouse
from ledger.models import DirtyBucket
from ledger.pricing import Cost, OverrideSpec, PriceBook
from ledger.raw import (
    ADDED_DEFAULTS,
    CALL_COLUMNS,
    CALL_FIELDS,
    COLUMNS,
    COST_COLUMNS,
    RAW_TABLE,
    CallColumns,
    CallGroup,
    price_calls,
    write_calls,
)
from tenancy.models import Project

T0 = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
MTOK = 10**6  # pico-USD per token at 1 USD per million tokens
# acme/m from 2026-01-01: per Mtok 2 USD input, 1 cache read, 4 cache write, 8 output, 16 reasoning.
BOOK = PriceBook(
    [
        OverrideSpec(
            id=1, provider="acme", model="m", effective_from=datetime(2026, 1, 1, tzinfo=UTC),
            input_per_mtok=Decimal(2), output_per_mtok=Decimal(8), cache_read_per_mtok=Decimal(1),
            cache_write_per_mtok=Decimal(4), reasoning_per_mtok=Decimal(16),
        )
    ]
)  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "event_id": "e", "timestamp": T0_MS, "provider": "acme", "model": "m", "response_model": "", "feature": "chat",
    "customer_id": "", "user_id": "", "route_version": "", "route": "", "environment": "", "input_tokens": 0,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "ttft_ms": None,
    "latency_ms": None, "status": "ok", "error_type": "", "attempt": 1, "traffic": "live", "cache_hit": False,
    "service_tier": "default", "streamed": False, "tool_calls": 0, "max_tokens": None, "trace_id": "",
    "session_id": "", "request_id": "", "tags": {}, "reported_pusd": None, "finish_reason": "",
    "prompt_prefix_hash": "", "prompt_prefix_tokens": 0, "prompt_prefix_tokens_estimated": False,
    "ratelimit_limit_tokens": None, "ratelimit_remaining_tokens": None, "ratelimit_limit_requests": None,
    "ratelimit_remaining_requests": None, "ratelimit_limit_input_tokens": None, "ratelimit_limit_output_tokens": None,
}  # fmt: skip
PREFIX = {
    "finish_reason": "length", "prompt_prefix_hash": "ab" * 32, "prompt_prefix_tokens": 1200,
    "prompt_prefix_tokens_estimated": True, "ratelimit_limit_tokens": 30_000_000, "ratelimit_remaining_tokens": 0,
    "ratelimit_limit_requests": 10_000, "ratelimit_remaining_requests": 9_999, "ratelimit_limit_input_tokens": 400_000,
    "ratelimit_limit_output_tokens": 80_000,
}  # fmt: skip


def calls(*records: dict[str, Any]) -> CallColumns:
    rows = [{**DEFAULTS, **record} for record in records]
    return CallColumns(**{name: [row[name] for row in rows] for name in CALL_FIELDS})


def group(project_id: int, *records: dict[str, Any], received_ms: int = T0_MS + 5) -> CallGroup:
    return CallGroup(project_id, uuid.uuid4(), received_ms, calls(*records))


def stored(ch: ClickHouse, project: Project, columns: str) -> list[dict[str, Any]]:
    result = ch.query(
        f"SELECT {columns} FROM {RAW_TABLE} FINAL WHERE project_id = {{p:UInt64}} ORDER BY event_id",
        parameters={"p": project.pk},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_the_columns_are_the_tables_columns(ch: ClickHouse) -> None:
    described = [row[0] for row in ch.query(f"DESCRIBE TABLE {RAW_TABLE}").result_rows]
    assert len(COLUMNS) == len(set(COLUMNS))
    assert sorted(COLUMNS) == sorted(described)
    # every input field but the reported cost is a column; the fields added later come last
    assert CALL_COLUMNS == tuple(name for name in CALL_FIELDS if name != "reported_pusd")
    assert "reported_pusd" in CALL_FIELDS
    assert CALL_FIELDS[-len(ADDED_DEFAULTS) :] == tuple(ADDED_DEFAULTS)
    assert len(COST_COLUMNS) == len(Cost._fields)


@pytest.mark.django_db
def test_cached_and_reasoning_tokens_are_priced_once_through_write_calls(ch: ClickHouse, project: Project) -> None:
    # given a call whose input includes cache reads and writes and whose output includes reasoning
    record = {
        "event_id": "c1", "input_tokens": 1000, "cache_read_tokens": 600, "cache_write_tokens": 100,
        "output_tokens": 500, "reasoning_tokens": 200, "tags": {"team": "growth"}, "latency_ms": 12.5,
    }  # fmt: skip
    g = group(project.pk, record)
    # when it is written
    rows = write_calls([g], {project.pk: BOOK}, version=7, token=f"test-{uuid.uuid4()}")
    # then each part is priced on its own share and the total is their sum, nothing counted twice
    assert rows.count == 1
    (row,) = stored(ch, project, "*")
    parts = {
        "cost_input_pusd": 300 * 2 * MTOK, "cost_cache_read_pusd": 600 * 1 * MTOK,
        "cost_cache_write_pusd": 100 * 4 * MTOK, "cost_output_pusd": 300 * 8 * MTOK,
        "cost_reasoning_pusd": 200 * 16 * MTOK,
    }  # fmt: skip
    assert {name: row[name] for name in parts} == parts
    assert row["cost_pusd"] == sum(parts.values()) == 7_200 * MTOK
    assert (row["cost_source"], row["price_ref"], row["cache_saving_pusd"]) == ("override", "override:1", 0)
    # the call's own columns are stored as given, the group's on every row
    assert (row["feature"], row["tags"], row["latency_ms"], row["ttft_ms"]) == ("chat", {"team": "growth"}, 12.5, None)
    assert row["timestamp"].replace(tzinfo=UTC) == T0
    assert int(row["received_at"].replace(tzinfo=UTC).timestamp() * 1000) == T0_MS + 5
    assert (row["batch_id"], row["version"], row["project_id"]) == (g.batch_id, 7, project.pk)
    # and its hour is dirty for the rollups
    hours = list(DirtyBucket.objects.filter(project=project).values_list("hour", flat=True))
    assert hours == [T0.replace(minute=0)]


@pytest.mark.django_db
def test_a_reported_cost_wins_for_the_total_and_an_app_cache_hit_costs_nothing(
    ch: ClickHouse, project: Project
) -> None:
    write_calls(
        [
            group(
                project.pk,
                {"event_id": "r1", "input_tokens": 1000, "reported_pusd": 123_456},
                {"event_id": "r2", "provider": "acme", "model": "unknown", "input_tokens": 1000, "reported_pusd": 789},
                {"event_id": "r3", "input_tokens": 1000, "cache_hit": True, "reported_pusd": 5},
            )
        ],
        {project.pk: BOOK},
        version=1,
        token=f"test-{uuid.uuid4()}",
    )
    rows = stored(ch, project, "event_id, cost_input_pusd, cost_pusd, cache_saving_pusd, cost_source, price_ref")
    assert rows == [
        {"event_id": "r1", "cost_input_pusd": 2000 * MTOK, "cost_pusd": 123_456, "cache_saving_pusd": 0,
         "cost_source": "reported", "price_ref": "override:1"},
        {"event_id": "r2", "cost_input_pusd": 0, "cost_pusd": 789, "cache_saving_pusd": 0,
         "cost_source": "reported", "price_ref": "reported"},
        {"event_id": "r3", "cost_input_pusd": 2000 * MTOK, "cost_pusd": 0, "cache_saving_pusd": 2000 * MTOK,
         "cost_source": "override", "price_ref": "override:1"},
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_repeated_token_inserts_nothing_twice(ch: ClickHouse, project: Project) -> None:
    g = group(project.pk, {"event_id": "d1"}, {"event_id": "d2"})
    token = f"test-{uuid.uuid4()}"
    write_calls([g], {project.pk: BOOK}, version=1, token=token)
    write_calls([g], {project.pk: BOOK}, version=2, token=token)  # a retry: dropped at insert time
    count = ch.command(f"SELECT count() FROM {RAW_TABLE} WHERE project_id = {{p:UInt64}}", parameters={"p": project.pk})
    assert int(count) == 2


def test_price_calls_repeats_each_groups_values_and_collects_hours_per_project() -> None:
    hour_ms = 3_600_000
    a = group(1, {"event_id": "a1"}, {"event_id": "a2", "timestamp": T0_MS + hour_ms}, received_ms=10)
    empty = CallGroup(1, uuid.uuid4(), 11, CallColumns.from_records([]))
    b = group(2, {"event_id": "b1", "provider": "nobody", "model": "x"}, received_ms=12)
    rows = price_calls([a, empty, b], {1: BOOK, 2: PriceBook()}, version=99)
    assert rows.count == 3
    assert rows.column("project_id") == [1, 1, 2]
    assert rows.column("batch_id") == [a.batch_id, a.batch_id, b.batch_id]
    assert rows.column("received_at") == [10, 10, 12]
    assert rows.column("version") == [99, 99, 99]
    assert rows.column("event_id") == ["a1", "a2", "b1"]
    assert rows.column("cost_source") == ["override", "override", "unpriced"]
    assert all(len(column) == 3 for column in rows.columns)
    first = T0.replace(minute=0)
    assert rows.hours == {1: {first, datetime.fromtimestamp(first.timestamp() + 3600, tz=UTC)}, 2: {first}}


def test_call_columns_refuse_columns_of_different_lengths() -> None:
    columns = {name: [DEFAULTS[name]] for name in CALL_FIELDS}
    columns["model"] = []
    with pytest.raises(ValueError, match="differ in length"):
        CallColumns(**columns)


def test_call_columns_from_records_transposes_in_field_order() -> None:
    record = tuple({**DEFAULTS, "event_id": "x", "input_tokens": 5}[name] for name in CALL_FIELDS)
    columns = CallColumns.from_records([record, record])
    assert len(columns) == 2
    assert list(columns.event_id) == ["x", "x"]
    assert list(columns.input_tokens) == [5, 5]
    assert len(CallColumns.from_records([])) == 0


def test_records_laid_out_by_an_earlier_release_take_the_added_fields_defaults() -> None:
    old = tuple({**DEFAULTS, "event_id": "x"}[name] for name in CALL_FIELDS[: -len(ADDED_DEFAULTS)])
    columns = CallColumns.from_records([old])
    assert [getattr(columns, name) for name in ADDED_DEFAULTS] == [[""], [""], [0], [False], *[[None]] * 6]
    with pytest.raises(ValueError, match="without a default"):
        CallColumns.from_records([old[:-1]])
    with pytest.raises(ValueError, match="more than"):
        CallColumns.from_records([(*old, *ADDED_DEFAULTS.values(), "extra")])


@pytest.mark.django_db
def test_a_reprice_keeps_the_added_fields(ch: ClickHouse, project: Project) -> None:
    from ledger.reprice import reprice

    # given a call with a finish reason and a prompt prefix, and one without
    write_calls(
        [group(project.pk, {"event_id": "p1", "input_tokens": 2000, **PREFIX}, {"event_id": "p2", "input_tokens": 5})],
        {project.pk: BOOK},
        version=1,
        token=f"test-{uuid.uuid4()}",
    )
    wanted = [{"event_id": "p1", **PREFIX}, {"event_id": "p2", **ADDED_DEFAULTS}]
    assert stored(ch, project, f"event_id, {', '.join(ADDED_DEFAULTS)}") == wanted
    # when the range is repriced
    assert reprice(project.pk, T0.replace(minute=0), T0.replace(hour=T0.hour + 1, minute=0)) == 2
    # then the new rows (a higher version) keep them
    rows = stored(ch, project, f"event_id, version, {', '.join(ADDED_DEFAULTS)}")
    assert all(row.pop("version") > 1 for row in rows)
    assert rows == wanted


def test_write_calls_with_no_calls_writes_nothing() -> None:
    empty = CallGroup(1, uuid.uuid4(), 0, CallColumns.from_records([]))
    # no ClickHouse and no database are touched: this test has neither fixture
    assert write_calls([empty], {1: BOOK}, version=1, token="unused").count == 0
