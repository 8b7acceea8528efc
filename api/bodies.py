"""Django's own refusals of a request, answered as the API answers: JSON, with the right status.

Django raises ``RequestDataTooBig`` (a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``) and
``TooManyFieldsSent`` (over ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` query or form fields) when a view first
reads the body or the query; left alone they become Django's HTML 400 page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http.request import RawPostDataException
from rest_framework import status
from rest_framework.exceptions import APIException, NotAuthenticated, ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from ingest.accept import IngestError, decode_body
from tenancy.authentication import KeyPrincipal
from tenancy.models import Project


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the body is too large"
    default_code = "too_large"


class DjangoRefusalsAsJson:
    """A view mixin: Django's size refusals become a 413 or a 400 with a ``detail``."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = BodyTooLarge(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
        elif isinstance(exc, TooManyFieldsSent):
            exc = ParseError(f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} query parameters or form fields")
        answer: Response = super().handle_exception(exc)  # type: ignore[misc]
        return answer


def ingest_body(request: Request) -> tuple[Project, bytes]:
    """An ingest request's project and its body, ``Content-Encoding`` undone (``IngestError`` if not)."""
    try:
        raw = request._request.body
    except (RequestDataTooBig, RawPostDataException):
        raise IngestError(413, "body is too large") from None
    body = decode_body(raw, request.headers.get("Content-Encoding", ""))
    if not isinstance(request.user, KeyPrincipal):  # CanIngest lets only API keys through
        raise NotAuthenticated()
    return request.user.project, body
