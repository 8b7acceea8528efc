"""The disk spool: batches wait on disk while the endpoint is down and are replayed oldest first."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from meterline.consumer import Consumer
from meterline.counters import Counters
from meterline.shipper import RetryPolicy, Shipper
from meterline.spool import Spool
from sdk_testkit import Clock, ScriptedTransport

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
    transport.script.extend([ConnectionRefusedError()] * 2)
    put(consumer, 0, 2)
    consumer.step()  # first batch: the try and one retry fail → spooled
    put(consumer, 2, 4)
    consumer.step()  # the replay probe is not due yet: these queue behind on disk, without a request
    assert len(spool.pending()) == 3
    assert len(transport.sent) == 2
    assert counters.snapshot()["spooled"] == 6
    first_key = transport.sent[0].headers["Idempotency-Key"]
    # when it is back and the probe is due
    clock.advance(10)
    consumer.step()
    # then the three batches went oldest first, the first with the key it was first tried with
    replayed = transport.sent[2:]
    assert [[c["input_tokens"] for c in s.calls] for s in replayed] == [[0, 1], [2, 3], [4, 5]]
    assert replayed[0].headers["Idempotency-Key"] == first_key
    assert replayed[0].body == transport.sent[0].body
    assert spool.pending() == []
    assert counters.snapshot() == {"sent": 6, "dropped": 0, "retried": 2, "spooled": 6}


def test_new_batches_wait_behind_the_spool_while_a_probe_fails(tmp_path: Path) -> None:
    consumer, transport, clock, counters, spool = rig(tmp_path)
    transport.script.extend([OSError()] * 3)
    put(consumer, 0, 2)
    consumer.step()
    clock.advance(10)
    put(consumer, 2, 2)
    consumer.step()  # the probe (one request) fails: the new batch goes to disk behind it
    assert len(transport.sent) == 3
    assert len(spool.pending()) == 2
    clock.advance(10)
    consumer.step()
    assert [c["input_tokens"] for c in transport.delivered()] == [0, 1, 2, 3]


def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    consumer, transport, clock, counters, spool = rig(tmp_path, max_bytes=300)
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
