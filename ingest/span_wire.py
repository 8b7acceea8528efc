"""GenAI spans as CallRecords, compiled: the attributes read by ``meterline_spanwire`` (native/spanwire).

The pure-Python path (``ingest.span_attributes`` + ``ingest.span_plans``) costs a Python object per
attribute key and per value it fetches, and a few dict look-ups more, for every span. The compiled
reader walks the request's protobuf bytes once and hands over, per span, its ids, times and status
code, which of the names the mapping reads it carries (a bit mask over ``NAMES``), their values
decoded (``span_attributes.any_value``'s rules; any other shape by ``any_value`` itself) and its
``meterline.tags.*`` pairs; keys the mapping does not read cost it nothing. The mask picks the
span's ``span_plans.Plan`` (made once per resource and span mask), from which
``meterline_spanwire.build`` makes the record of a span whose values are of the common kinds, in C,
and ``span_plans._record`` that of any other span, both as the pure-Python path makes it. Only the
order differs: ``meterline.<field>`` members come in ``NAMES`` order and tags in wire order, where
the pure-Python path gives both in its protobuf map's hash order (seeded per process).
``ingest/tests/test_span_wire.py`` holds the two paths equal.

When the module is not built, or a request is encoded in a way the reader leaves to protobuf (a
singular field repeated, a field of an unexpected wire type, groups), ``wire_records`` is None and
the pure-Python path maps the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ingest.genai_spans import (
    _MEMBER_KEYS,
    _WANTED,
    AGGREGATE_KINDS,
    AGGREGATE_OPERATIONS,
    FINISH_REASON_ALIASES,
    PROVIDER_ALIASES,
    TAG_PREFIX,
    TIER_ALIASES,
)
from ingest.span_attributes import any_value
from ingest.span_plans import Mapped, Plan, Resource, _chained, _plan, _record, _resource

try:
    import meterline_spanwire
except ImportError:  # a checkout that `make install` has not built it in: the pure-Python path serves
    meterline_spanwire = None

# The names the reader looks for, in the order of its bit masks and rows.
NAMES: tuple[str, ...] = (*sorted(_WANTED), *sorted(_MEMBER_KEYS))
READER: Any = None if meterline_spanwire is None else meterline_spanwire.Reader(NAMES, TAG_PREFIX, any_value)
CONSTANTS = (PROVIDER_ALIASES, TIER_ALIASES, FINISH_REASON_ALIASES, AGGREGATE_OPERATIONS, AGGREGATE_KINDS)
_named: dict[bytes, tuple[str, ...]] = {}  # bit mask → the names it marks


def _names(mask: bytes) -> tuple[str, ...]:
    names = _named.get(mask)
    if names is None:
        bits = int.from_bytes(mask, "little")
        if len(_named) >= 1024:  # a producer whose every span differs: bounded memory
            _named.clear()
        names = _named[mask] = tuple(name for i, name in enumerate(NAMES) if bits >> i & 1)
    return names


def wire_records(body: bytes) -> Iterator[Mapped] | None:
    """Each span of a serialized ``ExportTraceServiceRequest`` (its ids) with what it maps to, as the
    pure-Python path maps it; None when the compiled reader is absent or leaves this request to it."""
    if READER is None:
        return None
    resources = READER.read(body)
    return None if resources is None else _mapped(resources)


def _mapped(resources: list[tuple[bytes, tuple[Any, ...], Any, list[Any]]]) -> Iterator[Mapped]:
    build = meterline_spanwire.build
    for resource_mask, resource_row, resource_tags, spans in resources:
        resource: Resource = _resource(resource_mask, _names(resource_mask))
        # The merge keeps the resource's tags first, then the span's others, the span's value winning.
        base: dict[str, str] = {name: str(value) for name, value in resource_tags} if resource_tags else {}
        plans = resource.spans
        for span in spans:
            plan = plans.get(span[5]) or _plan(resource, span[5], _names(span[5]))
            # The compiled builder makes the records of the common spans; _record the others.
            record = build(plan.layout, CONSTANTS, span, resource_row, base)
            if record is None:
                record = _planned(span, plan, resource_row, base)
            yield (span[0], span[1]), record


def _planned(span: tuple[Any, ...], plan: Plan, resource_row: tuple[Any, ...], base: dict[str, str]) -> Any:
    trace, span_id, start, end, status, _, row, tags = span
    row += (*resource_row, None)
    if plan.chains:
        row = _chained(row, plan.chains)
    if tags:
        merged = dict(base)
        merged.update((name, str(value)) for name, value in tags)
    else:
        merged = base
    return _record(trace, span_id, start, end, status, plan, row, merged)
