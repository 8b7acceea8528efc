"""The CallRecord contract as the SDK checks it, and the building of one record's JSON.

The app thread only captures the keyword arguments; this module runs on the consumer thread (or
the caller's, in sync mode), merging the ``attribute()`` defaults and checking every value so a bad
record is refused here with a message naming the field, never by the server after a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.timestamps import check_not_ahead, epoch_ms
from meterline.uuid7 import uuid7

_TEXT = 200
_ID = 128
# name → (min length, max length)
STRINGS: dict[str, tuple[int, int]] = {
    "provider": (1, 100),
    "model": (1, 200),
    "event_id": (1, 64),
    "response_model": (0, _TEXT),
    "feature": (0, _TEXT),
    "customer_id": (0, _TEXT),
    "user_id": (0, _TEXT),
    "route_version": (0, _TEXT),
    "route": (0, _TEXT),
    "environment": (0, _TEXT),
    "error_type": (0, _TEXT),
    "trace_id": (0, _ID),
    "session_id": (0, _ID),
    "request_id": (0, _ID),
    "prompt_prefix_hash": (0, 64),
}
# name → (minimum, maximum)
INTEGERS: dict[str, tuple[int, int]] = {
    "input_tokens": (0, 10**9),
    "cache_read_tokens": (0, 10**9),
    "cache_write_tokens": (0, 10**9),
    "output_tokens": (0, 10**9),
    "reasoning_tokens": (0, 10**9),
    "attempt": (1, 1000),
    "tool_calls": (0, 100_000),
    "max_tokens": (1, 2**32 - 1),
    "prompt_prefix_tokens": (0, 10**9),
    "ratelimit_limit_tokens": (0, 10**12),
    "ratelimit_remaining_tokens": (0, 10**12),
    "ratelimit_limit_requests": (0, 10**12),
    "ratelimit_remaining_requests": (0, 10**12),
    "ratelimit_limit_input_tokens": (0, 10**12),
    "ratelimit_limit_output_tokens": (0, 10**12),
}
MILLIS: dict[str, tuple[float, float]] = {"ttft_ms": (0, 86_400_000), "latency_ms": (0, 86_400_000)}
CHOICES: dict[str, tuple[str, ...]] = {
    "status": ("ok", "error", "timeout", "cancelled"),
    "traffic": ("live", "eval", "shadow"),
    "service_tier": ("default", "batch", "flex", "priority"),
    "finish_reason": ("stop", "length", "tool_calls", "content_filter", "error"),
}
BOOLEANS = ("cache_hit", "streamed", "prompt_prefix_tokens_estimated")
MAX_TAGS = 32
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
MAX_COST_USD = Decimal(1_000_000)
FIELD_NAMES = frozenset(
    [*STRINGS, *INTEGERS, *MILLIS, *CHOICES, *BOOLEANS, "timestamp", "cost_usd", "tags"],
)


class RecordError(ValueError):
    """A record the server would refuse; the message names the field and the rule, never its value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"meterline record: {field} {problem}")
        self.field = field
        self.problem = problem

    @property
    def kind(self) -> str:
        """The field and the rule: what the once-per-kind warning and its memory go by."""
        return f"{self.field} {self.problem}"


def unknown_fields(names: Mapping[str, Any]) -> TypeError:
    extra = sorted(set(names) - FIELD_NAMES)
    return TypeError(
        f"meterline: unknown CallRecord field(s) {', '.join(extra)}; see docs/contract.md in the Meterline repository"
    )


def overlay(base: Mapping[str, Any], over: Mapping[str, Any]) -> Mapping[str, Any]:
    """``base`` with ``over`` on top; tags are merged key by key."""
    if not base:
        return over
    if not over:
        return base
    values = {**base, **over}
    if base.get("tags") is not None and over.get("tags") is not None:
        values["tags"] = {**base["tags"], **over["tags"]}
    return values


def build(defaults: Mapping[str, Any], fields: Mapping[str, Any], time_ns: int) -> dict[str, Any]:
    """The record as JSON-ready values: defaults, then fields, checked; raises :class:`RecordError`."""
    values = overlay(defaults, fields)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None:
            out[name] = check(name, value)
    for name in ("provider", "model"):
        if name not in out:
            raise RecordError(name, "is required")
    _cross_checks(out)
    if "timestamp" in out:
        try:
            check_not_ahead(out["timestamp"], time_ns // 1_000_000)
        except ValueError as exc:
            raise RecordError("timestamp", str(exc)) from None
    else:
        # The timestamp is the request's start: the moment of record() minus the call's latency.
        out["timestamp"] = (time_ns // 1_000_000) - int(out.get("latency_ms", 0))
    if "event_id" not in out:
        out["event_id"] = uuid7(time_ns)
    return out


def check(name: str, value: Any) -> Any:
    """One field's value as JSON will carry it; raises :class:`RecordError` if the server would refuse it."""
    if name in STRINGS:
        return _string(name, value)
    if name in INTEGERS:
        return _integer(name, value)
    if name in MILLIS:
        return _millis(name, value)
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise RecordError(name, f"must be one of {', '.join(CHOICES[name])}")
        return value
    if name in BOOLEANS:
        if not isinstance(value, bool):
            raise RecordError(name, "must be a bool")
        return value
    if name == "tags":
        return _tags(value)
    if name == "cost_usd":
        return _cost(value)
    if name == "timestamp":
        return _timestamp(value)
    raise RecordError(name, "is not a CallRecord field")


def encode(record: Mapping[str, Any]) -> bytes:
    """One record's compact JSON."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(name, f"must be a str, not {type(value).__name__}")
    low, high = STRINGS[name]
    if not low <= len(value) <= high:
        raise RecordError(name, f"must be {low} to {high} characters long")
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(name, f"must be an int, not {type(value).__name__}")
    low, high = INTEGERS[name]
    if not low <= value <= high:
        raise RecordError(name, f"must be between {low} and {high}")
    return value


def _millis(name: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"must be a number of milliseconds, not {type(value).__name__}")
    low, high = MILLIS[name]
    if not low <= value <= high:  # also refuses NaN
        raise RecordError(name, f"must be between {low:g} and {high:g} milliseconds")
    return value


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise RecordError("tags", "must be a mapping of str to str")
    if len(value) > MAX_TAGS:
        raise RecordError("tags", f"may hold at most {MAX_TAGS} entries")
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise RecordError("tags", f"keys must be str of 1 to {MAX_TAG_KEY} characters")
        if not isinstance(item, str) or len(item) > MAX_TAG_VALUE:
            raise RecordError("tags", f"values must be str of at most {MAX_TAG_VALUE} characters")
    return dict(value)


def _cost(value: Any) -> str:
    if isinstance(value, float):
        raise RecordError("cost_usd", "must be a Decimal, int or decimal string, not a float (money is exact)")
    try:
        amount = Decimal(value) if isinstance(value, int | str) else value
    except InvalidOperation:
        raise RecordError("cost_usd", "is not a decimal number") from None
    if not isinstance(amount, Decimal) or not amount.is_finite() or not 0 <= amount <= MAX_COST_USD:
        raise RecordError("cost_usd", f"must be a finite decimal between 0 and {MAX_COST_USD} USD")
    return format(amount, "f")  # plain notation: "0.000000000001", not "1E-12"


def _timestamp(value: Any) -> int:
    try:
        return epoch_ms(value)
    except ValueError as exc:
        raise RecordError("timestamp", str(exc)) from None


def _cross_checks(out: dict[str, Any]) -> None:
    if out.get("cache_read_tokens", 0) + out.get("cache_write_tokens", 0) > out.get("input_tokens", 0):
        raise RecordError(
            "cache_read_tokens", "+ cache_write_tokens may not exceed input_tokens (input is the total, cache included)"
        )
    if out.get("reasoning_tokens", 0) > out.get("output_tokens", 0):
        raise RecordError("reasoning_tokens", "may not exceed output_tokens (output includes reasoning)")
    if out.get("prompt_prefix_tokens", 0) > out.get("input_tokens", 0):
        raise RecordError("prompt_prefix_tokens", "may not exceed input_tokens (the prefix is part of the input)")
    ttft, latency = out.get("ttft_ms"), out.get("latency_ms")
    if ttft is not None and latency is not None and ttft > latency:
        raise RecordError("ttft_ms", "may not exceed latency_ms")
