"""The rules a project's rate limits (``ledger.models.RateLimit``) keep, shared by the API and the
Settings page: one limit per (provider, model name), and a model counts against one limit of a
provider only (a pool's models included)."""

from __future__ import annotations

from collections.abc import Iterable

from ledger.models import RateLimit
from tenancy.models import Project

DIMENSIONS = ("tpm", "rpm", "itpm", "otpm")
MAX_POOL_MODELS = 50


def clash(
    project: Project, provider: str, name: str, members: Iterable[str], exclude: int | None
) -> tuple[str, str] | None:
    """The (field, message) that makes this limit clash with another of the project's, or None."""
    wanted = set(members) or {name}
    others = RateLimit.objects.filter(project=project, provider=provider)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    for other in others:
        if other.model == name:
            return "model", f"{provider}/{name} has a limit already (id {other.pk})"
        shared = wanted & set(other.members)
        if shared:
            return "models", f"{', '.join(sorted(shared))} already counts against {provider}/{other.model}"
    return None
