"""OpenAPI schemas of the fields ``alerts.serializers`` validates by hand (a JSON field's shape, a threshold).

Registered with drf-spectacular on import (``api.schema`` imports this module), so the alerts app
holds the validation and the API the documentation.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from alerts import channels as channel_config
from alerts import scope as scopes
from alerts.models import SCOPE_DIMENSIONS
from alerts.serializers import MAX_SCOPE_TAGS


def _config_shape(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


_URL = {"type": "string", "format": "uri", "maxLength": 2000, "description": "an http(s) URL of a public host"}
CONFIG = {
    "description": "per kind: slack {webhook_url}; webhook {url, secret}; email {to}. A secret sent back "
    "masked, as a read answers it, keeps the stored one.",
    "anyOf": [
        _config_shape(webhook_url=_URL),
        _config_shape(url=_URL, secret={"type": "string", "minLength": 16, "maxLength": 500}),
        _config_shape(
            to={
                "type": "array",
                "items": {"type": "string", "format": "email"},
                "minItems": 1,
                "maxItems": channel_config.MAX_RECIPIENTS,
            }
        ),
    ],
}
_SCOPE_VALUES = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": scopes.MAX_VALUE_LENGTH},
    "minItems": 1,
    "maxItems": scopes.MAX_VALUES,
}
SCOPE = {
    "type": "object",
    "description": "which calls count; {} is the whole project, e.g. "
    '{"feature": ["search"], "tag": {"team": ["growth"]}}',
    "properties": {
        **{dimension: _SCOPE_VALUES for dimension in SCOPE_DIMENSIONS},
        "tag": {
            "type": "object",
            "additionalProperties": _SCOPE_VALUES,
            "minProperties": 1,
            "maxProperties": MAX_SCOPE_TAGS,
        },
    },
    "additionalProperties": False,
}
THRESHOLD = {"type": "number", "minimum": 0.01, "maximum": 999999.99, "description": "percent"}


class ConfigFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "alerts.serializers.ConfigField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return dict(CONFIG)


class ScopeFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "alerts.serializers.ScopeField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return dict(SCOPE)


class ThresholdFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "alerts.serializers.ThresholdField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return dict(THRESHOLD)
