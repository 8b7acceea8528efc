"""Test settings: real PostgreSQL and Redis on localhost (overridable), chDB in a fresh directory."""

from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
# A pytest-xdist worker inherits the environment of the controller, which read these settings first:
# the scratch directory (chDB holds an exclusive lock on it) and the Redis db made for the controller
# are not the worker's. What these settings chose (never what the caller set) is chosen again per worker;
# a command a test starts inherits its worker's choice.
_CHOSEN = ("METERLINE_VAR_DIR", "METERLINE_TEST_OWNS_VAR_DIR", "CLICKHOUSE_URL", "CACHE_URL")
if os.environ.get("METERLINE_TEST_CHOSEN_FOR", _worker) != _worker:
    for _name in os.environ.get("METERLINE_TEST_CHOSEN", "").split(","):
        os.environ.pop(_name, None)
_chosen = [name for name in _CHOSEN if name not in os.environ]


def _worker_redis(url: str) -> str:
    """Under pytest-xdist, worker gwN uses the Redis db N below the given one (15, 14 by default; wrapping
    at 0): keys such as ``throttle:ingest:<key id>`` and ``dims:<project id>`` repeat across the workers'
    test databases, and one worker's ``cache.clear()`` would empty another's."""
    if not _worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(_worker[2:])) % 16}"))


os.environ.setdefault(
    "DATABASE_URL", os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/meterline")
)
if "METERLINE_VAR_DIR" not in os.environ:
    os.environ["METERLINE_VAR_DIR"] = tempfile.mkdtemp(prefix=f"meterline-test-{_worker}-")
    os.environ["METERLINE_TEST_OWNS_VAR_DIR"] = "1"  # conftest removes it at the end of the run
os.environ.setdefault("CLICKHOUSE_URL", f"chdb://{os.environ['METERLINE_VAR_DIR']}/clickhouse")
os.environ.setdefault("CACHE_URL", _worker_redis(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")))
os.environ["METERLINE_TEST_CHOSEN"] = ",".join(_chosen)
os.environ["METERLINE_TEST_CHOSEN_FOR"] = _worker
# Ten years of raw retention so the price-history cases (2025 prices) are kept.
os.environ.setdefault("CLICKHOUSE_RAW_TTL_DAYS", "3650")
os.environ.setdefault("CLICKHOUSE_HOUR_TTL_DAYS", "3650")  # hour rollups must outlive raw rows
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
# Alert tests deliver to stdlib servers on 127.0.0.1 (alerts/tests/test_ssrf.py overrides it to prove refusal).
os.environ.setdefault("ALERTS_ALLOWED_PRIVATE_HOSTS", "127.0.0.1")

from config.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user fixtures

STATIC_ROOT.mkdir(parents=True, exist_ok=True)
