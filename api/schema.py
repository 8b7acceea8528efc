"""OpenAPI for the msgspec-decoded bodies: the CallRecord schema comes from the struct itself."""

from __future__ import annotations

from typing import Any

import msgspec
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from ingest.records import CallRecord


class CallBatch(msgspec.Struct, forbid_unknown_fields=True):
    calls: list[CallRecord]


def add_call_record_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components([CallBatch], ref_template="#/components/schemas/{name}")
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas[name] = schema
    schemas["CallBatch"]["properties"]["calls"].update({"minItems": 1, "maxItems": 1000})
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents ``Authorization: Bearer ml_…`` project keys in the OpenAPI schema."""

    target_class = "tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A project API key (ml_…) with the needed scope."}
