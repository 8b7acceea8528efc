"""The disk spool: batches wait on disk while the endpoint is down and are replayed oldest first."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from meterline import Client
from meterline.consumer import Consumer
from meterline.counters import Counters
from meterline.shipper import RetryPolicy, Shipper
from meterline.spool import Spool
from meterline.transport import HttpTransport
from sdk_testkit import BlackHole, Clock, ScriptedTransport, Sink, wait_until

NS = 1_763_640_000_000_000_000


def rig(tmp_path: Path, max_bytes: int = 1 << 20) -> tuple[Consumer, ScriptedTransport, Clock, Counters, Spool]:
    transport = ScriptedTransport()
    clock = Clock()
    counters = Counters()
    spool = Spool(tmp_path / "spool", max_bytes)
    shipper = Shipper(
        transport, "k", counters, RetryPolicy(max_retries=1, backoff=1.0, max_backoff=4.0), spool,
        sleep=lambda s: None, clock=clock,
    )  # fmt: skip
    consumer = Consumer(deque(), shipper, counters, max_batch_records=2, flush_interval=0, clock=clock)
    return consumer, transport, clock, counters, spool


def put(consumer: Consumer, first: int, count: int) -> None:
    for i in range(first, first + count):
        consumer.queue.append((NS + i, {}, {"provider": "p", "model": "m", "input_tokens": i}))


def test_down_then_back_replays_oldest_first_with_the_same_keys(tmp_path: Path) -> None:
    consumer, transport, clock, counters, spool = rig(tmp_path)
    # given the endpoint is down: every attempt fails
    transport.script.extend([ConnectionRefusedError()])
    put(consumer, 0, 2)
    consumer.step()  # first batch: the try fails on the network → spooled at once, no retry in place
    put(consumer, 2, 4)
    consumer.step()  # the replay probe is not due yet: these queue behind on disk, without a request
    assert len(spool.pending()) == 3
    assert len(transport.sent) == 1
    assert counters.snapshot()["spooled"] == 6
    first_key = transport.sent[0].headers["Idempotency-Key"]
    # when it is back and the probe is due
    clock.advance(10)
    consumer.step()
    # then the three batches went oldest first, the first with the key it was first tried with
    replayed = transport.sent[1:]
    assert [[c["input_tokens"] for c in s.calls] for s in replayed] == [[0, 1], [2, 3], [4, 5]]
    assert replayed[0].headers["Idempotency-Key"] == first_key
    assert replayed[0].body == transport.sent[0].body
    assert spool.pending() == []
    assert counters.snapshot() == {"sent": 6, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 6}


def test_with_a_spool_a_server_that_answers_5xx_is_still_retried(tmp_path: Path) -> None:
    consumer, transport, _clock, counters, spool = rig(tmp_path)
    transport.script.extend([503])
    put(consumer, 0, 2)
    consumer.step()  # the server is up: its 503 gets the retry policy, not the spool
    assert [s.outcome for s in transport.sent] == [503, 202]
    assert spool.pending() == []
    assert counters.snapshot() == {"sent": 2, "dropped": 0, "invalid": 0, "retried": 2, "spooled": 0}


def test_new_batches_wait_behind_the_spool_while_a_probe_fails(tmp_path: Path) -> None:
    consumer, transport, clock, _counters, spool = rig(tmp_path)
    transport.script.extend([OSError()] * 2)
    put(consumer, 0, 2)
    consumer.step()
    clock.advance(10)
    put(consumer, 2, 2)
    consumer.step()  # the probe (one request) fails: the new batch goes to disk behind it
    assert len(transport.sent) == 2
    assert len(spool.pending()) == 2
    clock.advance(10)
    consumer.step()
    assert [c["input_tokens"] for c in transport.delivered()] == [0, 1, 2, 3]


def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    consumer, transport, _clock, counters, spool = rig(tmp_path, max_bytes=300)
    transport.script.extend([OSError()] * 20)
    put(consumer, 0, 8)
    consumer.step()
    snapshot = counters.snapshot()
    assert snapshot["spooled"] >= 2
    assert snapshot["dropped"] >= 2
    assert snapshot["spooled"] + snapshot["dropped"] == 8
    assert spool.size() <= 300


def test_a_batch_claimed_by_a_dead_process_is_recovered(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    assert spool.put(b"x", 1, "key1")
    [path] = spool.pending()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if spool.claim(path) is not None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert spool.pending() == []  # claimed by the child, which died with it
    again = Spool(tmp_path / "s")  # a new process (or restart) takes it back
    [item] = [again.claim(p) for p in again.pending()]
    assert item is not None
    assert item.key == "key1"
    assert item.records == 1


def test_two_claims_of_one_batch_only_one_wins(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.put(b"x", 3, "k")
    [path] = spool.pending()
    claims: list[Any] = [spool.claim(path), spool.claim(path)]
    assert sum(c is not None for c in claims) == 1


def test_a_silent_endpoint_spools_after_one_timeout_and_replays_once_when_back(tmp_path: Path) -> None:
    hole = BlackHole()
    clock = Clock()
    counters = Counters()
    spool = Spool(tmp_path / "spool")
    sleeps: list[float] = []
    shipper = Shipper(
        HttpTransport(hole.url), "k", counters, RetryPolicy(timeout=0.2), spool, sleep=sleeps.append, clock=clock
    )
    consumer = Consumer(deque(), shipper, counters, max_batch_records=10, flush_interval=0, clock=clock)
    sink: Sink | None = None
    try:
        # given an endpoint that takes the connection and never answers
        put(consumer, 0, 10)
        consumer.step()  # one request, one timeout: the batch is on disk, no retry in place
        assert (hole.connections(), sleeps) == (1, [])
        assert counters.snapshot() == {"sent": 0, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 10}
        # when records keep coming before the probe is due, they go to disk without a request
        for first in range(10, 100, 10):
            put(consumer, first, 10)
            consumer.step()
        assert not consumer.queue
        assert hole.connections() == 1
        # and a due probe meets the silence again: one more timeout, still nothing lost
        clock.advance(60)
        put(consumer, 100, 10)
        consumer.step()
        assert hole.connections() == 2
        assert len(spool.pending()) == 11
        assert counters.snapshot() == {"sent": 0, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 110}
        # then, a real endpoint back on the same address, everything is replayed exactly once, oldest first
        hole.close()
        sink = Sink(hole.port)
        clock.advance(60)
        consumer.step()
        assert [call["input_tokens"] for call in sink.calls()] == list(range(110))
        assert spool.pending() == []
        assert counters.snapshot() == {"sent": 110, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 110}
        assert sleeps == []
    finally:
        hole.close() if sink is None else sink.close()


def test_the_consumer_thread_keeps_draining_into_the_spool_while_the_endpoint_is_silent(tmp_path: Path) -> None:
    hole = BlackHole()
    client = Client(
        "k", hole.url, max_queue=50, max_batch_records=10, flush_interval=0.01, spool_dir=tmp_path / "spool",
        retry=RetryPolicy(timeout=0.3, backoff=1.0, max_backoff=2.0),
    )  # fmt: skip
    sink: Sink | None = None
    try:
        # given a silent endpoint, records keep flowing into the spool: the bounded queue never overflows
        # (retrying in place, one batch would hold the thread for 6 timeouts and 5 backoffs, ~8 s)
        for burst in range(10):
            for i in range(burst * 20, burst * 20 + 20):
                client.record(provider="p", model="m", input_tokens=i)
            assert wait_until(lambda: client.counts()["queued"] == 0, timeout=5), client.counts()
        assert wait_until(lambda: client.counts()["spooled"] == 200, timeout=10), client.counts()
        assert client.counts()["dropped"] == 0
        assert hole.connections() >= 1
        # when a real endpoint is back on the same address, each record arrives exactly once
        hole.close()
        sink = Sink(hole.port)
        calls = sink.wait_for_calls(200, timeout=20)
        assert sorted(call["input_tokens"] for call in calls) == list(range(200))
        assert wait_until(lambda: client.counts()["sent"] == 200, timeout=10), client.counts()
        assert client.counts()["dropped"] == 0
    finally:
        client.shutdown(2)
        hole.close() if sink is None else sink.close()
