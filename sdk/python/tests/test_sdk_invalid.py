"""A record dropped as invalid is seen: counted in ``counts()`` and warned once per kind through logging."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import meterline
import pytest
from meterline import Client, RecordError
from meterline.consumer import Consumer
from meterline.counters import Counters
from meterline.shipper import Shipper
from meterline.transport import Reply
from sdk_testkit import Clock, ScriptedTransport, Sink, app_env, decode

NS = 1_795_168_800_000_000_000  # 2026-11-20T10:00:00Z
KEY = "ml_test_key"


def rig(transport: Any = None) -> tuple[Consumer, Counters, Any]:
    counters = Counters()
    transport = transport or ScriptedTransport()
    shipper = Shipper(transport, KEY, counters, sleep=lambda _: None)
    return Consumer(deque(), shipper, counters, flush_interval=0, clock=Clock()), counters, transport


def call(**fields: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    return (NS, {}, {"provider": "openai", "model": "gpt-4o", **fields})


def meterline_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "meterline" and r.levelno == logging.WARNING]


def test_rfc3339_strings_are_shipped_not_dropped() -> None:
    consumer, counters, transport = rig()
    for text in ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00.250Z", "2026-11-20T12:00:00.5+02:00"):
        consumer.queue.append(call(timestamp=text))
    consumer.step()
    assert [c["timestamp"] for c in transport.delivered()] == [
        1_795_168_800_000,
        1_795_168_800_250,
        1_795_168_800_500,
    ]
    assert counters.snapshot() == {"sent": 3, "dropped": 0, "invalid": 0, "retried": 0, "spooled": 0}


def test_invalid_records_warn_once_per_kind_through_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    # pytest's handler sits on the root logger: a record seen here went through the logging tree.
    caplog.set_level(logging.WARNING)
    consumer, counters, transport = rig()
    for i in range(5):
        consumer.queue.append(call(timestamp=f"2026-10-07T10:00:0{i}"))  # no offset
    for _ in range(3):
        consumer.queue.append(call(timestamp=1_795_168_800))  # seconds
    consumer.queue.append(call(timestamp="2026-11-20T10:00:00Z"))
    consumer.queue.append(call(customer_id=42))
    consumer.queue.append(call(customer_id=43))
    consumer.step()
    assert len(transport.delivered()) == 1
    assert counters.snapshot() == {"sent": 1, "dropped": 10, "invalid": 10, "retried": 0, "spooled": 0}
    warnings = meterline_warnings(caplog)
    assert len(warnings) == 3, warnings
    assert "timestamp needs a UTC offset" in warnings[0]
    assert "timestamp epoch timestamps are milliseconds; this looks like seconds" in warnings[1]
    assert "customer_id must be a str, not int" in warnings[2]
    assert all("counts()['invalid']" in w for w in warnings)
    assert "2026-10-07" not in caplog.text
    assert "1795168800" not in caplog.text


def test_later_ones_of_a_kind_go_to_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    consumer, counters, _ = rig()
    for _ in range(3):
        consumer.queue.append(call(timestamp="yesterday"))
    consumer.step()
    levels = [r.levelno for r in caplog.records if r.name == "meterline" and "dropped as invalid" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert counters.invalid == 3


class Rejecting(ScriptedTransport):
    """A server that takes the batch but rejects some records in it (a 202 with ``rejected``)."""

    def __init__(self, rejected: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rejected = rejected

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        super().post(body, headers, timeout)
        count = len(decode(body))
        answer = {"batch_id": "b", "accepted": count - len(self.rejected), "rejected": self.rejected}
        return Reply(202, None, json.dumps(answer).encode())


def test_records_the_server_rejects_are_invalid_too_warned_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    too_old = {"timestamp": ["is older than the raw retention of 400 days"]}
    tag = {"tags": ["Expected `str` of length <= 256 (at `tags['secret-tag-key']`)"]}
    consumer, counters, _ = rig(
        Rejecting([{"index": 0, "errors": too_old}, {"index": 1, "errors": too_old}, {"index": 2, "errors": tag}])
    )
    for _ in range(2):
        for _ in range(4):
            consumer.queue.append(call())
        consumer.step()
    assert counters.snapshot() == {"sent": 2, "dropped": 6, "invalid": 6, "retried": 0, "spooled": 0}
    warnings = meterline_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "refused by the server (fields: timestamp)" in warnings[0]
    assert "refused by the server (fields: tags)" in warnings[1]
    assert "secret-tag-key" not in caplog.text


def test_in_sync_mode_an_invalid_record_raises_and_is_counted(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    client = Client(KEY, sink.url, sync=True)
    client.record(provider="openai", model="gpt-4o", timestamp="2026-11-20T10:00:00.125Z")
    with pytest.raises(RecordError, match="timestamp needs a UTC offset"):
        client.record(provider="openai", model="gpt-4o", timestamp="2026-11-20T10:00:00")
    with pytest.raises(RecordError, match="looks like seconds"):
        client.record(provider="openai", model="gpt-4o", timestamp=1_795_168_800)
    assert [c["timestamp"] for c in sink.calls()] == [1_795_168_800_125]
    assert client.counts() == {"sent": 1, "dropped": 2, "invalid": 2, "retried": 0, "spooled": 0, "queued": 0}
    assert meterline_warnings(caplog) == []  # the caller got the exception: no log on top
    client.shutdown(2)


def test_module_counts_have_invalid(sink: Sink) -> None:
    meterline.init(api_key=KEY, endpoint=sink.url, flush_interval=0)
    try:
        meterline.record(provider="openai", model="gpt-4o", timestamp="2026-11-20T10:00:00+02:00")
        meterline.record(provider="openai", model="gpt-4o", timestamp="2026-11-20T10:00:00")
        assert meterline.flush(5)
        assert meterline.counts() == {"sent": 1, "dropped": 1, "invalid": 1, "retried": 0, "spooled": 0, "queued": 0}
        assert sink.calls()[0]["timestamp"] == 1_795_161_600_000
    finally:
        meterline.shutdown(2)


APP = """
import meterline, sys
meterline.init(api_key="k", endpoint=sys.argv[1], flush_interval=0)
for i in range(5):
    meterline.record(provider="openai", model="gpt-4o", timestamp="2026-10-07T10:00:00")
meterline.record(provider="openai", model="gpt-4o", timestamp="2026-11-20T10:00:00Z")
meterline.flush(5)
print(meterline.counts()["invalid"])
"""


def test_an_app_without_logging_configured_still_sees_the_warning_once(sink: Sink, tmp_path: Path) -> None:
    # No handler on the "meterline" logger (not even a NullHandler): Python's last resort prints it.
    script = tmp_path / "app.py"
    script.write_text(APP)
    done = subprocess.run(
        [sys.executable, str(script), sink.url], timeout=60, capture_output=True, env=app_env(), text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    lines = [line for line in done.stderr.splitlines() if "dropped as invalid" in line]
    assert len(lines) == 1, done.stderr
    assert "timestamp needs a UTC offset" in lines[0]
    assert len(sink.calls()) == 1
