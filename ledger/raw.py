"""The raw ledger table ``llm_calls``: its column layout, pricing calls into cost columns, the insert.

Every writer of priced rows comes through here: the outbox drain, ``reprice`` and the demo seeder.
Calls arrive column by column (:class:`CallColumns`), the shape a column-oriented ClickHouse insert
takes, in groups that share a project, a batch and an arrival time (:class:`CallGroup`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from ledger.added_fields import ADDED_DEFAULTS
from ledger.clickhouse.client import get_clickhouse
from ledger.dirty import mark_dirty
from ledger.pricing import PriceBook, cost_columns

RAW_TABLE = "llm_calls"
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class CallColumns:
    """Calls as columns, one sequence per field, all of one length.

    Every field but ``reported_pusd`` is stored as given in the ``llm_calls`` column of that name;
    ``timestamp`` is epoch milliseconds. Token counts follow the CallRecord contract: input includes
    cache reads and writes, output includes reasoning. ``reported_pusd`` is a provider-reported cost
    (pico-USD) or None; it takes part in pricing only."""

    event_id: Sequence[str]
    timestamp: Sequence[int]
    provider: Sequence[str]
    model: Sequence[str]
    response_model: Sequence[str]
    feature: Sequence[str]
    customer_id: Sequence[str]
    user_id: Sequence[str]
    route_version: Sequence[str]
    route: Sequence[str]
    environment: Sequence[str]
    input_tokens: Sequence[int]
    cache_read_tokens: Sequence[int]
    cache_write_tokens: Sequence[int]
    output_tokens: Sequence[int]
    reasoning_tokens: Sequence[int]
    ttft_ms: Sequence[float | None]
    latency_ms: Sequence[float | None]
    status: Sequence[str]
    error_type: Sequence[str]
    attempt: Sequence[int]
    traffic: Sequence[str]
    cache_hit: Sequence[bool]
    service_tier: Sequence[str]
    streamed: Sequence[bool]
    tool_calls: Sequence[int]
    max_tokens: Sequence[int | None]
    trace_id: Sequence[str]
    session_id: Sequence[str]
    request_id: Sequence[str]
    tags: Sequence[Mapping[str, str]]
    reported_pusd: Sequence[int | None]
    # Added after the first release (ADDED_DEFAULTS says what a call without them holds).
    finish_reason: Sequence[str]
    prompt_prefix_hash: Sequence[str]
    prompt_prefix_tokens: Sequence[int]
    prompt_prefix_tokens_estimated: Sequence[bool]
    ratelimit_limit_tokens: Sequence[int | None]
    ratelimit_remaining_tokens: Sequence[int | None]
    ratelimit_limit_requests: Sequence[int | None]
    ratelimit_remaining_requests: Sequence[int | None]
    ratelimit_limit_input_tokens: Sequence[int | None]
    ratelimit_limit_output_tokens: Sequence[int | None]

    def __post_init__(self) -> None:
        lengths = {len(getattr(self, name)) for name in CALL_FIELDS}
        if len(lengths) > 1:
            raise ValueError(f"call columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.event_id)

    @classmethod
    def from_records(cls, records: Iterable[Sequence[Any]]) -> CallColumns:
        """Transpose records whose values are laid out in :data:`CALL_FIELDS` order.

        Records may end before the :data:`ADDED_DEFAULTS` fields (as writers of an earlier release
        lay them out); those take their defaults."""
        columns = [list(column) for column in zip(*records, strict=True)] or [[] for _ in CALL_FIELDS]
        if len(columns) > len(CALL_FIELDS):
            raise ValueError(f"records have {len(columns)} fields, more than the {len(CALL_FIELDS)} known")
        named = dict(zip(CALL_FIELDS, columns, strict=False))
        missing = CALL_FIELDS[len(columns) :]
        if any(name not in ADDED_DEFAULTS for name in missing):
            raise ValueError(f"records lack fields without a default: {', '.join(missing)}")
        rows = len(columns[0])
        named.update((name, [ADDED_DEFAULTS[name]] * rows) for name in missing)
        return cls(**named)


# The input fields in declaration order; all but the reported cost are table columns.
CALL_FIELDS = tuple(f.name for f in fields(CallColumns))
CALL_COLUMNS = tuple(name for name in CALL_FIELDS if name != "reported_pusd")
# One value per group, repeated on each of its rows.
GROUP_COLUMNS = ("project_id", "batch_id", "received_at", "version")
# Computed here, in the order of ledger.pricing.cost_parts (the ``Cost`` fields).
COST_COLUMNS = (
    "cost_input_pusd", "cost_cache_read_pusd", "cost_cache_write_pusd", "cost_output_pusd", "cost_reasoning_pusd",
    "cost_pusd", "cache_saving_pusd", "cost_source", "price_ref",
)  # fmt: skip
# Every column an insert writes, in the order of :attr:`RawRows.columns`.
COLUMNS = GROUP_COLUMNS + CALL_COLUMNS + COST_COLUMNS


@dataclass(frozen=True, slots=True)
class CallGroup:
    """Calls sharing a project, a batch id and an arrival time (epoch milliseconds)."""

    project_id: int
    batch_id: uuid.UUID
    received_ms: int
    calls: CallColumns


@dataclass
class RawRows:
    """Priced rows for ``llm_calls``, one list per column in :data:`COLUMNS` order, and the hours
    (UTC, per project) they touch."""

    columns: list[list[Any]]
    hours: dict[int, set[datetime]]

    @property
    def count(self) -> int:
        return len(self.columns[0])

    def column(self, name: str) -> list[Any]:
        return self.columns[_INDEX[name]]


_INDEX = {name: i for i, name in enumerate(COLUMNS)}


def price_calls(groups: Iterable[CallGroup], books: Mapping[int, PriceBook], version: int) -> RawRows:
    """Price every group's calls with its project's book into rows carrying ``version``."""
    columns: list[list[Any]] = [[] for _ in COLUMNS]
    project_ids, batch_ids, received, versions = (columns[_INDEX[name]] for name in GROUP_COLUMNS)
    stored = [(name, columns[_INDEX[name]]) for name in CALL_COLUMNS]
    costs_out = [columns[_INDEX[name]] for name in COST_COLUMNS]
    hours: dict[int, set[datetime]] = {}
    for group in groups:
        c = group.calls
        n = len(c)
        if not n:
            continue
        project_ids.extend([group.project_id] * n)
        batch_ids.extend([group.batch_id] * n)
        received.extend([group.received_ms] * n)
        versions.extend([version] * n)
        for name, column in stored:
            column.extend(getattr(c, name))
        # One pass a column of calls, then a transpose: far cheaper than nine appends per call.
        prices = books[group.project_id].prices(c.provider, c.model, c.service_tier, c.timestamp)
        costs = cost_columns(
            prices, c.input_tokens, c.cache_read_tokens, c.cache_write_tokens, c.output_tokens, c.reasoning_tokens,
            c.reported_pusd, c.cache_hit,
        )  # fmt: skip
        for column, values in zip(costs_out, zip(*costs, strict=True), strict=True):
            column.extend(values)
        seen = {ts // MS_PER_HOUR for ts in c.timestamp}
        hours.setdefault(group.project_id, set()).update(datetime.fromtimestamp(h * 3600, tz=UTC) for h in seen)
    return RawRows(columns, hours)


def insert_rows(rows: RawRows, token: str) -> None:
    """One insert of ``rows``; a retry with the same ``token`` is dropped by ClickHouse as a duplicate."""
    get_clickhouse().insert(
        RAW_TABLE,
        rows.columns,
        COLUMNS,
        settings={"insert_deduplication_token": token},
        caller="ledger.raw.insert_rows",
    )


def write_calls(groups: Iterable[CallGroup], books: Mapping[int, PriceBook], version: int, token: str) -> RawRows:
    """Price, insert and mark the touched hours dirty for the rollups: for writers outside the outbox.

    (The drain prices and inserts on its own, so that its batches are marked done together with
    their dirty hours.)"""
    rows = price_calls(groups, books, version)
    if rows.count:
        insert_rows(rows, token)
        mark_dirty(rows.hours)
    return rows
