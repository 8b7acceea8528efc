"""Settings fail loudly and name the variable; the schedule only names tasks that exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.celery import app as celery_app
from config.env import env_bool, env_int, env_url
from config.schedule import PERIODIC, beat_schedule

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL has scheme 'mysql'"),
        ("CLICKHOUSE_URL", "http://:8123", "CLICKHOUSE_URL has no host"),
        ("INGEST_MAX_RECORDS", "lots", "INGEST_MAX_RECORDS='lots' is not an integer"),
        ("DEBUG", "yes", "DEBUG='yes' is not a boolean"),
        ("CELERY_BROKER_URL", "redis://host:notaport/0", "CELERY_BROKER_URL has a malformed port"),
        ("CLICKHOUSE_CLUSTER", "two words", "CLICKHOUSE_CLUSTER='two words' is not a cluster name"),
        ("CLICKHOUSE_CLUSTER", "meterline", "CLICKHOUSE_CLUSTER is set but CLICKHOUSE_URL is chdb://"),
    ],
)
def test_a_malformed_setting_stops_the_start_and_names_itself(
    name: str, value: str, message: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path), name: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_env_helpers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("X_FLAG", "true")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "1")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='1' is not a boolean"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_NUM", "3")
    with pytest.raises(ImproperlyConfigured, match="X_NUM=3 is below its minimum of 5"):
        env_int("X_NUM", 10, minimum=5)
    secret = tmp_path / "url"
    secret.write_text("https://user:s3cret@ch.example:8443/\n")
    monkeypatch.setenv("X_URL_FILE", str(secret))
    assert env_url("X_URL", None, schemes=("https",)) == "https://user:s3cret@ch.example:8443/"
    monkeypatch.setenv("X_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="X_URL_FILE="):
        env_url("X_URL", None, schemes=("https",))


def test_credentials_never_appear_in_url_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_URL", "ftp://admin:hunter2@host/")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_url("X_URL", None, schemes=("https",))
    assert "hunter2" not in str(excinfo.value)


def test_every_scheduled_task_is_registered() -> None:
    celery_app.loader.import_default_modules()
    for periodic in PERIODIC:
        assert periodic.task in celery_app.tasks, periodic.task
    assert set(beat_schedule()) == {p.name for p in PERIODIC}


def test_slow_entries_run_on_the_clock_and_every_entry_expires() -> None:
    schedule = beat_schedule()
    evaluate = schedule["evaluate-budgets"]["schedule"]
    assert isinstance(evaluate, crontab)
    assert evaluate.minute == set(range(0, 60, 5))  # on the clock: unaffected by beat restarts
    assert schedule["sweep-outbox"]["schedule"] == 15.0
    for name, entry in schedule.items():
        assert 0 < entry["options"]["expires"] <= 3600, name  # type: ignore[index]


def test_hour_rollups_must_outlive_raw_rows(tmp_path: Path) -> None:
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path),
        "CLICKHOUSE_RAW_TTL_DAYS": "400", "CLICKHOUSE_HOUR_TTL_DAYS": "90",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "CLICKHOUSE_HOUR_TTL_DAYS=90 must be at least CLICKHOUSE_RAW_TTL_DAYS=400" in result.stderr


def test_production_hosts_default_has_no_test_client_host(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALLOWED_HOSTS"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", METERLINE_VAR_DIR=str(tmp_path))
    code = "import django; django.setup(); from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(",") == ["127.0.0.1", "localhost", "[::1]"]


def test_the_wsgi_application_loads_every_view_before_its_first_request(tmp_path: Path) -> None:
    """A web worker imports the URLconf (DRF, drf-spectacular, every view: ~0.5 s of CPU) when it
    loads, not in the first request it serves, and keeps what it loaded out of the collector's walks."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "METERLINE_VAR_DIR": str(tmp_path)}
    code = (
        "import gc, sys; import config.wsgi; "
        "print(all(m in sys.modules for m in ('api.urls', 'api.calls', 'dashboards.urls')), "
        "gc.get_freeze_count() > 10000)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
