"""GET /v1/usage: a thin skin over ``ledger.queries.usage``."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import project_for_read
from api.answers import Usage
from api.bodies import DjangoRefusalsAsJson
from api.viewsets import PROJECT_PARAMETER
from ledger.queries import DEFAULT_METRICS, DIMENSIONS, METRICS, QueryError, UsageQuery, usage
from ledger.queries import MAX_LIMIT as MAX_GROUPS
from ledger.timeparse import BadDate, NaiveDatetime, parse_instant
from tenancy.authentication import ApiKeyAuthentication

MAX_FILTER_VALUES = 100  # values of one dimension filter, as a budget's scope allows
MAX_VALUE_LENGTH = 200
_KNOWN = {"from", "to", "granularity", "group_by", "metrics", "tz", "limit", "order_by", "project", *DIMENSIONS}


def _list(request: Request, name: str, most: int = MAX_FILTER_VALUES) -> list[str]:
    """The comma-separated values of ``name`` (repeatable), at most ``most`` of at most 200 characters."""
    values = [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip()]
    if len(values) > most:
        raise QueryError(f"{name} lists more than {most} values")
    if any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise QueryError(f"{name} values are at most {MAX_VALUE_LENGTH} characters")
    return values


def _when(name: str, value: str | None) -> datetime:
    if not value:
        raise QueryError(f"{name} is required (RFC 3339, e.g. 2026-11-01T00:00:00Z, or a date)")
    try:
        return parse_instant(value)
    except NaiveDatetime:
        raise QueryError(f"{name} needs a UTC offset, e.g. {value}Z") from None
    except BadDate:  # also well-formed but impossible, e.g. February 30th or an offset of +24:00
        raise QueryError(f"{name}={value!r} is not an RFC 3339 datetime or a date (UTC)") from None


def refuse(request: Request, names: Iterable[str]) -> None:
    """A /v1/usage parameter an endpoint built on its selection does not take is an unknown parameter."""
    bad = [name for name in names if name in request.query_params]
    if bad:
        raise QueryError(f"unknown parameter {bad[0]!r}")


def parse_query(request: Request, project_id: int, extra: Collection[str] = ()) -> UsageQuery:
    """The usage query in ``request``; ``extra`` names parameters the caller reads itself."""
    unknown = sorted(set(request.query_params) - _KNOWN - set(extra))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}")
    granularity = request.query_params.get("granularity", "day")
    limit = request.query_params.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,6}", limit):
        raise QueryError("limit must be a positive integer")
    return UsageQuery(
        project_id=project_id,
        start=_when("from", request.query_params.get("from")),
        end=_when("to", request.query_params.get("to")),
        granularity=None if granularity in ("total", "none") else granularity,
        group_by=tuple(_list(request, "group_by", len(DIMENSIONS))),
        filters={d: tuple(_list(request, d)) for d in DIMENSIONS if _list(request, d)},
        metrics=tuple(_list(request, "metrics", len(METRICS))) or DEFAULT_METRICS,
        tz=request.query_params.get("tz", "UTC"),
        limit=int(limit),
        order_by=request.query_params.get("order_by", "cost"),
    )


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.12f}"
    if isinstance(value, datetime):
        text = value.isoformat()
        return text.replace("+00:00", "Z") if value.utcoffset() is not None and not value.utcoffset() else text
    return value


# The dimension filters every selection endpoint takes (/v1/usage, /v1/whatif, …), as documented.
FILTER_PARAMETERS = [
    OpenApiParameter(
        d,
        str,
        description=f"filter: comma-separated, at most {MAX_FILTER_VALUES} values"
        f" of at most {MAX_VALUE_LENGTH} characters",
    )
    for d in DIMENSIONS
]


class UsageView(DjangoRefusalsAsJson, APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        operation_id="usage",
        summary="Spend, tokens, latency and errors over time, broken down by any dimension",
        parameters=[
            OpenApiParameter("from", str, required=True, description="RFC 3339 or a date (inclusive)"),
            OpenApiParameter("to", str, required=True, description="RFC 3339 or a date (exclusive)"),
            OpenApiParameter("granularity", str, enum=["minute", "hour", "day", "total"]),
            OpenApiParameter("group_by", str, description=f"comma-separated: {', '.join(DIMENSIONS)}"),
            OpenApiParameter("metrics", str, description=f"comma-separated: {', '.join(METRICS)}"),
            OpenApiParameter("tz", str, description="IANA time zone for buckets (default UTC)"),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_GROUPS},
                description="at most this many groups (default 100)",
            ),
            OpenApiParameter("order_by", str, description="metric that ranks groups (default cost)"),
            PROJECT_PARAMETER,
            *FILTER_PARAMETERS,
        ],
        responses={200: Usage},
    )
    def get(self, request: Request) -> Response:
        project = project_for_read(request)
        try:
            result = usage(parse_query(request, project.pk))
        except QueryError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response(
            {
                "data": [{k: json_value(v) for k, v in row.items()} for row in result.rows],
                "truncated": result.truncated,
                "source": result.source,
            }
        )
