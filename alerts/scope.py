"""A budget's scope: which calls count. ``{}`` is the whole project.

``{"feature": ["search"], "customer_id": ["acme"], "tag": {"team": ["growth"]}}``: a call counts
when every named dimension has one of the listed values (values of one dimension are OR-ed).
"""

from __future__ import annotations

from typing import Any

from alerts.models import SCOPE_DIMENSIONS
from ledger.explore import unseen_values

MAX_VALUES = 100
MAX_VALUE_LENGTH = 200

Filters = dict[str, tuple[str, ...]]


class ScopeError(ValueError):
    """A bad scope; the message names the field and is safe to show."""


def _values(field: str, raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ScopeError(f"scope.{field} must be a non-empty list of strings")
    if len(raw) > MAX_VALUES:
        raise ScopeError(f"scope.{field} lists more than {MAX_VALUES} values")
    for value in raw:
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH:
            raise ScopeError(f"scope.{field} values must be strings of 1 to {MAX_VALUE_LENGTH} characters")
    return sorted(set(raw))


def normalize(raw: Any) -> dict[str, Any]:
    """Validate a scope and return it in canonical form (sorted, de-duplicated lists)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScopeError('scope must be an object, e.g. {"feature": ["search"]}')
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "tag":
            if not isinstance(value, dict) or not value:
                raise ScopeError('scope.tag must be an object of tag key to values, e.g. {"team": ["growth"]}')
            out["tag"] = {}
            for tag_key, tag_values in sorted(value.items()):
                if not isinstance(tag_key, str) or not tag_key or len(tag_key) > MAX_VALUE_LENGTH:
                    raise ScopeError("scope.tag keys must be non-empty strings")
                out["tag"][tag_key] = _values(f"tag.{tag_key}", tag_values)
        elif key in SCOPE_DIMENSIONS:
            out[key] = _values(key, value)
        else:
            raise ScopeError(f"scope.{key} is not a scope dimension; known: {', '.join((*SCOPE_DIMENSIONS, 'tag'))}")
    return out


def filters(scope: dict[str, Any]) -> tuple[Filters, Filters]:
    """(dimension filters, tag filters) for ``ledger.queries.UsageQuery``."""
    dims = {k: tuple(v) for k, v in scope.items() if k != "tag"}
    tags = {k: tuple(v) for k, v in scope.get("tag", {}).items()}
    return dims, tags


def describe(scope: dict[str, Any]) -> str:
    """One line for people: ``feature = search, chat · tag team = growth``; the whole project when empty."""
    parts = [f"{k} = {', '.join(v)}" for k, v in scope.items() if k != "tag"]
    parts += [f"tag {k} = {', '.join(v)}" for k, v in scope.get("tag", {}).items()]
    return " · ".join(parts) or "whole project"


def warnings(project_id: int, scope: dict[str, Any]) -> list[str]:
    """Plain-words warnings for scope values no call of the project has ever had (a typo, or a
    feature not shipped yet): a budget scoped to them counts nothing."""
    dims, tags = filters(scope)
    out = []
    for name, values in unseen_values(project_id, dims, tags).items():
        shown = ", ".join(repr(v) for v in values[:10]) + (" …" if len(values) > 10 else "")
        verb = "has" if len(values) == 1 else "have"
        out.append(
            f"scope.{name}: {shown} {verb} never been seen in this project's calls, so the budget counts"
            " nothing for it yet (check the spelling against the values on the dashboards)"
        )
    return out
