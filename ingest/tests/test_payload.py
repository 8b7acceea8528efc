"""The outbox payload (msgpack, the records column by column in ``FIELDS`` order) stays readable:
a batch written by an earlier release drains to the same rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.models import Batch, BatchStatus
from ingest.records import FIELDS, decode_records, encode_records, payload_columns
from ingest.tests.helpers import drain, raw_rows
from ledger.raw import CALL_FIELDS
from tenancy.models import Project

# Two records as the outbox has stored them since its first release (bytes frozen on purpose).
STORED_PAYLOAD = bytes.fromhex(
    "dc002092a56f6c642d31a56f6c642d3292cf0000019aa0b4e17bcf0000019aa0ebcf8092a66f70656e6169a873656c66686f"
    "737492ab6770742d346f2d6d696e69a474696e7992b66770742d346f2d6d696e692d323032342d30372d3138a092a4636861"
    "74a092a461636d65a092a27531a092a27631a092a46d696e69a092aa70726f64756374696f6ea092cd03e80592cd01900092"
    "0000920a0092000092cb405e200000000000c092cb408c200000000000c092a26f6ba56572726f7292a0aa726174655f6c69"
    "6d697492010292a46c697665a46576616c92c2c392a764656661756c74a5626174636892c3c292020092cd1000c092a27431"
    "a092a27331a092a27231a09281a47465616da667726f7774688092c0ce0003d090"
)
RECORDS = [
    ("old-1", 1763632800123, "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "chat", "acme", "u1", "v1", "mini",
     "production", 1000, 400, 0, 10, 0, 120.5, 900.0, "ok", "", 1, "live", False, "default", True, 2, 4096, "t1", "s1",
     "r1", {"team": "growth"}, None),
    ("old-2", 1763636400000, "selfhost", "tiny", "", "", "", "", "", "", "", 5, 0, 0, 0, 0, None, None, "error",
     "rate_limit", 2, "eval", True, "batch", False, 0, None, "", "", "", {}, 250000),
]  # fmt: skip


def test_the_payload_format_is_unchanged() -> None:
    assert encode_records(RECORDS) == STORED_PAYLOAD
    assert decode_records(STORED_PAYLOAD) == [list(column) for column in zip(*RECORDS, strict=True)]
    assert decode_records(b"") == []


# One record as the outbox stores it since finish_reason and the prompt prefix were added (frozen too).
STORED_PAYLOAD_V2 = bytes.fromhex(
    "dc002491a56e65772d3191cf0000019aa0b4e17b91a9616e7468726f70696391b1636c617564652d736f6e6e65742d342d35"
    "91a091a46368617491a091a091a091a091a091cd0bb8910091009114910091c091c091a26f6b91a0910191a46c69766591c2"
    "91a764656661756c7491c29101911491a091a091a0918091c091a66c656e67746891d9406162616261626162616261626162"
    "6162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162"
    "91cd09c491c3"
)
RECORD_V2: tuple[Any, ...] = (
    "new-1", 1763632800123, "anthropic", "claude-sonnet-4-5", "", "chat", "", "", "", "", "", 3000, 0, 0, 20, 0,
    None, None, "ok", "", 1, "live", False, "default", False, 1, 20, "", "", "", {}, None, "length", "ab" * 32, 2500,
    True,
)  # fmt: skip


def test_an_earlier_payload_reads_the_added_fields_as_defaults() -> None:
    columns = payload_columns(STORED_PAYLOAD)
    assert tuple(columns) == FIELDS
    assert [columns[name] for name in FIELDS[: len(RECORDS[0])]] == [list(c) for c in zip(*RECORDS, strict=True)]
    assert columns["finish_reason"] == ["", ""]
    assert columns["prompt_prefix_hash"] == ["", ""]
    assert columns["prompt_prefix_tokens"] == [0, 0]
    assert columns["prompt_prefix_tokens_estimated"] == [False, False]
    assert payload_columns(b"") == {}


def test_the_second_payload_format_is_unchanged_and_reads_no_rate_limits() -> None:
    assert encode_records([RECORD_V2]) == STORED_PAYLOAD_V2
    columns = payload_columns(STORED_PAYLOAD_V2)
    assert tuple(columns) == FIELDS
    assert {name: columns[name] for name in FIELDS[: len(RECORD_V2)]} == {
        name: [value] for name, value in zip(FIELDS, RECORD_V2, strict=False)
    }
    assert [columns[name] for name in FIELDS[len(RECORD_V2) :]] == [[None]] * 6


# One record as the outbox stores it since the rate-limit headers were added (issue 14; frozen too).
STORED_PAYLOAD_V3 = bytes.fromhex(
    "dc002a91a56e65772d3291cf0000019aa0b4e2c891a66f70656e616991a66770742d346f91a091a46368617491a091a091a0"
    "91a091a091cd0bb891cd03e891009114910091c091c091a56572726f7291aa726174655f6c696d6974910191a46c69766591"
    "c291a764656661756c7491c2910091c091a091a091a0918091c091a56572726f7291a0910091c291ce01c9c380910091cd27"
    "1091cd270f91c091c0"
)
RECORD_V3: tuple[Any, ...] = (
    "new-2", 1763632800456, "openai", "gpt-4o", "", "chat", "", "", "", "", "", 3000, 1000, 0, 20, 0,
    None, None, "error", "rate_limit", 1, "live", False, "default", False, 0, None, "", "", "", {}, None, "error", "",
    0, False, 30_000_000, 0, 10_000, 9_999, None, None,
)  # fmt: skip


def test_the_current_payload_format_is_unchanged() -> None:
    assert len(RECORD_V3) == len(FIELDS)
    assert encode_records([RECORD_V3]) == STORED_PAYLOAD_V3
    assert payload_columns(STORED_PAYLOAD_V3) == {name: [value] for name, value in zip(FIELDS, RECORD_V3, strict=True)}
    with pytest.raises(ValueError, match="more than"):
        payload_columns(encode_records([(*RECORD_V3, "extra")]))


@pytest.mark.django_db
def test_a_current_batch_drains_with_the_added_fields(project: Project) -> None:
    received = datetime(2025, 11, 20, 11, 0, 1, tzinfo=UTC)
    Batch.objects.create(project=project, payload=STORED_PAYLOAD_V2, record_count=1, received_at=received)
    assert drain().records == 1
    rows = raw_rows(
        project, "event_id, finish_reason, prompt_prefix_hash, prompt_prefix_tokens, prompt_prefix_tokens_estimated"
    )
    assert rows == [
        {"event_id": "new-1", "finish_reason": "length", "prompt_prefix_hash": "ab" * 32, "prompt_prefix_tokens": 2500,
         "prompt_prefix_tokens_estimated": True}
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_current_batch_drains_with_the_rate_limits(project: Project) -> None:
    received = datetime(2025, 11, 20, 11, 0, 1, tzinfo=UTC)
    Batch.objects.create(project=project, payload=STORED_PAYLOAD_V3, record_count=1, received_at=received)
    assert drain().records == 1
    names = [name for name in FIELDS if name.startswith("ratelimit_")]
    assert raw_rows(project, f"event_id, error_type, {', '.join(names)}") == [
        {"event_id": "new-2", "error_type": "rate_limit", "ratelimit_limit_tokens": 30_000_000,
         "ratelimit_remaining_tokens": 0, "ratelimit_limit_requests": 10_000, "ratelimit_remaining_requests": 9_999,
         "ratelimit_limit_input_tokens": None, "ratelimit_limit_output_tokens": None}
    ]  # fmt: skip


@pytest.mark.django_db
def test_an_earlier_batch_stores_the_added_fields_defaults(project: Project) -> None:
    received = datetime(2025, 11, 20, 11, 0, 1, tzinfo=UTC)
    Batch.objects.create(project=project, payload=STORED_PAYLOAD, record_count=2, received_at=received)
    drain()
    rows = raw_rows(project, "finish_reason, prompt_prefix_hash, prompt_prefix_tokens, prompt_prefix_tokens_estimated")
    default = {"finish_reason": "", "prompt_prefix_hash": "", "prompt_prefix_tokens": 0,
               "prompt_prefix_tokens_estimated": False}  # fmt: skip
    assert rows == [default, default]


def test_the_payload_fields_are_the_ledgers_call_fields_by_name() -> None:
    # the drain hands the payload's columns to ledger.raw by name; only the timestamp is renamed
    assert tuple("timestamp" if name == "ts_ms" else name for name in FIELDS) == CALL_FIELDS


@pytest.mark.django_db
def test_a_batch_stored_by_an_earlier_release_still_drains(project: Project) -> None:
    received = datetime(2025, 11, 20, 11, 0, 1, 500_000, tzinfo=UTC)
    batch = Batch.objects.create(project=project, payload=STORED_PAYLOAD, record_count=2, received_at=received)
    result = drain()
    assert (result.batches, result.records, result.failed) == (1, 2, 0)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE
    rows = raw_rows(
        project,
        "event_id, toUnixTimestamp64Milli(timestamp) AS ts, received_at, batch_id, response_model, customer_id, "
        "cache_read_tokens, ttft_ms, status, attempt, traffic, cache_hit, service_tier, streamed, tool_calls, "
        "max_tokens, tags, cost_input_pusd, cost_cache_read_pusd, cost_output_pusd, cost_pusd, cost_source",
    )
    assert [row.pop("received_at").replace(tzinfo=UTC) for row in rows] == [received.replace(microsecond=500_000)] * 2
    assert rows == [
        {"event_id": "old-1", "ts": 1763632800123, "batch_id": batch.id, "response_model": "gpt-4o-mini-2024-07-18",
         "customer_id": "acme", "cache_read_tokens": 400, "ttft_ms": 120.5, "status": "ok", "attempt": 1,
         "traffic": "live", "cache_hit": False, "service_tier": "default", "streamed": True, "tool_calls": 2,
         "max_tokens": 4096, "tags": {"team": "growth"}, "cost_input_pusd": 600 * 150_000,
         "cost_cache_read_pusd": 400 * 75_000, "cost_output_pusd": 10 * 600_000,
         "cost_pusd": 600 * 150_000 + 400 * 75_000 + 10 * 600_000, "cost_source": "catalogue"},
        {"event_id": "old-2", "ts": 1763636400000, "batch_id": batch.id, "response_model": "", "customer_id": "",
         "cache_read_tokens": 0, "ttft_ms": None, "status": "error", "attempt": 2, "traffic": "eval",
         "cache_hit": True, "service_tier": "batch", "streamed": False, "tool_calls": 0, "max_tokens": None,
         "tags": {}, "cost_input_pusd": 0, "cost_cache_read_pusd": 0, "cost_output_pusd": 0, "cost_pusd": 0,
         "cost_source": "unpriced"},
    ]  # fmt: skip
