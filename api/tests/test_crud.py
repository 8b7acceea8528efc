"""The shared CRUD cases (api/tests/crud.py) for /v1/budgets, /v1/channels and /v1/alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from alerts.models import AlertState, AlertStatus, Budget, Channel, Rule
from api.tests.crud import CrudCases, DetailActionCases, ListCases
from tenancy.models import Project

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
FIRED_AT = datetime(2026, 10, 20, 9, 30, tzinfo=UTC)


class TestBudgetsApi(CrudCases):
    url = "/v1/budgets"
    model = Budget
    update_body: ClassVar[dict[str, Any]] = {"name": "renamed", "amount_usd": "12.50"}

    def make(self, project: Project, n: int = 0) -> int:
        # one name for all: pages must not depend on the leading sort field being unique
        return Budget.objects.create(project=project, name="same name", amount=Decimal(10 + n)).pk

    def create_body(self, project: Project) -> dict[str, Any]:
        return {"name": "b", "amount_usd": "10"}


class TestChannelsApi(CrudCases, DetailActionCases):
    url = "/v1/channels"
    model = Channel
    action = "test"
    update_body: ClassVar[dict[str, Any]] = {"name": "renamed"}

    def make(self, project: Project, n: int = 0) -> int:
        return Channel.objects.create(project=project, kind="slack", name=f"c{n}", config={"webhook_url": SLACK}).pk

    def create_body(self, project: Project) -> dict[str, Any]:
        return {"kind": "email", "name": "ops", "config": {"to": ["ops@example.com"]}}


class TestAlertsApi(ListCases):
    url = "/v1/alerts"
    model = AlertState

    def make(self, project: Project, n: int = 0) -> int:
        # one fired_at for all, as when one evaluation fires several thresholds
        budget = Budget.objects.create(project=project, name="b", amount=Decimal(10))
        rule = Rule.objects.create(budget=budget, kind="actual", thresholds=[50])
        return AlertState.objects.create(
            budget=budget,
            rule=rule,
            period_start=FIRED_AT - timedelta(days=19),
            period_end=FIRED_AT + timedelta(days=12),
            threshold=Decimal(50),
            status=AlertStatus.FIRED,
            spend=Decimal(6),
            amount=Decimal(10),
            fired_at=FIRED_AT,
        ).pk
