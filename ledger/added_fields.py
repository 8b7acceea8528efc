"""The call fields added after the first release, and what a call that does not give them holds.

They come last in the outbox payload (``ingest.records.FIELDS``) and in ``ledger.raw.CallColumns``,
so that payloads and records laid out by an earlier release (which end before them) can be read
with these defaults. Their ``llm_calls`` columns default to the same values. Django-free: the SDK
tests import ``ingest.records`` without settings.
"""

from __future__ import annotations

from typing import Any

ADDED_DEFAULTS: dict[str, Any] = {
    "finish_reason": "",  # not known
    "prompt_prefix_hash": "",  # no prefix given
    "prompt_prefix_tokens": 0,  # not given
    "prompt_prefix_tokens_estimated": False,
    # The provider's rate-limit headers on the call's answer (issue 14): None = not sent.
    "ratelimit_limit_tokens": None,
    "ratelimit_remaining_tokens": None,
    "ratelimit_limit_requests": None,
    "ratelimit_remaining_requests": None,
    "ratelimit_limit_input_tokens": None,
    "ratelimit_limit_output_tokens": None,
}

RATELIMIT_FIELDS = (
    "ratelimit_limit_tokens", "ratelimit_remaining_tokens", "ratelimit_limit_requests",
    "ratelimit_remaining_requests", "ratelimit_limit_input_tokens", "ratelimit_limit_output_tokens",
)  # fmt: skip
