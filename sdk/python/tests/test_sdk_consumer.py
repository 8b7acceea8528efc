"""The consumer and shipper, driven step by step with a hand-wound clock and a scripted transport."""

from __future__ import annotations

import gzip
import logging
import threading
from collections import deque
from typing import Any

import pytest
from meterline.consumer import Captured, Consumer
from meterline.counters import Counters
from meterline.shipper import RetryPolicy, Shipper
from sdk_testkit import Clock, ScriptedTransport

NS = 1_763_640_000_000_000_000  # 2025-11-20T12:00:00Z
SECRET = "ml_live_SECRET_KEY_123"


class Rig:
    """A consumer with its queue, counters, transport, clock and the sleeps it asked for."""

    def __init__(self, **options: Any) -> None:
        policy = options.pop("policy", RetryPolicy(max_retries=3, backoff=1.0, max_backoff=8.0))
        self.queue: deque[Any] = deque()
        self.transport = ScriptedTransport()
        self.clock = Clock()
        self.sleeps: list[float] = []
        self.counters = Counters()
        self.shipper = Shipper(
            self.transport, SECRET, self.counters, policy, sleep=self.sleeps.append, clock=self.clock
        )
        self.consumer = Consumer(self.queue, self.shipper, self.counters, clock=self.clock, **options)

    def put(self, count: int, **fields: Any) -> None:
        for i in range(count):
            item: Captured = (NS + i, {}, {"provider": "openai", "model": "gpt-4o", "input_tokens": i, **fields})
            self.queue.append(item)


def test_a_batch_closes_at_its_record_count() -> None:
    rig = Rig(max_batch_records=10, flush_interval=60)
    rig.put(25)
    rig.consumer.step()
    # two full batches went; five wait for more records or for their age
    assert [len(s.calls) for s in rig.transport.sent] == [10, 10]
    rig.clock.advance(60)
    rig.consumer.step()
    assert [len(s.calls) for s in rig.transport.sent] == [10, 10, 5]
    assert [c["input_tokens"] for c in rig.transport.delivered()] == list(range(25))
    assert rig.counters.snapshot()["sent"] == 25


def test_a_batch_closes_at_its_age() -> None:
    rig = Rig(flush_interval=2.0)
    rig.put(3)
    rig.consumer.step()
    assert rig.transport.sent == []
    assert rig.consumer.next_wait() == 2.0
    rig.clock.advance(1.5)
    rig.consumer.step()
    assert rig.transport.sent == []
    assert rig.consumer.next_wait() == pytest.approx(0.5)
    rig.clock.advance(0.5)
    rig.consumer.step()
    assert len(rig.transport.sent) == 1
    assert len(rig.transport.sent[0].calls) == 3


def test_a_batch_closes_before_it_would_pass_its_byte_size() -> None:
    rig = Rig(max_batch_bytes=4096, flush_interval=60)
    rig.put(40, feature="f" * 150)  # ~260 bytes each
    rig.consumer.step()
    rig.clock.advance(60)
    rig.consumer.step()
    decoded = [len(gzip.decompress(s.body)) for s in rig.transport.sent]
    assert len(decoded) >= 3
    assert all(size <= 4096 for size in decoded)
    assert all(size > 4096 - 300 for size in decoded[:-1])  # each closed only when the next would not fit
    assert sum(len(s.calls) for s in rig.transport.sent) == 40


def test_an_oversize_record_is_dropped_and_counted_and_the_rest_go(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(max_batch_bytes=4096, flush_interval=0)
    rig.put(1)
    rig.queue.append(
        (NS, {}, {"provider": "openai", "model": "gpt-4o", "tags": {f"k{i}": "v" * 200 for i in range(30)}})
    )
    rig.put(1)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        rig.consumer.step()
    assert len(rig.transport.delivered()) == 2
    assert rig.counters.snapshot()["dropped"] == 1
    assert "more than a batch may hold" in caplog.text
    assert "vvvv" not in caplog.text


def test_an_invalid_record_is_dropped_with_its_field_named_never_its_value(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(flush_interval=0)
    rig.queue.append((NS, {}, {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "cache_read_tokens": 20}))
    rig.queue.append((NS, {}, {"provider": "openai", "model": "gpt-4o", "customer_id": 12345678}))
    rig.put(1)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        rig.consumer.step()
    assert len(rig.transport.delivered()) == 1
    assert rig.counters.snapshot()["dropped"] == 2
    assert "cache_read_tokens" in caplog.text
    assert "customer_id must be a str" in caplog.text
    assert "12345678" not in caplog.text


def test_retries_5xx_408_429_and_network_errors_with_one_idempotency_key() -> None:
    rig = Rig(flush_interval=0, policy=RetryPolicy(max_retries=4, backoff=1.0, max_backoff=8.0))
    rig.transport.script.extend([503, ConnectionRefusedError(), 408, (429, 30.0)])
    rig.put(4)
    rig.consumer.step()
    assert [s.outcome.__class__.__name__ if isinstance(s.outcome, Exception) else s.outcome
            for s in rig.transport.sent] == [503, "ConnectionRefusedError", 408, 429, 202]  # fmt: skip
    keys = {s.headers["Idempotency-Key"] for s in rig.transport.sent}
    assert len(keys) == 1
    bodies = {s.body for s in rig.transport.sent}
    assert len(bodies) == 1  # the very same bytes: the server's replay check compares them
    # capped exponential backoff with jitter in [ceiling/2, ceiling]; Retry-After is a floor
    assert 0.5 <= rig.sleeps[0] <= 1.0
    assert 1.0 <= rig.sleeps[1] <= 2.0
    assert 2.0 <= rig.sleeps[2] <= 4.0
    assert rig.sleeps[3] == 30.0  # 429's Retry-After is above the 4-8 s backoff: it wins
    assert rig.counters.snapshot() == {"sent": 4, "dropped": 0, "invalid": 0, "retried": 16, "spooled": 0}


def test_retry_after_is_a_floor_not_a_ceiling() -> None:
    rig = Rig(flush_interval=0, policy=RetryPolicy(max_retries=2, backoff=10.0, max_backoff=20.0))
    rig.transport.script.extend([(503, 1.0), (429, 60.0)])
    rig.put(1)
    rig.consumer.step()
    assert 5.0 <= rig.sleeps[0] <= 10.0  # the backoff was longer than Retry-After: 1 s
    assert rig.sleeps[1] == 60.0  # Retry-After longer than the backoff wins


def test_gives_up_after_the_retries_and_counts_the_drop() -> None:
    rig = Rig(flush_interval=0, policy=RetryPolicy(max_retries=2, backoff=0.1, max_backoff=0.1))
    rig.transport.script.extend([500, 500, 500, 202])
    rig.put(3)
    rig.consumer.step()
    assert len(rig.transport.sent) == 3  # the first try and two retries, then no more
    assert rig.counters.snapshot() == {"sent": 0, "dropped": 3, "invalid": 0, "retried": 6, "spooled": 0}


@pytest.mark.parametrize("status", [400, 401, 403, 415, 422])
def test_other_4xx_are_not_retried_and_the_log_holds_no_key_nor_content(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(flush_interval=0)
    rig.transport.script.append(status)
    rig.put(2, customer_id="private-customer")
    with caplog.at_level(logging.INFO, logger="meterline"):
        rig.consumer.step()
    assert len(rig.transport.sent) == 1
    assert rig.counters.snapshot()["dropped"] == 2
    assert str(status) in caplog.text
    assert SECRET not in caplog.text
    assert "private-customer" not in caplog.text


def test_413_splits_the_batch_until_it_fits() -> None:
    rig = Rig(flush_interval=0)
    rig.transport.script.extend([413, 413])  # 8 → refused; 4 → refused; then 2, 2, 4 accepted
    rig.put(8)
    rig.consumer.step()
    assert [len(s.calls) for s in rig.transport.sent] == [8, 4, 2, 2, 4]
    assert sorted(c["input_tokens"] for c in rig.transport.delivered()) == list(range(8))
    assert len({s.headers["Idempotency-Key"] for s in rig.transport.sent}) == 5  # a new batch, a new key


def test_the_request_is_gzip_json_with_the_key_in_the_header_only() -> None:
    rig = Rig(flush_interval=0)
    rig.put(1)
    rig.consumer.step()
    sent = rig.transport.sent[0]
    assert sent.headers["Content-Encoding"] == "gzip"
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET.encode() not in gzip.decompress(sent.body)
    call = sent.calls[0]
    assert call["timestamp"] == NS // 1_000_000
    assert call["event_id"][14] == "7"  # a UUIDv7
    assert int(call["event_id"].replace("-", "")[:12], 16) == NS // 1_000_000


def test_a_flush_marker_ships_the_open_batch_and_is_set() -> None:
    rig = Rig(flush_interval=60)
    rig.put(2)
    marker = threading.Event()
    rig.queue.append(marker)
    rig.put(1)
    rig.consumer.step()
    assert marker.is_set()
    assert [len(s.calls) for s in rig.transport.sent] == [2]  # the third waits for its own batch


def test_an_unexpected_shipping_error_is_counted_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(flush_interval=0)

    def broken(records: list[bytes]) -> None:
        raise PermissionError("spool directory not writable")

    rig.shipper.ship = broken  # type: ignore[method-assign]
    rig.put(3)
    rig.consumer.step()
    assert rig.counters.snapshot()["dropped"] == 3
    assert "3 record(s) dropped by an unexpected error (PermissionError)" in caplog.text
