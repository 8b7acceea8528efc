"""Span and resource attributes read fast: a wire-compatible view of the OTLP trace messages.

Reading attributes through the official messages costs a Python object per ``KeyValue`` and per
``AnyValue`` (about 100 µs for a span of 25 attributes here), which would make the OTLP door several
times slower than ``/v1/calls``. A ``KeyValue`` is on the wire exactly a protobuf map entry
(``key = 1``, ``value = 2``), so this module declares the same messages with ``attributes`` as a
``map<string, bytes>``: the C parser builds each span's attributes as one mapping, and only the
values the mapping reads are decoded, here, from their ``AnyValue`` bytes (strings, integers,
doubles and booleans directly; anything else through the official ``AnyValue``).

The official messages (``opentelemetry-proto``) still decode and validate every request
(``ingest.otlp.decode_request``); this view is parsed from the same bytes and read beside them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_PACKAGE = "meterline.otlp_attributes"
_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    """Field numbers as in opentelemetry/proto/{collector/trace,trace,resource}/v1/*.proto."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto3")

    def message(name: str, fields: Iterable[tuple[str, int, str]] = (), attributes: int = 0) -> None:
        m = file.message_type.add(name=name)
        for field, number, type_name in fields:
            m.field.add(name=field, number=number, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                        type_name=f".{_PACKAGE}.{type_name}")  # fmt: skip
        if attributes:
            entry = m.nested_type.add(name="AttributesEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
            entry.field.add(name="value", number=2, type=_F.TYPE_BYTES, label=_F.LABEL_OPTIONAL)
            m.field.add(name="attributes", number=attributes, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                        type_name=f".{_PACKAGE}.{name}.AttributesEntry")  # fmt: skip

    message("Request", [("resource_spans", 1, "ResourceSpans")])
    message("ResourceSpans", [("resource", 1, "Resource"), ("scope_spans", 2, "ScopeSpans")])
    message("Resource", attributes=1)
    message("ScopeSpans", [("spans", 2, "Span")])
    message("Span", attributes=9)
    # ``resource`` is a singular field: declared repeated here, several occurrences are merged by the
    # caller as protobuf merges a singular message (the later attributes win).
    return file


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
AttributesRequest: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


def attribute_maps(body: bytes) -> Iterator[tuple[dict[str, bytes], list[Any]]]:
    """Per ``ResourceSpans`` of a serialized ``ExportTraceServiceRequest``: the resource's attributes
    and, per span in order, its attribute map (key → serialized ``AnyValue``)."""
    request = AttributesRequest.FromString(body)
    for resource_spans in request.resource_spans:
        resource: dict[str, bytes] = {}
        for part in resource_spans.resource:
            resource.update(part.attributes)
        yield resource, [span.attributes for scope in resource_spans.scope_spans for span in scope.spans]


_double = struct.Struct("<d").unpack_from


def any_value(raw: bytes) -> Any:
    """The Python value of a serialized ``AnyValue`` (None for an empty one, a kvlist or bytes).

    A value made of exactly one field of the common kinds is decoded here: strings, varints (the
    counts and flags, one to three bytes inline), doubles and arrays of those; anything else (a
    value repeated, an odd encoding) through the official ``AnyValue``, which is what decides."""
    size = len(raw)
    if size >= 2:
        tag = raw[0]
        # The common shapes first: a short string, a small integer (one-byte lengths and varints).
        if tag == 0x0A and raw[1] == size - 2:
            return raw[2:].decode("utf-8", "replace")
        if tag == 0x18:  # int_value
            first = raw[1]
            if size == 2:
                return first if first < 0x80 else _official_value(raw)
            if first >= 0x80:
                if size == 3 and raw[2] < 0x80:
                    return (first & 0x7F) | raw[2] << 7
                if size == 4 and raw[2] >= 0x80 and raw[3] < 0x80:
                    return (first & 0x7F) | (raw[2] & 0x7F) << 7 | raw[3] << 14
        elif tag == 0x10 and size == 2 and raw[1] < 0x80:  # bool_value
            return raw[1] != 0
        if tag == 0x0A:  # string_value, length-delimited
            size, at = _varint(raw, 1)
            if at + size == len(raw):
                return raw[at:].decode("utf-8", "replace")
        elif tag == 0x18 or tag == 0x10:  # int_value, bool_value: varints
            number, at = _varint(raw, 1)
            if at == len(raw):
                if tag == 0x10:
                    return number != 0
                return number - (1 << 64) if number >= 1 << 63 else number
        elif tag == 0x21 and len(raw) == 9:  # double_value, fixed 64
            return _double(raw, 1)[0]
        elif tag == 0x2A:  # array_value: an ArrayValue of AnyValues (field 1), each decoded as above
            values = _array(raw)
            if values is not None:
                return values
    return _official_value(raw)


def _array(raw: bytes) -> list[Any] | None:
    """The values of a serialized ``AnyValue`` that is one ``array_value`` (None if it is not that)."""
    length, at = (raw[1], 2) if raw[1] < 0x80 else _varint(raw, 1)
    end = len(raw)
    if at + length != end:
        return None
    values = []
    while at < end:
        if raw[at] != 0x0A:  # an unknown field or an odd encoding: the official message decides
            return None
        length, at = (raw[at + 1], at + 2) if at + 1 < end and raw[at + 1] < 0x80 else _varint(raw, at + 1)
        if at + length > end:
            return None
        values.append(any_value(raw[at : at + length]))
        at += length
    return values


def _official_value(raw: bytes) -> Any:
    value = AnyValue()  # arrays, odd encodings: the official message
    value.ParseFromString(raw)
    return _official(value)


def _official(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_official(v) for v in value.array_value.values]
    if kind in ("string_value", "int_value", "double_value", "bool_value"):
        return getattr(value, kind)
    return None  # kvlist and bytes values carry nothing a CallRecord holds


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    number = shift = 0
    while at < len(raw):
        byte = raw[at]
        at += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, at
        shift += 7
    return 0, len(raw) + 1  # truncated: the callers' length checks fail, and the official parse decides
