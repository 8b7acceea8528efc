"""The filters every dashboard shares, read from and written to the URL so a view is a shareable link.

``from``/``to`` are calendar dates (inclusive) in ``tz``; each dimension may repeat
(``?model=a&model=b``). A bad value is reported and replaced by its default, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.http import QueryDict

from ledger.queries import DIMENSIONS, UsageQuery
from ledger.timeparse import BadDate, UnknownTimeZone, parse_day, time_zone

DEFAULT_DAYS = 30
MAX_DAYS = 730
FILTER_DIMENSIONS = DIMENSIONS  # every dimension can filter
# /v1/usage's time buckets (its "total" is what the pages' tables show); "auto" picks by the range.
GRANULARITY_CHOICES = ("auto", "minute", "hour", "day")
GRANULARITY_LABELS = {"auto": "auto (by range)", "minute": "per minute", "hour": "per hour", "day": "per day"}
MAX_MINUTE_DAYS = 2  # per-minute charts cover at most two days (2,880 points)
# The zones the picker offers first (any IANA zone can be typed into ?tz=); the current one is added.
TIME_ZONES = (
    "UTC", "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York", "America/Sao_Paulo",
    "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Warsaw", "Europe/Istanbul",
    "Africa/Lagos", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai",
    "Asia/Tokyo", "Asia/Seoul", "Australia/Sydney", "Pacific/Auckland",
)  # fmt: skip
PRESETS = ("today", "7d", "30d", "this_month", "last_month")
PRESET_LABELS = {"today": "Today", "7d": "7 days", "30d": "30 days", "this_month": "This month",
                 "last_month": "Last month"}  # fmt: skip


def preset_range(name: str, today: date) -> tuple[date, date]:
    """The calendar days (inclusive) a date preset covers, ending today (or last month's last day)."""
    if name == "today":
        return today, today
    if name in ("7d", "30d"):
        return today - timedelta(days=int(name[:-1]) - 1), today
    first = today.replace(day=1)
    if name == "this_month":
        return first, today
    if name == "last_month":
        last = first - timedelta(days=1)
        return last.replace(day=1), last
    raise ValueError(f"unknown preset {name!r}")


@dataclass(frozen=True)
class Filters:
    start_date: date
    end_date: date  # inclusive
    tz: str = "UTC"
    granularity: str = "auto"
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.start_date, time(), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.end_date + timedelta(days=1), time(), self.zone).astimezone(UTC)

    @property
    def bucket(self) -> str:
        """The chart granularity: hours for short ranges, days otherwise."""
        if self.granularity != "auto":
            return self.granularity
        return "hour" if (self.end_date - self.start_date).days < 3 else "day"

    def usage(self, project_id: int, **kwargs: Any) -> UsageQuery:
        """A query over these filters; ``filters=`` in kwargs adds to (and overrides) the dimensions."""
        extra = kwargs.pop("filters", {})
        return UsageQuery(
            project_id=project_id,
            start=self.start,
            end=self.end,
            tz=self.tz,
            filters={**self.dims, **extra},
            **kwargs,
        )

    def params(self, **changes: Any) -> dict[str, Any]:
        """The URL parameters of these filters, with ``changes`` applied (None removes a key)."""
        out: dict[str, Any] = {"from": self.start_date.isoformat(), "to": self.end_date.isoformat()}
        if self.tz != "UTC":
            out["tz"] = self.tz
        if self.granularity != "auto":
            out["granularity"] = self.granularity
        out.update({d: list(v) for d, v in self.dims.items()})
        for key, value in changes.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes), doseq=True)

    def presets(self, keep: dict[str, str] | None = None, today: date | None = None) -> list[dict[str, Any]]:
        """The date presets as links over these filters (and the page's ``keep`` parameters), the one
        matching the range marked."""
        today = today or datetime.now(self.zone).date()
        kept = {k: v for k, v in (keep or {}).items() if v}
        out = []
        for name in PRESETS:
            start, end = preset_range(name, today)
            out.append(
                {
                    "name": name,
                    "label": PRESET_LABELS[name],
                    "query": self.query_string(**kept, **{"from": start.isoformat(), "to": end.isoformat()}),
                    "active": (start, end) == (self.start_date, self.end_date),
                }
            )
        return out

    def zones(self) -> list[str]:
        """The time-zone picker's choices: the usual ones and the one in use."""
        return list(TIME_ZONES) if self.tz in TIME_ZONES else [self.tz, *TIME_ZONES]

    def without(self, dim: str) -> Filters:
        return replace(self, dims={d: v for d, v in self.dims.items() if d != dim})

    def without_dims(self) -> Filters:
        return replace(self, dims={})

    def with_dim(self, dim: str, values: tuple[str, ...]) -> Filters:
        return replace(self, dims={**self.dims, dim: values})


EARLIEST, LATEST = date(1970, 1, 2), date(2100, 1, 1)  # what ClickHouse's DateTime can hold, with margin


def _date(value: str, name: str, errors: list[str]) -> date | None:
    try:
        parsed = parse_day(value)
    except BadDate:
        errors.append(f"{name} must be a date like 2026-11-01 (got {value[:40]!r}); using the default")
        return None
    if not EARLIEST <= parsed <= LATEST:
        errors.append(f"{name} must be between {EARLIEST} and {LATEST}; using the default")
        return None
    return parsed


def parse_filters(query: QueryDict, today: date | None = None) -> Filters:
    errors: list[str] = []
    tz = query.get("tz", "UTC") or "UTC"
    try:
        zone = time_zone(tz)
    except UnknownTimeZone:
        errors.append(f"unknown time zone {tz[:60]!r}; using UTC")
        tz, zone = "UTC", time_zone("UTC")
    today = today or datetime.now(zone).date()
    end = _date(query.get("to", ""), "to", errors) if query.get("to") else None
    start = _date(query.get("from", ""), "from", errors) if query.get("from") else None
    end = end or today
    start = start or max(EARLIEST, end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        errors.append("from is after to; showing the 30 days up to 'to'")
        start = max(EARLIEST, end - timedelta(days=DEFAULT_DAYS - 1))
    if (end - start).days >= MAX_DAYS:
        errors.append(f"a range covers at most {MAX_DAYS} days; showing the last {MAX_DAYS}")
        start = end - timedelta(days=MAX_DAYS - 1)
    granularity = query.get("granularity", "auto") or "auto"
    if granularity not in GRANULARITY_CHOICES:
        errors.append(f"granularity must be one of {', '.join(GRANULARITY_CHOICES)}; using auto")
        granularity = "auto"
    if granularity == "hour" and (end - start).days >= 31:
        errors.append("hourly charts cover at most 31 days; using days")
        granularity = "day"
    if granularity == "minute" and (end - start).days >= MAX_MINUTE_DAYS:
        errors.append(f"per-minute charts cover at most {MAX_MINUTE_DAYS} days; using auto")
        granularity = "auto"
    dims = {}
    for dim in FILTER_DIMENSIONS:
        values = tuple(dict.fromkeys(v.strip() for v in query.getlist(dim) if v.strip()))
        if values:
            dims[dim] = values[:50]
    return Filters(start, end, tz, granularity, dims, tuple(errors))
