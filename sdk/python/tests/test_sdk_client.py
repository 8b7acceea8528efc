"""The client end to end against a local sink: record, attribute, flush, drops, sync mode, fork, exit."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import meterline
import pytest
from meterline import Client, RecordError, RetryPolicy
from sdk_testkit import BlackHole, ScriptedTransport, Sink, app_env, wait_until

KEY = "ml_test_key"


def test_records_reach_the_sink_with_defaults_and_attribution(sink: Sink) -> None:
    client = Client(KEY, sink.url, environment="prod", tags={"team": "growth"})
    with meterline.attribute(feature="chat", tags={"tier": "gold"}):
        client.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2, latency_ms=1500.0)
        with meterline.attribute(customer_id="acme", feature="search"):
            client.record(provider="openai", model="gpt-4o", tags={"tier": "free", "ab": "b"})
    client.record(provider="anthropic", model="claude-haiku-4-5")
    assert client.flush(5)
    calls = sink.calls()
    assert [(c.get("feature"), c.get("customer_id"), c["environment"], c["tags"]) for c in calls] == [
        ("chat", None, "prod", {"team": "growth", "tier": "gold"}),
        ("search", "acme", "prod", {"team": "growth", "tier": "free", "ab": "b"}),
        (None, None, "prod", {"team": "growth"}),
    ]
    assert calls[0]["input_tokens"] == 10
    assert calls[0]["latency_ms"] == 1500.0
    assert len({c["event_id"] for c in calls}) == 3
    assert sink.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert client.counts() == {"sent": 3, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 0, "queued": 0}
    client.shutdown(2)


def test_attribution_is_per_thread_and_follows_asyncio_tasks(sink: Sink) -> None:
    client = Client(KEY, sink.url)

    def in_thread(name: str) -> None:
        with meterline.attribute(feature=name):
            client.record(provider="p", model="m", request_id=name)

    with meterline.attribute(customer_id="outer"):
        threads = [threading.Thread(target=in_thread, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # a pool worker sees the caller's scope when given its context
        with ThreadPoolExecutor(1) as pool:
            ctx = contextvars.copy_context()
            pool.submit(ctx.run, client.record, provider="p", model="m", request_id="pool").result()

        async def task(name: str) -> None:
            with meterline.attribute(feature=name):
                await asyncio.sleep(0)
                client.record(provider="p", model="m", request_id=name)

        async def main() -> None:
            await asyncio.gather(task("a1"), task("a2"))

        asyncio.run(main())
    assert client.flush(5)
    by_request = {c["request_id"]: c for c in sink.calls()}
    for i in range(4):
        assert by_request[f"t{i}"]["feature"] == f"t{i}"
        assert "customer_id" not in by_request[f"t{i}"]
    assert by_request["pool"]["customer_id"] == "outer"
    assert (by_request["a1"]["feature"], by_request["a1"]["customer_id"]) == ("a1", "outer")
    assert (by_request["a2"]["feature"], by_request["a2"]["customer_id"]) == ("a2", "outer")
    client.shutdown(2)


def test_bad_input_gets_a_clear_error() -> None:
    client = Client(KEY, "http://127.0.0.1:9", sync=True, transport=ScriptedTransport())
    with pytest.raises(TypeError, match=r"unknown CallRecord field.*input_token"):
        client.record(provider="openai", model="gpt-4o", input_token=5)
    with pytest.raises(RecordError, match="output_tokens must be an int"):
        client.record(provider="openai", model="gpt-4o", output_tokens="5")
    with pytest.raises(RecordError, match=r"cost_usd .*not a float"):
        client.record(provider="openai", model="gpt-4o", cost_usd=0.1)
    with pytest.raises(RecordError, match="model is required"):
        client.record(provider="openai")
    with pytest.raises(RecordError, match="status must be one of ok, error, timeout, cancelled"):
        meterline.attribute(status="failed").__enter__()
    with pytest.raises(ValueError, match="endpoint must be an http"):
        Client(KEY, "ftp://example.com")
    with pytest.raises(ValueError, match="METERLINE_API_KEY"):
        Client(None, "http://127.0.0.1:9")


def test_sync_mode_sends_before_returning() -> None:
    transport = ScriptedTransport()
    client = Client(KEY, sync=True, transport=transport)
    client.record(provider="openai", model="gpt-4o", input_tokens=7, cost_usd="0.000123456789")
    assert [c["input_tokens"] for c in transport.delivered()] == [7]
    assert transport.delivered()[0]["cost_usd"] == "0.000123456789"  # exact, as a decimal string
    assert client.counts()["sent"] == 1


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    gate = threading.Event()

    class Blocked(ScriptedTransport):
        def post(self, body: bytes, headers: dict[str, str], timeout: float) -> meterline.Reply:
            gate.wait(10)
            reply: meterline.Reply = super().post(body, headers, timeout)
            return reply

    transport = Blocked()
    client = Client(KEY, max_queue=50, max_batch_records=10, flush_interval=60, transport=transport)
    client.record(provider="p", model="m")
    for _ in range(9):
        client.record(provider="p", model="m")  # the tenth wakes the consumer: it blocks in post()
    assert wait_until(lambda: len(client._queue) == 0 and client.consumer._batch == [])
    for _ in range(80):
        client.record(provider="p", model="m")
    assert client.counts()["dropped"] == 30
    assert client.counts()["queued"] == 50
    gate.set()
    assert client.flush(10)
    assert len(transport.delivered()) == 60
    assert client.counts()["sent"] == 60
    client.shutdown(2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_ships_its_own_records_and_not_the_parents(sink: Sink) -> None:
    client = Client(KEY, sink.url, flush_interval=60)
    client.record(provider="p", model="m", request_id="parent-before-fork")
    assert client.flush(5)
    client.record(provider="p", model="m", request_id="parent-queued")  # in the queue at fork time
    pid = os.fork()
    if pid == 0:  # the child: a fresh queue and thread, like a gunicorn or Celery prefork worker
        code = 1
        try:
            client.record(provider="p", model="m", request_id="child")
            code = 0 if client.flush(5) and client.counts()["sent"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(5)
    ids = sorted(c["request_id"] for c in sink.calls())
    assert ids == ["child", "parent-before-fork", "parent-queued"]
    client.shutdown(2)


EXIT_SCRIPT = """
import meterline, sys
meterline.init(api_key="k", endpoint=sys.argv[1], flush_interval=3600, exit_timeout=5)
for i in range(250):
    meterline.record(provider="openai", model="gpt-4o", input_tokens=i)
"""


def test_records_are_flushed_at_exit(sink: Sink, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(EXIT_SCRIPT)
    # The process exits right after recording; its batch is an hour from due: only the exit flush sends it.
    done = subprocess.run([sys.executable, str(script), sink.url], timeout=60, capture_output=True, env=app_env())
    assert done.returncode == 0, done.stderr
    assert sorted(c["input_tokens"] for c in sink.calls()) == list(range(250))


def test_the_exit_flush_has_a_deadline(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import logging; logging.basicConfig()\n" + EXIT_SCRIPT.replace("exit_timeout=5", "exit_timeout=0.5")
    )
    blackhole = Sink()
    blackhole.script.extend([(503, {"Retry-After": "30"})] * 10)
    try:
        done = subprocess.run(
            [sys.executable, str(script), blackhole.url], timeout=30, capture_output=True, env=app_env()
        )
    finally:
        blackhole.close()
    # it gave up at the deadline (not after 30 s of Retry-After), counted and said so, and exited cleanly
    assert done.returncode == 0
    assert b"could not deliver 250 record(s) after retries; dropped" in done.stderr


def test_records_left_queued_at_the_deadline_count_as_dropped() -> None:
    silent = BlackHole()  # the first request hangs: the consumer never comes back for the rest
    client = Client(KEY, silent.url, max_batch_records=10, flush_interval=0)
    try:
        for i in range(100):
            client.record(provider="openai", model="gpt-4o", input_tokens=i)
        assert wait_until(lambda: silent.connections() == 1)
        client.shutdown(0.2)
        counts = client.counts()
    finally:
        silent.close()
    # Nothing is sent; what never left the queue is counted as dropped (the batch in flight is not yet).
    assert counts["sent"] == 0
    assert counts["dropped"] >= 80


def test_with_a_spool_records_left_at_the_deadline_are_kept_for_the_next_start(tmp_path: Path) -> None:
    silent = BlackHole()
    client = Client(KEY, silent.url, max_batch_records=10, flush_interval=0, spool_dir=tmp_path)
    try:
        for i in range(100):
            client.record(provider="openai", model="gpt-4o", input_tokens=i)
        assert wait_until(lambda: silent.connections() == 1)
        client.shutdown(0.2)
        left = client.counts()
    finally:
        silent.close()
    assert left["dropped"] == 0
    assert left["spooled"] >= 80  # all but the batch stuck in flight
    # The next start (same spool) replays them to the endpoint, each once.
    sink = Sink()
    try:
        again = Client(KEY, sink.url, spool_dir=tmp_path)
        again.record(provider="openai", model="gpt-4o", input_tokens=1000)
        assert again.flush(5)
        assert wait_until(lambda: len(sink.calls()) >= left["spooled"] + 1)
        again.shutdown(2)
        tokens = [c["input_tokens"] for c in sink.calls()]
    finally:
        sink.close()
    # Each once; the batch that was in flight was spooled too when the endpoint dropped it.
    assert len(tokens) == len(set(tokens)) >= left["spooled"] + 1
    assert set(tokens) - {1000} <= set(range(100))


def test_module_api_init_record_flush_shutdown(sink: Sink) -> None:
    meterline.init(api_key=KEY, endpoint=sink.url, route_version="v7")
    meterline.record(provider="openai", model="gpt-4o")
    assert meterline.flush(5)
    assert meterline.counts()["sent"] == 1
    assert meterline.shutdown(2)
    meterline.record(provider="openai", model="gpt-4o")  # after shutdown: a no-op, never an error
    assert sink.calls()[0]["route_version"] == "v7"


def test_retries_against_a_real_http_server(sink: Sink) -> None:
    sink.script.extend([(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})])
    client = Client(KEY, sink.url, retry=RetryPolicy(backoff=0.01, max_backoff=0.02))
    client.record(provider="p", model="m")
    assert client.flush(10)
    assert len(sink.calls()) == 1
    assert client.counts()["retried"] == 2
    client.shutdown(2)
