"""/v1/limits: a project's provider rate limits per model, or per pool of models sharing them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers

from api.viewsets import PROJECT_PARAMETER, PartialUpdateMixin, ProjectScopedViewSet
from ledger.limits import DIMENSIONS, MAX_POOL_MODELS, clash
from ledger.models import RateLimit

MAX_LIMIT = 10**12


@extend_schema_field(
    {"oneOf": [{"type": "string", "maxLength": 200}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
)
class _ModelsField(serializers.Field):
    """``model``: one model's name, or a list of the models that share a pool."""

    def to_internal_value(self, data: Any) -> str | list[str]:
        if isinstance(data, str):
            return _name(data)
        if isinstance(data, list) and data:
            return _members(data)
        raise serializers.ValidationError("give a model name, or a non-empty list of the models sharing the pool")

    def to_representation(self, value: Any) -> Any:
        return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise serializers.ValidationError("a model name is a non-empty string")
    if len(value) > 200 or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise serializers.ValidationError("a model name has at most 200 characters and no control characters")
    return value.strip()


def _members(values: list[Any]) -> list[str]:
    if len(values) > MAX_POOL_MODELS:
        raise serializers.ValidationError(f"a pool has at most {MAX_POOL_MODELS} models")
    names = [_name(v) for v in values]
    if len(set(names)) != len(names):
        raise serializers.ValidationError("each model may be named once")
    return names


class RateLimitSerializer(serializers.Serializer[RateLimit]):
    id = serializers.IntegerField(read_only=True)
    provider = serializers.CharField(max_length=100)
    model = _ModelsField()
    models = serializers.ListField(child=serializers.JSONField(), required=False, max_length=MAX_POOL_MODELS)
    tpm = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False, allow_null=True)
    rpm = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False, allow_null=True)
    itpm = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False, allow_null=True)
    otpm = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: RateLimit) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "provider": instance.provider,
            "model": instance.model,
            "models": instance.members,
            **{name: getattr(instance, name) for name in DIMENSIONS},
            "created_at": instance.created_at.isoformat(),
            "updated_at": instance.updated_at.isoformat(),
        }

    def validate_provider(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("name the provider (e.g. openai, anthropic)")
        return value.strip()

    def validate_models(self, value: list[Any]) -> list[str]:
        return _members(value) if value else []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: RateLimit | None = self.instance
        model = attrs.pop("model", None)
        members = attrs.pop("models", None)
        if isinstance(model, list):  # a pool given by its models: it is named after them
            if members and members != model:
                raise serializers.ValidationError({"models": "give the pool's models in model or models, not both"})
            members, model = model, " + ".join(model)
        if model is not None:
            attrs["model"] = model
        if members is not None:
            name = attrs.get("model", instance.model if instance else None)
            attrs["pool_models"] = [] if members in ([], [name]) else members
        values = {name: attrs.get(name, getattr(instance, name, None)) for name in DIMENSIONS}
        if all(v is None for v in values.values()):
            raise serializers.ValidationError({"tpm": "give at least one limit: tpm, rpm, itpm or otpm"})
        self._check_clashes(attrs, instance)
        return attrs

    def _check_clashes(self, attrs: dict[str, Any], instance: RateLimit | None) -> None:
        provider = attrs.get("provider", instance.provider if instance else "")
        name = attrs.get("model", instance.model if instance else "")
        members = attrs.get("pool_models", instance.pool_models if instance else [])
        found = clash(self.context["project"], provider, name, members, instance.pk if instance else None)
        if found:
            raise serializers.ValidationError({found[0]: found[1]})

    def create(self, validated_data: dict[str, Any]) -> RateLimit:
        return RateLimit.objects.create(project=self.context["project"], **validated_data)

    def update(self, instance: RateLimit, validated_data: dict[str, Any]) -> RateLimit:
        for key, value in validated_data.items():
            setattr(instance, key, value)
        instance.save()
        return instance


@extend_schema_view(
    list=extend_schema(
        operation_id="limits_list",
        summary="The project's provider rate limits (per model or pool)",
        parameters=[PROJECT_PARAMETER],
    ),
    create=extend_schema(
        operation_id="limits_create",
        summary="Set a model's (or a pool's) per-minute limits",
        parameters=[PROJECT_PARAMETER],
    ),
    retrieve=extend_schema(operation_id="limits_read", parameters=[PROJECT_PARAMETER]),
    partial_update=extend_schema(operation_id="limits_update", parameters=[PROJECT_PARAMETER]),
    destroy=extend_schema(operation_id="limits_delete", parameters=[PROJECT_PARAMETER], responses={204: None}),
)
class RateLimitViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    PartialUpdateMixin,
    mixins.DestroyModelMixin,
    ProjectScopedViewSet,
):
    queryset = RateLimit.objects.all()
    serializer_class = RateLimitSerializer
    lookup_url_kwarg = "limit_id"
    ordering = ("provider", "model", "pk")
