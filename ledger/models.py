"""Ledger state kept in the Django DB: price overrides, tier multipliers and dirty rollup buckets."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from tenancy.models import Project

_PRICE_VALIDATORS = [MinValueValidator(Decimal(0))]


class ServiceTier(models.TextChoices):
    DEFAULT = "default"
    BATCH = "batch"
    FLEX = "flex"
    PRIORITY = "priority"


class PriceOverride(models.Model):
    """A project's own price for a model (self-hosted, negotiated), in force from ``effective_from``.

    Prices are USD per million tokens. Cache and reasoning prices fall back to the input and output
    prices when left empty, the same rule the catalogue follows.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="price_overrides")
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    effective_from = models.DateTimeField()
    input_per_mtok = models.DecimalField(max_digits=20, decimal_places=10, validators=_PRICE_VALIDATORS)
    output_per_mtok = models.DecimalField(max_digits=20, decimal_places=10, validators=_PRICE_VALIDATORS)
    cache_read_per_mtok = models.DecimalField(
        max_digits=20, decimal_places=10, validators=_PRICE_VALIDATORS, null=True, blank=True
    )
    cache_write_per_mtok = models.DecimalField(
        max_digits=20, decimal_places=10, validators=_PRICE_VALIDATORS, null=True, blank=True
    )
    reasoning_per_mtok = models.DecimalField(
        max_digits=20, decimal_places=10, validators=_PRICE_VALIDATORS, null=True, blank=True
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["project", "provider", "model", "effective_from"], name="one_override_per_instant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d %H:%M}"


class TierMultiplier(models.Model):
    """A project's multiplier for a service tier where the catalogue has no tier price of its own."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tier_multipliers")
    service_tier = models.CharField(max_length=16, choices=ServiceTier.choices)
    multiplier = models.DecimalField(max_digits=8, decimal_places=6, validators=[MinValueValidator(Decimal(0))])

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["project", "service_tier"], name="one_multiplier_per_tier"),
        ]

    def __str__(self) -> str:
        return f"{self.service_tier} × {self.multiplier}"


class DirtyBucket(models.Model):
    """An hour of one project whose raw rows changed since its rollups were last computed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    marked_at = models.DateTimeField(default=timezone.now)
    # The rollup recomputing this hour: its claim token, held until ``claimed_until`` (a lease).
    claim = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["project", "hour"], name="one_dirty_mark_per_hour"),
        ]

    def __str__(self) -> str:
        return f"project {self.project_id} {self.hour:%Y-%m-%d %H:00}"


class Feedback(models.Model):
    """A quality signal for one call (by event_id); the call may arrive before or after it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=64)
    score = models.FloatField()
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="When it was copied to ClickHouse.")

    class Meta:
        indexes: ClassVar = [models.Index(fields=["synced_at"], name="feedback_unsynced")]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.score}"


class RateLimit(models.Model):
    """A provider's per-minute limits for one model, or for a pool of models that share them.

    ``model`` names the model (or the pool); ``pool_models`` (``models`` in the API) lists the
    models whose calls count against the limits (empty: ``model`` alone). Each limit is optional:
    tokens (``tpm``, OpenAI), requests (``rpm``), input and output tokens (``itpm``, ``otpm``)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rate_limits")
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    pool_models = models.JSONField(default=list, blank=True)
    tpm = models.PositiveBigIntegerField(null=True, blank=True)
    rpm = models.PositiveBigIntegerField(null=True, blank=True)
    itpm = models.PositiveBigIntegerField(null=True, blank=True)
    otpm = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["provider", "model", "pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["project", "provider", "model"], name="one_limit_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def members(self) -> list[str]:
        """The models whose calls count against these limits."""
        return list(self.pool_models) or [self.model]


class RepriceJob(models.Model):
    """A reprice of one project's calls run in the background, with its progress for the page."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reprice_jobs")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)  # e.g. the price override that asked for it
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    percent = models.PositiveSmallIntegerField(default=0)  # of the range's span with calls, done
    calls = models.PositiveBigIntegerField(default=0)  # repriced so far
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"reprice {self.pk} of project {self.project_id} ({self.status}, {self.percent} %)"

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
