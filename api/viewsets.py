"""The base of the project-scoped /v1 resources (budgets, channels, alerts).

One place for who may do what: an API key (``Authorization: Bearer``) or a signed-in session;
reads need the key's ``read`` scope (or a project the user can see, ``?project=``), writes the
``admin`` scope (or a user who is an admin of that project). Every query is filtered to the
request's project, so another project's object answers 404 as if it did not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from api.admin_access import project_for
from api.bodies import DjangoRefusalsAsJson
from api.pagination import LimitCursorPagination
from tenancy.authentication import ApiKeyAuthentication

if TYPE_CHECKING:
    from rest_framework.views import APIView

    from tenancy.models import Project

PROJECT_PARAMETER = OpenApiParameter(
    "project",
    {"type": "string", "maxLength": 200},
    description="project id or name (signed-in users only; an API key names its own project)",
)


class ProjectAccess(BasePermission):
    """Resolves the request's project, refusing with 403 (scope or role) or 404 (a project not visible).

    OPTIONS needs only a signed-in caller, as before; its metadata checks each write on its own."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method == "OPTIONS":
            return True
        if not isinstance(view, ProjectScopedViewSet):  # a permission for these viewsets only
            return False
        view.project = project_for(request)
        return True


class PartialUpdateMixin:
    """PATCH only (no PUT): the fields given change, the rest stay."""

    def partial_update(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class ProjectScopedViewSet(DjangoRefusalsAsJson, GenericViewSet[Any]):
    """A viewset over one project's rows: ``project_field`` names the path from the row to its project."""

    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated, ProjectAccess)
    pagination_class = LimitCursorPagination
    lookup_value_converter = "int"
    project_field = "project"
    ordering: tuple[str, ...] = ("pk",)

    project: Project

    def get_queryset(self) -> QuerySet[Any]:
        queryset: QuerySet[Model] = super().get_queryset()
        return queryset.filter(**{self.project_field: self.project})

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "project": self.project}
