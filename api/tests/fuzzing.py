"""What the schemathesis fuzz tests share: the app's own schema over real WSGI, the checks, the settings."""

from __future__ import annotations

from functools import cache
from typing import Any

import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# No 5xx; every status, media type, header and body as documented.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Hypothesis shares one project, key and test transaction across the examples of a test. Derandomized:
# a run draws the same examples as the last one, so a failure reproduces.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def api_schema() -> Any:
    """The schema the app serves at /v1/schema/, its operations driven through real WSGI."""
    return schemathesis.openapi.from_wsgi("/v1/schema/", get_wsgi_application())
