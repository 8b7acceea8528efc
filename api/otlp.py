"""POST /v1/otlp/v1/traces: OTLP/HTTP span exports, a thin skin over ``ingest.otlp``.

Standard exporters work with ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<base>/v1/otlp/v1/traces`` and
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <key>``. Every answer is in the request's encoding:
``ExportTraceServiceResponse`` on success, a ``google.rpc.Status`` on refusal (as the spec asks).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from api.bodies import ingest_body
from api.throttling import IngestRateThrottle
from ingest.accept import IngestError
from ingest.otlp import JSON, MEDIA_TYPES, PROTOBUF, decode_request, encode_response, encode_status, export
from tenancy.authentication import ApiKeyAuthentication, CachedKeys, CanIngest

_PASSED_ON = ("retry-after", "www-authenticate")


def _media_type(request: Any) -> str:
    return (request.content_type or "").split(";")[0].strip().lower()


def _answer_type(request: Any) -> str:
    media_type = _media_type(request)
    return media_type if media_type in MEDIA_TYPES else JSON


class OtlpTracesView(CachedKeys, APIView):
    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (CanIngest,)
    throttle_classes = (IngestRateThrottle,)
    parser_classes = ()  # the body is read raw and decoded with the opentelemetry-proto messages

    # OTLP's contract is the OTLP/HTTP specification and its protobuf messages, not an OpenAPI body:
    # docs/otlp.md documents this endpoint, and the schema (a JSON API's) leaves it out.
    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponse:
        media_type = _media_type(request)
        try:
            if media_type not in MEDIA_TYPES:
                raise IngestError(415, f"Content-Type must be {PROTOBUF} or {JSON}, not {media_type or 'missing'!r}")
            project, body = ingest_body(request)
            outcome = export(project, decode_request(body, media_type))
        except IngestError as exc:
            return self._refusal(request, exc.status, exc.message, exc.headers)
        return HttpResponse(encode_response(outcome, media_type), content_type=media_type)

    # DRF's own answer is re-encoded as OTLP asks: a plain HttpResponse, which dispatch accepts.
    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]
        """Authentication, scope, throttling and outages (DRF's answers) in the request's encoding."""
        answer = super().handle_exception(exc)
        data = getattr(answer, "data", None)
        detail = str(data.get("detail", "")) if isinstance(data, dict) else ""
        headers = {name: value for name, value in answer.items() if name.lower() in _PASSED_ON}
        return self._refusal(self.request, answer.status_code, detail or answer.reason_phrase, headers)

    @staticmethod
    def _refusal(request: Any, status: int, message: str, headers: dict[str, str]) -> HttpResponse:
        answer_type = _answer_type(request)
        response = HttpResponse(encode_status(status, message, answer_type), status=status, content_type=answer_type)
        for name, value in headers.items():
            response[name] = value
        return response
