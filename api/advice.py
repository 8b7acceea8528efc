"""GET /v1/advice: a thin skin over ``ledger.advice`` (the /v1/usage range and filters)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import project_for_read
from api.bodies import DjangoRefusalsAsJson
from api.usage import FILTER_PARAMETERS, json_value, parse_query, refuse
from api.viewsets import PROJECT_PARAMETER
from ledger.advice import KINDS, advice
from ledger.queries import QueryError
from tenancy.authentication import ApiKeyAuthentication

_NOT_HERE = ("granularity", "group_by", "metrics", "limit", "order_by", "tz")  # mean nothing for advice
_USD = r"^-?[0-9]+\.[0-9]{12}$"

Recommendation = inline_serializer(
    "Recommendation",
    {
        "kind": serializers.ChoiceField(list(KINDS)),
        "title": serializers.CharField(),
        "scope": serializers.DictField(child=serializers.CharField(), help_text="dimension → value"),
        "savings_usd": serializers.RegexField(_USD, help_text="over the range (USD)"),
        "monthly_savings_usd": serializers.RegexField(_USD, help_text="savings x 30 days / the range's days"),
        "evidence": serializers.DictField(help_text="figures behind it, its method, 'whatif' and 'dashboard' links"),
    },
)
AdviceAnswer = inline_serializer(
    "Advice",
    {
        "recommendations": serializers.ListField(child=Recommendation, help_text="biggest saving first"),
        "notes": serializers.ListField(child=serializers.CharField(), help_text="what was not recommended, and why"),
    },
)


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN: no JSON for it
        return None
    return json_value(value)


class AdviceView(DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="advice",
        summary="Ranked savings opportunities over a range, each with its evidence and links",
        parameters=[
            OpenApiParameter("from", str, required=True, description="RFC 3339 or a date (inclusive)"),
            OpenApiParameter("to", str, required=True, description="RFC 3339 or a date (exclusive)"),
            PROJECT_PARAMETER,
            *FILTER_PARAMETERS,
        ],
        responses={200: AdviceAnswer},
    )
    def get(self, request: Request) -> Response:
        project = project_for_read(request)
        try:
            refuse(request, _NOT_HERE)
            query = replace(parse_query(request, project.pk), granularity=None)
            answer = advice(query)
        except QueryError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response({"recommendations": _deep(answer.as_rows()), "notes": answer.notes})
