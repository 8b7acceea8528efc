"""The prompt's stable leading part (system instructions and tool definitions): its identity and size.

Only a SHA-256 of the prefix's canonical form leaves the app, never its content. The canonical form
is the JSON of ``{"system": ..., "tools": ...}`` (a key only when given), keys sorted, no whitespace,
UTF-8 with non-ASCII kept; a value that is not JSON is taken as its ``model_dump()`` (pydantic
models, as the provider SDKs' types are) or else its ``str()``.

Its size (``prompt_prefix_tokens``) is what the app's own counter says when it gives one
(``count(system, tools)``, e.g. with tiktoken; ``prompt_prefix_tokens_estimated`` false), else the
estimate ``ceil(len(canonical bytes) / 4)`` (estimated true). Either way :func:`fit` caps it at the
call's ``input_tokens``, which includes the prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("meterline")
PrefixCounter = Callable[[Any, Any], int]
BYTES_PER_TOKEN = 4
_SYSTEM_ROLES = ("system", "developer")


def canonical(system: Any, tools: Any) -> bytes:
    """The prefix's canonical JSON bytes (what the hash and the estimate are computed from)."""
    prefix = {name: value for name, value in (("system", system), ("tools", tools)) if value}
    return json.dumps(prefix, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain).encode()


def prefix_fields(system: Any, tools: Any, count: PrefixCounter | None = None) -> dict[str, Any]:
    """``prompt_prefix_hash``, ``prompt_prefix_tokens`` and ``prompt_prefix_tokens_estimated``; empty
    when the call has neither system instructions nor tools."""
    if not system and not tools:
        return {}
    data = canonical(system, tools)
    fields: dict[str, Any] = {"prompt_prefix_hash": hashlib.sha256(data).hexdigest()}
    counted = None
    if count is not None:
        try:
            counted = count(system, tools)
        except Exception as exc:  # noqa: BLE001 (the app's counter must never break its call)
            log.warning("meterline: the prompt prefix counter failed (%s); estimating", type(exc).__name__)
    if isinstance(counted, int) and not isinstance(counted, bool) and counted >= 0:
        fields.update(prompt_prefix_tokens=counted, prompt_prefix_tokens_estimated=False)
    else:
        fields.update(prompt_prefix_tokens=math.ceil(len(data) / BYTES_PER_TOKEN), prompt_prefix_tokens_estimated=True)
    return fields


def leading_system(messages: Any) -> list[Any]:
    """The system (and developer) messages a message list starts with: the stable part of it."""
    if not isinstance(messages, Iterable) or isinstance(messages, str | bytes | dict):
        return []
    leading = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
        if role not in _SYSTEM_ROLES:
            break
        leading.append(message)
    return leading


def fit(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``prompt_prefix_tokens`` capped at ``input_tokens`` (the prefix is part of the input)."""
    tokens = values.get("prompt_prefix_tokens")
    if isinstance(tokens, int) and tokens > (total := values.get("input_tokens") or 0):
        values["prompt_prefix_tokens"] = total
    return values


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # noqa: BLE001 (an odd object: its str still identifies it)
            return str(value)
    return str(value)
