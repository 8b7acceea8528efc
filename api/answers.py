"""The shapes of the /v1 answers, for the OpenAPI schema only: each mirrors the code that writes the body.

The resources render their bodies by hand (``alerts.serializers`` ``to_representation`` and
``alert_json``, ``api.budgets.current_json``, ``api.usage``), so these serializers are never used to
render: they state exactly what those functions answer (every key always present, so every field
is required; ``allow_null`` where the value may be null). ``api/tests/test_fuzz_api.py`` checks the
real answers against them.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from alerts.models import AlertStatus, ChannelKind, DeliveryStatus, Period, RuleKind, Signal
from alerts.serializers import MAX_RULE_CHANNELS, MAX_RULES, MAX_THRESHOLDS, ScopeField

_DECIMAL_USD = r"^-?[0-9]+(\.[0-9]+)?$"


def _usd(**kwargs: object) -> serializers.RegexField:
    """A dollar amount as a decimal string (exact; never a float)."""
    return serializers.RegexField(_DECIMAL_USD, **kwargs)  # type: ignore[arg-type]


class Problem(serializers.Serializer[None]):
    """A refusal explained in one sentence."""

    detail = serializers.CharField()


class FeedbackAccepted(serializers.Serializer[None]):
    """The feedback as stored (it reaches ClickHouse with the next drain)."""

    event_id = serializers.CharField()
    score = serializers.FloatField()
    comment = serializers.CharField(allow_blank=True)


class Channel(serializers.Serializer[None]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    name = serializers.CharField()
    config = serializers.DictField(help_text="the config with its secrets masked (••••, the last 4 characters)")
    enabled = serializers.BooleanField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class ChannelTestResult(serializers.Serializer[None]):
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text="the outcome only, e.g. 'sent' or 'receiver answered 500'")
    channel = Channel()


class Rule(serializers.Serializer[None]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RuleKind.choices)
    thresholds = serializers.ListField(child=serializers.FloatField(), max_length=MAX_THRESHOLDS)
    channels = serializers.ListField(child=serializers.IntegerField(), max_length=MAX_RULE_CHANNELS)


class Budget(serializers.Serializer[None]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    amount_usd = _usd()
    period = serializers.ChoiceField(choices=Period.choices)
    period_start = serializers.DateField(allow_null=True)
    period_days = serializers.IntegerField(allow_null=True)
    timezone = serializers.CharField()
    scope = ScopeField()
    rules = Rule(many=True, max_length=MAX_RULES)  # type: ignore[call-arg]  # (the stubs lack it)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="in create and update answers: things worth a second look, e.g. a scope value never seen"
        " in the project's calls",
    )


class BudgetBurn(serializers.Serializer[None]):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    spent_usd = _usd()
    percent = _usd(help_text="spent as a percent of the amount, a decimal string")
    forecast_usd = _usd(allow_null=True)


class BudgetDetail(Budget):
    current = BudgetBurn(allow_null=True, help_text="this period's burn; null when the period cannot be computed")
    warnings = None  # type: ignore[assignment]  # create and update answers only


class AlertBudget(serializers.Serializer[None]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class AlertRule(serializers.Serializer[None]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RuleKind.choices)


class DeliveryChannel(serializers.Serializer[None]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ChannelKind.choices)


class Delivery(serializers.Serializer[None]):
    id = serializers.IntegerField()
    channel = DeliveryChannel()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class Alert(serializers.Serializer[None]):
    id = serializers.IntegerField()
    budget = AlertBudget()
    rule = AlertRule()
    signal = serializers.ChoiceField(choices=Signal.choices)
    subject = serializers.CharField(allow_blank=True, help_text="capacity alerts: the provider/model, else empty")
    threshold = serializers.FloatField()
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    spend_usd = _usd()
    forecast_usd = _usd(allow_null=True)
    amount_usd = _usd()
    details = serializers.DictField(help_text="top contributors, anomaly figures")
    fired_at = serializers.DateTimeField()
    deliveries = Delivery(many=True)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"nullable": True, "anyOf": [{"type": "string"}, {"type": "number"}]},
    }
)
class UsageRow(serializers.DictField):
    """A row's keys depend on the query (group_by, metrics), so they are not listed."""


Usage = inline_serializer(  # a class would shadow Serializer.data and Field.source
    "Usage",
    {
        "data": serializers.ListField(
            child=UsageRow(),
            help_text="one row per (bucket, group): 'bucket' (RFC 3339, absent for granularity=total), the "
            "group_by dimensions, and the metrics asked for (money as decimal strings, counts as integers, "
            "ratios as numbers or null)",
        ),
        "truncated": serializers.BooleanField(help_text="true when more groups than 'limit' existed"),
        "source": serializers.CharField(help_text="the table that answered (for operators)"),
    },
)
