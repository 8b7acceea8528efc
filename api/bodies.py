"""Django's own refusals of a request, answered as the API answers: JSON, with the right status.

Django raises ``RequestDataTooBig`` (a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``) and
``TooManyFieldsSent`` (over ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` query or form fields) when a view first
reads the body or the query; left alone they become Django's HTML 400 page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.response import Response


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
