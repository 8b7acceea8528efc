"""Budgets, their rules and channels; alert state (one row per threshold per period) and deliveries.

Exactly-once firing rests on :class:`AlertState`'s unique constraint: whoever inserts the row for
(budget, period start, rule, threshold, signal, subject) fires it; everyone else's insert conflicts and skips.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone

from tenancy.models import Project

SCOPE_DIMENSIONS = ("feature", "customer_id", "model", "provider", "route_version", "environment")
DEFAULT_THRESHOLDS = (50, 80, 100)
CAPACITY_THRESHOLD = 80  # a capacity rule's default: the peak minute at 80 % of the rate limit


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class Channel(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=200)
    config = models.JSONField(default=dict)  # holds secrets: never log it, mask it in every answer
    created_at = models.DateTimeField(default=dj_timezone.now)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def disable(self, reason: str) -> None:
        """Disable after a permanent failure; pending deliveries to it fail with the same reason."""
        now = dj_timezone.now()
        Channel.objects.filter(pk=self.pk).update(disabled_at=now, disabled_reason=reason[:500])
        self.disabled_at, self.disabled_reason = now, reason[:500]
        Delivery.objects.filter(channel_id=self.pk, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.FAILED, last_error=f"channel disabled: {reason}"[:1000], next_attempt_at=None
        )

    def enable(self) -> None:
        Channel.objects.filter(pk=self.pk).update(disabled_at=None, disabled_reason="")
        self.disabled_at, self.disabled_reason = None, ""


class Period(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"
    CUSTOM = "custom", "Custom"


class Budget(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=200)
    # {"feature": ["search"], "customer_id": [...], "tag": {"team": ["growth"]}}; {} = the whole project
    scope = models.JSONField(default=dict, blank=True)
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTH)
    # custom periods: consecutive windows of period_days local days from period_start (a local date)
    period_start = models.DateField(null=True, blank=True)
    period_days = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    amount = models.DecimalField(max_digits=18, decimal_places=6)
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class RuleKind(models.TextChoices):
    ACTUAL = "actual", "Actual spend"
    FORECAST = "forecast", "Forecast"
    ANOMALY = "anomaly", "Anomaly"
    CAPACITY = "capacity", "Capacity"


class Rule(models.Model):
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    # actual/forecast: percent of the amount; anomaly: percent of the baseline (300 = 3x usual);
    # capacity: percent of a model's per-minute rate limit
    thresholds = models.JSONField(default=list)
    channels = models.ManyToManyField(Channel, related_name="rules", blank=True)

    class Meta:
        ordering: ClassVar = ["pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.thresholds}"


class AlertStatus(models.TextChoices):
    FIRED = "fired", "Fired"
    SUPERSEDED = "superseded", "Superseded"  # crossed together with a higher threshold that fired
    REARMED = "rearmed", "Re-armed"  # the amount changed and it is no longer crossed: may fire again


class Signal(models.TextChoices):
    SPEND = "spend", "Spend"  # actual and forecast rules
    DAY_SPIKE = "day_spike", "Day far above baseline"
    CALL_TOKENS = "call_tokens", "Call far above its feature's usual tokens"
    CAPACITY = "capacity", "Peak minute near a rate limit"
    RATE_LIMITED = "rate_limited", "Calls refused with a 429"


class AlertState(models.Model):
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()  # anomaly rules: the local day (deduplicated per day)
    period_end = models.DateTimeField()
    threshold = models.DecimalField(max_digits=12, decimal_places=4)
    signal = models.CharField(max_length=16, choices=Signal.choices, default=Signal.SPEND)
    # what the alert is about within the budget: "provider/model" for capacity alerts, else ""
    subject = models.CharField(max_length=320, blank=True, default="")
    status = models.CharField(max_length=16, choices=AlertStatus.choices)
    spend = models.DecimalField(max_digits=24, decimal_places=12)
    forecast = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=6)  # the budget's amount when it fired
    details = models.JSONField(default=dict, blank=True)  # top contributors, anomaly figures
    fired_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        ordering: ClassVar = ["-fired_at", "-pk"]
        constraints: ClassVar = [
            # Re-armed rows keep their history but no longer block a new firing.
            models.UniqueConstraint(
                fields=["budget", "period_start", "rule", "threshold", "signal", "subject"],
                condition=Q(status__in=["fired", "superseded"]),
                name="alert_once_per_threshold_and_period",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["budget", "period_start"])]

    def __str__(self) -> str:
        return f"{self.budget} {self.rule.kind} {self.threshold} {self.status}"

    @property
    def percent(self) -> Decimal | None:
        if not self.amount:
            return None
        value = self.forecast if self.rule.kind == RuleKind.FORECAST and self.forecast is not None else self.spend
        return (value * 100 / self.amount).quantize(Decimal("0.1"))


class DeliveryStatus(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    alert = models.ForeignKey(AlertState, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.SENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=dj_timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # due time while sending; a claim pushes it one lease ahead so no other worker takes it meanwhile
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=dj_timezone.now)

    class Meta:
        ordering: ClassVar = ["pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["alert", "channel"], name="one_delivery_per_alert_and_channel"),
        ]
        indexes: ClassVar = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"
