from __future__ import annotations

from typing import Any

from django import template

from dashboards.tables import number

register = template.Library()


@register.filter
def fmt(value: Any, kind: str) -> str:
    """Format a figure for reading: money, counts, percentages, milliseconds."""
    return number(value, kind)


@register.filter
def blank(value: Any) -> str:
    """A dimension value for reading: "(none)" when the call did not say."""
    return number(value, "text")
