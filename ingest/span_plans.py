"""GenAI spans as CallRecords, fast: the mapping of ``ingest.genai_spans`` worked out once per key layout.

``genai_spans.to_record`` states the mapping one span at a time: the span's attributes merged over its
resource's, the older and vendor names folded into the current ones, then each field looked up.
All of that but the values depends only on which attribute keys the span and its resource carry,
and the spans of one instrumentation carry the same keys. So a ``Plan`` is made once per (resource
keys, span keys): where each value the mapping reads sits (the span's, else the resource's), each
field's names cut to those present, the ``meterline.<field>`` and tag entries in the order the merge
leaves them. Per span what is left is one C-level fetch of the serialized values, their decoding
(once per distinct value in a request, ``genai_spans.Values``) and the record's assembly, with the
rules and in the order of ``to_record``: ``ingest/tests/test_span_plans.py`` holds the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest.genai_spans import (
    _FALLBACKS,
    _MEMBER_KEYS,
    _WANTED,
    AGGREGATE_KINDS,
    AGGREGATE_OPERATIONS,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    ENVIRONMENT,
    FINISH_REASONS,
    INPUT_TOKENS,
    MAX_TEXT,
    MODEL,
    OPENLIT_COST,
    OUTPUT_TOKENS,
    PROVIDER,
    PROVIDER_ALIASES,
    REASONING_TOKENS,
    SERVICE_TIER,
    SESSION_ID,
    STREAMED,
    TAG_PREFIX,
    TIER_ALIASES,
    TTFT_SECONDS,
    USER_ID,
    Skipped,
    Values,
    _finish_reason,
    _text,
)

_MAX_PLANS = 256  # plans remembered by a process (a producer whose every span differs: bounded memory)
_TTFT_CHUNK = TTFT_SECONDS[0]
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
_ERROR = Status.STATUS_CODE_ERROR
_span_fields = attrgetter("trace_id", "span_id", "start_time_unix_nano", "end_time_unix_nano")
Getter = Callable[[Any], tuple[Any, ...]]
Mapped = tuple[tuple[bytes, bytes], dict[str, Any] | Skipped]  # a span's (trace id, span id) and its record


def _getter(items: Sequence[Any]) -> Getter:
    """``container → (container[item] for item in items)`` as a tuple, fetched in C (``itemgetter``)."""
    if len(items) > 1:
        return itemgetter(*items)
    if items:
        item = items[0]
        return lambda container: (container[item],)
    return lambda container: ()


def _read(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys the mapping reads, in their order: the wanted names, ``meterline.<field>``, tags."""
    return tuple(key for key in keys if key in _WANTED or key in _MEMBER_KEYS or key.startswith(TAG_PREFIX))


class Resource:
    """A resource's attribute keys: those read (fetched once per ``ResourceSpans``) and the plans of
    the span key lists seen under it."""

    __slots__ = ("get", "read", "spans")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.read = _read(keys)
        self.get = _getter(self.read)
        self.spans: dict[Hashable, Plan] = {}


class Plan:
    """The mapping for spans with one list of attribute keys read under a resource with one list.

    A span's values are laid out as: the span's read values (``get``), the resource's, one None (for
    a name neither carries), then the first value that is not None of each ``chains`` entry (a
    field several present names can fill). ``fetch`` takes from that row every value ``to_record``
    looks up; ``members`` and ``tags`` name the merged ``meterline.*`` entries. ``layout`` says the same
    in plain values, for the compiled record builder (``meterline_spanwire.build``)."""

    __slots__ = (
        "chains", "fetch", "get", "layout", "member_values", "members", "tag_values", "tags", "ttft_named", "usage",
    )  # fmt: skip

    def __init__(self, resource: tuple[str, ...], read: tuple[str, ...]) -> None:
        self.get = _getter(read)
        where = {key: i for i, key in enumerate(resource, start=len(read))}
        where.update((key, i) for i, key in enumerate(read))  # the span's own value wins
        none = len(read) + len(resource)
        chains: list[tuple[int, ...]] = []

        def raw(name: str) -> int:
            return where.get(name, none)

        def first(names: tuple[str, ...]) -> int:
            present = tuple(where[name] for name in names if name in where)
            if len(present) > 1:
                chains.append(present)
                return none + len(chains)
            return present[0] if present else none

        fetched = [
            raw("error.type"), first(INPUT_TOKENS), first(OUTPUT_TOKENS), raw("gen_ai.operation.name"),
            raw("traceloop.span.kind"), first(PROVIDER), first(MODEL), first(CACHE_READ_TOKENS),
            first(CACHE_WRITE_TOKENS), first(REASONING_TOKENS), raw("gen_ai.response.model"),
            raw("gen_ai.request.max_tokens"), first(TTFT_SECONDS), first(STREAMED), first(FINISH_REASONS),
            first(SERVICE_TIER), first(USER_ID), first(SESSION_ID), first(ENVIRONMENT), raw("meterline.feature"),
            raw("service.name"), raw(OPENLIT_COST),
        ]  # fmt: skip
        self.fetch = _getter(fetched)
        self.chains = tuple(chains)
        # to_record folds the older names in only when one is present, which names time_to_first_chunk.
        self.ttft_named = _TTFT_CHUNK in where or not _FALLBACKS.isdisjoint(where)
        # The merge keeps the resource's entries first, then the span's others (as {**resource, **span}).
        shared = frozenset(resource)
        ordered = [*resource, *(key for key in read if key not in shared)]
        members = [key for key in ordered if key in _MEMBER_KEYS]
        self.members = tuple(_MEMBER_KEYS[key] for key in members)
        member_at = tuple(where[key] for key in members)
        self.member_values = _getter(member_at)
        self.usage = "input_tokens" in self.members or "output_tokens" in self.members
        self.layout = (tuple(fetched), self.chains, self.members, member_at, self.ttft_named, self.usage)
        tags = [key for key in ordered if key.startswith(TAG_PREFIX)]
        self.tags = tuple(key[len(TAG_PREFIX) :] for key in tags)
        self.tag_values = _getter([where[key] for key in tags])


# Resources and their plans, by their key lists (this module) or by the bit masks of the names they
# carry (``ingest.span_wire``): the two kinds of key never equal each other.
_resources: dict[Hashable, Resource] = {}
_plans = 0


def _plan(resource: Resource, key: Hashable, keys: tuple[str, ...]) -> Plan:
    """The plan of spans with attribute ``keys`` under ``resource``, remembered under ``key``."""
    global _plans  # one count bounds every resource's plans
    if _plans >= _MAX_PLANS:
        for known in _resources.values():
            known.spans.clear()
        _plans = 0
    plan = resource.spans[key] = Plan(resource.read, _read(keys))
    _plans += 1
    return plan


def _resource(key: Hashable, keys: tuple[str, ...]) -> Resource:
    """The ``Resource`` of a resource with attribute ``keys``, remembered under ``key``."""
    resource = _resources.get(key)
    if resource is None:
        if len(_resources) >= _MAX_PLANS:
            _resources.clear()
        resource = _resources[key] = Resource(keys)
    return resource


def span_records(
    spans: Iterable[Span], resource_attributes: Mapping[str, bytes], span_attributes: Iterable[Any], values: Values
) -> Iterator[Mapped]:
    """Each span of one ``ResourceSpans`` (its ids) with what it maps to (as ``to_record`` maps it), given
    the resource's and the spans' attribute maps (``ingest.span_attributes``) and the request's caches."""
    keys = tuple(resource_attributes)
    resource = _resource(keys, keys)
    decode = values.__getitem__
    shared = (*map(decode, resource.get(resource_attributes)), None)
    plans = resource.spans
    for span, attributes in zip(spans, span_attributes, strict=True):
        keys = tuple(attributes)
        plan = plans.get(keys) or _plan(resource, keys, keys)
        row = (*map(decode, plan.get(attributes)), *shared)
        if plan.chains:
            row = _chained(row, plan.chains)
        tags = dict(zip(plan.tags, map(str, plan.tag_values(row)), strict=True)) if plan.tags else {}
        trace, span_id, start, end = _span_fields(span)
        yield (trace, span_id), _record(trace, span_id, start, end, span.status.code, plan, row, tags)


def _chained(row: tuple[Any, ...], chains: tuple[tuple[int, ...], ...]) -> tuple[Any, ...]:
    """``row`` and, per chain, the first of its values that is not None (else None)."""
    firsts = []
    for chain in chains:
        for i in chain:
            if (value := row[i]) is not None:
                break
        firsts.append(value)  # the last one's, None, when every one is None
    return row + tuple(firsts)


def _count(value: Any) -> Any:
    # An integral double (some exporters send numbers that way) is a count; anything else goes to
    # validation as it came, which names the field.
    return int(value) if type(value) is float and value.is_integer() else value


def _record(
    trace: bytes, span_id: bytes, start: int, end: int, status: int, plan: Plan, row: tuple[Any, ...],
    tags: dict[str, str],
) -> dict[str, Any] | Skipped:  # fmt: skip
    """``genai_spans.to_record`` over a plan's row (and the span's fields, status code and merged tags):
    the same checks, fields and order."""
    (error_type, inputs, outputs, operation, kind, provider, model, cache_read, cache_write, reasoning,
     response_model, max_tokens, ttft, streamed, finish, tier, user_id, session_id, environment, feature,
     service, cost) = plan.fetch(row)  # fmt: skip
    failed = error_type is not None or status == _ERROR
    if (type(operation) is str and operation in AGGREGATE_OPERATIONS) or (
        type(kind) is str and kind in AGGREGATE_KINDS
    ):
        return Skipped(f"a {operation or kind} span sums its children", ignored=True)
    has_usage = inputs is not None or outputs is not None or plan.usage
    if not has_usage and not (failed and provider is not None and model is not None):
        return Skipped("no GenAI usage", ignored=True)
    if len(trace) != 16 or len(span_id) != 8 or trace == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return Skipped("trace_id must be 16 bytes and span_id 8 bytes, not all zero")
    if provider is None:
        return Skipped("no gen_ai.provider.name (or gen_ai.system)")
    if model is None:
        return Skipped("no gen_ai.request.model (or gen_ai.response.model)")
    if not start:
        return Skipped("no start_time_unix_nano")
    trace_id = trace.hex()
    provider = str(provider).lower()
    record: dict[str, Any] = {
        "event_id": trace_id + span_id.hex(),
        "timestamp": start // 1_000_000,
        "provider": PROVIDER_ALIASES.get(provider, provider),
        "model": model,
        "trace_id": trace_id,
    }
    latency = (end - start) / 1e6 if end >= start else None
    if latency is not None:
        record["latency_ms"] = latency
    # (a count is an int nearly always: _count only for the rest)
    if inputs is not None:
        record["input_tokens"] = inputs if type(inputs) is int else _count(inputs)
    if outputs is not None:
        record["output_tokens"] = outputs if type(outputs) is int else _count(outputs)
    if cache_read is not None:
        record["cache_read_tokens"] = cache_read if type(cache_read) is int else _count(cache_read)
    if cache_write is not None:
        record["cache_write_tokens"] = cache_write if type(cache_write) is int else _count(cache_write)
    if reasoning is not None:
        record["reasoning_tokens"] = reasoning if type(reasoning) is int else _count(reasoning)
    if response_model is not None:
        record["response_model"] = response_model
    if max_tokens is not None and max_tokens != 0:
        record["max_tokens"] = max_tokens if type(max_tokens) is int else _count(max_tokens)
    if type(ttft) is float or type(ttft) is int:  # (a decoded value is of its exact type: bool is no number)
        # both clocks are the producer's; rounding may put ttft a hair past the end
        record["ttft_ms"] = ttft * 1000 if latency is None else min(ttft * 1000, latency)
    if streamed is not None:
        record["streamed"] = bool(streamed)
    elif "ttft_ms" in record and plan.ttft_named:
        record["streamed"] = True  # the conventions set time_to_first_chunk on streams only
    if finish is not None and (reason := _finish_reason(finish)) is not None:
        record["finish_reason"] = reason
    if tier is not None:
        record["service_tier"] = TIER_ALIASES.get(str(tier).lower(), "default")
    if failed:
        error = _text(error_type if error_type is not None else "error")
        lowered = error.lower()
        record["status"] = "timeout" if "timeout" in lowered else "cancelled" if "cancel" in lowered else "error"
        record["error_type"] = error
    # (_text leaves a short string as it is: skipped for those)
    if user_id is not None:
        record["user_id"] = user_id if type(user_id) is str and len(user_id) <= MAX_TEXT else _text(user_id)
    if session_id is not None:
        record["session_id"] = (
            session_id if type(session_id) is str and len(session_id) <= MAX_TEXT else _text(session_id)
        )
    if environment is not None:
        record["environment"] = (
            environment if type(environment) is str and len(environment) <= MAX_TEXT else _text(environment)
        )
    if feature is not None:
        record["feature"] = feature if type(feature) is str and len(feature) <= MAX_TEXT else _text(feature)
    elif service is not None and not str(service).startswith("unknown_service"):
        # service.name is only the default feature, and the SDK's "unknown_service" none at all
        record["feature"] = _text(service)
    if plan.members:
        record.update(zip(plan.members, plan.member_values(row), strict=True))
    if cost is not None:
        record["tags"] = {OPENLIT_COST: str(cost), **tags}
    elif tags:
        record["tags"] = tags
    return record
