"""Test settings: real PostgreSQL and Redis on localhost (overridable), chDB in a fresh directory."""

from __future__ import annotations

import os
import tempfile

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault(
    "DATABASE_URL", os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/meterline")
)
if "METERLINE_VAR_DIR" not in os.environ:
    os.environ["METERLINE_VAR_DIR"] = tempfile.mkdtemp(prefix=f"meterline-test-{_worker}-")
    os.environ["METERLINE_TEST_OWNS_VAR_DIR"] = "1"  # conftest removes it at the end of the run
os.environ.setdefault("CLICKHOUSE_URL", f"chdb://{os.environ['METERLINE_VAR_DIR']}/clickhouse")
# Ten years of raw retention so the price-history cases (2025 prices) are kept.
os.environ.setdefault("CLICKHOUSE_RAW_TTL_DAYS", "3650")
os.environ.setdefault("CLICKHOUSE_HOUR_TTL_DAYS", "3650")  # hour rollups must outlive raw rows
os.environ.setdefault("CACHE_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
# Alert tests deliver to stdlib servers on 127.0.0.1 (alerts/tests/test_ssrf.py overrides it to prove refusal).
os.environ.setdefault("ALERTS_ALLOWED_PRIVATE_HOSTS", "127.0.0.1")

from config.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user fixtures

STATIC_ROOT.mkdir(parents=True, exist_ok=True)
