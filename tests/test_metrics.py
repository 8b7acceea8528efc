"""GET /metrics against the real stores: counters move with the work, gauges read the database,
access is refused by default to anything but loopback, and an outage never makes it fail."""

from __future__ import annotations

import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from alerts import deliveries
from alerts.models import Channel, Delivery
from alerts.tests.helpers import budget, evaluate, receiver, spend
from api.tests.test_outage import unreachable_database
from ingest.models import Batch, BatchStatus
from ingest.tests.helpers import drain, post_calls
from ledger import telemetry
from ledger.clickhouse.client import get_clickhouse
from ledger.dirty import mark_dirty
from ledger.rollups import rollup_dirty
from tenancy.models import Project

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-for-the-metrics-test-only"
GOOD = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2}


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly these labels (0 when absent, as Prometheus would sum)."""
        family = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
        for sample in self.families[family].samples if family in self.families else []:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
        return 0.0


def scrape(**extra: Any) -> Scrape:
    answer = Client().get("/metrics", **extra)
    assert answer.status_code == 200, (answer.status_code, answer.content[:300])
    assert answer["Content-Type"].startswith("text/plain")
    return Scrape(answer.content.decode())


def status_of(**extra: Any) -> int:
    return int(Client().get("/metrics", **extra).status_code)


# --- counters and gauges -------------------------------------------------------------------------


@pytest.mark.django_db
def test_accept_and_drain_move_the_counters_and_the_outbox_gauges(api: APIClient, project: Project) -> None:
    before = scrape()
    answer = post_calls(api, [{**GOOD, "event_id": "m-1"}, {**GOOD, "event_id": "m-2"}, {"provider": "openai"}])
    assert answer.status_code == 202
    assert (answer.json()["accepted"], len(answer.json()["rejected"])) == (2, 1)

    queued = scrape()
    assert queued.value("meterline_records_accepted_total") - before.value("meterline_records_accepted_total") == 2
    assert queued.value("meterline_records_rejected_total") - before.value("meterline_records_rejected_total") == 1
    pending = {"status": "pending"}
    assert (
        queued.value("meterline_outbox_batches", **pending) - before.value("meterline_outbox_batches", **pending) == 1
    )
    assert (
        queued.value("meterline_outbox_records", **pending) - before.value("meterline_outbox_records", **pending) == 2
    )
    assert queued.value("meterline_outbox_oldest_pending_age_seconds") >= 0
    assert queued.value("meterline_up", store="database") == 1
    assert queued.value("meterline_up", store="clickhouse") == 1

    result = drain()
    assert (result.batches, result.records) >= (1, 2)
    drained = scrape()
    assert (
        drained.value("meterline_outbox_records_drained_total") - queued.value("meterline_outbox_records_drained_total")
        == result.records
    )
    assert (
        drained.value("meterline_outbox_batches_drained_total") - queued.value("meterline_outbox_batches_drained_total")
        == result.batches
    )
    assert drained.value("meterline_outbox_batches", **pending) == 0
    assert drained.value("meterline_outbox_oldest_pending_age_seconds") == 0
    write = {"kind": "write", "caller": "ledger.raw"}  # the drain inserts through ledger.raw
    assert drained.value("meterline_clickhouse_query_seconds_count", **write) > queued.value(
        "meterline_clickhouse_query_seconds_count", **write
    )


@pytest.mark.django_db
def test_a_replayed_request_is_not_counted_again(api: APIClient, project: Project) -> None:
    before = scrape().value("meterline_records_accepted_total")
    for _ in range(2):
        assert post_calls(api, [GOOD], **{"Idempotency-Key": "replay-1"}).status_code == 202
    assert scrape().value("meterline_records_accepted_total") - before == 1


@pytest.mark.django_db
def test_the_oldest_pending_age_and_the_backoff_come_from_the_outbox(project: Project) -> None:
    now = timezone.now()
    Batch.objects.create(project=project, payload=b"", record_count=3, received_at=now - timedelta(seconds=120))
    Batch.objects.create(
        project=project, payload=b"", record_count=1, next_attempt_at=now + timedelta(seconds=60), attempts=1
    )
    got = scrape()
    assert got.value("meterline_outbox_oldest_pending_age_seconds") >= 120
    assert got.value("meterline_outbox_backoff_batches") == 1
    assert got.value("meterline_outbox_records", status="pending") == 4


@pytest.mark.django_db
def test_drain_failures_are_counted_by_kind_and_dead_batches_show(api: APIClient, project: Project) -> None:
    before = scrape()
    # transient: ClickHouse refuses connections
    assert post_calls(api, [GOOD]).status_code == 202
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:9/"):
        assert drain().failed == 1
        down = scrape()
    assert down.value("meterline_up", store="clickhouse") == 0
    assert down.value("meterline_up", store="database") == 1
    transient = {"kind": "transient"}
    assert (
        down.value("meterline_outbox_drain_failures_total", **transient)
        - before.value("meterline_outbox_drain_failures_total", **transient)
        == 1
    )
    assert down.value("meterline_outbox_backoff_batches") == 1
    Batch.objects.filter(project=project).delete()

    # data: a payload that does not decode, until it is dead
    Batch.objects.create(project=project, payload=b"\xc1 not msgpack", record_count=1)
    for _ in range(5):  # OUTBOX_MAX_DATA_ATTEMPTS
        drain()
        Batch.objects.filter(status=BatchStatus.PENDING).update(next_attempt_at=timezone.now())
    dead = scrape()
    data = {"kind": "data"}
    assert (
        dead.value("meterline_outbox_drain_failures_total", **data)
        - before.value("meterline_outbox_drain_failures_total", **data)
        == 5
    )
    assert dead.value("meterline_outbox_batches", status="dead") == 1
    assert dead.value("meterline_outbox_records", status="dead") == 1
    assert dead.value("meterline_outbox_oldest_pending_age_seconds") == 0  # dead is not waiting


@pytest.mark.django_db
def test_rollup_lag_and_dirty_hours_come_from_the_dirty_marks(project: Project) -> None:
    before = scrape().value("meterline_rollup_dirty_hours")
    hour = datetime(2026, 10, 1, 12, tzinfo=UTC)
    mark_dirty({project.pk: {hour, hour + timedelta(hours=1)}}, timezone.now() - timedelta(seconds=300))
    marked = scrape()
    assert marked.value("meterline_rollup_dirty_hours") - before == 2
    assert marked.value("meterline_rollup_lag_seconds") >= 300
    while rollup_dirty().has_more:
        pass
    rolled = scrape()
    assert rolled.value("meterline_rollup_dirty_hours") == 0
    assert rolled.value("meterline_rollup_lag_seconds") == 0


@pytest.mark.django_db
def test_delivery_outcomes_are_counted_and_statuses_read_from_the_database(project: Project, api: APIClient) -> None:
    before = scrape()
    with receiver() as slack:
        slack.script = [(500, "internal_error")]
        channel = Channel.objects.create(
            project=project, kind="slack", name="ops", config={"webhook_url": f"{slack.url}/services/T/B/X"}
        )
        budget(project, "100.00", rules=[("actual", [80], [channel])])
        spend(api, "85.00", datetime(2026, 10, 3, tzinfo=UTC))
        evaluate(project, datetime(2026, 10, 20, 12, tzinfo=UTC))  # first attempt: the 500, a retry
        retrying = scrape()
        delivery = Delivery.objects.get()
        assert delivery.next_attempt_at is not None
        assert deliveries.send_due(now=delivery.next_attempt_at) == {"sent": 1}
    sent = scrape()

    def moved(after: Scrape, outcome: str) -> float:
        name = "meterline_alert_delivery_attempts_total"
        return after.value(name, outcome=outcome) - before.value(name, outcome=outcome)

    assert (moved(retrying, "retry"), moved(retrying, "sent")) == (1, 0)
    assert (moved(sent, "retry"), moved(sent, "sent"), moved(sent, "failed")) == (1, 1, 0)
    assert retrying.value("meterline_alert_deliveries_by_status", status="sending") == 1
    assert sent.value("meterline_alert_deliveries_by_status", status="sending") == 0
    assert sent.value("meterline_alert_deliveries_by_status", status="sent") == 1


@pytest.mark.django_db
def test_clickhouse_statements_are_timed_by_kind_and_caller_family(ch: Any) -> None:
    read = {"kind": "read", "caller": "tests.metrics"}
    before = scrape()
    assert get_clickhouse().query("SELECT 1", caller="tests.metrics.probe").result_rows == [(1,)]
    with pytest.raises(Exception, match=r"UNKNOWN_IDENTIFIER|Unknown|Missing"):
        get_clickhouse().query("SELECT no_such_column", caller="tests.metrics.probe")
    after = scrape()
    assert (
        after.value("meterline_clickhouse_query_seconds_count", **read)
        - before.value("meterline_clickhouse_query_seconds_count", **read)
        == 2
    )
    assert after.value("meterline_clickhouse_query_seconds_sum", **read) > before.value(
        "meterline_clickhouse_query_seconds_sum", **read
    )
    assert (
        after.value("meterline_clickhouse_errors_total", **read)
        - before.value("meterline_clickhouse_errors_total", **read)
        == 1
    )
    assert telemetry.caller_family("ledger.queries.usage.groups") == "ledger.queries"


# --- access --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_a_token_a_scrape_must_bear_it(ch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=["0.0.0.0/0", "::/0"]):
        missing = Client().get("/metrics")
        assert missing.status_code == 401
        assert missing["WWW-Authenticate"].startswith("Bearer")
        assert status_of(HTTP_AUTHORIZATION=f"Basic {TOKEN}") == 401
        assert status_of(HTTP_AUTHORIZATION="Bearer wrong") == 403
        assert status_of(HTTP_AUTHORIZATION=f"Bearer {TOKEN}x") == 403
        assert status_of(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="203.0.113.9") == 200
        assert "meterline_records_accepted" in scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").families
    # every comparison went through the constant-time compare, with the expected token
    assert compared
    assert all(expected == TOKEN.encode() for _, expected in compared)
    assert (b"wrong", TOKEN.encode()) in compared


@pytest.mark.django_db
def test_without_a_token_only_loopback_may_scrape(ch: Any) -> None:
    assert status_of() == 200  # the test client's REMOTE_ADDR is 127.0.0.1
    assert status_of(REMOTE_ADDR="::1") == 200
    assert status_of(REMOTE_ADDR="::ffff:127.0.0.1") == 200
    for outside in ("203.0.113.9", "10.1.2.3", "192.168.1.5", "2001:db8::1", "not-an-address", ""):
        assert status_of(REMOTE_ADDR=outside) == 403, outside
    # a request relayed by a proxy we were not told to trust carries the proxy's address, not the client's
    assert status_of(HTTP_X_FORWARDED_FOR="203.0.113.9") == 403
    assert status_of(HTTP_X_REAL_IP="203.0.113.9") == 403


@pytest.mark.django_db
def test_allowed_networks_and_a_trusted_proxy(ch: Any) -> None:
    with override_settings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8", "2001:db8::/32"]):
        assert status_of(REMOTE_ADDR="10.1.2.3") == 200
        assert status_of(REMOTE_ADDR="2001:db8::7") == 200
        assert status_of(REMOTE_ADDR="11.1.2.3") == 403
        assert status_of() == 403  # loopback is only allowed by default
    with override_settings(TRUST_X_FORWARDED_FOR=True):
        assert status_of(HTTP_X_FORWARDED_FOR="127.0.0.1", REMOTE_ADDR="172.18.0.5") == 200
        assert status_of(HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9", REMOTE_ADDR="172.18.0.5") == 403
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"]):  # both must hold
        assert status_of(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="203.0.113.9") == 403
        assert status_of(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="10.0.0.1") == 200
        assert status_of(REMOTE_ADDR="10.0.0.1") == 401


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least 16 characters"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,lan", "METRICS_ALLOWED_NETWORKS: 'lan' is not an address or CIDR"),
    ],
)
def test_a_malformed_metrics_setting_stops_the_start(name: str, value: str, message: str, tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path), name: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert message in result.stderr


# --- outages and processes -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_database_down_leaves_its_gauges_out_and_still_answers(ch: Any) -> None:
    with unreachable_database():
        got = scrape()
    assert got.value("meterline_up", store="database") == 0
    assert got.value("meterline_up", store="clickhouse") == 1
    for gauge in ("meterline_outbox_batches", "meterline_rollup_lag_seconds", "meterline_alert_deliveries_by_status"):
        assert gauge not in got.families
    assert "meterline_records_accepted" in got.families  # process counters need no store


_CHILD = """
import os
from ledger import telemetry
telemetry.count_accepted(3, 1)
telemetry.CLICKHOUSE_SECONDS.labels("read", "tests.child").observe(0.02)
pid = os.fork()  # as Celery's prefork pool and gunicorn do after importing the app
if pid == 0:
    telemetry.count_accepted(4, 0)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.django_db
def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, check=True, timeout=60)
    files = sorted(p.name for p in tmp_path.iterdir())
    named = [re.fullmatch(r"(counter|histogram)_([A-Za-z0-9.-]+-\d+)\.db", f) for f in files]
    assert all(named), files  # host-pid: no two containers sharing the directory write one file
    assert len({m.group(2) for m in named if m}) == 4, files  # two processes, each forked once
    with override_settings(METRICS_MULTIPROC_DIR=str(tmp_path)):
        got = scrape()
    assert got.value("meterline_records_accepted_total") == 14  # (3 + 4) x 2, from the files only
    assert got.value("meterline_records_rejected_total") == 2
    assert got.value("meterline_clickhouse_query_seconds_count", kind="read", caller="tests.child") == 2
    assert got.value("meterline_up", store="database") == 1


# --- the dashboard -------------------------------------------------------------------------------


def _exprs(panels: Iterable[dict[str, Any]]) -> Iterable[str]:
    for panel in panels:
        yield from (target["expr"] for target in panel.get("targets", []))
        yield from _exprs(panel.get("panels", []))


def _series_names(families: Iterable[Metric]) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


@pytest.mark.django_db
def test_the_grafana_dashboard_only_uses_exported_metrics_and_shows_them_all(ch: Any) -> None:
    dashboard = json.loads((ROOT / "ops" / "grafana" / "meterline.json").read_text())
    exported = _series_names(scrape().families.values())
    exprs = list(_exprs(dashboard["panels"]))
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\bmeterline_[a-z0-9_]+", expr)}
    assert used <= exported, used - exported
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported}
    assert families <= {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
