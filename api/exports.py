"""GET /v1/exports/focus: a thin skin over ``ledger.focus`` (FOCUS 1.2 rows as CSV or Parquet)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import project_for_read
from api.bodies import DjangoRefusalsAsJson
from api.usage import FILTER_PARAMETERS, parse_query, refuse
from api.viewsets import PROJECT_PARAMETER
from ledger.focus import FOCUS_VERSION, FORMATS, FocusQuery, encode, export_format, filename
from ledger.queries import QueryError
from tenancy.authentication import ApiKeyAuthentication

_NOT_HERE = ("granularity", "group_by", "metrics", "limit", "order_by", "tz")  # mean nothing for an export


class FocusExportView(DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ?format= names the export's encoding here, not a DRF renderer: errors are always JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="exports_focus",
        summary=f"FOCUS {FOCUS_VERSION} cost rows: per day, provider, model, token class and attribution",
        parameters=[
            OpenApiParameter("from", str, required=True, description="RFC 3339 or a date (inclusive)"),
            OpenApiParameter("to", str, required=True, description="RFC 3339 or a date (exclusive)"),
            OpenApiParameter("format", str, enum=list(FORMATS), description="csv (default) or parquet"),
            PROJECT_PARAMETER,
            *FILTER_PARAMETERS,
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="FOCUS rows after a header line"),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="FOCUS rows"),
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        project = project_for_read(request)
        try:
            refuse(request, _NOT_HERE)
            usage = parse_query(request, project.pk, extra=("format",))
            fmt = export_format(request.query_params.get("format"))
            query = FocusQuery(project.pk, usage.start, usage.end, usage.filters)
            body = encode(query, fmt)
        except QueryError as exc:
            return Response({"detail": str(exc)}, status=400)
        response = (StreamingHttpResponse if fmt == "csv" else HttpResponse)(body, content_type=FORMATS[fmt])
        response["Content-Disposition"] = f'attachment; filename="{filename(project.name, query, fmt)}"'
        return response
