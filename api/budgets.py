"""/v1/budgets: budgets with their rules, so they can be kept in code."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.burn import burns
from alerts.models import Budget
from alerts.serializers import BudgetSerializer
from api.admin_access import project_for
from tenancy.authentication import ApiKeyAuthentication


class _BudgetView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    serializer_class = BudgetSerializer

    def budget(self, request: Request, budget_id: int) -> Budget:
        budgets = Budget.objects.prefetch_related("rules__channels")
        return get_object_or_404(budgets, pk=budget_id, project=project_for(request))


class BudgetListView(_BudgetView):
    @extend_schema(operation_id="budgets_list")
    def get(self, request: Request) -> Response:
        budgets = Budget.objects.filter(project=project_for(request)).prefetch_related("rules__channels")
        return Response({"data": [BudgetSerializer(b).data for b in budgets]})

    @extend_schema(operation_id="budgets_create", summary="Create a budget with its rules")
    def post(self, request: Request) -> Response:
        serializer = BudgetSerializer(data=request.data, context={"project": project_for(request)})
        serializer.is_valid(raise_exception=True)
        budget = Budget.objects.prefetch_related("rules__channels").get(pk=serializer.save().pk)
        return Response(BudgetSerializer(budget).data, status=201)


class BudgetDetailView(_BudgetView):
    @extend_schema(operation_id="budgets_read", summary="A budget with its burn this period (spent, %, forecast)")
    def get(self, request: Request, budget_id: int) -> Response:
        budget = self.budget(request, budget_id)
        burn = burns([budget]).get(budget.pk)
        current = None  # a budget whose period cannot be computed (stored before validation) has no burn
        if burn is not None:
            current = {
                "period_start": burn.window.start.isoformat(),
                "period_end": burn.window.end.isoformat(),
                "spent_usd": f"{burn.spent:.12f}",
                "percent": f"{burn.percent}",
                "forecast_usd": None if burn.forecast is None else f"{burn.forecast:.12f}",
            }
        return Response({**BudgetSerializer(budget).data, "current": current})

    @extend_schema(operation_id="budgets_update", summary="Change a budget; rules given replace the rules")
    def patch(self, request: Request, budget_id: int) -> Response:
        budget = self.budget(request, budget_id)
        serializer = BudgetSerializer(budget, data=request.data, partial=True, context={"project": budget.project})
        serializer.is_valid(raise_exception=True)
        return Response(BudgetSerializer(serializer.save()).data)

    @extend_schema(operation_id="budgets_delete")
    def delete(self, request: Request, budget_id: int) -> Response:
        self.budget(request, budget_id).delete()
        return Response(status=204)
