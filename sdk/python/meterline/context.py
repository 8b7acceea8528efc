"""Attribution defaults (feature, customer, route version, tags…) carried by a contextvar.

Each thread and each asyncio task sees its own value; a task inherits its creator's value at
creation, as contextvars do. ``record()`` captures the current mapping as it is (one ``get()``):
merging it with the record's own fields is left to the consumer thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any

from meterline.fields import FIELD_NAMES, RecordError, check, overlay, unknown_fields

_EMPTY: Mapping[str, Any] = MappingProxyType({})
current: ContextVar[Mapping[str, Any]] = ContextVar("meterline_defaults", default=_EMPTY)


def merged(base: Mapping[str, Any], fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """``base`` overlaid with ``fields`` (tags merged key by key), as a read-only mapping."""
    if not fields.keys() <= FIELD_NAMES:
        raise unknown_fields(fields)
    for name in ("event_id", "timestamp"):
        if name in fields:
            raise RecordError(name, "belongs to one record, not to a scope of defaults")
    # Check the values now, where the mistake is made, rather than on every record later.
    for name, value in fields.items():
        if value is not None:
            check(name, value)
    values = dict(overlay(base, fields))
    if values.get("tags") is not None:
        values["tags"] = MappingProxyType(dict(values["tags"]))
    return MappingProxyType(values)


class attribute:
    """Set attribution defaults for the records made inside the ``with`` block."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> Mapping[str, Any]:
        values = merged(current.get(), self._fields)
        self._token = current.set(values)
        return values

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is None:
            raise RuntimeError("attribute() exited without being entered")
        current.reset(self._token)
        self._token = None
