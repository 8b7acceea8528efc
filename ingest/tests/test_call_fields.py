"""The CallRecord fields added after the first release: finish_reason and the prompt prefix
(hash, tokens, whether the count was estimated), from POST /v1/calls to llm_calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls, raw_rows
from tenancy.models import Project

ADDED = "finish_reason, prompt_prefix_hash, prompt_prefix_tokens, prompt_prefix_tokens_estimated"
WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")


def record(**fields: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 2000, "timestamp": WHEN, **fields}


def rejection(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 0, body
    errors: dict[str, list[str]] = body["rejected"][0]["errors"]
    return errors


@pytest.mark.django_db
def test_the_added_fields_are_stored_and_default_when_absent(api: APIClient, project: Project) -> None:
    prefix = {"prompt_prefix_hash": "f" * 64, "prompt_prefix_tokens": 2000, "prompt_prefix_tokens_estimated": True}
    calls = [record(event_id="a", finish_reason="length", **prefix), record(event_id="b")]
    assert post_calls(api, calls).json()["accepted"] == 2
    drain()
    rows = raw_rows(project, f"event_id, {ADDED}")
    assert rows == [
        {"event_id": "a", "finish_reason": "length", **prefix},
        {"event_id": "b", "finish_reason": "", "prompt_prefix_hash": "", "prompt_prefix_tokens": 0,
         "prompt_prefix_tokens_estimated": False},
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter", "error"])
def test_every_finish_reason_is_accepted(api: APIClient, reason: str) -> None:
    assert post_calls(api, [record(finish_reason=reason)]).json()["accepted"] == 1


@pytest.mark.django_db
def test_an_unknown_finish_reason_names_the_values_allowed(api: APIClient) -> None:
    errors = rejection(post_calls(api, [record(finish_reason="end_turn")]))
    assert list(errors) == ["finish_reason"]
    assert "expected one of: stop, length, tool_calls, content_filter, error" in errors["finish_reason"][0]


@pytest.mark.django_db
def test_the_prefix_may_not_exceed_the_input(api: APIClient) -> None:
    errors = rejection(post_calls(api, [record(input_tokens=100, prompt_prefix_tokens=101)]))
    assert errors == {"prompt_prefix_tokens": ["may not exceed input_tokens (the prefix is part of the input)"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("prompt_prefix_hash", "x" * 65), ("prompt_prefix_hash", 7), ("prompt_prefix_tokens", -1),
     ("prompt_prefix_tokens", 10**9 + 1), ("prompt_prefix_tokens_estimated", "yes"), ("finish_reason", 1)],
)  # fmt: skip
def test_a_bad_added_field_is_named(api: APIClient, field: str, value: Any) -> None:
    assert list(rejection(post_calls(api, [record(**{field: value})]))) == [field]


@pytest.mark.django_db
def test_call_detail_returns_the_added_fields(api: APIClient, project: Project) -> None:
    from ledger.explore import call_detail

    post_calls(
        api, [record(event_id="d", finish_reason="content_filter", prompt_prefix_hash="h", prompt_prefix_tokens=9)]
    )
    drain()
    detail = call_detail(project.pk, "d")
    assert detail is not None
    assert {k: detail[k] for k in ADDED.split(", ")} == {
        "finish_reason": "content_filter", "prompt_prefix_hash": "h", "prompt_prefix_tokens": 9,
        "prompt_prefix_tokens_estimated": False,
    }  # fmt: skip


RATE_LIMITS = {
    "ratelimit_limit_tokens": 30_000_000, "ratelimit_remaining_tokens": 0, "ratelimit_limit_requests": 10_000,
    "ratelimit_remaining_requests": 9_999, "ratelimit_limit_input_tokens": 400_000,
    "ratelimit_limit_output_tokens": 80_000,
}  # fmt: skip


@pytest.mark.django_db
def test_the_rate_limit_fields_are_stored_and_null_when_absent(api: APIClient, project: Project) -> None:
    calls = [record(event_id="a", **RATE_LIMITS), record(event_id="b", ratelimit_limit_requests=50)]
    assert post_calls(api, calls).json()["accepted"] == 2
    drain()
    rows = raw_rows(project, f"event_id, {', '.join(RATE_LIMITS)}")
    assert rows == [
        {"event_id": "a", **RATE_LIMITS},
        {"event_id": "b", **dict.fromkeys(RATE_LIMITS), "ratelimit_limit_requests": 50},
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("field", list(RATE_LIMITS))
@pytest.mark.parametrize("value", [-1, 10**12 + 1, "100", 1.5, True])
def test_a_bad_rate_limit_field_is_named(api: APIClient, field: str, value: Any) -> None:
    assert list(rejection(post_calls(api, [record(**{field: value})]))) == [field]
