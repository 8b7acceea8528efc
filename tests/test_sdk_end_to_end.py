"""The SDK against a live Meterline server in this process: exact costs, and an outage survived.

The server is pytest-django's ``live_server`` (real PostgreSQL outbox), the drain writes to the
ClickHouse engine (chDB); nothing is mocked. The outage is a small TCP-level gate in front of the
server that can refuse connections, or swallow an answer after the server has stored the batch.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from meterline import Client, RetryPolicy

from ingest.tests.helpers import drain, raw_count, raw_rows
from ledger.clickhouse.client import get_clickhouse
from tenancy.models import Project

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread must see the project

PUSD = 10**12
# Catalogue prices per token in pico-USD (USD per Mtok × 10^6): see ingest/tests/test_pricing_end_to_end.py.
CASES: list[tuple[dict[str, Any], int]] = [
    # gpt-4o: 600 uncached × 2.5 + 400 cache reads × 1.25 + 500 output × 10 (µUSD)  = 0.007 USD
    ({"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 500},
     7_000_000_000),
    # claude-sonnet-4-5: 3000 × 3 + 2000 writes × 3.75 + 5000 reads × 0.30 + 100 output × 15 = 0.0195 USD
    ({"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 10_000, "cache_write_tokens": 2000,
      "cache_read_tokens": 5000, "output_tokens": 100}, 19_500_000_000),
    # o3: 100 × 2 + 1000 output (800 of them reasoning, priced as output) × 8 = 0.0082 USD
    ({"provider": "openai", "model": "o3", "input_tokens": 100, "output_tokens": 1000, "reasoning_tokens": 800},
     8_200_000_000),
]  # fmt: skip


def cost_sum(project: Project) -> tuple[int, int, int]:
    """(rows after dedup, distinct event ids, total cost in pico-USD) straight from ClickHouse."""
    result = get_clickhouse().query(
        "SELECT count(), uniqExact(event_id), sum(cost_pusd) FROM llm_calls FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": project.pk},
    )
    rows, distinct, total = result.result_rows[0]
    return int(rows), int(distinct), int(total)


def test_records_land_with_exact_costs(live_server: Any, project: Project, ingest_key: str) -> None:
    # given an app recording 100 calls of each kind through the SDK
    client = Client(ingest_key, live_server.url, max_batch_records=64, flush_interval=0.05, feature="e2e")
    for i in range(300):
        fields, _ = CASES[i % 3]
        client.record(**fields, latency_ms=1200.0, ttft_ms=300.0, customer_id=f"c{i % 7}")
    # when it flushes and the server drains
    assert client.flush(60)
    assert client.counts() == {"sent": 300, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 0, "queued": 0}
    drain()
    # then every row is there once, priced exactly
    rows = raw_rows(project, "model, cost_pusd, cost_source, feature, ttft_ms, latency_ms")
    assert len(rows) == 300 == raw_count(project)
    expected = {fields["model"]: cost for fields, cost in CASES}
    for row in rows:
        assert row["cost_pusd"] == expected[row["model"]], row["model"]
        assert (row["cost_source"], row["feature"], row["ttft_ms"], row["latency_ms"]) == (
            "catalogue", "e2e", 300.0, 1200.0)  # fmt: skip
    assert cost_sum(project) == (300, 300, 100 * sum(cost for _, cost in CASES))  # 3.47 USD
    client.shutdown(5)


def test_finish_reason_and_prompt_prefix_land_as_recorded(live_server: Any, project: Project, ingest_key: str) -> None:
    # given calls recorded with a finish reason and a prompt prefix (estimated or counted), and one without
    from meterline.integrations.prefix import prefix_fields

    prefix = prefix_fields("You are terse.", [{"name": "lookup"}])
    client = Client(ingest_key, live_server.url, flush_interval=0.05)
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 2000}
    client.record(**base, request_id="a", finish_reason="length", **prefix)
    client.record(
        **base, request_id="b", finish_reason="tool_calls", prompt_prefix_hash="h1", prompt_prefix_tokens=1500
    )
    client.record(**base, request_id="c")
    assert client.flush(60)
    client.shutdown(5)
    drain()
    # then each lands in llm_calls as sent, the absent ones at their defaults
    columns = "request_id, finish_reason, prompt_prefix_hash, prompt_prefix_tokens, prompt_prefix_tokens_estimated"
    rows = sorted(raw_rows(project, columns), key=lambda row: row["request_id"])
    assert [tuple(row.values())[1:] for row in rows] == [
        ("length", prefix["prompt_prefix_hash"], prefix["prompt_prefix_tokens"], True),
        ("tool_calls", "h1", 1500, False),
        ("", "", 0, False),
    ]


def test_rfc3339_timestamps_land_at_their_exact_utc_instant(
    live_server: Any, project: Project, ingest_key: str
) -> None:
    # given RFC 3339 strings (Z, fractional seconds, offsets) for instants of a recent day
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    at_ten = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    cases = {
        f"{day}T10:00:00Z": at_ten,
        f"{day}T10:00:00.123456Z": at_ten + timedelta(milliseconds=123),
        f"{day}T12:00:00.250+02:00": at_ten + timedelta(milliseconds=250),
        f"{day}T04:30:00.999-05:30": at_ten + timedelta(milliseconds=999),
    }
    client = Client(ingest_key, live_server.url, flush_interval=0.05)
    # when the app records them through the SDK (and one without an offset, which the server refuses too)
    for i, text in enumerate(cases):
        client.record(provider="openai", model="gpt-4o", input_tokens=10, request_id=f"sdk-{i}", timestamp=text)
    client.record(provider="openai", model="gpt-4o", request_id="naive", timestamp=f"{day}T10:00:00")
    assert client.flush(60)
    assert client.counts() == {"sent": 4, "dropped": 1, "invalid": 1, "retried": 0, "spooled": 0, "queued": 0}
    client.shutdown(5)
    # and the same strings go straight to /v1/calls, as another client would send them
    calls = [
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "request_id": f"http-{i}", "timestamp": text}
        for i, text in enumerate(cases)
    ]
    assert _post_calls(live_server.url, ingest_key, calls) == {"accepted": 4, "rejected": []}
    drain()
    # then each is stored at its exact UTC instant, the SDK's rows and the server's own reading alike
    stored = {r["request_id"]: r["timestamp"] for r in raw_rows(project, "request_id, timestamp")}
    expected = {f"{via}-{i}": instant for via in ("sdk", "http") for i, instant in enumerate(cases.values())}
    assert {key: _utc(value) for key, value in stored.items()} == expected


def _utc(value: datetime) -> datetime:
    """A value of the DateTime64(3, 'UTC') column (the client may hand it over naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _post_calls(url: str, key: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/calls", body=json.dumps({"calls": calls}), headers=headers)
    answer = conn.getresponse()
    body = json.loads(answer.read())
    conn.close()
    assert answer.status == 202, body
    return {"accepted": body["accepted"], "rejected": body["rejected"]}


class Gate:
    """A reverse proxy in front of the live server that can be closed (connection refused) and
    reopened on the same port, or made to lose the answer to the next request it forwards."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.forwarded: list[tuple[str, int]] = []  # (Idempotency-Key, upstream status)
        self.lose_next_answer = False
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.open()

    def open(self) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                conn = http.client.HTTPConnection(*gate.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                gate.forwarded.append((self.headers.get("Idempotency-Key", ""), answer.status))
                if gate.lose_next_answer:
                    gate.lose_next_answer = False
                    self.close_connection = True
                    return  # the server stored the batch, the client never hears so
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "server", "date"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def gate(live_server: Any) -> Iterator[Gate]:
    proxy = Gate(live_server.url)
    yield proxy
    proxy.close()


def gpt4o(i: int) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000 + i,
        "output_tokens": 100,
        "request_id": str(i),
    }


def gpt4o_cost(i: int) -> int:
    return (1000 + i) * 2_500_000 + 100 * 10_000_000  # pico-USD: $2.50 and $10 per Mtok


def test_an_outage_spools_to_disk_and_replays_with_exact_totals(
    gate: Gate, project: Project, ingest_key: str, tmp_path: Path
) -> None:
    client = Client(
        ingest_key, gate.url, max_batch_records=20, flush_interval=0.05, spool_dir=tmp_path / "spool",
        retry=RetryPolicy(max_retries=1, backoff=0.01, max_backoff=0.05, timeout=10),
    )  # fmt: skip
    # given the server is up
    for i in range(50):
        client.record(**gpt4o(i))
    assert client.flush(30)
    assert client.counts()["sent"] == 50
    # when it goes down for a while, the records go to disk
    gate.close()
    for i in range(50, 170):
        client.record(**gpt4o(i))
    assert client.flush(30)
    spooled = sorted((tmp_path / "spool").glob("*.batch"))
    assert client.counts()["spooled"] == 120
    assert len(spooled) >= 6  # batches of at most 20; an early age-out can split one
    # and when it is back (losing the answer to the first replay after storing its batch)
    gate.open()
    gate.lose_next_answer = True
    replay_from = len(gate.forwarded)
    for i in range(170, 200):
        client.record(**gpt4o(i))
    assert client.flush(30)
    deadline_ok = _wait(lambda: client.counts()["sent"] == 200 and not list((tmp_path / "spool").glob("*.batch*")))
    assert deadline_ok, client.counts()
    # then the spooled batches went first, oldest first, the lost answer's batch again under its key
    replayed = gate.forwarded[replay_from:]
    assert replayed[0][0] == replayed[1][0]  # the same Idempotency-Key: a replay, stored once
    assert client.counts()["dropped"] == 0
    drain()
    rows = raw_rows(project, "request_id")
    assert sorted(int(r["request_id"]) for r in rows) == list(range(200))
    assert raw_count(project, final=False) == 200  # not even an unmerged duplicate was inserted
    assert cost_sum(project) == (200, 200, sum(gpt4o_cost(i) for i in range(200)))
    client.shutdown(5)


def _wait(condition: Any, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
