"""What an alert says, independent of the channel: built once from an alert state (or a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse

from alerts import scope as scopes
from alerts.models import AlertState, Channel, Signal


@dataclass(frozen=True)
class AlertMessage:
    event: str  # "alert.fired" or "alert.test"
    alert_id: int | None
    project_id: int
    project_name: str
    budget_id: int | None
    budget_name: str
    scope: dict[str, Any]
    amount: Decimal
    period: str
    timezone: str
    period_start: datetime
    period_end: datetime
    rule_kind: str
    signal: str
    threshold: Decimal
    status: str
    spend: Decimal
    forecast: Decimal | None
    fired_at: datetime
    url: str
    details: dict[str, Any] = field(default_factory=dict)
    subject: str = ""  # capacity alerts: the provider/model

    @property
    def percent(self) -> Decimal | None:
        if self.signal != Signal.SPEND or not self.amount:
            return None
        value = self.forecast if self.rule_kind == "forecast" and self.forecast is not None else self.spend
        return (value * 100 / self.amount).quantize(Decimal("0.1"))

    @property
    def scope_text(self) -> str:
        return scopes.describe(self.scope)

    @property
    def headline(self) -> str:
        if self.event == "alert.test":
            return f"Test alert from Meterline ({self.project_name})"
        threshold = f"{self.threshold.normalize():f}"
        if self.signal == Signal.DAY_SPIKE:
            return f"{self.budget_name}: today's spend is {threshold} % of its usual day"
        if self.signal == Signal.CALL_TOKENS:
            return f"{self.budget_name}: a call used over {threshold} % of its feature's usual tokens"
        if self.signal == Signal.CAPACITY:
            limit = str(self.details.get("limit", "rate")).upper()
            percent = self.details.get("percent", threshold)
            at = f"{percent} % of its {limit} limit (alert at {threshold} %)"
            return f"{self.budget_name}: {self.subject} peaked at {at}"
        if self.signal == Signal.RATE_LIMITED:
            refused = self.details.get("rate_limited_calls", 0)
            return f"{self.budget_name}: {self.subject} had {refused} calls refused with a 429 (rate limited)"
        what = "is forecast to reach" if self.rule_kind == "forecast" else "has reached"
        return f"{self.budget_name} {what} {threshold} % of its {self.period} budget"

    @property
    def contributors(self) -> dict[str, list[dict[str, str]]]:
        found = self.details.get("top_contributors", {})
        return found if isinstance(found, dict) else {}

    def as_json(self, delivery_id: int | None) -> dict[str, Any]:
        """The webhook body (schema in docs/alerts.md)."""
        return {
            "type": self.event,
            "alert_id": self.alert_id,
            "delivery_id": delivery_id,
            "project": {"id": self.project_id, "name": self.project_name},
            "budget": {
                "id": self.budget_id,
                "name": self.budget_name,
                "amount_usd": f"{self.amount:.2f}",
                "period": self.period,
                "timezone": self.timezone,
                "scope": self.scope,
            },
            "rule": {"kind": self.rule_kind, "threshold": f"{self.threshold.normalize():f}", "signal": self.signal},
            "subject": self.subject,
            "status": self.status,
            "period": {"start": _iso(self.period_start), "end": _iso(self.period_end)},
            "spend_usd": f"{self.spend:.12f}",
            "forecast_usd": None if self.forecast is None else f"{self.forecast:.12f}",
            "percent": None if self.percent is None else f"{self.percent}",
            "top_contributors": self.contributors,
            "details": {k: v for k, v in self.details.items() if k != "top_contributors"},
            "fired_at": _iso(self.fired_at),
            "url": self.url,
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dashboard_url(project_id: int) -> str:
    return str(settings.METERLINE_BASE_URL).rstrip("/") + reverse("alerts:budgets", kwargs={"project_id": project_id})


def from_alert(alert: AlertState) -> AlertMessage:
    budget, rule = alert.budget, alert.rule
    return AlertMessage(
        event="alert.fired",
        alert_id=alert.pk,
        project_id=budget.project_id,
        project_name=budget.project.name,
        budget_id=budget.pk,
        budget_name=budget.name,
        scope=budget.scope,
        amount=alert.amount,
        period=budget.period,
        timezone=budget.timezone,
        period_start=alert.period_start,
        period_end=alert.period_end,
        rule_kind=rule.kind,
        signal=alert.signal,
        threshold=alert.threshold,
        status=alert.status,
        spend=alert.spend,
        forecast=alert.forecast,
        fired_at=alert.fired_at,
        url=dashboard_url(budget.project_id),
        details=alert.details,
        subject=alert.subject,
    )


def test_message(channel: Channel) -> AlertMessage:
    """A clearly-marked sample alert for the channel's "send test"."""
    now = datetime.now(UTC)
    return AlertMessage(
        event="alert.test",
        alert_id=None,
        project_id=channel.project_id,
        project_name=channel.project.name,
        budget_id=None,
        budget_name="Test budget",
        scope={},
        amount=Decimal("100.00"),
        period="month",
        timezone="UTC",
        period_start=now,
        period_end=now,
        rule_kind="actual",
        signal=Signal.SPEND,
        threshold=Decimal(80),
        status="test",
        spend=Decimal("80.00"),
        forecast=Decimal("120.00"),
        fired_at=now,
        url=dashboard_url(channel.project_id),
        details={"top_contributors": {"feature": [{"value": "example", "cost_usd": "80.00"}]}},
    )
