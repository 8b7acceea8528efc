"""GET /v1/whatif: a thin skin over ``ledger.whatif`` (the /v1/usage parameters, plus the target)."""

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
from api.usage import FILTER_PARAMETERS, MAX_VALUE_LENGTH, json_value, parse_query, refuse
from api.viewsets import PROJECT_PARAMETER
from ledger.queries import DIMENSIONS, QueryError
from ledger.whatif import TIERS, Target, whatif
from tenancy.authentication import ApiKeyAuthentication

_TARGET = ("to_provider", "to_model", "to_tier")
_NOT_HERE = ("metrics", "limit", "order_by")  # /v1/usage parameters that mean nothing for a what-if
_USD = r"^-?[0-9]+\.[0-9]{12}$"
_FIELDS: dict[str, serializers.Field[Any, Any, Any, Any]] = {
    "calls": serializers.IntegerField(help_text="calls selected"),
    "actual_cost": serializers.RegexField(_USD, help_text="what the ledger holds for them (USD)"),
    "whatif_cost": serializers.RegexField(_USD, help_text="what they would have cost at the target (USD)"),
    "delta": serializers.RegexField(_USD, help_text="whatif_cost - actual_cost (USD; negative = a saving)"),
    "unpriced_calls": serializers.IntegerField(help_text="calls the target has no price for (they add 0)"),
}


class WhatIfRow(serializers.DictField):
    """'bucket' (absent for granularity=total), the group_by dimensions, then the answer's five fields."""


WhatIf = inline_serializer(
    "WhatIf",
    {
        **_FIELDS,
        "data": serializers.ListField(child=WhatIfRow(), help_text="one row per (bucket, group)"),
        "method": serializers.ChoiceField(
            ["aggregate", "per_call"], help_text="token sums per price period and tier band, or each call priced"
        ),
    },
)


def _target(request: Request) -> Target:
    values: dict[str, str] = {}
    for name in _TARGET:
        value = request.query_params.get(name, "").strip()
        if len(value) > MAX_VALUE_LENGTH or "\x00" in value:
            raise QueryError(f"{name} is at most {MAX_VALUE_LENGTH} characters, without NUL")
        values[name] = value
    return Target(values["to_provider"], values["to_model"], values["to_tier"])


class WhatIfView(DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="whatif",
        summary="What the selected calls would have cost at another model and/or service tier, exactly",
        parameters=[
            OpenApiParameter("from", str, required=True, description="RFC 3339 or a date (inclusive)"),
            OpenApiParameter("to", str, required=True, description="RFC 3339 or a date (exclusive)"),
            OpenApiParameter("to_model", str, description="the target model (default: each call's own)"),
            OpenApiParameter("to_provider", str, description="the target model's provider (default: the call's)"),
            OpenApiParameter("to_tier", str, enum=list(TIERS), description="the target tier (default: the call's)"),
            OpenApiParameter("granularity", str, enum=["minute", "hour", "day", "total"], description="default total"),
            OpenApiParameter("group_by", str, description=f"comma-separated: {', '.join(DIMENSIONS)}"),
            OpenApiParameter("tz", str, description="IANA time zone for buckets (default UTC)"),
            PROJECT_PARAMETER,
            *FILTER_PARAMETERS,
        ],
        responses={200: WhatIf},
    )
    def get(self, request: Request) -> Response:
        project = project_for_read(request)
        try:
            refuse(request, _NOT_HERE)
            query = parse_query(request, project.pk, extra=_TARGET)
            if "granularity" not in request.query_params:
                query = replace(query, granularity=None)
            result = whatif(query, _target(request))
        except QueryError as exc:
            return Response({"detail": str(exc)}, status=400)
        body: dict[str, Any] = {k: json_value(v) for k, v in result.total.as_row().items()}
        body["data"] = [{k: json_value(v) for k, v in row.items()} for row in result.rows]
        body["method"] = result.method
        return Response(body)
