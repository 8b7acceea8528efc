"""Fail-loud readers for settings that come from the environment.

Each helper names the variable in its error, so a malformed value stops the process at start
with a message an operator can act on. ``NAME_FILE`` (a path) is honoured for secrets.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"true"}
_FALSE = {"false"}


def _raw(name: str) -> str | None:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc.strerror}") from exc
    value = os.environ.get(name)
    return None if value is None or value == "" else value


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_optional(name: str) -> str | None:
    return _raw(name)


def env_match(name: str, pattern: str, what: str) -> str | None:
    """An optional value that must match ``pattern`` in full; ``what`` describes it in the error."""
    value = _raw(name)
    if value is not None and not re.fullmatch(pattern, value):
        raise ImproperlyConfigured(f"{name}={value!r} is not {what}")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use true or false")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    """A URL whose scheme must be one of ``schemes``; the message never echoes credentials."""
    value = _raw(name)
    if value is None:
        return default
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} has scheme {parsed.scheme or '(none)'!r}; expected one of: {', '.join(schemes)}"
        )
    if parsed.scheme.startswith("chdb"):
        if not parsed.path and parsed.netloc not in ("memory",):
            raise ImproperlyConfigured(f"{name} must name a directory, e.g. chdb:///srv/meterline/clickhouse")
    elif parsed.scheme not in ("sqlite",) and not parsed.hostname:
        raise ImproperlyConfigured(f"{name} has no host")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a malformed port") from None
    return value
