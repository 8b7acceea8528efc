"""The provider's rate-limit headers on a call's answer, as CallRecord fields.

OpenAI sends ``x-ratelimit-limit-tokens``, ``x-ratelimit-remaining-tokens``,
``x-ratelimit-limit-requests`` and ``x-ratelimit-remaining-requests``; Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining}``. Both clients
send through an httpx client whose ``response`` event hook sees every answer (each retry too, and
the 429 that raises); the hook writes the headers into the call being made in this context (a
context variable, so threads and asyncio tasks each see their own call). The last answer wins.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterline.integrations._call import Call

OPENAI_HEADERS = {
    "x-ratelimit-limit-tokens": "ratelimit_limit_tokens",
    "x-ratelimit-remaining-tokens": "ratelimit_remaining_tokens",
    "x-ratelimit-limit-requests": "ratelimit_limit_requests",
    "x-ratelimit-remaining-requests": "ratelimit_remaining_requests",
}
ANTHROPIC_HEADERS = {
    "anthropic-ratelimit-tokens-limit": "ratelimit_limit_tokens",
    "anthropic-ratelimit-tokens-remaining": "ratelimit_remaining_tokens",
    "anthropic-ratelimit-requests-limit": "ratelimit_limit_requests",
    "anthropic-ratelimit-requests-remaining": "ratelimit_remaining_requests",
    "anthropic-ratelimit-input-tokens-limit": "ratelimit_limit_input_tokens",
    "anthropic-ratelimit-output-tokens-limit": "ratelimit_limit_output_tokens",
}
MAX_LIMIT = 10**12  # the CallRecord bound

_current: ContextVar[Call | None] = ContextVar("meterline_call", default=None)


def limit_fields(headers: Mapping[str, str] | Any, names: Mapping[str, str]) -> dict[str, int]:
    """The rate-limit fields ``headers`` carry (values that are not plain integers are left out)."""
    fields: dict[str, int] = {}
    for header, field in names.items():
        value = headers.get(header)
        if isinstance(value, str) and value.strip().isdigit() and int(value) <= MAX_LIMIT:
            fields[field] = int(value)
    return fields


@contextmanager
def current(call: Call) -> Iterator[None]:
    """Answers received inside this block write their rate-limit headers into ``call``."""
    token = _current.set(call)
    try:
        yield
    finally:
        _current.reset(token)


def watch(client: Any, names: Mapping[str, str]) -> None:
    """Hook ``client``'s httpx client (``_client``) once; a client without one records no limits."""
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or any(getattr(h, "__meterline__", False) for h in hooks.get("response", [])):
        return

    def see(response: Any) -> None:
        call = _current.get()
        if call is not None:
            try:
                call.fields.update(limit_fields(response.headers, names))
            except Exception:  # noqa: BLE001, S110 (an odd header object: record the call without limits)
                pass

    async def see_async(response: Any) -> None:
        see(response)

    hook: Any = see_async if inspect.iscoroutinefunction(getattr(http, "send", None)) else see
    hook.__meterline__ = True
    http.event_hooks = {**hooks, "response": [*hooks.get("response", []), hook]}
