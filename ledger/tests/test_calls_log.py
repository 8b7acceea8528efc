"""ledger.calls_log: the calls log's pages (newest first, keyset cursor, newest version only), search, groups."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.calls_log import (
    LogQuery,
    call_group,
    calls_log,
    decode_cursor,
    encode_cursor,
    find_call,
)
from ledger.clickhouse.client import ClickHouse
from ledger.explore import CallsQuery, top_calls
from ledger.queries import QueryError
from ledger.raw import CallGroup, write_calls
from ledger.tests.test_raw import BOOK, calls
from tenancy.models import Project

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
START, END = T0 - timedelta(days=1), T0 + timedelta(days=2)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def write(project: Project, records: list[dict[str, Any]], version: int) -> None:
    group = CallGroup(project.pk, uuid.uuid4(), _ms(T0), calls(*records))
    write_calls([group], {project.pk: BOOK}, version, token=uuid.uuid4().hex)


@pytest.fixture
def no_merges(ch: ClickHouse) -> Iterator[None]:
    """Keep every stored row version apart for the test (as a busy table holds them before merging)."""
    ch.command("SYSTEM STOP MERGES llm_calls")
    try:
        yield
    finally:
        ch.command("SYSTEM START MERGES llm_calls")


def every_page(q: LogQuery) -> list[list[dict[str, Any]]]:
    pages, after = [], ""
    while True:
        page = calls_log(LogQuery(**{**q.__dict__, "after": after}))
        pages.append(page.calls)
        if not page.next_cursor:
            return pages
        after = page.next_cursor


def spread(n: int, **fields: Any) -> list[dict[str, Any]]:
    """n calls over about five hours, several sharing a millisecond (ties break on event id)."""
    return [
        {
            "event_id": f"e{i:03d}",
            "timestamp": _ms(T0 + timedelta(minutes=(i * 7) % 300, seconds=i % 3)) - (i % 2),
            "input_tokens": 1000 + i,
            "output_tokens": 10,
            "latency_ms": float(100 + i),
            **fields,
        }
        for i in range(n)
    ]


def test_pages_are_newest_first_without_gaps_or_repeats(project: Project) -> None:
    write(project, spread(130), version=1)
    pages = every_page(LogQuery(project.pk, START, END, limit=50))
    assert [len(p) for p in pages] == [50, 50, 30]
    seen = [(c["timestamp"], c["event_id"]) for p in pages for c in p]
    assert seen == sorted(seen, reverse=True)
    assert sorted(e for _, e in seen) == [f"e{i:03d}" for i in range(130)]
    assert isinstance(pages[0][0]["cost_usd"], Decimal)


def test_a_call_stored_twice_shows_once_at_its_newest_version(project: Project, no_merges: None) -> None:
    # given: every call at version 1, then a reprice-like rewrite of a third of them at version 2
    # with another feature and cost, not yet merged into one row
    first = spread(60, feature="chat")
    write(project, first, version=1)
    write(project, [{**r, "feature": "search", "output_tokens": 500} for r in first[::3]], version=2)
    # when / then: each call once, with its version-2 fields
    shown = [c for p in every_page(LogQuery(project.pk, START, END, limit=7)) for c in p]
    assert len(shown) == 60
    assert {c["event_id"]: c["feature"] for c in shown} == {
        r["event_id"]: "search" if i % 3 == 0 else "chat" for i, r in enumerate(first)
    }
    # a filter on the old value does not find a call whose newest version no longer has it
    chat = [c for p in every_page(LogQuery(project.pk, START, END, {"feature": ("chat",)}, limit=9)) for c in p]
    assert len(chat) == 40
    assert {c["version"] for c in chat} == {1}
    search = calls_log(LogQuery(project.pk, START, END, {"feature": ("search",)}, limit=100)).calls
    assert len(search) == 20
    assert {c["output_tokens"] for c in search} == {500}
    # the "most expensive" view of the log ranks newest versions only (the version-2 rows cost more)
    top = top_calls(CallsQuery(project.pk, START, END, order_by="cost", limit=25))
    assert len({c["event_id"] for c in top}) == 25
    assert [c["feature"] for c in top[:20]] == ["search"] * 20
    assert find_call(project.pk, first[0]["event_id"])["feature"] == "search"  # type: ignore[index]


def test_the_cursor_is_stable_while_calls_arrive(project: Project) -> None:
    write(project, spread(40), version=1)
    page1 = calls_log(LogQuery(project.pk, START, END, limit=15))
    expected = calls_log(LogQuery(project.pk, START, END, after=page1.next_cursor, limit=15)).calls
    # newer calls arrive, and one older than every page
    write(project, [{"event_id": f"new{i}", "timestamp": _ms(T0 + timedelta(hours=6, minutes=i))} for i in range(5)], 1)
    write(project, [{"event_id": "old", "timestamp": _ms(T0 - timedelta(hours=3))}], 1)
    again = calls_log(LogQuery(project.pk, START, END, after=page1.next_cursor, limit=15)).calls
    assert [c["event_id"] for c in again] == [c["event_id"] for c in expected]
    assert calls_log(LogQuery(project.pk, START, END, limit=1)).calls[0]["event_id"] == "new4"


def test_search_matches_each_identifier_exactly(project: Project) -> None:
    write(
        project,
        [
            {"event_id": "a1", "timestamp": _ms(T0), "trace_id": "t-9", "request_id": "r-1", "customer_id": "acme"},
            {"event_id": "a2", "timestamp": _ms(T0) + 1, "session_id": "s-4", "customer_id": "acme"},
            {"event_id": "a3", "timestamp": _ms(T0) + 2, "customer_id": "globex", "request_id": "t-9x"},
        ],
        1,
    )

    def found(q: str) -> list[str]:
        return sorted(c["event_id"] for c in calls_log(LogQuery(project.pk, START, END, search=q)).calls)

    assert found("t-9") == ["a1"]
    assert found("r-1") == ["a1"]
    assert found("s-4") == ["a2"]
    assert found("acme") == ["a1", "a2"]
    assert found("a3") == ["a3"]
    assert found("t-") == []  # exact, not a prefix


def test_a_bad_cursor_or_query_is_a_query_error(project: Project) -> None:
    with pytest.raises(QueryError, match="cursor"):
        calls_log(LogQuery(project.pk, START, END, after="not-a-cursor!!"))
    with pytest.raises(QueryError, match="at most"):
        calls_log(LogQuery(project.pk, START, END, search="x" * 201))
    when = datetime(2026, 11, 20, 1, 2, 3, 456000, tzinfo=UTC)
    assert decode_cursor(encode_cursor(when, "e:1")) == (when, "e:1")


def test_a_trace_groups_its_calls_and_ties_retries_by_request_id(project: Project, no_merges: None) -> None:
    trace = [
        {"event_id": "t1", "timestamp": _ms(T0), "trace_id": "tr", "session_id": "se", "request_id": "q1",
         "status": "error", "error_type": "rate_limit", "input_tokens": 100, "latency_ms": 50.0},
        {"event_id": "t2", "timestamp": _ms(T0) + 100, "trace_id": "tr", "session_id": "se", "request_id": "q1",
         "attempt": 2, "input_tokens": 100, "output_tokens": 20, "latency_ms": 900.0},
        {"event_id": "t3", "timestamp": _ms(T0) + 2000, "trace_id": "tr", "session_id": "se", "request_id": "q2",
         "input_tokens": 300, "output_tokens": 30, "latency_ms": 400.0},
        {"event_id": "t4", "timestamp": _ms(T0 + timedelta(days=40)), "session_id": "se", "request_id": "q3"},
    ]  # fmt: skip
    write(project, trace, 1)
    write(project, [trace[2]], 2)  # a second stored version of t3
    group = call_group(project.pk, "trace", "tr")
    assert [c["event_id"] for c in group.calls] == ["t1", "t2", "t3"]
    totals = group.totals
    assert (totals["calls"], totals["tokens"], totals["retries"], totals["errors"]) == (3, 550, 1, 1)
    assert totals["latency_ms"] == 1350.0
    assert totals["wall_ms"] == 2400.0  # first start to last end
    assert totals["cost"] == sum((c["cost_usd"] for c in group.calls), Decimal(0)) > 0
    requests = group.requests()
    assert [(r["request_id"], [c["event_id"] for c in r["attempts"]], r["retried"]) for r in requests] == [
        ("q1", ["t1", "t2"], True),
        ("q2", ["t3"], False),
    ]
    assert requests[0]["wasted"] == group.calls[0]["cost_usd"]
    # a session is not bound to a range
    assert [c["event_id"] for c in call_group(project.pk, "session", "se").calls] == ["t1", "t2", "t3", "t4"]
    with pytest.raises(QueryError):
        call_group(project.pk, "user", "x")
