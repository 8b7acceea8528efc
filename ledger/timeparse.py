"""Time zones and dates as users type them: one validation and one parser for every entry point.

Each caller turns the errors into its own answer (a 400, a form error, a filter note).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.dateparse import parse_datetime

# The leap-second variants of the IANA zones: zoneinfo knows them, ClickHouse does not.
UNSUPPORTED_PREFIXES = ("right/", "posix/")


class UnknownTimeZone(ValueError):
    """Not an IANA time zone name that both Python and ClickHouse know."""


class BadDate(ValueError):
    """Not a date (YYYY-MM-DD) or, where one is accepted, an ISO 8601 / RFC 3339 datetime."""


class NaiveDatetime(BadDate):
    """A datetime without a UTC offset."""


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`UnknownTimeZone` for anything else."""
    if name.startswith(UNSUPPORTED_PREFIXES):
        raise UnknownTimeZone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # not found, not a zone name, unreadable
        raise UnknownTimeZone(name) from exc


def parse_day(value: str) -> date:
    """A calendar date in ISO 8601 (``2026-11-01``); :class:`BadDate` otherwise (also for February 30th)."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadDate(value) from exc


def parse_instant(value: str) -> datetime:
    """A date (its midnight, UTC) or a datetime with a UTC offset (``2026-11-01T09:30:00+01:00``, ``…Z``).

    :class:`NaiveDatetime` for a datetime without an offset, :class:`BadDate` for anything else,
    including well-formed but impossible values (February 30th, an offset of +24:00)."""
    if len(value) == 10:
        try:
            day = parse_day(value)
        except BadDate:
            pass
        else:
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadDate(value)
    if parsed.tzinfo is None:
        raise NaiveDatetime(value)
    return parsed
