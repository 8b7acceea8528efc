"""Price overrides and tier multipliers in the Django admin (the README sends admins here), and
the reprice jobs, read-only."""

from __future__ import annotations

from django.contrib import admin

from ledger.models import PriceOverride, RepriceJob, TierMultiplier


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin[PriceOverride]):
    list_display = ("provider", "model", "project", "effective_from", "input_per_mtok", "output_per_mtok", "note")
    list_filter = ("provider", "project")
    search_fields = ("provider", "model", "note")
    ordering = ("project", "provider", "model", "-effective_from")


@admin.register(TierMultiplier)
class TierMultiplierAdmin(admin.ModelAdmin[TierMultiplier]):
    list_display = ("service_tier", "multiplier", "project")
    list_filter = ("service_tier", "project")


@admin.register(RepriceJob)
class RepriceJobAdmin(admin.ModelAdmin[RepriceJob]):
    list_display = ("pk", "project", "start", "end", "status", "percent", "calls", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("project", "start", "end", "reason", "status", "percent", "calls", "error", "created_at")
