"""A record's ``timestamp`` in every form the server accepts, as the int epoch milliseconds sent.

The server (msgspec) takes an RFC 3339 string with a UTC offset, or epoch milliseconds as an int
or a float; it refuses a date-time without an offset, epoch seconds, and anything more than a day
ahead of its clock. This module applies the same rules, with exact integer arithmetic (no float
rounding), and raises ``ValueError`` with the rule broken, never the value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Epoch values below this are seconds, not milliseconds (the server's rule: 1973 in ms, 5138 AD in s).
MIN_EPOCH_MS = 100_000_000_000
MAX_AHEAD_MS = 86_400_000  # the server refuses timestamps more than a day ahead of its clock
EXAMPLE = "2026-11-20T10:00:00Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# msgspec's RFC 3339: "T", "t" or a space between date and time, seconds required, any number of
# fractional digits (rounded half up to microseconds), then "Z", "z", ±HH:MM or ±HHMM.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|([+-])([0-9]{2}):?([0-9]{2}))?"
)

NAIVE_DATETIME = "needs a timezone, a UTC offset (use datetime.now(UTC))"
NAIVE_STRING = f"needs a UTC offset (RFC 3339), e.g. {EXAMPLE}"
NOT_RFC3339 = f"is not an RFC 3339 date-time such as {EXAMPLE} or 2026-11-20T12:00:00.250+02:00"
NOT_FINITE = "must be a finite number of epoch milliseconds"
SECONDS = "epoch timestamps are milliseconds; this looks like seconds"
AHEAD = "is more than 1 day ahead of this machine's clock (the server refuses it; epoch timestamps are milliseconds)"


def epoch_ms(value: Any) -> int:
    """``value`` (aware datetime, RFC 3339 string, epoch ms int or float) as int epoch milliseconds."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(NAIVE_DATETIME)
        return _ms(value)
    if isinstance(value, str):
        return _parse(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"must be an aware datetime, an RFC 3339 string or epoch milliseconds, not {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(NOT_FINITE)
    ms = int(value)  # the server truncates a float the same way
    if 0 <= ms < MIN_EPOCH_MS:
        raise ValueError(SECONDS)
    return ms


def check_not_ahead(ms: int, now_ms: int) -> None:
    """Refuse a timestamp the server would find too far in the future."""
    if ms > now_ms + MAX_AHEAD_MS:
        raise ValueError(AHEAD)


def _ms(moment: datetime, extra_us: int = 0) -> int:
    return ((moment - _EPOCH) // _US + extra_us) // 1000


def _parse(text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(NOT_RFC3339)
    year, month, day, hour, minute, second, fraction, offset, sign, off_h, off_m = match.groups()
    if offset is None:
        # Well formed but naive: the server decodes it, then refuses it for want of an offset.
        _moment(year, month, day, hour, minute, second, UTC)
        raise ValueError(NAIVE_STRING)
    zone = UTC
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(NOT_RFC3339)
        delta = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-delta if sign == "-" else delta)
    us = 0
    if fraction is not None:
        us = int(fraction[:6].ljust(6, "0")) + (len(fraction) > 6 and fraction[6] >= "5")
    return _ms(_moment(year, month, day, hour, minute, second, zone), us)


def _moment(year: str, month: str, day: str, hour: str, minute: str, second: str, zone: timezone) -> datetime:
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError:  # February 30th, 24:00, a leap second, year 0…
        raise ValueError(NOT_RFC3339) from None
