"""Per-API-key rate limit for ingest (``INGEST_RATE_LIMIT``, e.g. ``600/min``); unset = none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenancy.authentication import KeyPrincipal

if TYPE_CHECKING:
    from rest_framework.views import APIView


class IngestRateThrottle(SimpleRateThrottle):
    scope = "ingest"

    def get_rate(self) -> str | None:
        return settings.INGEST_RATE_LIMIT

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        user = request.user
        if not isinstance(user, KeyPrincipal):
            return None
        return f"throttle:ingest:{user.api_key.pk}"
