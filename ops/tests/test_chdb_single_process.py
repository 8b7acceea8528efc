"""chDB is single-process: a broker with a chdb:// ClickHouse is refused at start, saying what to do;
a chDB directory held by another process is an outage (503), never bad data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from api.errors import unavailable_store
from ingest.drain import TRANSIENT
from ledger.clickhouse.client import EngineLocked

ROOT = Path(__file__).resolve().parents[2]


def _check(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "METERLINE_ALLOW_CHDB_WITH_BROKER"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "METERLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "CLICKHOUSE_URL": f"chdb://{tmp_path}/clickhouse",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_broker_with_chdb_is_refused_at_start_with_what_to_do(tmp_path: Path) -> None:
    result = _check(tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: CELERY_BROKER_URL is set but")
    assert "CLICKHOUSE_URL is chdb://" in message
    assert "one process only" in message
    assert "Use a ClickHouse server URL (CLICKHOUSE_URL=http://" in message
    assert "or unset CELERY_BROKER_URL for embedded mode" in message


@pytest.mark.parametrize(
    "overrides",
    [
        {"CLICKHOUSE_URL": "http://127.0.0.1:8123"},  # production: a server with a broker
        {"CELERY_BROKER_URL": ""},  # embedded: chDB without a broker
        {"METERLINE_ALLOW_CHDB_WITH_BROKER": "true"},  # tests that run both inside one process
    ],
)
def test_a_single_process_configuration_starts(tmp_path: Path, overrides: dict[str, str]) -> None:
    result = _check(tmp_path, **overrides)
    assert result.returncode == 0, result.stderr


def test_a_locked_chdb_directory_is_an_outage_not_bad_data() -> None:
    locked = EngineLocked("Unable to open the chdb engine at '/x': ... (is another process using it?)")
    assert isinstance(locked, OperationalError)
    assert isinstance(locked, TRANSIENT)  # the drain retries, never dead-letters
    assert unavailable_store(locked) == "ClickHouse"  # reads answer 503 with Retry-After
