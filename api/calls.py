"""POST /v1/calls: a thin skin over ``ingest.accept``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import schema as _schema  # noqa: F401 - registers the OpenAPI extensions
from api.answers import Problem
from api.bodies import ingest_body
from api.throttling import IngestRateThrottle
from ingest.accept import IngestError, accept
from tenancy.authentication import ApiKeyAuthentication, CachedKeys, CanIngest

_ACCEPTED = inline_serializer(
    "CallsAccepted",
    {
        "batch_id": serializers.UUIDField(),
        "accepted": serializers.IntegerField(min_value=0),
        "rejected": inline_serializer(
            "RejectedCall",
            {
                "index": serializers.IntegerField(min_value=0),
                "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
            },
            many=True,
        ),
    },
)


class CallsView(CachedKeys, APIView):
    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (CanIngest,)
    throttle_classes = (IngestRateThrottle,)
    parser_classes = ()  # the body is read raw and decoded by msgspec

    @extend_schema(
        operation_id="ingest_calls",
        summary="Send a batch of LLM call records",
        request={"application/json": {"$ref": "#/components/schemas/CallBatch"}},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 255},
                OpenApiParameter.HEADER,
                required=False,
            ),
            OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, required=True, response=[429, 503]),
        ],
        responses={
            202: OpenApiResponse(_ACCEPTED, "Accepted: valid records are durable; rejected ones are listed"),
            400: OpenApiResponse(Problem, "The body is not a JSON object with a calls list, or a bad header"),
            401: OpenApiResponse(Problem, "The API key is missing, unknown or revoked"),
            403: OpenApiResponse(Problem, "The API key lacks the ingest scope"),
            413: OpenApiResponse(Problem, "Too many records or too many bytes"),
            415: OpenApiResponse(Problem, "Not application/json, or an unsupported Content-Encoding"),
            422: OpenApiResponse(Problem, "The Idempotency-Key was already used with a different body"),
            429: OpenApiResponse(Problem, "Rate limited; see Retry-After"),
            503: OpenApiResponse(Problem, "The outbox cannot be written; see Retry-After"),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            media_type = (request.content_type or "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise IngestError(415, f"Content-Type must be application/json, not {media_type or 'missing'!r}")
            project, body = ingest_body(request)
            answer = accept(project, body, request.headers.get("Idempotency-Key"))
        except IngestError as exc:
            return Response({"detail": exc.message}, status=exc.status, headers=exc.headers)
        response = Response(answer.body, status=answer.status)
        if answer.replayed:
            response["Idempotent-Replayed"] = "true"
        return response
