"""Every ``timestamp`` form the server accepts is accepted, as exact epoch ms; what it refuses is refused."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from meterline.fields import RecordError, build, encode

NS = 1_795_168_800_000_000_000  # 2026-11-20T10:00:00Z, the moment of record()
T0 = 1_795_168_800_000  # the same in epoch milliseconds
PLUS_2 = timezone(timedelta(hours=2))


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: the datetime is naive all the same."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None

    def __repr__(self) -> str:  # the test id: the same in every pytest-xdist worker (no memory address)
        return "NoOffset()"


ACCEPTED: list[tuple[Any, int]] = [
    (datetime(2026, 11, 20, 10, 0, tzinfo=UTC), T0),
    (datetime(2026, 11, 20, 12, 0, 0, 250_999, tzinfo=PLUS_2), T0 + 250),  # milliseconds, truncated
    ("2026-11-20T10:00:00Z", T0),
    ("2026-11-20t10:00:00z", T0),
    ("2026-11-20 10:00:00Z", T0),
    ("2026-11-20T10:00:00.1Z", T0 + 100),
    ("2026-11-20T10:00:00.123Z", T0 + 123),
    ("2026-11-20T10:00:00.123999Z", T0 + 123),
    ("2026-11-20T10:00:00.1239995Z", T0 + 124),  # rounded half up to microseconds first, as msgspec does
    ("2026-11-20T10:00:00.123456789Z", T0 + 123),
    ("2026-11-20T09:59:59.9999995Z", T0),  # rounds into the next second
    ("2026-11-20T12:00:00+02:00", T0),
    ("2026-11-20T12:00:00.250+02:00", T0 + 250),
    ("2026-11-20T12:00:00+0200", T0),
    ("2026-11-20T04:30:00-05:30", T0),
    ("2026-11-20T10:00:00-00:00", T0),
    ("2026-11-20T10:00:00+00:00", T0),
    (T0, T0),
    (T0 + 0.9, T0),  # float epoch milliseconds, truncated like the server does
    (float(T0 - 1), T0 - 1),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED, ids=[repr(v) for v, _ in ACCEPTED])
def test_accepted_forms_are_sent_as_exact_int_epoch_milliseconds(value: Any, expected: int) -> None:
    record = build({}, {"provider": "p", "model": "m", "timestamp": value}, NS)
    assert record["timestamp"] == expected
    assert type(record["timestamp"]) is int
    assert f'"timestamp":{expected},'.encode() in encode(record)


# (The refused strings are of another day than the messages' examples, so "never the value" is checked.)
REFUSED: list[tuple[Any, str]] = [
    (datetime(2026, 11, 20, 10, 0), "needs a timezone"),  # noqa: DTZ001
    (datetime(2026, 11, 20, 10, 0, tzinfo=NoOffset()), "needs a timezone"),
    ("2026-10-07T10:00:00", "needs a UTC offset"),
    ("2026-10-07 10:00:00.123", "needs a UTC offset"),
    ("2026-10-07", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00Z", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00.Z", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00,5Z", "is not an RFC 3339 date-time"),
    ("20261120T100000Z", "is not an RFC 3339 date-time"),
    ("2026-02-30T10:00:00Z", "is not an RFC 3339 date-time"),
    ("2026-02-30T10:00:00", "is not an RFC 3339 date-time"),
    ("2026-10-07T24:00:00Z", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:60Z", "is not an RFC 3339 date-time"),
    ("0000-01-01T00:00:00Z", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00+24:00", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00+02:60", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00+02", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00+2:00", "is not an RFC 3339 date-time"),
    (" 2026-10-07T10:00:00Z", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00Z ", "is not an RFC 3339 date-time"),
    ("2026-10-07T10:00:00 Z", "is not an RFC 3339 date-time"),
    ("２０２６-11-20T10:00:00Z", "is not an RFC 3339 date-time"),  # noqa: RUF001 (non-ASCII digits)
    ("", "is not an RFC 3339 date-time"),
    (1_795_168_800, "looks like seconds"),
    (1_795_168_800.5, "looks like seconds"),  # time.time()
    (0, "looks like seconds"),
    (math.nan, "must be a finite number"),
    (math.inf, "must be a finite number"),
    (True, "must be an aware datetime, an RFC 3339 string or epoch milliseconds, not bool"),
    (date(2026, 11, 20), "not date"),
    (b"2026-11-20T10:00:00Z", "not bytes"),
    (T0 + 86_400_001, "more than 1 day ahead"),
    (NS // 1000, "more than 1 day ahead"),  # microseconds by mistake
    (NS, "more than 1 day ahead"),  # nanoseconds by mistake
    ("2026-11-21T10:00:00.001Z", "more than 1 day ahead"),
    (datetime(2026, 11, 22, tzinfo=UTC), "more than 1 day ahead"),
]


@pytest.mark.parametrize(("value", "message"), REFUSED, ids=[repr(v) for v, _ in REFUSED])
def test_refused_forms_raise_a_record_error_naming_the_rule_never_the_value(value: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message) as caught:
        build({}, {"provider": "p", "model": "m", "timestamp": value}, NS)
    assert caught.value.field == "timestamp"
    if isinstance(value, str) and value.strip():
        assert value.strip() not in str(caught.value)


def test_a_day_ahead_is_the_limit() -> None:
    assert build({}, {"provider": "p", "model": "m", "timestamp": T0 + 86_400_000}, NS)["timestamp"] == T0 + 86_400_000


STRINGS = [v for v, _ in ACCEPTED if isinstance(v, str)]
BAD_STRINGS = [v for v, m in REFUSED if isinstance(v, str) and "ahead" not in m]


@pytest.mark.parametrize("text", STRINGS)
def test_the_server_reads_each_accepted_string_as_the_same_millisecond(text: str) -> None:
    msgspec = pytest.importorskip("msgspec")  # the server's decoder (present when run inside the repository)
    moment = msgspec.json.decode(msgspec.json.encode(text), type=datetime | int | float | None)
    assert moment.tzinfo is not None
    assert (
        int(moment.timestamp() * 1000) == build({}, {"provider": "p", "model": "m", "timestamp": text}, NS)["timestamp"]
    )


@pytest.mark.parametrize("text", BAD_STRINGS)
def test_the_server_refuses_each_refused_string(text: str) -> None:
    msgspec = pytest.importorskip("msgspec")
    try:
        moment = msgspec.json.decode(msgspec.json.encode(text), type=datetime | int | float | None)
    except msgspec.ValidationError:
        return  # not a date-time to the server either
    assert moment.tzinfo is None  # decoded, then refused for want of an offset
