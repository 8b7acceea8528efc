from __future__ import annotations

from django.contrib import admin

from alerts.models import AlertState, Budget, Channel, Delivery, Rule


class RuleInline(admin.TabularInline[Rule, Budget]):
    model = Rule
    extra = 0


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin[Budget]):
    list_display = ("name", "project", "period", "timezone", "amount")
    list_filter = ("period",)
    inlines = (RuleInline,)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    list_display = ("name", "kind", "project", "disabled_at", "disabled_reason")
    exclude = ("config",)  # holds secrets; edit channels through the API or the dashboards


@admin.register(AlertState)
class AlertStateAdmin(admin.ModelAdmin[AlertState]):
    list_display = ("budget", "rule", "period_start", "threshold", "signal", "status", "spend", "fired_at")
    list_filter = ("status", "signal")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = ("alert", "channel", "status", "attempts", "sent_at", "next_attempt_at")
    list_filter = ("status",)
