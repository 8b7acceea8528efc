"""DRF authentication by project API key (``Authorization: Bearer ml_…``) and scope permissions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenancy.models import ApiKey, Project, hash_key

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.views import APIView


@dataclass(frozen=True)
class KeyPrincipal:
    """What ``request.user`` is for an API-key request: a project and its scopes, no Django user."""

    api_key: ApiKey

    is_authenticated = True

    @property
    def project(self) -> Project:
        return self.api_key.project


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>``; with a :class:`KeyCache`, found keys are kept a few seconds."""

    keyword = "Bearer"

    def __init__(self, cache: KeyCache | None = None) -> None:
        self.cache = cache

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("API key is not valid.") from None
        key = self.find(hash_key(raw))
        if key is None:
            raise exceptions.AuthenticationFailed("API key is not valid or has been revoked.")
        key.touch()
        return KeyPrincipal(key), key

    def find(self, key_hash: str) -> ApiKey | None:
        """The active key with this hash, its project loaded (None if unknown or revoked)."""
        seconds = settings.INGEST_KEY_CACHE_SECONDS
        cache = self.cache if seconds > 0 else None
        key = cache.get(key_hash) if cache is not None else None
        if key is None:
            key = ApiKey.objects.active().select_related("project").filter(key_hash=key_hash).first()
            if key is not None and cache is not None:
                cache.put(key_hash, key, seconds)
        return key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class KeyCache:
    """Active keys by hash, each kept ``INGEST_KEY_CACHE_SECONDS`` in this process.

    The ingest doors take hundreds of requests a second from a handful of keys; the look-up (an ORM
    query and a PostgreSQL round trip) was ~0.8 ms of each. Only keys that were found are kept: an
    unknown or revoked key is looked up every time. Any save or delete of a key or a project in this
    process empties the cache, so a revocation here takes effect at once."""

    MAX_KEYS = 10_000  # past it the cache starts over: a bound, not an eviction policy

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._keys.get(key_hash)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, key: ApiKey, seconds: float) -> None:
        with self._lock:
            if len(self._keys) >= self.MAX_KEYS:
                self._keys.clear()
            self._keys[key_hash] = (time.monotonic() + seconds, key)

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._keys.clear()


ingest_keys = KeyCache()
for _signal in (post_save, post_delete):
    for _model in (ApiKey, Project):
        _signal.connect(ingest_keys.clear, sender=_model, dispatch_uid=f"ingest-keys-{_signal}-{_model.__name__}")


class CachedKeys:
    """A view mixin: its API keys are found through :data:`ingest_keys` (the ingest doors)."""

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [ApiKeyAuthentication(ingest_keys)]


class HasScope(BasePermission):
    """Grants access to API-key requests whose key carries ``required_scope``."""

    required_scope = ""
    message = "This API key lacks the required scope."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not isinstance(user, KeyPrincipal):
            return False
        if not user.api_key.has_scope(self.required_scope):
            self.message = f"This API key lacks the '{self.required_scope}' scope."
            return False
        return True


class CanIngest(HasScope):
    required_scope = "ingest"
