"""Organization → Project, members with roles, and project API keys (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

KEY_PREFIX = "ml_"
# last_used_at is advisory: write it at most this often so a busy key costs no extra UPDATEs.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


MAX_BATCH_FEATURES = 100
FEATURE_LENGTH = 200  # as CallRecord.feature


def validate_feature_list(value: object) -> None:
    """A list of at most MAX_BATCH_FEATURES distinct feature names (strings of 1-200 characters)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= FEATURE_LENGTH for v in value):
        raise ValidationError(f"a list of feature names of 1-{FEATURE_LENGTH} characters")
    if len(value) > MAX_BATCH_FEATURES:
        raise ValidationError(f"at most {MAX_BATCH_FEATURES} features")
    if len(set(value)) != len(value):
        raise ValidationError("each feature once")


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    batch_eligible_features = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_feature_list],
        help_text="Live features whose calls could wait hours (offline jobs): the savings advisor counts their"
        " non-streamed, default-tier calls as Batch API candidates, as it does eval and shadow traffic.",
    )

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    FINANCE = "finance", "Finance"
    ENGINEER = "engineer", "Engineer"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class Scope(models.TextChoices):
    INGEST = "ingest", "Ingest"
    READ = "read", "Read"
    ADMIN = "admin", "Admin"


def hash_key(raw_key: str) -> str:
    """SHA-256 of the whole key: keys carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project})"

    @classmethod
    def issue(cls, project: Project, scopes: list[str], name: str = "") -> tuple[ApiKey, str]:
        """Create a key and return it with the raw secret, which is never stored or shown again."""
        unknown = set(scopes) - set(Scope.values)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}; known: {', '.join(Scope.values)}")
        if not scopes:
            raise ValueError("an API key needs at least one scope")
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            project=project, name=name, prefix=raw[:10], key_hash=hash_key(raw), scopes=sorted(set(scopes))
        )
        return key, raw

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
