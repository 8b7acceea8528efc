"""List pagination for /v1 lists: ``limit`` and an opaque ``cursor``; the body is ``{"data": [...], "next": ...}``.

Keyset (seek) pagination on the view's ``ordering``, which must end in ``pk`` or ``-pk`` so the order
is total: a page never repeats or skips a row however many rows share the leading field, and
following ``next`` costs one indexed range query whatever the depth.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, Q, QuerySet
from rest_framework.exceptions import ParseError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

if TYPE_CHECKING:
    from rest_framework.views import APIView

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LIMIT_ERROR = f"limit must be between 1 and {MAX_LIMIT}"
MAX_CURSOR_CHARS = 4096
CURSOR_ERROR = "cursor is not valid (pass the 'next' of the previous page as it was given)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | str) or value is None:
        return value
    return str(value)


def _field(model: type[Model], term: str) -> Field[Any, Any]:
    name = term.lstrip("-")
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{name!r} is not a model field: a cursor orders by concrete fields")
    return field


def _after(ordering: tuple[str, ...], values: list[Any]) -> Q:
    """Rows strictly after ``values`` in ``ordering``: (a > x) | (a = x & b > y) | ..."""
    condition: Q | None = None
    for term, value in reversed(list(zip(ordering, values, strict=True))):
        name = term.lstrip("-")
        beyond = Q(**{f"{name}__{'lt' if term.startswith('-') else 'gt'}": value})
        condition = beyond if condition is None else beyond | (Q(**{name: value}) & condition)
    if condition is None:
        raise ValueError("a cursor needs at least one ordering field")
    return condition


class LimitCursorPagination(BasePagination):
    """``?limit=`` (1 to 1000, default 100) rows per page; ``?cursor=`` the ``next`` of the page before."""

    limit_query_param = "limit"
    cursor_query_param = "cursor"
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    next_cursor: str | None = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        if not isinstance(queryset, QuerySet):
            raise TypeError("keyset pagination pages querysets")
        ordering = self.ordering(view)
        limit = self.limit(request)
        queryset = queryset.order_by(*ordering)
        after = self.decode(request, queryset.model, ordering)
        if after is not None:
            queryset = queryset.filter(_after(ordering, after))
        rows = list(queryset[: limit + 1])
        page = rows[:limit]
        self.next_cursor = self.encode(page[-1], ordering) if len(rows) > limit else None
        return page

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"data": data, "next": self.next_cursor})

    @staticmethod
    def ordering(view: APIView | None) -> tuple[str, ...]:
        ordering = tuple(getattr(view, "ordering", None) or ("pk",))
        if ordering[-1] not in ("pk", "-pk"):
            raise ValueError("a cursor ordering must end in pk or -pk to be total")
        return ordering

    def limit(self, request: Request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= self.max_limit:
            raise ParseError(LIMIT_ERROR)
        return int(raw)

    @staticmethod
    def encode(row: Model, ordering: tuple[str, ...]) -> str:
        values = [_jsonable(getattr(row, term.lstrip("-"))) for term in ordering]
        raw = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def decode(self, request: Request, model: type[Model], ordering: tuple[str, ...]) -> list[Any] | None:
        """The position a cursor names, each value checked by its model field (so a forged one is a 400)."""
        token = request.query_params.get(self.cursor_query_param)
        if token is None:
            return None
        try:
            if len(token) > MAX_CURSOR_CHARS:
                raise ValueError(token)
            values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(values, list) or len(values) != len(ordering):
                raise ValueError(token)
            checked = [_field(model, term).to_python(value) for term, value in zip(ordering, values, strict=True)]
            if any(value is None or (isinstance(value, str) and "\x00" in value) for value in checked):
                raise ValueError(token)
        except (ValueError, TypeError, RecursionError, binascii.Error, DjangoValidationError):
            raise ParseError(CURSOR_ERROR) from None
        return checked

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"rows per page (default {self.default_limit}, max {self.max_limit})",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "the 'next' of the previous page, to get the page after it",
                "schema": {"type": "string"},
            },
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["data", "next"],
            "properties": {
                "data": schema,
                "next": {
                    "type": "string",
                    "nullable": True,
                    "description": "pass as ?cursor= for the next page; null on the last page",
                },
            },
        }
