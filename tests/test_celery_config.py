"""Celery conventions: queues from one enum, every task bounded in time, the limits checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.celery import app as celery_app
from config.queues import Queue, queue_for
from config.schedule import PERIODIC

ROOT = Path(__file__).resolve().parent.parent


def test_routes_schedule_and_pipeline_agree_on_the_queues() -> None:
    router = celery_app.amqp.router
    for name, queue in [
        ("ingest.tasks.drain_outbox", Queue.INGEST),
        ("ingest.tasks.purge_outbox", Queue.INGEST),
        ("ledger.tasks.rollup_dirty", Queue.ROLLUP),
        ("ledger.tasks.reprice", Queue.ROLLUP),
        ("alerts.tasks.deliver", Queue.ALERTS),
        ("anything.else", Queue.DEFAULT),
    ]:
        assert queue_for(name) is queue
        assert router.route({}, name)["queue"].name == queue.value, name  # what apply_async/delay use
    assert {p.task: p.queue for p in PERIODIC}["alerts.tasks.evaluate_all"] is Queue.ALERTS


def test_every_task_has_a_soft_and_a_hard_time_limit() -> None:
    assert celery_app.conf.task_soft_time_limit == 840
    assert celery_app.conf.task_time_limit == 900


def test_a_soft_limit_at_or_above_the_hard_limit_is_refused(tmp_path: Path) -> None:
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path),
        "CELERY_TASK_TIME_LIMIT": "60", "CELERY_TASK_SOFT_TIME_LIMIT": "60",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "CELERY_TASK_SOFT_TIME_LIMIT=60 must be below CELERY_TASK_TIME_LIMIT=60" in result.stderr
