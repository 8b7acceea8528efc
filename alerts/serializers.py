"""API shapes of channels, budgets (with their rules) and alerts. Validation lives here, once."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone as dj_timezone
from rest_framework import serializers

from alerts import channels as channel_config
from alerts import scope as scopes
from alerts.models import (
    CAPACITY_THRESHOLD,
    DEFAULT_THRESHOLDS,
    AlertState,
    Budget,
    Channel,
    ChannelKind,
    Period,
    Rule,
    RuleKind,
)
from ledger.timeparse import UnknownTimeZone, time_zone
from tenancy.models import Project

MAX_THRESHOLDS = 10
MAX_RULES = 20  # per budget
MAX_RULE_CHANNELS = 20
MAX_SCOPE_TAGS = 20  # tag keys in a budget's scope
MAX_PERIOD_DAYS = 366
PERIOD_START_YEARS = 10  # a custom period_start lies within this many years of today
RESTARTS = (
    "Changing the period, its start or length, or the time zone starts a new period: "
    "every threshold is armed again and may fire again in the same calendar month."
)


def _plain_name(value: str) -> str:
    """A name goes into email subjects and Slack headers: one line, no control characters."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in value):
        raise serializers.ValidationError("a name may not contain control characters, surrogates or line breaks")
    return value


def _shown(text: str) -> str:
    """``text`` safe to echo in an error answer (JSON-encodable, no NUL)."""
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text[:100])


def _unstorable(value: Any, path: str) -> str | None:
    """The first string inside a JSON value (keys included) that PostgreSQL cannot store: one holding
    U+0000 or an unpaired surrogate (``"\\ud800"`` is valid JSON but not valid UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = _shown(str(key))
            found = _unstorable(key, f"{path} key {shown!r}") if isinstance(key, str) else None
            found = found or _unstorable(item, f"{path}.{shown}")
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable(item, f"{path}[{i}]")
            if found:
                return found
    return None


class StorableJSONField(serializers.JSONField):
    """A JSON field whose strings PostgreSQL can store: a 400 naming the place, never a database error."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        where = _unstorable(value, self.field_name or "value")
        if where:
            raise serializers.ValidationError(
                f"{where} contains a NUL character or an unpaired surrogate, which cannot be stored"
            )
        return value


class ConfigField(StorableJSONField):
    """A channel's config: an object, checked per kind by ``alerts.channels.validate_config``."""


class ScopeField(StorableJSONField):
    """A budget's scope (see ``alerts.scope``)."""


class ThresholdField(serializers.DecimalField):
    """A threshold in percent: read from a number (or a numeric string), answered as a JSON number."""

    def __init__(self) -> None:
        super().__init__(max_digits=8, decimal_places=2, min_value=Decimal("0.01"))


class ChannelSerializer(serializers.Serializer[Channel]):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    name = serializers.CharField(max_length=200)
    config = ConfigField()
    enabled = serializers.BooleanField(required=False)
    disabled_at = serializers.DateTimeField(read_only=True)
    disabled_reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Channel) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "kind": instance.kind,
            "name": instance.name,
            "config": channel_config.masked(instance.kind, instance.config),
            "enabled": instance.enabled,
            "disabled_at": instance.disabled_at.isoformat() if instance.disabled_at else None,
            "disabled_reason": instance.disabled_reason,
            "created_at": instance.created_at.isoformat(),
        }

    def validate_name(self, value: str) -> str:
        return _plain_name(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Channel | None = self.instance
        if instance is not None and "kind" in attrs and attrs["kind"] != instance.kind:
            raise serializers.ValidationError({"kind": "a channel's kind cannot change; create a new channel"})
        kind = attrs.get("kind") or (instance.kind if instance else "")
        if "config" in attrs:
            try:
                attrs["config"] = channel_config.validate_config(
                    kind, attrs["config"], instance.config if instance else None
                )
            except channel_config.ConfigError as exc:
                raise serializers.ValidationError({"config": str(exc)}) from None
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Channel:
        validated_data.pop("enabled", None)
        return Channel.objects.create(project=self.context["project"], **validated_data)

    def update(self, instance: Channel, validated_data: dict[str, Any]) -> Channel:
        enabled = validated_data.pop("enabled", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        if "config" in validated_data or enabled:  # a fixed config (or an explicit enable) re-enables
            instance.disabled_at, instance.disabled_reason = None, ""
        elif enabled is False and instance.enabled:
            instance.disable("disabled by a user")
        instance.save()
        return instance


class RuleSerializer(serializers.Serializer[Rule]):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=RuleKind.choices)
    thresholds = serializers.ListField(child=ThresholdField(), max_length=MAX_THRESHOLDS, required=False)
    channels = serializers.ListField(child=serializers.IntegerField(), max_length=MAX_RULE_CHANNELS, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind")
        if kind is None:  # (a PATCH is partial, but a rule given replaces a rule: it needs its kind)
            raise serializers.ValidationError(
                {"kind": "each rule needs its kind (actual, forecast, anomaly or capacity)"}
            )
        thresholds = attrs.get("thresholds")
        if thresholds is None:
            defaults = {RuleKind.ANOMALY: [300], RuleKind.CAPACITY: [CAPACITY_THRESHOLD]}.get(kind, DEFAULT_THRESHOLDS)
            thresholds = [Decimal(t) for t in defaults]
        if not thresholds:
            raise serializers.ValidationError({"thresholds": "give at least one threshold"})
        if kind == RuleKind.ANOMALY and min(thresholds) <= 100:
            raise serializers.ValidationError(
                {"thresholds": "anomaly thresholds are percent of the usual and must exceed 100 (300 = 3x)"}
            )
        if kind == RuleKind.CAPACITY and (min(thresholds) <= 0 or max(thresholds) > 1000):
            raise serializers.ValidationError(
                {"thresholds": "capacity thresholds are percent of a rate limit, above 0 and at most 1000"}
            )
        if kind != RuleKind.ANOMALY and max(thresholds) > 1000:
            raise serializers.ValidationError({"thresholds": "thresholds are percent of the amount, at most 1000"})
        attrs["thresholds"] = sorted({t.normalize() for t in thresholds})
        project: Project = self.context["project"]
        wanted = set(attrs.get("channels", []))
        found = set(Channel.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True))
        if wanted - found:
            raise serializers.ValidationError({"channels": f"no channel {min(wanted - found)} in this project"})
        attrs["channels"] = sorted(wanted)
        return attrs


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class BudgetSerializer(serializers.Serializer[Budget]):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    amount_usd = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), source="amount"
    )
    period = serializers.ChoiceField(choices=Period.choices, default=Period.MONTH, help_text=RESTARTS)
    period_start = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="custom periods: the first day (within 10 years of today). " + RESTARTS,
    )
    period_days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_PERIOD_DAYS,
        help_text="custom periods: the length in days (1 to 366). " + RESTARTS,
    )
    timezone = serializers.CharField(max_length=64, default="UTC", help_text="an IANA name. " + RESTARTS)
    scope = ScopeField(required=False)
    rules = RuleSerializer(many=True, required=False, max_length=MAX_RULES)  # type: ignore[call-arg]

    def validate_name(self, value: str) -> str:
        return _plain_name(value)

    def validate_period_start(self, value: date | None) -> date | None:
        if value is None:
            return value
        today = dj_timezone.now().date()
        reach = timedelta(days=round(365.25 * PERIOD_START_YEARS))
        if not today - reach <= value <= today + reach:
            raise serializers.ValidationError(f"period_start must be within {PERIOD_START_YEARS} years of today")
        return value

    def validate_timezone(self, value: str) -> str:
        try:
            time_zone(value)
        except UnknownTimeZone:
            raise serializers.ValidationError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    def validate_scope(self, value: Any) -> dict[str, Any]:
        tags = value.get("tag") if isinstance(value, dict) else None
        if isinstance(tags, dict) and len(tags) > MAX_SCOPE_TAGS:
            raise serializers.ValidationError(f"scope.tag names more than {MAX_SCOPE_TAGS} tag keys")
        try:
            return scopes.normalize(value)
        except scopes.ScopeError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Budget | None = self.instance
        period = attrs.get("period", instance.period if instance else Period.MONTH)
        start = attrs.get("period_start", instance.period_start if instance else None)
        days = attrs.get("period_days", instance.period_days if instance else None)
        if period == Period.CUSTOM:
            if start is None:
                raise serializers.ValidationError({"period_start": "a custom period needs period_start (a date)"})
            if not days:
                raise serializers.ValidationError({"period_days": "a custom period needs period_days (its length)"})
        else:
            attrs["period_start"], attrs["period_days"] = None, None
        return attrs

    def to_representation(self, instance: Budget) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "name": instance.name,
            "amount_usd": f"{instance.amount:.2f}"
            if instance.amount == instance.amount.quantize(Decimal("0.01"))
            else f"{instance.amount.normalize():f}",
            "period": instance.period,
            "period_start": instance.period_start.isoformat() if instance.period_start else None,
            "period_days": instance.period_days,
            "timezone": instance.timezone,
            "scope": instance.scope,
            "rules": [
                {
                    "id": rule.pk,
                    "kind": rule.kind,
                    "thresholds": [_number(Decimal(str(t))) for t in rule.thresholds],
                    "channels": sorted(c.pk for c in rule.channels.all()),
                }
                for rule in instance.rules.all()
            ],
            "created_at": instance.created_at.isoformat(),
            "updated_at": instance.updated_at.isoformat(),
        }

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> Budget:
        rules = validated_data.pop("rules", None)
        if rules is None:
            rules = [{"kind": "actual", "thresholds": [Decimal(t) for t in DEFAULT_THRESHOLDS], "channels": []}]
        budget = Budget.objects.create(project=self.context["project"], **validated_data)
        _set_rules(budget, rules)
        return budget

    @transaction.atomic
    def update(self, instance: Budget, validated_data: dict[str, Any]) -> Budget:
        rules = validated_data.pop("rules", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        instance.save()
        if rules is not None:
            _set_rules(instance, rules)
        return Budget.objects.prefetch_related("rules__channels").get(pk=instance.pk)


def _set_rules(budget: Budget, rules: list[dict[str, Any]]) -> None:
    """Replace the rules, keeping a rule (and its alert history) where the n-th rule of a kind stays.

    Matching by (kind, position among that kind) means editing thresholds or channels never
    re-fires alerts already sent this period."""
    existing: dict[str, list[Rule]] = {}
    for rule in Rule.objects.filter(budget=budget).order_by("pk"):
        existing.setdefault(rule.kind, []).append(rule)
    keep: set[int] = set()
    for data in rules:
        same_kind = existing.get(data["kind"], [])
        rule = same_kind.pop(0) if same_kind else Rule(budget=budget, kind=data["kind"])
        rule.thresholds = [_number(t) for t in data["thresholds"]]
        rule.save()
        rule.channels.set(data.get("channels", []))
        keep.add(rule.pk)
    Rule.objects.filter(budget=budget).exclude(pk__in=keep).delete()


def alert_json(alert: AlertState) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "budget": {"id": alert.budget_id, "name": alert.budget.name},
        "rule": {"id": alert.rule_id, "kind": alert.rule.kind},
        "signal": alert.signal,
        "subject": alert.subject,
        "threshold": _number(alert.threshold),
        "status": alert.status,
        "period_start": alert.period_start.isoformat(),
        "period_end": alert.period_end.isoformat(),
        "spend_usd": f"{alert.spend:.12f}",
        "forecast_usd": None if alert.forecast is None else f"{alert.forecast:.12f}",
        "amount_usd": f"{alert.amount:.2f}",
        "details": alert.details,
        "fired_at": alert.fired_at.isoformat(),
        "deliveries": [
            {
                "id": d.pk,
                "channel": {"id": d.channel_id, "name": d.channel.name, "kind": d.channel.kind},
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
            }
            for d in alert.deliveries.all()
        ],
    }
