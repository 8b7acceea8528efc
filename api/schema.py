"""OpenAPI post-processing: the CallRecord schema from its msgspec struct, and the errors every endpoint answers.

Errors are answered the same way everywhere (DRF and ``api.errors.exception_handler``), so they
are documented once, here, for every operation under ``/v1/``; a status an operation documents
itself (``/v1/calls`` describes its own) is left as it is:

- ``400`` ``{"detail": str}`` or field errors ``{field: [str]}`` (nested for rules and thresholds),
- ``401`` (no, unknown or revoked API key) and ``403`` (a missing scope or role, or CSRF),
- ``404`` where the path names an object or ``?project=`` names a project,
- ``413`` and ``415`` where there is a request body,
- ``503`` with ``Retry-After`` when a store (PostgreSQL, ClickHouse, Redis) is unreachable.
"""

from __future__ import annotations

from typing import Any

import msgspec
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension

from api import field_schemas as _field_schemas  # noqa: F401 - registers the field schemas
from api.errors import RETRY_AFTER_SECONDS
from ingest.records import CallRecord


class CallBatch(msgspec.Struct, forbid_unknown_fields=True):
    calls: list[CallRecord]


def as_openapi_30(schema: Any) -> Any:
    """msgspec writes JSON Schema 2020-12; OpenAPI 3.0 says ``nullable`` for ``{"type": "null"}`` and has no
    ``propertyNames`` (kept in the description)."""
    if isinstance(schema, list):
        return [as_openapi_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: as_openapi_30(value) for key, value in schema.items()}
    options = out.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        out.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        out["nullable"] = True
    names = out.pop("propertyNames", None)
    if names:
        limits = f"{names.get('minLength', 0)} to {names.get('maxLength', 'any number of')} characters"
        out["description"] = " ".join(filter(None, [out.get("description"), f"keys of {limits}"]))
    return out


def add_call_record_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components([CallBatch], ref_template="#/components/schemas/{name}")
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas[name] = as_openapi_30(schema)
    schemas["CallBatch"]["properties"]["calls"].update({"minItems": 1, "maxItems": 1000})
    return result


PROBLEM = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
VALIDATION_ERRORS = {
    "type": "object",
    "description": "Field errors: each field with its messages. A list field's errors are keyed by position "
    '(e.g. {"rules": {"0": {"thresholds": {"1": ["A valid number is required."]}}}}).',
    "minProperties": 1,
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
        ]
    },
}
_REF = "#/components/schemas/{}"
_HEADERS = {
    401: {
        "WWW-Authenticate": {"schema": {"type": "string"}, "required": True, "description": "Bearer"},
    },
    503: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
            "description": f"seconds to wait before retrying ({RETRY_AFTER_SECONDS})",
        },
    },
}
_DESCRIPTIONS = {
    400: "The request is malformed: a field, a query parameter or the JSON body (the answer names it)",
    401: "The API key is missing, unknown or revoked (or no one is signed in)",
    403: "The API key lacks the needed scope, the signed-in user the needed role, or the CSRF token is missing",
    404: "No such object in this project, or no project visible by that ?project=",
    413: "The body is larger than the limit (INGEST_MAX_BYTES)",
    415: "The body is not application/json",
    503: "A store (database, ClickHouse or cache) is unreachable right now; retry after Retry-After seconds",
}


_RESPONSES = {
    400: "BadRequest",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "NotFound",
    413: "TooLarge",
    415: "UnsupportedMediaType",
    503: "Unavailable",
}


def _error_response(status: int) -> dict[str, Any]:
    schema = (
        {"anyOf": [{"$ref": _REF.format("Problem")}, {"$ref": _REF.format("ValidationErrors")}]}
        if status == 400
        else {"$ref": _REF.format("Problem")}
    )
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _statuses(operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, from what it takes."""
    parameters = operation.get("parameters", [])
    names_something = any(p["in"] == "path" or (p["in"], p["name"]) == ("query", "project") for p in parameters)
    statuses = [400, 401, 403]
    if names_something:
        statuses.append(404)
    if "requestBody" in operation:
        statuses += [413, 415]
    return [*statuses, 503]


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).setdefault("Problem", PROBLEM)
    components["schemas"]["ValidationErrors"] = VALIDATION_ERRORS
    components["responses"] = {name: _error_response(status) for status, name in _RESPONSES.items()}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    parameter["schema"].setdefault("minimum", 1)  # ids; anything else is a 404
            responses = operation.setdefault("responses", {})
            for status in _statuses(operation):
                responses.setdefault(str(status), {"$ref": f"#/components/responses/{_RESPONSES[status]}"})
            operation["responses"] = dict(sorted(responses.items()))
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Bearer ml_…`` project keys in the OpenAPI schema."""

    target_class = "tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A project API key (ml_…) with the needed scope."}


class BoundedListSerializer(OpenApiSerializerFieldExtension):
    """``Serializer(many=True, max_length=…)``: drf-spectacular drops the bounds; they become max/minItems."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if self.target.max_length is not None:
            schema["maxItems"] = self.target.max_length
        if self.target.min_length is not None:
            schema["minItems"] = self.target.min_length
        return schema
