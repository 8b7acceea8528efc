"""/v1/alerts: fired (and superseded or re-armed) alerts with their deliveries, newest first."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import AlertState, AlertStatus
from alerts.serializers import alert_json
from api.access import project_for_read
from tenancy.authentication import ApiKeyAuthentication

MAX_LIMIT = 1000


class AlertListView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="alerts_list",
        summary="Alerts with their deliveries, newest first",
        parameters=[
            OpenApiParameter("budget", int, description="only this budget's alerts"),
            OpenApiParameter("status", str, enum=list(AlertStatus.values)),
            OpenApiParameter("limit", int, description=f"at most this many (default 100, max {MAX_LIMIT})"),
            OpenApiParameter("project", str, description="project id or name (signed-in users only)"),
        ],
    )
    def get(self, request: Request) -> Response:
        project = project_for_read(request)
        alerts = AlertState.objects.filter(budget__project=project)
        params = request.query_params
        budget, status, limit = params.get("budget"), params.get("status"), params.get("limit", "100")
        if budget is not None:
            if not re.fullmatch(r"[0-9]{1,18}", budget):
                return Response({"detail": "budget must be a budget id"}, status=400)
            alerts = alerts.filter(budget_id=int(budget))
        if status is not None:
            if status not in AlertStatus.values:
                return Response({"detail": f"status must be one of {', '.join(AlertStatus.values)}"}, status=400)
            alerts = alerts.filter(status=status)
        if not re.fullmatch(r"[0-9]{1,6}", limit) or not 1 <= int(limit) <= MAX_LIMIT:
            return Response({"detail": f"limit must be between 1 and {MAX_LIMIT}"}, status=400)
        rows = alerts.select_related("budget", "rule").prefetch_related("deliveries__channel")[: int(limit)]
        return Response({"data": [alert_json(a) for a in rows]})
