"""ops.pipeline: without a broker each step runs in this process, then the steps it enqueued, in
order; with one each step is sent by name to its queue, with the one ``expires``."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from alerts.models import AlertState, Channel, Delivery
from alerts.tests.helpers import budget, receiver
from config.celery import app as celery_app
from config.queues import EXPIRES_SECONDS
from ingest.models import Batch, BatchStatus
from ingest.tests.helpers import post_calls, raw_count
from ledger.models import DirtyBucket
from ledger.rollups import RollupResult
from ops import pipeline
from tenancy.models import Project

ran: list[str] = []

ROOT = Path(__file__).resolve().parents[2]


@celery_app.task(name="ops.tests.first")
def first() -> None:
    pipeline.enqueue("ops.tests.second", "x")
    pipeline.enqueue("ops.tests.broken")
    pipeline.enqueue("ops.tests.second", "y")
    ran.append("first")  # before the steps it enqueued: they wait for it, like a queue


@celery_app.task(name="ops.tests.second")
def second(tag: str) -> None:
    ran.append(f"second {tag}")


@celery_app.task(name="ops.tests.broken")
def broken() -> None:
    ran.append("broken")
    raise RuntimeError("this step fails")


def test_inline_steps_run_after_the_step_that_enqueued_them(caplog: pytest.LogCaptureFixture) -> None:
    ran.clear()
    pipeline.enqueue("ops.tests.first")
    # a later step's failure is logged and the others still run
    assert ran == ["first", "second x", "broken", "second y"]
    assert [r.getMessage() for r in caplog.records if r.name == "ops.pipeline"] == [
        "inline task ops.tests.broken failed"
    ]


def test_the_first_inline_step_s_failure_reaches_the_caller() -> None:
    ran.clear()
    with pytest.raises(RuntimeError, match="this step fails"):
        pipeline.enqueue("ops.tests.broken")
    pipeline.enqueue("ops.tests.second", "after")  # the thread is free for the next one
    assert ran == ["broken", "second after"]


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_one_drain_runs_the_whole_pipeline_in_this_process(project: Project, api: APIClient) -> None:
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 20}
        )
        b = budget(project, "1.00", rules=[("actual", [100], [channel])])
        record = {"provider": "openai", "model": "gpt-4o", "cost_usd": "1.25",
                  "timestamp": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}  # fmt: skip
        assert post_calls(api, [record]).status_code == 202
        pipeline.enqueue(pipeline.DRAIN)
        # drained, rolled up, evaluated and delivered before enqueue returned
        assert raw_count(project) == 1
        assert not DirtyBucket.objects.exists()
        assert AlertState.objects.get(budget=b).status == "fired"
        assert Delivery.objects.get().status == "sent"
        assert len(hook.requests) == 1


QUEUE_KEYS = ("ingest", "rollup", "alerts", "default")


def _reset_connections() -> None:
    """Make the Celery app pick its connection pool again (kombu keeps one per broker URL), so the
    next send goes to the broker URL configured now."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(settings: Any) -> Iterator[redis.Redis]:
    """A real Redis broker (this run's test Redis database) for the duration of one test."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url)
    client.delete(*QUEUE_KEYS)
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager
    settings.CELERY_BROKER_URL = url
    conf.broker_url, conf.task_always_eager = url, False
    _reset_connections()
    try:
        yield client
    finally:
        conf.broker_url, conf.task_always_eager = saved
        _reset_connections()
        client.delete(*QUEUE_KEYS, *client.keys("_kombu.binding*"))


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The messages waiting in a queue: task name, args, expires and eta (as datetimes)."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # kombu pushes on the left
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        messages.append({
            "task": headers["task"],
            "args": args,
            "routing_key": message["properties"]["delivery_info"]["routing_key"],
            "expires": datetime.fromisoformat(headers["expires"]),
            "eta": datetime.fromisoformat(headers["eta"]) if headers.get("eta") else None,
        })  # fmt: skip
    return messages


def test_with_a_broker_steps_are_sent_by_name_to_their_queues(broker: redis.Redis) -> None:
    before = datetime.now(UTC)
    pipeline.enqueue(pipeline.DRAIN)
    pipeline.after_rollup(RollupResult(hours=3, projects=2, has_more=True, project_ids=(7, 9)))
    after = datetime.now(UTC)
    ingest, rollup, alerts = (queued(broker, q) for q in ("ingest", "rollup", "alerts"))
    assert [(m["task"], m["args"], m["routing_key"]) for m in ingest] == [("ingest.tasks.drain_outbox", [], "ingest")]
    assert [(m["task"], m["args"]) for m in rollup] == [("ledger.tasks.rollup_dirty", [])]
    assert [(m["task"], m["args"]) for m in alerts] == [("alerts.tasks.evaluate_projects", [[7, 9]])]
    for message in ingest + rollup + alerts:
        assert before + timedelta(seconds=EXPIRES_SECONDS) <= message["expires"]
        assert message["expires"] <= after + timedelta(seconds=EXPIRES_SECONDS)
        assert message["eta"] is None


def test_with_a_broker_a_delayed_send_expires_after_it_is_due(broker: redis.Redis) -> None:
    before = datetime.now(UTC)
    pipeline.send(pipeline.DELIVER, 42, countdown=600)
    [message] = queued(broker, "alerts")
    assert (message["task"], message["args"]) == ("alerts.tasks.deliver", [42])
    assert message["eta"] is not None
    assert before + timedelta(seconds=600) <= message["eta"] <= datetime.now(UTC) + timedelta(seconds=600)
    assert message["expires"] == message["eta"] + timedelta(seconds=EXPIRES_SECONDS)


def test_with_a_broker_an_accepted_batch_is_a_message_not_a_drain(
    broker: redis.Redis, project: Project, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert post_calls(api, [{"provider": "openai", "model": "gpt-4o"}]).status_code == 202
    assert [m["task"] for m in queued(broker, "ingest")] == ["ingest.tasks.drain_outbox"]
    assert Batch.objects.get(project=project).status == BatchStatus.PENDING  # a worker drains it
    assert raw_count(project) == 0


def test_with_an_unreachable_broker_accept_still_answers(
    settings: Any, project: Project, api: APIClient, django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager, conf.broker_connection_timeout, conf.task_publish_retry
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_URL = url
    conf.broker_url, conf.task_always_eager, conf.broker_connection_timeout, conf.task_publish_retry = (
        url, False, 0.5, False
    )  # fmt: skip
    _reset_connections()
    try:
        with caplog.at_level(logging.WARNING, "ops.pipeline"), django_capture_on_commit_callbacks(execute=True):
            assert post_calls(api, [{"provider": "openai", "model": "gpt-4o"}]).status_code == 202
    finally:
        conf.broker_url, conf.task_always_eager, conf.broker_connection_timeout, conf.task_publish_retry = saved
        _reset_connections()
    assert "could not enqueue a drain" in caplog.text
    assert Batch.objects.get(project=project).status == BatchStatus.PENDING


def test_a_broker_that_is_down_is_tried_once_then_skipped_for_a_while(
    settings: Any, project: Project, api: APIClient, django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """kombu's default publish retries (what made each 202 take ~0.65 s with Redis down) are not used,
    and after one failure the nudge is not tried again for a few seconds: the sweep drains anyway."""
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_URL = url
    conf.broker_url, conf.task_always_eager = url, False
    monkeypatch.setattr(pipeline, "_nudge_broken_until", 0.0)
    _reset_connections()
    try:
        with caplog.at_level(logging.WARNING, "ops.pipeline"), django_capture_on_commit_callbacks(execute=True):
            for _ in range(5):
                assert post_calls(api, [{"provider": "openai", "model": "gpt-4o"}]).status_code == 202
    finally:
        conf.broker_url, conf.task_always_eager = saved
        _reset_connections()
    assert caplog.text.count("could not enqueue a drain") == 1
    assert pipeline._nudge_broken_until > 0
    assert Batch.objects.filter(project=project, status=BatchStatus.PENDING).count() == 5


def test_only_the_pipeline_and_config_read_the_broker_setting() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readers = sorted(
        str(path.relative_to(root))
        for package in ("tenancy", "ledger", "ingest", "alerts", "api", "dashboards", "ops")
        for path in (root / package).rglob("*.py")
        if "tests" not in path.parts and "CELERY_BROKER_URL" in path.read_text()
    )
    assert readers == ["ops/pipeline.py"]


def test_tasks_are_found_by_name_from_two_threads_in_a_fresh_process(tmp_path: Any) -> None:
    """The embedded runner's two threads look tasks up at once: neither may see a half-done registration."""
    code = """
import threading, django
django.setup()
from ops import pipeline
found, errors = [], []
def look(name):
    try:
        found.append(pipeline._task(name).name)
    except Exception as exc:
        errors.append(repr(exc))
names = [pipeline.DRAIN, pipeline.ROLLUP, pipeline.EVALUATE, pipeline.DELIVER, pipeline.PURGE] * 4
threads = [threading.Thread(target=look, args=(n,)) for n in names]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(found), errors)
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path)}
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "20 []"
