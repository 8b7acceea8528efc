"""/v1/budgets: budgets with their rules, so they can be kept in code."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.burn import Burn, burns
from alerts.models import Budget
from alerts.scope import warnings as scope_warnings
from alerts.serializers import BudgetSerializer
from api import answers
from api.viewsets import PROJECT_PARAMETER, PartialUpdateMixin, ProjectScopedViewSet


def current_json(burn: Burn | None) -> dict[str, str | None] | None:
    """This period's burn; None for a budget whose period cannot be computed (stored before validation)."""
    if burn is None:
        return None
    return {
        "period_start": burn.window.start.isoformat(),
        "period_end": burn.window.end.isoformat(),
        "spent_usd": f"{burn.spent:.12f}",
        "percent": f"{burn.percent}",
        "forecast_usd": None if burn.forecast is None else f"{burn.forecast:.12f}",
    }


@extend_schema_view(
    list=extend_schema(
        operation_id="budgets_list", parameters=[PROJECT_PARAMETER], responses={200: answers.Budget(many=True)}
    ),
    create=extend_schema(
        operation_id="budgets_create",
        summary="Create a budget with its rules",
        parameters=[PROJECT_PARAMETER],
        responses={201: answers.Budget},
    ),
    retrieve=extend_schema(
        operation_id="budgets_read",
        summary="A budget with its burn this period (spent, %, forecast)",
        parameters=[PROJECT_PARAMETER],
        responses={200: answers.BudgetDetail},
    ),
    partial_update=extend_schema(
        operation_id="budgets_update",
        summary="Change a budget; rules given replace the rules",
        parameters=[PROJECT_PARAMETER],
        responses={200: answers.Budget},
    ),
    destroy=extend_schema(operation_id="budgets_delete", parameters=[PROJECT_PARAMETER], responses={204: None}),
)
class BudgetViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    PartialUpdateMixin,
    mixins.DestroyModelMixin,
    ProjectScopedViewSet,
):
    queryset = Budget.objects.prefetch_related("rules__channels")
    serializer_class = BudgetSerializer
    lookup_url_kwarg = "budget_id"
    ordering = ("name", "pk")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._with_warnings(super().create(request, *args, **kwargs))

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._with_warnings(super().partial_update(request, *args, **kwargs))

    def _with_warnings(self, response: Response) -> Response:
        """The saved budget plus ``warnings`` (scope values never seen in the project's calls)."""
        data = dict(response.data or {})
        response.data = {**data, "warnings": scope_warnings(self.project.pk, data.get("scope") or {})}
        return response

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        budget = self.get_object()
        return Response({**BudgetSerializer(budget).data, "current": current_json(burns([budget]).get(budget.pk))})
