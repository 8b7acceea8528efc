"""/v1/alerts: fired (and superseded or re-armed) alerts with their deliveries, newest first."""

from __future__ import annotations

import re

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.models import AlertState, AlertStatus
from alerts.serializers import alert_json
from api import answers
from api.viewsets import PROJECT_PARAMETER, ProjectScopedViewSet


def filtered(alerts: QuerySet[AlertState], request: Request) -> QuerySet[AlertState]:
    """``?budget=`` and ``?status=``, each checked (400 naming what it must be)."""
    budget, status = request.query_params.get("budget"), request.query_params.get("status")
    if budget is not None:
        if not re.fullmatch(r"[0-9]{1,18}", budget):
            raise ParseError("budget must be a budget id")
        alerts = alerts.filter(budget_id=int(budget))
    if status is not None:
        if status not in AlertStatus.values:
            raise ParseError(f"status must be one of {', '.join(AlertStatus.values)}")
        alerts = alerts.filter(status=status)
    return alerts


@extend_schema_view(
    list=extend_schema(
        operation_id="alerts_list",
        summary="Alerts with their deliveries, newest first",
        parameters=[
            OpenApiParameter("budget", int, description="only this budget's alerts"),
            OpenApiParameter("status", str, enum=list(AlertStatus.values)),
            PROJECT_PARAMETER,
        ],
        responses={200: answers.Alert(many=True)},
    )
)
class AlertViewSet(ProjectScopedViewSet):
    queryset = AlertState.objects.select_related("budget", "rule").prefetch_related("deliveries__channel")
    project_field = "budget__project"
    ordering = ("-fired_at", "-pk")

    def list(self, request: Request) -> Response:
        """Alerts of the project, newest first, each with its deliveries; ``budget`` and ``status`` filter."""
        page = self.paginate_queryset(filtered(self.get_queryset(), request)) or []
        return self.get_paginated_response([alert_json(a) for a in page])
