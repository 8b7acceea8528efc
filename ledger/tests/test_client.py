"""The ClickHouse wrapper names every statement (log_comment) and bounds it (max_execution_time).

chDB keeps no ``system.query_log``, so the statements read their own settings back with
``getSetting``: what they see is what the engine ran them with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from django.test import override_settings
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.clickhouse.client import ClickHouse
from ledger.explore import CallsQuery, OutlierQuery, token_outliers, top_calls
from ledger.queries import UsageQuery, usage
from ledger.rollups import rollup_dirty
from tenancy.models import Project

SEEN = "SELECT getSetting('log_comment'), getSetting('max_execution_time')"
SLOW = "SELECT count() FROM numbers(1000000000000) WHERE NOT ignore(sipHash64(number))"


def _comment(caller: str, project: int | None = None) -> str:
    return json.dumps({"caller": caller} | ({} if project is None else {"project": project}), separators=(",", ":"))


@pytest.fixture
def probe(ch: ClickHouse) -> Iterator[str]:
    """A scratch table whose defaults record the settings each insert ran with."""
    ch.command(
        "CREATE TABLE IF NOT EXISTS test_client_probe (project_id UInt64, n UInt32,"
        " comment String DEFAULT getSetting('log_comment'), bound Float64 DEFAULT getSetting('max_execution_time'))"
        " ENGINE = MergeTree ORDER BY n SETTINGS non_replicated_deduplication_window = 100"
    )
    yield "test_client_probe"
    ch.command("DROP TABLE test_client_probe")


def test_a_query_carries_its_caller_project_and_read_bound(ch: ClickHouse) -> None:
    row = ch.query(f"{SEEN}, {{project:UInt64}}", parameters={"project": 12}, caller="ledger.probe").result_rows[0]
    assert row == (_comment("ledger.probe", 12), 60.0, 12)
    # without a caller keyword: the calling module and function; the project from p / project_id / the keyword
    here = "ledger.tests.test_client.test_a_query_carries_its_caller_project_and_read_bound"
    assert ch.query(f"{SEEN}, {{p:UInt64}}", parameters={"p": 7}).result_rows[0][:2] == (_comment(here, 7), 60.0)
    assert ch.query(f"{SEEN}, {{project_id:UInt64}}", parameters={"project_id": 8}).result_rows[0][0] == _comment(
        here, 8
    )
    assert ch.query(SEEN, project=9).result_rows[0][0] == _comment(here, 9)
    assert ch.query(SEEN).result_rows[0][0] == _comment(here)


def test_the_bounds_come_from_settings_and_a_select_command_is_a_read(ch: ClickHouse, probe: str) -> None:
    here = "ledger.tests.test_client.test_the_bounds_come_from_settings_and_a_select_command_is_a_read"
    with override_settings(CLICKHOUSE_MAX_EXECUTION_TIME=7, CLICKHOUSE_MAX_EXECUTION_TIME_WRITE=900):
        assert ch.query(SEEN).result_rows[0][1] == 7.0
        assert ch.command(f"  ({SEEN})", caller="ledger.probe") == [_comment("ledger.probe"), "7"]
        ch.command(f"INSERT INTO {probe} (project_id, n) SELECT {{project:UInt64}}, 1", parameters={"project": 3})
    assert ch.query(f"SELECT comment, bound FROM {probe}").result_rows == [(_comment(here, 3), 900.0)]
    with override_settings(CLICKHOUSE_MAX_EXECUTION_TIME_WRITE=0):  # writes unbounded: no limit is sent
        ch.command(f"INSERT INTO {probe} (project_id, n) VALUES (3, 2)", caller="ledger.probe")
    assert ch.query(f"SELECT bound FROM {probe} WHERE n = 2").result_rows == [(0.0,)]


def test_an_insert_keeps_its_own_settings_and_names_its_one_project(ch: ClickHouse, probe: str) -> None:
    for _ in range(2):  # the caller's deduplication token survives the merge: the second insert is dropped
        ch.insert(probe, [[5, 5], [1, 2]], ["project_id", "n"], settings={"insert_deduplication_token": "t1"})
    ch.insert(probe, [[5, 6], [3, 4]], ["project_id", "n"], caller="ledger.probe")
    ch.insert(probe, [[6], [5]], ["project_id", "n"], settings={"max_execution_time": 30}, caller="ledger.probe")
    rows = ch.query(f"SELECT n, comment, bound FROM {probe} ORDER BY n").result_rows
    here = "ledger.tests.test_client.test_an_insert_keeps_its_own_settings_and_names_its_one_project"
    assert rows == [
        (1, _comment(here, 5), 600.0),
        (2, _comment(here, 5), 600.0),
        (3, _comment("ledger.probe"), 600.0),  # two projects in the insert: none named
        (4, _comment("ledger.probe"), 600.0),
        (5, _comment("ledger.probe", 6), 30.0),  # a per-call setting wins over the default
    ]


def test_a_statement_over_its_bound_is_stopped(ch: ClickHouse) -> None:
    with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
        ch.query(SLOW, settings={"max_execution_time": 0.2})
    with override_settings(CLICKHOUSE_MAX_EXECUTION_TIME=1):
        with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
            ch.query(SLOW)
        with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
            ch.command(SLOW)


def _recorded(ch: ClickHouse, monkeypatch: pytest.MonkeyPatch, method: str) -> list[dict[str, Any]]:
    """The settings of every ``method`` call the wrapper makes (the calls still run)."""
    seen: list[dict[str, Any]] = []
    real: Callable[..., Any] = getattr(ch.client, method)

    def record(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["settings"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ch.client, method, record)
    return seen


def test_the_ledger_reads_name_themselves(
    ch: ClickHouse, project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = _recorded(ch, monkeypatch, "insert")
    post_calls(
        api, [{"provider": "openai", "model": "gpt-4o", "cost_usd": "1.00", "timestamp": "2026-10-20T09:00:00Z"}]
    )
    drain()
    rollup_dirty()
    # the drain, unchanged, is named by the fallback; its deduplication token is kept
    raw = [s for s in inserts if json.loads(s["log_comment"]).get("project") == project.pk]
    assert len(raw) == 1
    assert raw[0]["insert_deduplication_token"]
    assert raw[0]["max_execution_time"] == 600
    queries = _recorded(ch, monkeypatch, "query")
    day = datetime(2026, 10, 20, tzinfo=UTC)
    rows = usage(UsageQuery(project.pk, day, day + timedelta(days=1), "hour", group_by=("model",))).rows
    assert sum(r["cost"] for r in rows) == Decimal(1)
    top_calls(CallsQuery(project.pk, day, day + timedelta(days=1)))
    token_outliers(OutlierQuery(project.pk, day, day + timedelta(days=1), Decimal(5)))
    assert [s["log_comment"] for s in queries] == [
        _comment("ledger.queries.usage.groups", project.pk),
        _comment("ledger.queries.usage", project.pk),
        _comment("ledger.ranked.guide", project.pk),  # the hours that can hold them (here: too few rows)
        _comment("ledger.explore.top_calls", project.pk),
        _comment("ledger.calls_log.newest_only", project.pk),  # the top calls at their newest version
        _comment("ledger.explore.token_outliers", project.pk),
    ]
    assert {s["max_execution_time"] for s in queries} == {60}


def test_a_server_client_waits_longer_than_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr("clickhouse_connect.get_client", lambda **kwargs: made.append(kwargs))
    with override_settings(CLICKHOUSE_MAX_EXECUTION_TIME=60, CLICKHOUSE_MAX_EXECUTION_TIME_WRITE=900):
        ClickHouse("http://meterline:secret@clickhouse:8123", "meterline")._connect("meterline")
    with override_settings(CLICKHOUSE_MAX_EXECUTION_TIME=60, CLICKHOUSE_MAX_EXECUTION_TIME_WRITE=0):
        ClickHouse("http://meterline:secret@clickhouse:8123", "meterline")._connect("meterline")
    assert [m["send_receive_timeout"] for m in made] == [930, 300]
