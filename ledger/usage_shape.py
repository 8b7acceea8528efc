"""A usage answer's shape: bucket alignment, the expected buckets, and rows in rank order with empty
buckets as zeros (each metric's value typed by its kind: money as exact ``Decimal`` dollars)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ledger.pricing import pusd_to_usd
from ledger.usage_metrics import METRICS

if TYPE_CHECKING:
    from ledger.queries import UsageQuery

GRANULARITIES = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _ceil_minute(when: datetime) -> datetime:
    floor = when.replace(second=0, microsecond=0)
    return floor if floor == when else floor + timedelta(minutes=1)


def align(when: datetime, granularity: str | None, tz: ZoneInfo) -> datetime:
    local = when.astimezone(tz)
    if granularity == "minute":
        local = local.replace(second=0, microsecond=0)
    elif granularity == "hour":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif granularity == "day":
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def buckets(start: datetime, end: datetime, granularity: str, tz: ZoneInfo) -> Iterator[datetime]:
    """Bucket starts in ``tz`` from ``start`` (aligned) to ``end``; day steps follow the wall clock (DST)."""
    local = start.astimezone(tz)
    while local.astimezone(UTC) < end:
        yield local
        if granularity == "day":
            naive = (local.replace(tzinfo=None) + timedelta(days=1)).replace(hour=0, minute=0)
            local = naive.replace(tzinfo=tz)
        else:
            local = (local.astimezone(UTC) + GRANULARITIES[granularity]).astimezone(tz)


def _money(raw: Any) -> Any:
    return pusd_to_usd(int(raw or 0))


def _int(raw: Any) -> int:
    return int(raw or 0)


def _float(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return float(raw)


_CONVERT = {"money": _money, "int": _int}


def _converter(metric: str) -> Callable[[Any], Any]:
    """What turns a stored value of ``metric`` into the answer's (by the metric's kind)."""
    return _CONVERT.get(METRICS[metric].kind, _float)


def _value(metric: str, raw: Any) -> Any:
    return _converter(metric)(raw)


def _zero(metric: str) -> Any:
    kind = METRICS[metric].kind
    return Decimal(0).scaleb(-12) if kind == "money" else 0 if kind == "int" else None


def _shape(
    rows: list[dict[str, Any]],
    q: UsageQuery,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    group_cols: Sequence[str],
    metrics: Sequence[str],
    groups: Sequence[tuple[str, ...]],
) -> list[dict[str, Any]]:
    """Rows in rank order of their group (biggest first), each group's buckets in time order."""
    by_key = {(r["b"], *(r[d] for d in group_cols)): r for r in rows}
    out: list[dict[str, Any]] = []
    if q.granularity is None:
        if not group_cols and not rows:  # a total over nothing is zero, not absent
            return [{m: _zero(m) for m in metrics}]
        for r in sorted(rows, key=lambda r: _rank(r, q.order_by), reverse=True):
            out.append({**{d: r[d] for d in group_cols}, **{m: _value(m, r[m]) for m in metrics}})
        return out
    # The expected buckets, plus any the database produced that the wall-clock steps did not (zones
    # whose clocks shift by half an hour), so no row is ever dropped for want of a slot.
    expected = {int(bucket.timestamp()): bucket for bucket in buckets(start, end, q.granularity, tz)}
    for r in rows:
        expected.setdefault(r["b"], datetime.fromtimestamp(r["b"], tz))
    timeline = sorted(((bucket, epoch) for epoch, bucket in expected.items()), key=lambda item: item[1])
    zeros = {m: _zero(m) for m in metrics}
    convert = [(m, _converter(m)) for m in metrics]
    for group in groups:
        labels = dict(zip(group_cols, group, strict=True))
        for bucket, epoch in timeline:
            found = by_key.get((epoch, *group))
            values = {m: fn(found[m]) for m, fn in convert} if found else zeros
            out.append({"bucket": bucket, **labels, **values})
    return out


def _rank(row: dict[str, Any], metric: str) -> Any:
    value = row[metric]
    return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value
