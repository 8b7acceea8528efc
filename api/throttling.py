"""Per-API-key rate limit for ingest (``INGEST_RATE_LIMIT``, e.g. ``600/min``); unset = none."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenancy.authentication import KeyPrincipal

if TYPE_CHECKING:
    from rest_framework.views import APIView

log = logging.getLogger(__name__)


class IngestRateThrottle(SimpleRateThrottle):
    scope = "ingest"

    def get_rate(self) -> str | None:
        return settings.INGEST_RATE_LIMIT

    def allow_request(self, request: Request, view: APIView) -> bool:
        # Fail open: a rate limit is protection, not a reason to refuse durable ingest when the
        # shared cache (Redis) is briefly down.
        try:
            return super().allow_request(request, view)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:  # a plain Redis cache, not the resilient one
            log.warning("rate limit check skipped: cache unavailable (%s)", type(exc).__name__)
            return True

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        user = request.user
        if not isinstance(user, KeyPrincipal):
            return None
        return f"throttle:ingest:{user.api_key.pk}"
