"""GET /v1/capacity: a thin skin over ``ledger.capacity`` (the /v1/usage range and filters)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import project_for_read
from api.bodies import DjangoRefusalsAsJson
from api.usage import FILTER_PARAMETERS, parse_query, refuse
from api.viewsets import PROJECT_PARAMETER
from ledger.capacity import FILTERS, CapacityError, CapacityQuery, capacity
from ledger.queries import QueryError
from tenancy.authentication import ApiKeyAuthentication

_NOT_HERE = ("granularity", "group_by", "metrics", "tz", "limit", "order_by")
_INT = serializers.IntegerField

CapacityRow = inline_serializer(
    "CapacityRow",
    {
        "provider": serializers.CharField(),
        "model": serializers.CharField(help_text="the model, or the pool's name"),
        "models": serializers.ListField(child=serializers.CharField(), help_text="the models counted"),
        "peak_tpm": _INT(help_text="the largest minute's input + output tokens"),
        "peak_itpm": _INT(help_text="the largest minute's input tokens"),
        "peak_uncached_itpm": _INT(help_text="the largest minute's input tokens less cache reads"),
        "peak_otpm": _INT(help_text="the largest minute's output tokens"),
        "peak_rpm": _INT(help_text="the largest minute's calls"),
        "p99_tpm": _INT(help_text="nearest-rank p99 over the minutes with traffic"),
        "p99_rpm": _INT(help_text="nearest-rank p99 over the minutes with traffic"),
        "peak_minute": serializers.DateTimeField(help_text="the UTC minute of peak_tpm (the first if tied)"),
        "limit_tpm": _INT(allow_null=True),
        "limit_rpm": _INT(allow_null=True),
        "limit_itpm": _INT(allow_null=True),
        "limit_otpm": _INT(allow_null=True),
        "limit_source": serializers.ChoiceField(["configured", "observed"], allow_null=True),
        "headroom": serializers.RegexField(
            r"^-?[0-9]+\.[0-9]{6}$", allow_null=True, help_text="1 - peak / limit of the tightest limit"
        ),
        "rate_limited_calls": _INT(help_text="calls refused with a 429 (error_type rate_limit)"),
        "forecast": inline_serializer(
            "CapacityForecast",
            {
                "weekly_growth": serializers.RegexField(r"^-?[0-9]+\.[0-9]{4}$", allow_null=True),
                "limit_reached_on": serializers.DateField(allow_null=True),
            },
        ),
    },
)
CapacityAnswer = inline_serializer("Capacity", {"data": serializers.ListField(child=CapacityRow)})


class CapacityView(DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="capacity",
        summary="Peak and p99 tokens and requests per minute per model (or pool) against its limits",
        parameters=[
            OpenApiParameter("from", str, required=True, description="RFC 3339 or a date (inclusive), whole minute"),
            OpenApiParameter("to", str, required=True, description="RFC 3339 or a date (exclusive), whole minute"),
            PROJECT_PARAMETER,
            *[p for p in FILTER_PARAMETERS if p.name in FILTERS],
        ],
        responses={200: CapacityAnswer},
    )
    def get(self, request: Request) -> Response:
        project = project_for_read(request)
        try:
            refuse(request, (*_NOT_HERE, "customer_id", "user_id", "status"))
            usage = parse_query(request, project.pk)
            rows = capacity(CapacityQuery(project.pk, usage.start, usage.end, usage.filters))
        except (QueryError, CapacityError) as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response({"data": [row.as_json() for row in rows]})
