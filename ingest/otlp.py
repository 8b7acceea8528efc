"""OTLP/HTTP trace exports in: decode (protobuf or OTLP/JSON), map GenAI spans, accept, answer.

Decoding uses the official ``opentelemetry-proto`` messages. The spans that are model calls become
CallRecords (``ingest.genai_spans``) and go through the same accept path as ``POST /v1/calls``
(``ingest.accept.accept_records``): same validation, same outbox row, the answer only after the
commit. Every other span is counted in the answer's ``partial_success``, as the OTLP spec asks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ingest.accept import IngestError, accept_records
from ingest.genai_spans import Skipped, Values
from ingest.span_attributes import attribute_maps
from ingest.span_plans import Mapped, span_records
from ingest.span_wire import wire_records
from tenancy.models import Project

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
MAX_PROBLEMS = 5  # span problems spelt out in partial_success.error_message; the rest are counted
# HTTP status → google.rpc.Code, for the Status body OTLP asks of every 4xx/5xx answer.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 422: 3, 429: 8, 500: 13, 503: 14}
_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_json_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class Outcome:
    """What one export request came to: the spans taken and those rejected or ignored (with why)."""

    accepted: int
    rejected: int
    message: str


@dataclass(frozen=True)
class Decoded:
    """A request as the official message, and its protobuf bytes (the attributes are read from those)."""

    request: ExportTraceServiceRequest
    wire: bytes


def decode_request(body: bytes, media_type: str) -> Decoded:
    """The ``ExportTraceServiceRequest`` in ``body`` (protobuf, or OTLP/JSON with hex ids); 400 if not one."""
    request = ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise IngestError(400, f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
        except RecursionError:
            raise IngestError(400, "body is nested too deeply to decode") from None
        return Decoded(request, body)
    try:
        document = _json_decode(body)
    except msgspec.DecodeError as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise IngestError(400, "body is not valid JSON: it is not UTF-8") from None
    except RecursionError:
        raise IngestError(400, "body is nested too deeply to decode") from None
    if not isinstance(document, dict):
        raise IngestError(400, "body must be a JSON object: an OTLP/JSON ExportTraceServiceRequest")
    _ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)  # the spec: ignore unknown fields
    except json_format.ParseError as exc:
        raise IngestError(400, f"body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    except RecursionError:
        raise IngestError(400, "body is nested too deeply to decode") from None
    return Decoded(request, bytes(request.SerializeToString()))


def _items(parent: Any, *names: str) -> list[dict[str, Any]]:
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def _ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids in hex, where the protobuf JSON mapping expects base64."""
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _id_to_base64(span, where)
                for j, link in enumerate(_items(span, "links")):
                    _id_to_base64(link, f"{where}.links[{j}]")


def _id_to_base64(item: dict[str, Any], where: str) -> None:
    for key in _ID_KEYS:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            continue  # absent or empty, or a type ParseDict will name
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            try:  # a producer that followed the plain protobuf JSON mapping instead
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise IngestError(400, f"{where}.{key} must be a hex string, not {value[:40]!r}") from None
        item[key] = base64.b64encode(raw).decode()


def mapped_spans(decoded: Decoded) -> Iterator[Mapped]:
    """Every span of a request (its trace and span ids) with what it maps to: a CallRecord's fields, or
    why it is skipped. The compiled reader's path when it takes the request, else the pure-Python one."""
    compiled = wire_records(decoded.wire)
    return compiled if compiled is not None else planned_spans(decoded)


def planned_spans(decoded: Decoded) -> Iterator[Mapped]:
    """``mapped_spans`` in pure Python: the attributes read through ``ingest.span_attributes``."""
    values = Values()  # each distinct attribute value of the request decoded once
    for resource_spans, (resource_attributes, span_attributes) in zip(
        decoded.request.resource_spans, attribute_maps(decoded.wire), strict=True
    ):
        spans = (span for scope_spans in resource_spans.scope_spans for span in scope_spans.spans)
        yield from span_records(spans, resource_attributes, span_attributes, values)


def export(project: Project, decoded: Decoded) -> Outcome:
    """Accept the GenAI spans of a request into the outbox (durable when this returns)."""
    records: list[dict[str, Any]] = []
    labels: list[str] = []
    ignored = 0
    problems: list[str] = []
    for (trace_id, span_id), mapped in mapped_spans(decoded):
        if isinstance(mapped, Skipped):
            if mapped.ignored:
                ignored += 1
            else:
                problems.append(f"span {trace_id.hex()}/{span_id.hex()}: {mapped.reason}")
            continue
        records.append(mapped)
        labels.append(mapped["event_id"])
    accepted = 0
    if records:
        answer = accept_records(project, records)
        accepted = answer.body["accepted"]
        for rejected in answer.body["rejected"]:
            label = labels[rejected["index"]]
            errors = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in rejected["errors"].items())
            problems.append(f"span {label[:32]}/{label[32:]}: {errors}")
    return Outcome(accepted, ignored + len(problems), _message(ignored, problems))


def _message(ignored: int, problems: list[str]) -> str:
    parts = []
    if ignored:
        parts.append(f"{ignored} span{'s' if ignored != 1 else ''} without GenAI usage ignored")
    if problems:
        parts.append(f"{len(problems)} span{'s' if len(problems) != 1 else ''} rejected")
        parts.extend(problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            parts.append(f"and {len(problems) - MAX_PROBLEMS} more")
    return "; ".join(parts)


def encode_response(outcome: Outcome, media_type: str) -> bytes:
    """``ExportTraceServiceResponse`` in the request's encoding; ``partial_success`` only when a span was left."""
    response = ExportTraceServiceResponse()
    if outcome.rejected:
        response.partial_success.rejected_spans = outcome.rejected
        response.partial_success.error_message = outcome.message
    if media_type == PROTOBUF:
        return bytes(response.SerializeToString())
    return str(json_format.MessageToJson(response, indent=None)).encode()


def encode_status(status: int, message: str, media_type: str) -> bytes:
    """The ``google.rpc.Status`` body of a refusal: protobuf, or JSON that also holds Meterline's ``detail``."""
    code = GRPC_CODES.get(status, 2)  # 2 = UNKNOWN
    if media_type == PROTOBUF:
        return bytes(Status(code=code, message=message).SerializeToString())
    return msgspec.json.encode({"code": code, "message": message, "detail": message})
