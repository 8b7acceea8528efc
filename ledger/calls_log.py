"""The calls log: single calls newest first, a page at a time, and the calls of one trace or session.

``llm_calls`` is a ReplacingMergeTree: until a merge runs, one call may be stored as several row
versions (a reprice appends a newer one). Reading with FINAL would merge the whole range on every
page; instead each read here takes the rows in order without FINAL and keeps a row only when it is
its call's newest version (:func:`newest_only`, a primary-key lookup of the page's calls). A call's
identity is (hour of its timestamp, event_id), as the table's sort key has it.

Pages follow a keyset cursor on (timestamp, event_id), never an offset, so a page does not shift
when calls arrive while someone reads: newer calls land before page one, not inside page two.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import raw_calls_where
from ledger.pricing import pusd_to_usd
from ledger.queries import DIMENSIONS, QueryError

# The identifiers ?q= matches, written exactly as the call_ids skip index (migration 0010) has them.
IDS = "[event_id, trace_id, request_id, session_id, customer_id]"
SEARCHED = ("event id", "trace id", "request id", "session id", "customer")
LOG_COLUMNS = (
    "event_id", "timestamp", "provider", "model", "feature", "customer_id", "user_id", "route_version",
    "route", "environment", "status", "error_type", "attempt", "traffic", "cache_hit", "input_tokens",
    "cache_read_tokens", "output_tokens", "reasoning_tokens", "ttft_ms", "latency_ms", "cost_pusd",
    "trace_id", "session_id", "request_id", "version",
)  # fmt: skip
MAX_PAGE = 500
MAX_GROUP = 1000  # calls shown for one trace or session
MAX_QUERY = 200  # characters of ?q=
_ROUNDS = 8  # reads of one page before giving up on filling it (only many stale versions need more than one)


@dataclass(frozen=True)
class LogQuery:
    project_id: int
    start: datetime
    end: datetime
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    search: str = ""  # an event, trace, request or session id, or a customer id: matched exactly
    after: str = ""  # the cursor of the page before (LogPage.next_cursor)
    limit: int = 50


@dataclass(frozen=True)
class LogPage:
    calls: list[dict[str, Any]]
    next_cursor: str  # "" on the last page


def encode_cursor(timestamp: datetime, event_id: str) -> str:
    """An opaque cursor: the position after the call at (timestamp, event_id)."""
    ms = int(timestamp.timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{ms}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, event_id = raw.split(":", 1)
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC), event_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError) as exc:
        raise QueryError("after must be a cursor from the calls log's 'Older' link") from exc


def selection_where(
    project_id: int, start: datetime, end: datetime, filters: dict[str, tuple[str, ...]], params: dict[str, Any]
) -> str:
    """The checked WHERE clause over one project's raw calls in [start, end) with dimension filters."""
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None:
            raise QueryError(f"{name} needs a UTC offset")
    if start >= end:
        raise QueryError("from must be before to")
    unknown = [d for d in filters if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    params.update(project=project_id, start=start, end=end)
    return raw_calls_where(filters, params)


def _where(q: LogQuery, params: dict[str, Any]) -> str:
    if len(q.search) > MAX_QUERY:
        raise QueryError(f"q may hold at most {MAX_QUERY} characters")
    if not 1 <= q.limit <= MAX_PAGE:
        raise QueryError(f"limit must be between 1 and {MAX_PAGE}")
    where = selection_where(q.project_id, q.start, q.end, q.filters, params)
    if q.search:
        params["q"] = q.search
        where += f" AND has({IDS}, {{q:String}})"
    return where


def decode_call(row: dict[str, Any]) -> dict[str, Any]:
    """Money columns (pico-USD) to exact ``Decimal`` dollars: ``cost_pusd`` becomes ``cost_usd``."""
    for column in [c for c in row if c.endswith("_pusd")]:
        row[column.removesuffix("_pusd") + "_usd"] = pusd_to_usd(row.pop(column))
    return row


def _hour(when: datetime) -> datetime:
    return (
        when.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
        if when.tzinfo is None
        else when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    )


def newest_only(project_id: int, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that are their call's newest stored version (each call once, in the given order).

    ``rows`` need ``timestamp``, ``event_id`` and ``version``. One primary-key lookup of the rows'
    (hour, event_id) pairs finds each call's highest version, whatever filter selected the rows."""
    if not rows:
        return []
    hours = sorted({_hour(r["timestamp"]) for r in rows})
    result = get_clickhouse().query(
        "SELECT toStartOfHour(timestamp) AS h, event_id, max(version) FROM llm_calls"
        " WHERE project_id = {project:UInt64} AND toStartOfHour(timestamp) IN {hours:Array(DateTime('UTC'))}"
        " AND event_id IN {ids:Array(String)} GROUP BY h, event_id",
        parameters={"project": project_id, "hours": hours, "ids": sorted({r["event_id"] for r in rows})},
        caller="ledger.calls_log.newest_only",
    )
    newest = {(_hour(h), e): v for h, e, v in result.result_rows}
    out, seen = [], set()
    for r in rows:
        key = (_hour(r["timestamp"]), r["event_id"])
        if key not in seen and r["version"] >= newest.get(key, 0):
            seen.add(key)
            out.append(r)
    return out


def call_rows(sql: str, params: dict[str, Any], caller: str) -> list[dict[str, Any]]:
    result = get_clickhouse().query(sql, parameters=params, caller=caller)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    for row in rows:
        for name in ("timestamp", "received_at"):
            if name in row and row[name].tzinfo is None:  # the column is UTC; say so
                row[name] = row[name].replace(tzinfo=UTC)
    return rows


def calls_log(q: LogQuery) -> LogPage:
    """One page of the range's calls, newest first (ties by event id), each call once at its newest version."""
    params: dict[str, Any] = {}
    where = _where(q, params)
    if q.after:
        params["at"], params["at_id"] = decode_cursor(q.after)
    calls: list[dict[str, Any]] = []
    for _ in range(_ROUNDS):
        cursor = ""
        if "at" in params:
            # The plain bound lets the primary key skip newer hours; the tuple is the exact position.
            cursor = (
                " AND timestamp <= {at:DateTime64(3, 'UTC')}"
                " AND (timestamp, event_id) < ({at:DateTime64(3, 'UTC')}, {at_id:String})"
            )
        want = q.limit + 1 - len(calls)
        # First the oldest hour the next `want` rows reach: ordered like the sort key, ClickHouse reads
        # the newest hours backwards and stops. The exact order is then sorted within those hours only
        # (one ORDER BY over both would sort the whole range).
        bound = (
            get_clickhouse()
            .query(
                f"SELECT toStartOfHour(timestamp) AS h FROM llm_calls WHERE {where}{cursor}"
                f" ORDER BY h DESC LIMIT 1 OFFSET {int(want) - 1}",
                parameters=params,
                caller="ledger.calls_log.calls_log.bound",
            )
            .result_rows
        )
        window = " AND timestamp >= {low:DateTime64(3, 'UTC')}" if bound else ""
        params["low"] = bound[0][0] if bound else q.start
        rows = call_rows(
            f"SELECT {', '.join(LOG_COLUMNS)} FROM llm_calls WHERE {where}{cursor}{window}"
            f" ORDER BY timestamp DESC, event_id DESC, version DESC LIMIT {int(want)}",
            params,
            "ledger.calls_log.calls_log",
        )
        calls.extend(newest_only(q.project_id, rows))
        if len(rows) < want or len(calls) > q.limit:
            break
        params["at"], params["at_id"] = rows[-1]["timestamp"], rows[-1]["event_id"]
    more = len(calls) > q.limit
    calls = [decode_call(c) for c in calls[: q.limit]]
    last = calls[-1] if calls else None
    return LogPage(calls, encode_cursor(last["timestamp"], last["event_id"]) if more and last else "")


@dataclass(frozen=True)
class CallGroup:
    """The calls of one trace or session, oldest first, with their totals."""

    kind: str  # "trace" or "session"
    key: str
    calls: list[dict[str, Any]]
    truncated: bool

    @property
    def totals(self) -> dict[str, Any]:
        calls = self.calls
        started = min((c["timestamp"] for c in calls), default=None)
        ended = max(
            (c["timestamp"] + timedelta(milliseconds=c["latency_ms"] or 0) for c in calls),
            default=None,
        )
        return {
            "calls": len(calls),
            "cost": sum((c["cost_usd"] for c in calls), pusd_to_usd(0)),
            "input_tokens": sum(c["input_tokens"] for c in calls),
            "output_tokens": sum(c["output_tokens"] for c in calls),
            "tokens": sum(c["input_tokens"] + c["output_tokens"] for c in calls),
            "latency_ms": sum(c["latency_ms"] or 0 for c in calls),  # time spent in calls
            "wall_ms": (ended - started).total_seconds() * 1000 if started and ended else None,
            "retries": sum(1 for c in calls if c["attempt"] > 1),
            "errors": sum(1 for c in calls if c["status"] != "ok"),
            "started": started,
        }

    def requests(self) -> list[dict[str, Any]]:
        """The calls grouped by request id (attempts of one request together, in order); a call
        without a request id is a request of its own."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for c in self.calls:
            groups.setdefault(c["request_id"] or f"\0{c['event_id']}", []).append(c)
        out = []
        for key, attempts in groups.items():
            attempts.sort(key=lambda c: (c["attempt"], c["timestamp"]))
            out.append(
                {
                    "request_id": "" if key.startswith("\0") else key,
                    "attempts": attempts,
                    "retried": len(attempts) > 1 or any(c["attempt"] > 1 for c in attempts),
                    "outcome": attempts[-1]["status"],
                    "cost": sum((c["cost_usd"] for c in attempts), pusd_to_usd(0)),
                    "wasted": sum((c["cost_usd"] for c in attempts[:-1]), pusd_to_usd(0)),
                }
            )
        return out


GROUP_COLUMNS = {"trace": "trace_id", "session": "session_id", "request": "request_id"}


def call_group(project_id: int, kind: str, key: str) -> CallGroup:
    """Every call of one trace, session or request id (at most :data:`MAX_GROUP`), oldest first."""
    column = GROUP_COLUMNS.get(kind)
    if column is None:
        raise QueryError(f"kind must be one of {', '.join(GROUP_COLUMNS)}")
    if not key or len(key) > MAX_QUERY:
        raise QueryError(f"a {kind} id has 1 to {MAX_QUERY} characters")
    # The has() over IDS lets the call_ids index skip every granule without the id; the equality is the
    # exact condition. No time range: a session may span months.
    rows = call_rows(
        f"SELECT {', '.join(LOG_COLUMNS)} FROM llm_calls WHERE project_id = {{project:UInt64}}"
        f" AND has({IDS}, {{key:String}}) AND {column} = {{key:String}}"
        f" ORDER BY timestamp, event_id, version DESC LIMIT {MAX_GROUP * 2 + 1}",
        {"project": project_id, "key": key},
        "ledger.calls_log.call_group",
    )
    calls = newest_only(project_id, rows)
    return CallGroup(kind, key, [decode_call(c) for c in calls[:MAX_GROUP]], len(calls) > MAX_GROUP)


def find_call(project_id: int, event_id: str) -> dict[str, Any] | None:
    """Every stored field of one call at its newest version, or None (through the call_ids index)."""
    rows = call_rows(
        "SELECT * FROM llm_calls WHERE project_id = {project:UInt64}"
        f" AND has({IDS}, {{event:String}}) AND event_id = {{event:String}}"
        " ORDER BY version DESC, timestamp DESC LIMIT 1",
        {"project": project_id, "event": event_id},
        "ledger.explore.call_detail",
    )
    if not rows:
        return None
    row = rows[0]
    row.pop("project_id", None)
    return decode_call(row)
