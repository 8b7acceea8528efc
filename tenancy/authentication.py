"""DRF authentication by project API key (``Authorization: Bearer ml_…``) and scope permissions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    keyword = "Bearer"

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
        key = ApiKey.objects.active().select_related("project").filter(key_hash=hash_key(raw)).first()
        if key is None:
            raise exceptions.AuthenticationFailed("API key is not valid or has been revoked.")
        key.touch()
        return KeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


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
