"""The CallRecord contract (docs/contract.md) and its validation on the ingest hot path.

A batch is decoded once into raw JSON fragments; each fragment is decoded by msgspec straight into
a typed struct (the fast path, a few microseconds a record). Only a record that fails goes through
the slow path, which checks every field on its own so the client sees all of its mistakes at once.
Accepted records are packed as tuples in ``FIELDS`` order; the outbox stores them column by column
as msgpack (``encode_records`` / ``decode_records``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from msgspec import Meta

from ledger.added_fields import ADDED_DEFAULTS
from ledger.pricing import usd_to_pusd

Text = Annotated[str, Meta(max_length=200)]
Id = Annotated[str, Meta(max_length=128)]
# A billion tokens is 100x any context window, and keeps every computed cost part inside the Int64
# pico-USD columns even at the dearest catalogue price (600 USD/Mtok): larger would dead-letter a batch.
Tokens = Annotated[int, Meta(ge=0, le=10**9)]
Millis = Annotated[float, Meta(ge=0, le=86_400_000)]
TagKey = Annotated[str, Meta(min_length=1, max_length=64)]
TagValue = Annotated[str, Meta(max_length=256)]
MAX_TAGS = 32
# A provider's per-minute limit or what remains of it (the largest published are in the millions).
RateLimit = Annotated[int, Meta(ge=0, le=10**12)]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
MAX_COST_USD = Decimal(1_000_000)
# Epoch values below this are seconds, not milliseconds (this is 1973 in ms, 5138 AD in s).
MIN_EPOCH_MS = 100_000_000_000


class CallRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One LLM call. Token fields follow OpenTelemetry: input includes cache reads and writes,
    output includes reasoning."""

    provider: Annotated[str, Meta(min_length=1, max_length=100)]
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    event_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    timestamp: datetime | int | float | None = None
    response_model: Text = ""
    feature: Text = ""
    customer_id: Text = ""
    user_id: Text = ""
    route_version: Text = ""
    route: Text = ""
    environment: Text = ""
    input_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    output_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    ttft_ms: Millis | None = None
    latency_ms: Millis | None = None
    status: Literal["ok", "error", "timeout", "cancelled"] = "ok"
    error_type: Text = ""
    attempt: Annotated[int, Meta(ge=1, le=1000)] = 1
    traffic: Literal["live", "eval", "shadow"] = "live"
    cache_hit: bool = False
    service_tier: Literal["default", "batch", "flex", "priority"] = "default"
    streamed: bool = False
    tool_calls: Annotated[int, Meta(ge=0, le=100_000)] = 0
    max_tokens: Annotated[int, Meta(ge=1, le=2**32 - 1)] | None = None
    cost_usd: Decimal | None = None
    trace_id: Id = ""
    session_id: Id = ""
    request_id: Id = ""
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=MAX_TAGS)] = {}
    finish_reason: FinishReason | None = None
    prompt_prefix_hash: Annotated[str, Meta(max_length=64)] = ""
    prompt_prefix_tokens: Tokens = 0
    prompt_prefix_tokens_estimated: bool = False
    ratelimit_limit_tokens: RateLimit | None = None
    ratelimit_remaining_tokens: RateLimit | None = None
    ratelimit_limit_requests: RateLimit | None = None
    ratelimit_remaining_requests: RateLimit | None = None
    ratelimit_limit_input_tokens: RateLimit | None = None
    ratelimit_limit_output_tokens: RateLimit | None = None


# The outbox row layout: one tuple per accepted record, in this order.
FIELDS = (
    "event_id", "ts_ms", "provider", "model", "response_model", "feature", "customer_id", "user_id",
    "route_version", "route", "environment", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "ttft_ms", "latency_ms", "status", "error_type", "attempt",
    "traffic", "cache_hit", "service_tier", "streamed", "tool_calls", "max_tokens", "trace_id",
    "session_id", "request_id", "tags", "reported_pusd",
    # Added after the first release: a stored payload may end before these (see decode_records).
    "finish_reason", "prompt_prefix_hash", "prompt_prefix_tokens", "prompt_prefix_tokens_estimated",
    "ratelimit_limit_tokens", "ratelimit_remaining_tokens", "ratelimit_limit_requests",
    "ratelimit_remaining_requests", "ratelimit_limit_input_tokens", "ratelimit_limit_output_tokens",
)  # fmt: skip

Packed = tuple[Any, ...]
Errors = dict[str, list[str]]
_payload_decoder = msgspec.msgpack.Decoder()


def encode_records(records: Sequence[Packed]) -> bytes:
    """The outbox payload: the records column by column (``FIELDS`` order), as msgpack.

    Columns decode straight into what the insert needs, with far fewer objects than rows would."""
    return msgspec.msgpack.encode(list(zip(*records, strict=True)))


def decode_records(payload: bytes) -> list[list[Any]]:
    """An outbox payload's columns as stored, in ``FIELDS`` order (empty for a batch with no records).

    A payload written by an earlier release holds fewer columns: see :func:`payload_columns`."""
    columns: list[list[Any]] = _payload_decoder.decode(payload) if payload else []
    return columns


def payload_columns(payload: bytes) -> dict[str, list[Any]]:
    """An outbox payload's columns by ``FIELDS`` name, every field present (empty for no records).

    Columns an earlier release did not write (the trailing ``ADDED_DEFAULTS`` fields) hold their
    default on every row."""
    columns = decode_records(payload)
    if not columns:
        return {}
    if len(columns) > len(FIELDS):
        raise ValueError(f"payload has {len(columns)} columns, more than the {len(FIELDS)} fields known")
    named = dict(zip(FIELDS, columns, strict=False))
    rows = len(columns[0])
    for name in FIELDS[len(columns) :]:
        named[name] = [ADDED_DEFAULTS[name]] * rows
    return named


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    calls: list[msgspec.Raw]


class EnvelopeError(ValueError):
    """The body is not ``{"calls": [...]}``: the whole request is rejected (400)."""


_envelope = msgspec.json.Decoder(Envelope)
_record = msgspec.json.Decoder(CallRecord)
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_FIELD_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    f.name: msgspec.json.Decoder(f.type) for f in msgspec.structs.fields(CallRecord)
}
_REQUIRED = {f.name for f in msgspec.structs.fields(CallRecord) if f.required}


# For enum-like fields, the allowed values, so an error can say what would have been right.
def _choices(kind: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` type, or of the ``Literal`` inside an optional one (else none)."""
    if get_origin(kind) is Literal:
        return get_args(kind)
    return next((get_args(a) for a in get_args(kind) if get_origin(a) is Literal), ())


_CHOICES: dict[str, tuple[str, ...]] = {
    f.name: choices for f in msgspec.structs.fields(CallRecord) if (choices := _choices(f.type))
}


def decode_envelope(body: bytes) -> list[msgspec.Raw]:
    try:
        return _envelope.decode(body).calls
    except msgspec.ValidationError as exc:
        raise EnvelopeError(f'body must be a JSON object {{"calls": [...]}}: {_clean(exc)}') from None
    except msgspec.DecodeError as exc:
        raise EnvelopeError(f"body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise EnvelopeError("body is not valid JSON: it is not UTF-8") from None
    except RecursionError:
        raise EnvelopeError("body is nested too deeply to decode") from None


def uuid7() -> str:
    """A time-ordered UUIDv7 string (RFC 9562), as the SDK makes them."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Validated:
    accepted: list[Packed]
    rejected: list[dict[str, Any]]


@dataclass(frozen=True)
class Window:
    """The accepted timestamp range: not past raw retention, not too far in the future."""

    now_ms: int
    oldest_ms: int
    newest_ms: int
    retention_days: int


def validate(raws: list[msgspec.Raw], window: Window, new_id: Callable[[], str] = uuid7) -> Validated:
    """Split a batch into packed accepted records and per-record errors."""
    accepted: list[Packed] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(raws):
        try:
            record = _record.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # The envelope checked only the record's JSON structure, not its strings' UTF-8, its
            # numbers' ranges nor its depth; the slow path names the field at fault.
            rejected.append({"index": index, "errors": _all_errors(raw)})
            continue
        packed, errors = _check(record, window, new_id)
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            accepted.append(packed)
    return Validated(accepted, rejected)


_convert = msgspec.convert
_encode = msgspec.json.Encoder().encode
# The fields that accept a non-finite float, which JSON (msgspec) encodes as null; other fields refuse one.
_NULLED_BY_JSON = ("cost_usd", "timestamp")


def validate_fields(records: Sequence[dict[str, Any]], window: Window, new_id: Callable[[], str] = uuid7) -> Validated:
    """``validate`` for records made by another door as Python values of JSON's types (OTLP spans):
    the same rules, outcome and messages, without a JSON round trip for the records that pass.

    A record is converted straight into a ``CallRecord``; one that fails goes through ``validate``
    as its JSON, so its errors read as ``/v1/calls`` gives them. So does one with a non-finite
    float where a field would take it (``cost_usd``, ``timestamp``): JSON writes those as null."""
    accepted: list[Packed] = []
    rejected: list[dict[str, Any]] = []
    for index, fields in enumerate(records):
        try:
            record = _convert(fields, CallRecord)
        except msgspec.ValidationError:
            record = None
        else:
            for name in _NULLED_BY_JSON:
                value = fields.get(name)
                if type(value) is float and not math.isfinite(value):
                    record = None
        if record is None:
            one = validate([msgspec.Raw(_encode(fields))], window, new_id)
            accepted += one.accepted
            rejected += ({**problem, "index": index} for problem in one.rejected)
            continue
        packed, errors = _check(record, window, new_id)
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            accepted.append(packed)
    return Validated(accepted, rejected)


def _check(r: CallRecord, window: Window, new_id: Callable[[], str]) -> tuple[Packed, Errors]:
    """Cross-field rules the types cannot say; returns the packed record or the errors."""
    errors: Errors = {}
    now_ms = window.now_ms
    ts = r.timestamp
    if ts is None:
        ts_ms = now_ms
    elif isinstance(ts, datetime):
        if ts.tzinfo is None:
            errors["timestamp"] = ["needs a UTC offset (RFC 3339), e.g. 2026-11-20T10:00:00Z"]
            ts_ms = now_ms
        else:
            ts_ms = int(ts.timestamp() * 1000)
    else:
        ts_ms = int(ts)
        if 0 <= ts_ms < MIN_EPOCH_MS:
            errors["timestamp"] = ["epoch timestamps are milliseconds; this looks like seconds"]
    if "timestamp" not in errors:
        if ts_ms > window.newest_ms:
            errors["timestamp"] = ["is too far in the future (more than 1 day ahead of the server clock)"]
        elif ts_ms < window.oldest_ms:
            errors["timestamp"] = [f"is older than the raw retention of {window.retention_days} days"]
    if r.cache_read_tokens + r.cache_write_tokens > r.input_tokens:
        errors["cache_read_tokens"] = [
            "cache_read_tokens + cache_write_tokens may not exceed input_tokens (input_tokens is the total, "
            "cached parts included)"
        ]
    if r.reasoning_tokens > r.output_tokens:
        errors["reasoning_tokens"] = ["may not exceed output_tokens (output_tokens includes reasoning)"]
    if r.prompt_prefix_tokens > r.input_tokens:
        errors["prompt_prefix_tokens"] = ["may not exceed input_tokens (the prefix is part of the input)"]
    if r.ttft_ms is not None and r.latency_ms is not None and r.ttft_ms > r.latency_ms:
        errors["ttft_ms"] = ["may not exceed latency_ms"]
    reported = None
    if r.cost_usd is not None:
        if not r.cost_usd.is_finite() or r.cost_usd < 0:
            errors["cost_usd"] = ["must be a finite number >= 0"]
        elif r.cost_usd > MAX_COST_USD:
            errors["cost_usd"] = [f"must be at most {MAX_COST_USD} USD for one call"]
        else:
            reported = usd_to_pusd(r.cost_usd)
    if errors:
        return (), errors
    packed = (
        r.event_id or new_id(), ts_ms, r.provider, r.model, r.response_model, r.feature, r.customer_id,
        r.user_id, r.route_version, r.route, r.environment, r.input_tokens, r.cache_read_tokens,
        r.cache_write_tokens, r.output_tokens, r.reasoning_tokens, r.ttft_ms, r.latency_ms, r.status,
        r.error_type, r.attempt, r.traffic, r.cache_hit, r.service_tier, r.streamed, r.tool_calls,
        r.max_tokens, r.trace_id, r.session_id, r.request_id, r.tags, reported, r.finish_reason or "",
        r.prompt_prefix_hash, r.prompt_prefix_tokens, r.prompt_prefix_tokens_estimated,
        r.ratelimit_limit_tokens, r.ratelimit_remaining_tokens, r.ratelimit_limit_requests,
        r.ratelimit_remaining_requests, r.ratelimit_limit_input_tokens, r.ratelimit_limit_output_tokens,
    )  # fmt: skip
    return packed, {}


def _clean(exc: Exception, field: str = "") -> str:
    """msgspec's message without its ``$`` path, or with the path inside ``field`` (e.g. a tag key)."""
    message, _, where = str(exc).partition(" - at `")
    if not field or not where or where == "$`":
        return message
    return f"{message} (at `{where.replace('$', field, 1)})"


def _problem(exc: Exception, field: str = "") -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "is nested too deeply"
    return _clean(exc, field)


def _storable(text: str) -> str:
    # Errors echo client text, and the answer is kept in a jsonb column, which refuses U+0000.
    return text.replace("\x00", "\ufffd")


def _all_errors(raw: msgspec.Raw) -> Errors:
    """The slow path: every field's problem, for a record the fast decoder refused."""
    try:
        members = _members.decode(raw)
    except msgspec.ValidationError:
        return {"record": ["must be a JSON object"]}
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return {"record": [_problem(exc)]}
    errors: Errors = {}
    for name in sorted(_REQUIRED - members.keys()):
        errors[name] = ["is required"]
    for name, value in members.items():
        decoder = _FIELD_DECODERS.get(name)
        if decoder is None:
            errors[_storable(name)] = ["unknown field (see /v1/schema/ for CallRecord)"]
            continue
        try:
            decoder.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            message = _problem(exc, name)
            if name in _CHOICES:
                message += f"; expected one of: {', '.join(_CHOICES[name])}"
            errors[name] = [_storable(message)]
    return errors or {"record": ["is not a valid CallRecord"]}
