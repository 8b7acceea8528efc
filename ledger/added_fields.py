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
}
