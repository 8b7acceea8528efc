"""The one time-zone validation and the one date parser every entry point uses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ledger.timeparse import BadDate, NaiveDatetime, UnknownTimeZone, parse_day, parse_instant, time_zone


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_iana_names_are_time_zones(name: str) -> None:
    assert time_zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    ["", "Nowhere/City", "right/UTC", "posix/Europe/Berlin", "../etc/passwd", "/etc/localtime", "Europe/", "x" * 300],
)
def test_anything_else_is_an_unknown_time_zone(name: str) -> None:
    with pytest.raises(UnknownTimeZone):
        time_zone(name)


def test_the_errors_are_value_errors() -> None:
    assert issubclass(UnknownTimeZone, ValueError)
    assert issubclass(BadDate, ValueError)


def test_days() -> None:
    assert parse_day("2026-11-01") == date(2026, 11, 1)
    for bad in ("2026-02-30", "yesterday", "", "2026-13-01"):
        with pytest.raises(BadDate):
            parse_day(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
        ("2026-11-01T09:30:00+01:00", datetime(2026, 11, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("2026-11-01 09:30Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_instants(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_an_instant_needs_an_offset() -> None:
    with pytest.raises(NaiveDatetime):
        parse_instant("2026-11-01T09:30:00")


@pytest.mark.parametrize("text", ["2026-02-30", "2026-02-30T00:00:00Z", "2026-11-01T09:30:00+24:00", "soon", ""])
def test_what_is_not_an_instant(text: str) -> None:
    with pytest.raises(BadDate) as caught:
        parse_instant(text)
    assert not isinstance(caught.value, NaiveDatetime)
